//! Plain reads of one partition from its leader: ListOffsets(earliest) for the log start, and one Fetch
//! (1 ms wait) for records and the high watermark. No group, no position state, no commits.

use std::time::Duration;

use kafka_protocol::messages::{
    FetchRequest, ListOffsetsRequest, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
};
use snafu::ResultExt;
use tokio::time::Instant;

use super::error::{
    AdminError, BrokerSnafu, ClusterSnafu, ConnectionSnafu, DecodeSnafu, MissingPartitionSnafu,
};
use crate::client::Cluster;
use crate::protocol::{
    ServerError, StrBytes,
    records::{DecodeOptions, Record, RecordBatchDecoder},
};

/// The fetch size a read starts with; doubled (up to [`MAX_FETCH_BYTES`]) when one batch is larger.
pub(super) const INITIAL_FETCH_BYTES: i32 = 1 << 20;
/// The largest fetch size a read grows to.
pub(super) const MAX_FETCH_BYTES: i32 = 64 << 20;

/// One record read back: offset, timestamp and the record.
#[derive(Debug)]
pub(super) struct ReadRecord {
    pub(super) offset: i64,
    pub(super) timestamp: i64,
    pub(super) record: Record,
}

/// What one Fetch returned for a partition.
#[derive(Debug)]
pub(super) struct Fetched {
    /// The partition's high watermark at the time of the fetch.
    pub(super) high_watermark: i64,
    /// The records at or after the fetch offset, in offset order.
    pub(super) records: Vec<ReadRecord>,
    /// Where the next fetch starts (the fetch offset when nothing complete came back).
    pub(super) next_offset: i64,
    /// Whether a batch was cut by the size limit before any complete one (fetch again, larger).
    pub(super) truncated: bool,
}

/// ListOffsets(earliest): the log start of `topic`/`partition`.
pub(super) async fn earliest(cluster: &Cluster, topic: &str, partition: i32) -> Result<i64, AdminError> {
    let (_, leader) = cluster
        .leader(topic, partition)
        .await
        .context(ClusterSnafu { topic, partition })?;
    let request = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(-2),
            ]),
    ]);
    let response = leader
        .request(&request)
        .await
        .context(ConnectionSnafu { topic, partition })?;
    let p = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| MissingPartitionSnafu { topic, partition }.build())?;
    if let Some(e) = ServerError::from_code(p.error_code, None) {
        return Err(e).context(BrokerSnafu { topic, partition });
    }
    Ok(p.offset.max(0))
}

/// How long a read's Fetch may wait for data: 1 ms, i.e. "answer with what there is". Not 0: Tansu
/// answers a zero-wait Fetch with no partitions at all (and then reading would only ever time out).
const FETCH_MAX_WAIT_MS: i32 = 1;

/// One Fetch of `topic`/`partition` at `offset` that does not wait for data (see [`FETCH_MAX_WAIT_MS`]).
pub(super) async fn fetch(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: i32,
) -> Result<Fetched, AdminError> {
    let (_, leader) = cluster
        .leader(topic, partition)
        .await
        .context(ClusterSnafu { topic, partition })?;
    let request = FetchRequest::default()
        .with_max_wait_ms(FETCH_MAX_WAIT_MS)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes)
        .with_isolation_level(0)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(max_bytes),
                ]),
        ]);
    let response = leader
        .request(&request)
        .await
        .context(ConnectionSnafu { topic, partition })?;
    let data = response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| MissingPartitionSnafu { topic, partition }.build())?;
    if let Some(e) = ServerError::from_code(data.error_code, None) {
        return Err(e).context(BrokerSnafu { topic, partition });
    }
    let mut decoder =
        RecordBatchDecoder::new(data.records.clone().unwrap_or_default(), DecodeOptions::default());
    let mut records = Vec::new();
    let mut next_offset = offset;
    for batch in decoder.by_ref() {
        let batch = batch.context(DecodeSnafu {
            topic,
            partition,
            offset,
        })?;
        for record in &batch.records {
            let at = batch.offset_of(record);
            if at >= offset {
                records.push(ReadRecord {
                    offset: at,
                    timestamp: batch.timestamp_of(record),
                    record: record.clone(),
                });
            }
        }
        next_offset = next_offset.max(batch.next_offset());
    }
    if let Some(after_skipped) = decoder.next_offset() {
        next_offset = next_offset.max(after_skipped);
    }
    Ok(Fetched {
        high_watermark: data.high_watermark,
        records,
        next_offset,
        truncated: next_offset == offset && decoder.truncated_bytes() > 0,
    })
}

/// Runs `op` until it succeeds, fails for good, or `deadline` passes. A retriable failure (a leader
/// change, a dropped connection) refreshes the topic's metadata and tries again after a short backoff.
/// When the deadline cuts an attempt short, the error is [`AdminError::ReadTimeout`] for
/// `partition`/`offset` with the last failure, if any.
pub(super) async fn retrying<T, F, Fut>(
    cluster: &Cluster,
    (topic, partition, offset): (&str, i32, i64),
    deadline: Instant,
    mut op: F,
) -> Result<T, AdminError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AdminError>>,
{
    let mut backoff = Duration::from_millis(20);
    let mut last_error: Option<String> = None;
    loop {
        let error = match tokio::time::timeout_at(deadline, op()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if !e.is_retriable() => return Err(e),
            Ok(Err(e)) => e,
            Err(_elapsed) => {
                return Err(AdminError::ReadTimeout {
                    partition,
                    offset,
                    last_error,
                });
            }
        };
        if Instant::now() + backoff >= deadline {
            return Err(error);
        }
        tracing::debug!(%topic, partition, %error, "DLQ read failed, retrying");
        last_error = Some(error.to_string());
        let _ = tokio::time::timeout_at(deadline, cluster.refresh_topics(&[topic])).await;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}
