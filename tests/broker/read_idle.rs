//! Reading a partition back until it is idle, not up to the high watermark: the persistent broker's
//! watermarks can lag what a fetch returns, so a reader that stops at the watermark undercounts.

use std::time::{Duration, Instant};

use kafka_event_bus::{
    client::Cluster,
    protocol::{
        StrBytes,
        records::{DecodeOptions, RecordBatchDecoder},
    },
};
use kafka_protocol::messages::{
    FetchRequest, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
};

use crate::read_back::ReadRecord;

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
            let request = FetchRequest::default()
                .with_max_wait_ms(100)
                .with_min_bytes(1)
                .with_max_bytes(8 << 20)
                .with_isolation_level(0)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(partition)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(4 << 20),
                        ]),
                ]);
            if let Ok(response) = leader.request(&request).await {
                let data = &response.responses[0].partitions[0];
                if data.error_code == 0 {
                    let records = data.records.clone().unwrap_or_default();
                    for batch in RecordBatchDecoder::new(records, DecodeOptions::default()) {
                        let batch = batch.unwrap();
                        for record in &batch.records {
                            let at = batch.offset_of(record);
                            if at >= offset {
                                out.push((at, record.clone()));
                            }
                        }
                        offset = offset.max(batch.next_offset());
                    }
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
