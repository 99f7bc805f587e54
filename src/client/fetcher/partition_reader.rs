//! Plain reads of partitions from their leader, outside any group and without position state: the
//! log start (ListOffsets earliest), the log end (a Fetch's high watermark, see [`log_end`]) and one
//! Fetch at an offset. Offset resets (`reset`) and the DLQ admin (`dlq::admin`) read through it.
//!
//! Reads nothing but the cluster's metadata and the partition leader's connection; retries are the
//! caller's.

use std::time::Duration;

use bytes::Bytes;
use std::collections::HashMap;

use kafka_protocol::messages::{
    FetchRequest, ListOffsetsRequest, ListOffsetsResponse, TopicName,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
};
use snafu::{ResultExt, Snafu};

use super::{
    FetchConfig, IsolationLevel,
    plan::{FetchTarget, fetch_request},
};
use crate::{
    client::{
        Cluster, cluster,
        connection::{self, BrokerConnection},
        subscription::TopicPartition,
    },
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
    let tps = std::slice::from_ref(tp);
    let answers = list_offsets_at(&leader, tps, isolation, timestamp)
        .await
        .context(ConnectionSnafu { tp: tp.clone() })?;
    match answers.into_iter().next() {
        Some(answer) => answer,
        None => MissingPartitionSnafu { tp: tp.clone() }.fail(),
    }
}

/// ListOffsets(earliest) for every partition of `tps` in one request to their `leader`: the log start of
/// each, in the order of `tps`. `Err` when the request itself failed (it says nothing of any partition).
pub(crate) async fn log_starts(
    leader: &BrokerConnection,
    tps: &[TopicPartition],
    isolation: IsolationLevel,
) -> Result<Vec<Result<i64, ReadError>>, connection::Error> {
    list_offsets_at(leader, tps, isolation, EARLIEST_TIMESTAMP).await
}

/// One ListOffsets at `timestamp` for `tps` to `leader`; the answer for each of `tps`, in order.
async fn list_offsets_at(
    leader: &BrokerConnection,
    tps: &[TopicPartition],
    isolation: IsolationLevel,
    timestamp: i64,
) -> Result<Vec<Result<i64, ReadError>>, connection::Error> {
    let messenger = leader.messenger().await?;
    let version = messenger.version_for::<ListOffsetsRequest>()?;
    let request = list_offsets_request(version, isolation, tps, timestamp);
    let response = messenger.request(&request).await?;
    Ok(list_offsets_answers(tps, &response))
}

/// The ListOffsets asking `timestamp` for each of `tps` (topics in order of first appearance).
pub(crate) fn list_offsets_request(
    version: i16,
    isolation: IsolationLevel,
    tps: &[TopicPartition],
    timestamp: i64,
) -> ListOffsetsRequest {
    let mut topics: Vec<ListOffsetsTopic> = Vec::new();
    for tp in tps {
        let partition = ListOffsetsPartition::default()
            .with_partition_index(tp.partition)
            .with_timestamp(timestamp);
        match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    ListOffsetsRequest::default()
        .with_isolation_level(if version >= 2 { isolation.code() } else { 0 })
        .with_topics(topics)
}

/// What `response` says of each of `tps`, in order: its offset, its error, or
/// [`ReadError::MissingPartition`] when the answer leaves it out. Partitions not asked for are
/// ignored; of a partition answered twice, the first answer counts.
pub(crate) fn list_offsets_answers(
    tps: &[TopicPartition],
    response: &ListOffsetsResponse,
) -> Vec<Result<i64, ReadError>> {
    let mut answers: Vec<Option<Result<i64, ReadError>>> = tps.iter().map(|_| None).collect();
    let index = positions(tps);
    for topic in &response.topics {
        let Some(partitions) = index.get(topic.name.0.as_str()) else {
            continue;
        };
        for p in &topic.partitions {
            let Some(&i) = partitions.get(&p.partition_index) else {
                continue;
            };
            let (Some(slot), Some(tp)) = (answers.get_mut(i), tps.get(i)) else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(match ServerError::from_code(p.error_code, None) {
                    Some(e) => Err(e).context(BrokerSnafu { tp: tp.clone() }),
                    None => Ok(p.offset),
                });
            }
        }
    }
    fill_missing(tps, answers)
}

/// Where each of `tps` is in `tps`, by topic then partition (the first place of one listed twice).
fn positions(tps: &[TopicPartition]) -> HashMap<&str, HashMap<i32, usize>> {
    let mut index: HashMap<&str, HashMap<i32, usize>> = HashMap::new();
    for (i, tp) in tps.iter().enumerate() {
        index
            .entry(tp.topic.as_str())
            .or_default()
            .entry(tp.partition)
            .or_insert(i);
    }
    index
}

/// `answers` with every partition left unanswered as [`ReadError::MissingPartition`].
fn fill_missing<T>(
    tps: &[TopicPartition],
    answers: Vec<Option<Result<T, ReadError>>>,
) -> Vec<Result<T, ReadError>> {
    let mut out = Vec::with_capacity(tps.len());
    for (tp, answer) in tps.iter().zip(answers) {
        out.push(match answer {
            Some(answer) => answer,
            None => MissingPartitionSnafu { tp: tp.clone() }.fail(),
        });
    }
    out
}

/// The Fetch settings of a log-end probe. Tansu leaves a partition out of the answer when its limits
/// are below one batch, so the probe uses the configured sizes (one-off cost: up to
/// `max_partition_fetch_bytes` a partition). A zero wait makes Tansu answer before reading anything, so
/// the probe waits a little.
fn probe_config(config: &FetchConfig) -> FetchConfig {
    FetchConfig {
        fetch_max_wait: Duration::from_millis(100),
        fetch_min_bytes: 1,
        ..config.clone()
    }
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
    let probe = probe_config(config);
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

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };

    use super::*;
    use crate::protocol::ResponseError;

    fn name(topic: &str) -> TopicName {
        TopicName(StrBytes::from_string(topic.to_owned()))
    }

    fn asked() -> Vec<TopicPartition> {
        vec![
            TopicPartition::new("a", 0),
            TopicPartition::new("a", 1),
            TopicPartition::new("b", 0),
            TopicPartition::new("a", 2),
        ]
    }

    fn offsets_answer(partitions: &[(i32, i64, i16)]) -> Vec<ListOffsetsPartitionResponse> {
        partitions
            .iter()
            .map(|&(p, offset, error)| {
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p)
                    .with_offset(offset)
                    .with_error_code(error)
            })
            .collect()
    }

    fn server_error(result: &Result<i64, ReadError>) -> Option<ResponseError> {
        match result {
            Err(ReadError::Broker { source, .. }) => Some(source.code),
            _ => None,
        }
    }

    #[test]
    fn one_list_offsets_carries_every_partition_by_topic() {
        let request = list_offsets_request(7, IsolationLevel::ReadCommitted, &asked(), EARLIEST_TIMESTAMP);
        assert_eq!(request.isolation_level, 1);
        let topics: Vec<(String, Vec<(i32, i64)>)> = request
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| (p.partition_index, p.timestamp))
                    .collect();
                (t.name.0.to_string(), partitions)
            })
            .collect();
        assert_eq!(
            topics,
            vec![
                ("a".to_owned(), vec![(0, -2), (1, -2), (2, -2)]),
                ("b".to_owned(), vec![(0, -2)]),
            ]
        );
        let old = list_offsets_request(1, IsolationLevel::ReadCommitted, &asked(), LATEST_TIMESTAMP);
        assert_eq!(old.isolation_level, 0, "v1 has no isolation level");
    }

    #[test]
    fn list_offsets_answers_are_matched_to_the_partitions_asked() {
        let response = ListOffsetsResponse::default().with_topics(vec![
            ListOffsetsTopicResponse::default()
                .with_name(name("a"))
                // a-0 answered twice (the first counts), a-1 not led here, a-9 never asked.
                .with_partitions(offsets_answer(&[(0, 5, 0), (1, -1, 6), (9, 1, 0), (0, 99, 0)])),
            ListOffsetsTopicResponse::default()
                .with_name(name("c"))
                .with_partitions(offsets_answer(&[(0, 3, 0)])),
            ListOffsetsTopicResponse::default()
                .with_name(name("b"))
                .with_partitions(offsets_answer(&[(0, 0, 3)])),
        ]);
        let answers = list_offsets_answers(&asked(), &response);
        assert_eq!(answers.len(), 4);
        assert_eq!(answers[0].as_ref().ok(), Some(&5));
        assert_eq!(
            server_error(&answers[1]),
            Some(ResponseError::NotLeaderOrFollower)
        );
        assert_eq!(
            server_error(&answers[2]),
            Some(ResponseError::UnknownTopicOrPartition)
        );
        assert!(
            matches!(&answers[3], Err(ReadError::MissingPartition { tp }) if *tp == TopicPartition::new("a", 2)),
            "left out: an error for that partition only"
        );
        let empty = list_offsets_answers(&asked(), &ListOffsetsResponse::default());
        assert!(
            empty
                .iter()
                .all(|a| matches!(a, Err(ReadError::MissingPartition { .. })))
        );
    }
}
