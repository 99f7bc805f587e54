//! Finding a position for a partition with nothing committed (`auto_offset_reset`), Java's
//! `OffsetFetcher`.
//!
//! - **earliest**: ListOffsets with timestamp -2 (the log start).
//! - **latest**: the log end is read from a Fetch's high watermark (the last stable offset under
//!   `read_committed`), *not* from ListOffsets(-1). Why: some Kafka-compatible brokers get
//!   ListOffsets(latest) wrong — Tansu answers "base offset of the last batch + 1", so after one
//!   10-record batch at offsets 10..19 it says 11, and a consumer starting there would re-read nine old
//!   records. The high watermark every Fetch response carries comes from the broker's real end-of-log
//!   counter on every implementation, so "latest" is exactly "records produced from now on".

use kafka_protocol::messages::{
    ListOffsetsRequest, TopicName,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
};

use super::{
    FetchConfig, IsolationLevel,
    plan::{FetchTarget, fetch_request},
};
use crate::{
    client::{
        Cluster,
        subscription::{OffsetReset, TopicPartition},
    },
    protocol::{ServerError, StrBytes},
};

/// ListOffsets(earliest) for one partition.
async fn earliest(cluster: &Cluster, tp: &TopicPartition, isolation: IsolationLevel) -> Result<i64, String> {
    list_offsets(cluster, tp, isolation, -2).await
}

/// ListOffsets at `timestamp` (-2 earliest, -1 latest) for one partition.
async fn list_offsets(
    cluster: &Cluster,
    tp: &TopicPartition,
    isolation: IsolationLevel,
    timestamp: i64,
) -> Result<i64, String> {
    let (_, conn) = cluster
        .leader(&tp.topic, tp.partition)
        .await
        .map_err(|e| e.to_string())?;
    let messenger = conn.messenger().await.map_err(|e| e.to_string())?;
    let version = messenger
        .version_for::<ListOffsetsRequest>()
        .map_err(|e| e.to_string())?;
    let request = ListOffsetsRequest::default()
        .with_isolation_level(if version >= 2 { isolation.code() } else { 0 })
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(tp.partition)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let response = messenger.request(&request).await.map_err(|e| e.to_string())?;
    let p = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == tp.partition)
        .ok_or("ListOffsets answer without the partition")?;
    if let Some(e) = ServerError::from_code(p.error_code, None) {
        return Err(e.to_string());
    }
    Ok(p.offset)
}

/// The log end from a Fetch at the log start (see the module docs for why not ListOffsets).
async fn latest(cluster: &Cluster, tp: &TopicPartition, config: &FetchConfig) -> Result<i64, String> {
    let start = earliest(cluster, tp, config.isolation_level).await?;
    let (_, conn) = cluster
        .leader(&tp.topic, tp.partition)
        .await
        .map_err(|e| e.to_string())?;
    // Tansu leaves a partition out of the answer when its limits are below one batch, so the probe
    // uses the configured sizes (one-off cost: up to `max_partition_fetch_bytes`).
    // A zero wait makes Tansu answer before reading anything, so the probe waits a little.
    let probe = FetchConfig {
        fetch_max_wait: std::time::Duration::from_millis(100),
        fetch_min_bytes: 1,
        ..config.clone()
    };
    let target = [FetchTarget {
        tp: tp.clone(),
        offset: start,
        epoch: 0,
    }];
    let messenger = conn.messenger().await.map_err(|e| e.to_string())?;
    let version = messenger
        .version_for::<kafka_protocol::messages::FetchRequest>()
        .map_err(|e| e.to_string())?;
    let response = messenger
        .request(&fetch_request(
            version,
            &probe,
            cluster.config().max_response_size,
            &target,
        ))
        .await
        .map_err(|e| e.to_string())?;
    let Some(p) = response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == tp.partition)
    else {
        // Nothing to return (an empty log, on some brokers): the broker's own "latest" is all there is.
        let end = list_offsets(cluster, tp, config.isolation_level, -1).await?;
        tracing::debug!(%tp, start, end, "fetch probe without the partition; using ListOffsets(latest)");
        return Ok(end.max(start));
    };
    if let Some(e) = ServerError::from_code(p.error_code, None) {
        return Err(e.to_string());
    }
    let end = match config.isolation_level {
        IsolationLevel::ReadCommitted if p.last_stable_offset >= 0 => p.last_stable_offset,
        _ => p.high_watermark,
    };
    Ok(end.max(start))
}

/// The position `reset` gives `tp`.
pub(crate) async fn resolve(
    cluster: &Cluster,
    tp: &TopicPartition,
    reset: OffsetReset,
    config: &FetchConfig,
) -> Result<i64, String> {
    match reset {
        OffsetReset::Latest => latest(cluster, tp, config).await,
        _ => earliest(cluster, tp, config.isolation_level).await,
    }
}
