//! Reading a partition back until it is idle, not up to the high watermark: the persistent broker's
//! watermarks can lag what a fetch returns, so a reader that stops at the watermark undercounts.

use std::time::{Duration, Instant};

use kafka_event_bus::client::Cluster;

use crate::read_back::{ReadRecord, append_records, fetch_request};

/// Every record of `topic`/`partition` from offset 0 until fetches have returned nothing new for
/// `idle` (failed fetches count as nothing new; the broker may be restarting).
pub(crate) async fn read_until_idle(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    idle: Duration,
) -> Vec<ReadRecord> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut last_progress = Instant::now();
    while last_progress.elapsed() < idle {
        let before = offset;
        if let Ok((_, leader)) = cluster.leader(topic, partition).await {
            let request = fetch_request(topic, partition, offset, 100);
            if let Ok(response) = leader.request(&request).await {
                let data = &response.responses[0].partitions[0];
                if data.error_code == 0 {
                    append_records(data.records.clone().unwrap_or_default(), &mut offset, &mut out);
                }
            }
        }
        if offset > before {
            last_progress = Instant::now();
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    out
}
