//! The log start and end of every partition of a topic, as the DLQ admin reads them: the start from
//! ListOffsets(earliest), the end from a Fetch's high watermark (never ListOffsets(latest), which Tansu
//! gets wrong after multi-record batches). The bus waits on them for its consumer to catch up.

use tokio::time::Instant;

use super::error::{AdminError, MetadataSnafu};
use super::read::{self, retrying};
use crate::client::Cluster;
use snafu::ResultExt;

/// One partition's log start and end (the offset the next record will get).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogBounds {
    pub(crate) partition: i32,
    pub(crate) start: i64,
    pub(crate) end: i64,
}

/// The bounds of every partition of `topic` as of now, each read retried until `deadline`.
pub(crate) async fn log_bounds(
    cluster: &Cluster,
    topic: &str,
    deadline: Instant,
) -> Result<Vec<LogBounds>, AdminError> {
    let started = Instant::now();
    let partitions = match tokio::time::timeout_at(deadline, cluster.partitions(topic)).await {
        Ok(found) => found.context(MetadataSnafu { topic })?,
        Err(_elapsed) => {
            return Err(AdminError::Timeout {
                topic: topic.to_owned(),
                timeout: deadline.saturating_duration_since(started),
            });
        }
    };
    let mut bounds = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let start = retrying(cluster, (topic, partition, -2), deadline, || {
            read::earliest(cluster, topic, partition)
        })
        .await?;
        let end = retrying(cluster, (topic, partition, start), deadline, || {
            read::fetch(cluster, topic, partition, start, 1)
        })
        .await?
        .high_watermark;
        bounds.push(LogBounds {
            partition,
            start,
            end,
        });
    }
    Ok(bounds)
}
