//! Finding a position for a partition with nothing committed (`auto_offset_reset`), Java's
//! `OffsetFetcher`: **earliest** is the log start, **latest** the log end as a Fetch's high watermark
//! gives it (see [`partition_reader::log_end`] for why not ListOffsets(latest)), so "latest" is exactly
//! "records produced from now on".

use super::{FetchConfig, partition_reader};
use crate::client::{
    Cluster,
    subscription::{OffsetReset, TopicPartition},
};

/// The position `reset` gives `tp`.
pub(crate) async fn resolve(
    cluster: &Cluster,
    tp: &TopicPartition,
    reset: OffsetReset,
    config: &FetchConfig,
) -> Result<i64, partition_reader::ReadError> {
    match reset {
        OffsetReset::Latest => partition_reader::log_end(cluster, tp, config).await,
        _ => partition_reader::log_start(cluster, tp, config.isolation_level).await,
    }
}
