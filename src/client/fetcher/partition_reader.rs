//! Plain reads of one partition from its leader, outside any group and without position state: the
//! log start (ListOffsets earliest), the log end (a Fetch's high watermark, see [`log_end`]) and one
//! Fetch at an offset. Offset resets (`reset`) and the DLQ admin (`dlq::admin`) read through it.
//!
//! Reads nothing but the cluster's metadata and the partition leader's connection; retries are the
//! caller's.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    FetchRequest, ListOffsetsRequest, TopicName,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
};
use snafu::{ResultExt, Snafu};

use super::{
    FetchConfig, IsolationLevel,
    plan::{FetchTarget, fetch_request},
};
use crate::{
    client::{Cluster, cluster, connection, subscription::TopicPartition},
    protocol::{ServerError, StrBytes},
};

/// ListOffsets' timestamp for the log start.
const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets' timestamp for the log end.
const LATEST_TIMESTAMP: i64 = -1;

/// Why a read of one partition failed.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub(crate) enum ReadError {
    /// Metadata or the partition leader could not be obtained.
    #[snafu(display("cannot reach the leader of {tp}: {source}"))]
    Leader {
        tp: TopicPartition,
        source: cluster::Error,
    },
    /// The request failed on the connection.
    #[snafu(display("request for {tp} failed: {source}"))]
    Connection {
        tp: TopicPartition,
        source: connection::Error,
    },
    /// The broker answered with an error for the partition.
    #[snafu(display("broker error for {tp}: {source}"))]
    Broker { tp: TopicPartition, source: ServerError },
    /// The broker's answer did not mention the partition.
    #[snafu(display("the broker's answer has no {tp}"))]
    MissingPartition { tp: TopicPartition },
}

/// What one Fetch returned for the partition.
#[derive(Debug)]
pub(crate) struct PartitionFetch {
    /// The high watermark at the time of the fetch.
    pub(crate) high_watermark: i64,
    /// The last stable offset (-1 when the broker does not say).
    pub(crate) last_stable_offset: i64,
    /// The record batches as fetched, undecoded.
    pub(crate) records: Bytes,
}

impl PartitionFetch {
    /// The end of what `isolation` lets a consumer read: the last stable offset under
    /// `read_committed` (when the broker gives one), else the high watermark.
    pub(crate) fn end(&self, isolation: IsolationLevel) -> i64 {
        match isolation {
            IsolationLevel::ReadCommitted if self.last_stable_offset >= 0 => self.last_stable_offset,
            _ => self.high_watermark,
        }
    }
}

/// ListOffsets(earliest): the log start of `tp`.
pub(crate) async fn log_start(
    cluster: &Cluster,
    tp: &TopicPartition,
    isolation: IsolationLevel,
) -> Result<i64, ReadError> {
    list_offsets(cluster, tp, isolation, EARLIEST_TIMESTAMP).await
}

/// ListOffsets at `timestamp` (-2 earliest, -1 latest) for `tp`.
async fn list_offsets(
    cluster: &Cluster,
    tp: &TopicPartition,
    isolation: IsolationLevel,
    timestamp: i64,
) -> Result<i64, ReadError> {
    let (_, leader) = cluster
        .leader(&tp.topic, tp.partition)
        .await
        .context(LeaderSnafu { tp: tp.clone() })?;
    let messenger = leader
        .messenger()
        .await
        .context(ConnectionSnafu { tp: tp.clone() })?;
    let version = messenger
        .version_for::<ListOffsetsRequest>()
        .context(ConnectionSnafu { tp: tp.clone() })?;
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
    let response = messenger
        .request(&request)
        .await
        .context(ConnectionSnafu { tp: tp.clone() })?;
    let p = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == tp.partition)
        .ok_or_else(|| MissingPartitionSnafu { tp: tp.clone() }.build())?;
    if let Some(e) = ServerError::from_code(p.error_code, None) {
        return Err(e).context(BrokerSnafu { tp: tp.clone() });
    }
    Ok(p.offset)
}

/// One Fetch of `tp` at `offset` with `config`'s wait, sizes and isolation (sizes lowered to fit the
/// connection's `max_response_size`).
pub(crate) async fn fetch(
    cluster: &Cluster,
    tp: &TopicPartition,
    offset: i64,
    config: &FetchConfig,
) -> Result<PartitionFetch, ReadError> {
    let (_, leader) = cluster
        .leader(&tp.topic, tp.partition)
        .await
        .context(LeaderSnafu { tp: tp.clone() })?;
    let messenger = leader
        .messenger()
        .await
        .context(ConnectionSnafu { tp: tp.clone() })?;
    let version = messenger
        .version_for::<FetchRequest>()
        .context(ConnectionSnafu { tp: tp.clone() })?;
    let target = [FetchTarget {
        tp: std::sync::Arc::new(tp.clone()),
        offset,
        epoch: 0,
    }];
    let request = fetch_request(version, config, cluster.config().max_response_size, &target);
    let response = messenger
        .request_with_timeout(&request, config.fetch_max_wait + cluster.config().request_timeout)
        .await
        .context(ConnectionSnafu { tp: tp.clone() })?;
    let Some(p) = response
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == tp.partition)
    else {
        return MissingPartitionSnafu { tp: tp.clone() }.fail();
    };
    if let Some(e) = ServerError::from_code(p.error_code, None) {
        return Err(e).context(BrokerSnafu { tp: tp.clone() });
    }
    Ok(PartitionFetch {
        high_watermark: p.high_watermark,
        last_stable_offset: p.last_stable_offset,
        records: p.records.unwrap_or_default(),
    })
}

/// The log end of `tp` under `config`'s isolation: the high watermark (the last stable offset under
/// `read_committed`) of a Fetch at the log start, never below the log start.
///
/// Not ListOffsets(latest) first: some Kafka-compatible brokers get it wrong — Tansu answers "base
/// offset of the last batch + 1", so after one 10-record batch at offsets 10..19 it says 11, and a
/// consumer starting there would re-read nine old records. The high watermark every Fetch response
/// carries comes from the broker's real end-of-log counter on every implementation. ListOffsets(latest)
/// is the fallback when the broker leaves the partition out of its answer (an empty log, on some).
pub(crate) async fn log_end(
    cluster: &Cluster,
    tp: &TopicPartition,
    config: &FetchConfig,
) -> Result<i64, ReadError> {
    let start = log_start(cluster, tp, config.isolation_level).await?;
    // Tansu leaves a partition out of the answer when its limits are below one batch, so the probe
    // uses the configured sizes (one-off cost: up to `max_partition_fetch_bytes`). A zero wait makes
    // Tansu answer before reading anything, so the probe waits a little.
    let probe = FetchConfig {
        fetch_max_wait: Duration::from_millis(100),
        fetch_min_bytes: 1,
        ..config.clone()
    };
    match fetch(cluster, tp, start, &probe).await {
        Ok(fetched) => Ok(fetched.end(config.isolation_level).max(start)),
        Err(ReadError::MissingPartition { .. }) => {
            let end = list_offsets(cluster, tp, config.isolation_level, LATEST_TIMESTAMP).await?;
            tracing::debug!(%tp, start, end, "fetch probe without the partition; using ListOffsets(latest)");
            Ok(end.max(start))
        }
        Err(e) => Err(e),
    }
}
