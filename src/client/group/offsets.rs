//! Committed offsets: OffsetFetch on assignment and OffsetCommit of explicit per-partition offsets.
//!
//! Owns request building and response reading for both APIs (pure, unit-tested), and the two async
//! calls over the coordinator's connection. May use [`coordinator`](super::coordinator),
//! [`member`](super::member) and [`crate::protocol`].
//!
//! # Invariants
//!
//! - A commit always carries the member's current generation id and member id (and instance id for
//!   static members), so a member that was fenced cannot overwrite its successor's progress: the
//!   coordinator answers ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID instead.
//! - Only the offsets the caller passes are committed; this module never decides what is "done".
//! - A committed offset is the *next* offset to read (last processed + 1), as in every Kafka client.

use std::{collections::BTreeMap, time::Duration};

use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::OffsetFetchRequestTopic,
};

use super::{
    assignor::TopicPartition,
    coordinator::CoordinatorConnection,
    member::{Failure, Generation, MemberConfig},
};
use crate::protocol::{ResponseError, ServerError, StrBytes};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn by_topic<'a, T>(
    items: impl IntoIterator<Item = (&'a TopicPartition, T)>,
) -> BTreeMap<&'a str, Vec<(i32, T)>> {
    let mut topics: BTreeMap<&str, Vec<(i32, T)>> = BTreeMap::new();
    for (tp, v) in items {
        topics
            .entry(tp.topic.as_str())
            .or_default()
            .push((tp.partition, v));
    }
    topics
}

pub(crate) fn offset_fetch_request(
    version: i16,
    group_id: &str,
    partitions: &[TopicPartition],
) -> OffsetFetchRequest {
    let _ = version;
    let topics = by_topic(partitions.iter().map(|tp| (tp, ())))
        .into_iter()
        .map(|(topic, ps)| {
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(ps.into_iter().map(|(p, ())| p).collect())
        })
        .collect();
    OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group_id)))
        .with_topics(Some(topics))
}

/// Committed offsets of `requested` by partition (`None`: nothing committed). A requested partition
/// missing from the answer is an error, not "nothing committed" (which would reset its position by
/// `auto_offset_reset`, skipping or redelivering records): the caller fetches again.
pub(crate) fn read_offset_fetch(
    response: &OffsetFetchResponse,
    requested: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, Option<i64>>, Failure> {
    if let Some(e) = ServerError::from_code(response.error_code, None) {
        return Err(Failure::Server(e));
    }
    let mut out = BTreeMap::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            if let Some(e) = ServerError::from_code(p.error_code, None) {
                return Err(Failure::Server(e));
            }
            let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
            out.insert(tp, Some(p.committed_offset).filter(|&o| o >= 0));
        }
    }
    if let Some(missing) = requested.iter().find(|tp| !out.contains_key(*tp)) {
        return Err(Failure::Server(ServerError {
            code: ResponseError::UnknownServerError,
            message: Some(format!(
                "{}/{} missing from the OffsetFetch answer",
                missing.topic, missing.partition
            )),
        }));
    }
    Ok(out)
}

pub(crate) fn offset_commit_request(
    version: i16,
    config: &MemberConfig,
    generation: &Generation,
    offsets: &[(TopicPartition, i64)],
) -> OffsetCommitRequest {
    let topics = by_topic(offsets.iter().map(|(tp, o)| (tp, *o)))
        .into_iter()
        .map(|(topic, ps)| {
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(
                    ps.into_iter()
                        .map(|(p, offset)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(&config.group_id)))
        .with_generation_id_or_member_epoch(generation.generation_id)
        .with_member_id(s(&generation.member_id))
        .with_group_instance_id(
            config
                .group_instance_id
                .as_deref()
                .filter(|_| version >= 7)
                .map(s),
        )
        .with_retention_time_ms(-1)
        .with_topics(topics)
}

/// The first partition error of a commit, if any.
pub(crate) fn read_offset_commit(response: &OffsetCommitResponse) -> Result<(), Failure> {
    for topic in &response.topics {
        for p in &topic.partitions {
            if let Some(e) = ServerError::from_code(p.error_code, None) {
                return Err(Failure::Server(e));
            }
        }
    }
    Ok(())
}

/// OffsetFetch for `partitions`.
pub(crate) async fn fetch_committed(
    coordinator: &CoordinatorConnection,
    group_id: &str,
    partitions: &[TopicPartition],
    timeout: Duration,
) -> Result<BTreeMap<TopicPartition, Option<i64>>, Failure> {
    let response = coordinator
        .send(|v| offset_fetch_request(v, group_id, partitions), timeout)
        .await?;
    read_offset_fetch(&response, partitions)
}

/// OffsetCommit of exactly `offsets`.
pub(crate) async fn commit(
    coordinator: &CoordinatorConnection,
    config: &MemberConfig,
    generation: &Generation,
    offsets: &[(TopicPartition, i64)],
    timeout: Duration,
) -> Result<(), Failure> {
    let response = coordinator
        .send(|v| offset_commit_request(v, config, generation, offsets), timeout)
        .await?;
    read_offset_commit(&response)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::{
        messages::offset_fetch_response::{OffsetFetchResponsePartition, OffsetFetchResponseTopic},
        protocol::Encodable,
    };

    use super::*;
    use crate::protocol::ApiRequest;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    #[test]
    fn commit_carries_generation_member_and_exact_offsets() {
        let config = MemberConfig::new("g", ["a", "b"]).with_group_instance_id("i");
        let generation = Generation {
            generation_id: 9,
            member_id: "m-1".into(),
            protocol_name: None,
        };
        let offsets = [(tp("a", 1), 10), (tp("b", 0), 3), (tp("a", 0), 7)];
        for v in OffsetCommitRequest::VERSIONS.min..=OffsetCommitRequest::VERSIONS.max {
            let r = offset_commit_request(v, &config, &generation, &offsets);
            assert!(r.compute_size(v).is_ok(), "v{v}");
            assert_eq!(r.generation_id_or_member_epoch, 9);
            assert_eq!(r.member_id.as_str(), "m-1");
            assert_eq!(r.group_instance_id.is_some(), v >= 7);
            let flat: Vec<(String, i32, i64)> = r
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
                })
                .collect();
            assert_eq!(
                flat,
                vec![("a".into(), 1, 10), ("a".into(), 0, 7), ("b".into(), 0, 3)]
            );
        }
    }

    #[test]
    fn offset_fetch_reads_missing_offsets_as_none_and_errors_as_failures() {
        for v in OffsetFetchRequest::VERSIONS.min..=OffsetFetchRequest::VERSIONS.max {
            assert!(
                offset_fetch_request(v, "g", &[tp("a", 0)])
                    .compute_size(v)
                    .is_ok()
            );
        }
        let response = OffsetFetchResponse::default().with_topics(vec![
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(s("a")))
                .with_partitions(vec![
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42),
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(1)
                        .with_committed_offset(-1),
                ]),
        ]);
        let requested = [tp("a", 0), tp("a", 1)];
        let read = read_offset_fetch(&response, &requested).unwrap();
        assert_eq!(read[&tp("a", 0)], Some(42));
        assert_eq!(read[&tp("a", 1)], None);

        let failed = response
            .clone()
            .with_error_code(ResponseError::CoordinatorLoadInProgress.code());
        assert!(
            matches!(read_offset_fetch(&failed, &requested), Err(Failure::Server(e)) if e.is_retriable())
        );

        // A partition asked for and not answered is not "never committed".
        let missing = read_offset_fetch(&response, &[tp("a", 0), tp("a", 2)]);
        assert!(
            matches!(&missing, Err(Failure::Server(e)) if e.message.as_deref().is_some_and(|m| m.contains("a/2"))),
            "{missing:?}"
        );
    }
}
