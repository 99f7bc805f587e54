//! The pure half of fetching: which Fetch request goes to which broker, and what a partition's answer
//! means (records to deliver, the next position, the watermarks).
//!
//! No I/O, no clock. Unit-tested with record batches built by [`crate::protocol::records`].

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
};

use kafka_protocol::messages::{
    FetchRequest, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
    fetch_response::PartitionData,
};

use super::{ConsumerRecord, FetchConfig, IsolationLevel};
use crate::{
    client::subscription::TopicPartition,
    protocol::{
        ServerError, StrBytes,
        records::{DecodeOptions, RecordBatchDecoder},
    },
};

/// One partition in a Fetch: where it was fetched from and under which assignment epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchTarget {
    pub(crate) tp: TopicPartition,
    pub(crate) offset: i64,
    pub(crate) epoch: u64,
}

/// Builds the Fetch for one broker covering `targets`.
pub(crate) fn fetch_request(version: i16, config: &FetchConfig, targets: &[FetchTarget]) -> FetchRequest {
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for t in targets {
        topics.entry(t.tp.topic.as_str()).or_default().push(
            FetchPartition::default()
                .with_partition(t.tp.partition)
                .with_fetch_offset(t.offset)
                .with_partition_max_bytes(config.max_partition_fetch_bytes),
        );
    }
    let _ = version;
    FetchRequest::default()
        .with_max_wait_ms(i32::try_from(config.fetch_max_wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(config.fetch_min_bytes)
        .with_max_bytes(config.fetch_max_bytes)
        .with_isolation_level(config.isolation_level.code())
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// What one partition of a Fetch response says.
#[derive(Debug)]
pub(crate) enum PartitionOutcome {
    /// Records (possibly none) and where the next fetch starts.
    Data {
        records: Vec<ConsumerRecord>,
        next_offset: i64,
        high_watermark: i64,
        last_stable_offset: i64,
    },
    /// The broker's error for this partition.
    Error(ServerError),
}

/// Reads one partition's answer: decodes its batches, drops records before `fetched_at` (a compressed
/// batch may start earlier), skips control batches and, under `read_committed`, aborted transactions.
pub(crate) fn read_partition(
    topic: &Arc<str>,
    fetched_at: i64,
    data: PartitionData,
    isolation: IsolationLevel,
    check_crcs: bool,
) -> PartitionOutcome {
    if let Some(e) = ServerError::from_code(data.error_code, None) {
        return PartitionOutcome::Error(e);
    }
    let read_committed = isolation == IsolationLevel::ReadCommitted;
    let options = DecodeOptions {
        skip_control_batches: !read_committed,
        check_crcs,
        ..DecodeOptions::default()
    };
    let mut aborted: Vec<(i64, i64)> = data
        .aborted_transactions
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.first_offset, a.producer_id.0))
        .collect();
    aborted.sort_unstable();
    let mut aborted = aborted.into_iter().peekable();
    let mut active_aborts: HashSet<i64> = HashSet::new();

    let mut decoder = RecordBatchDecoder::new(data.records.unwrap_or_default(), options);
    let mut records = Vec::new();
    let mut next_offset = fetched_at;
    for batch in decoder.by_ref() {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%topic, partition = data.partition_index, error = %e, "corrupt record batch; stopping here");
                break;
            }
        };
        next_offset = next_offset.max(batch.next_offset());
        if read_committed {
            while let Some((first, pid)) = aborted.next_if(|(first, _)| *first <= batch.last_offset()) {
                let _ = first;
                active_aborts.insert(pid);
            }
            if batch.is_control {
                active_aborts.remove(&batch.producer_id);
                continue;
            }
            if batch.is_transactional && active_aborts.contains(&batch.producer_id) {
                continue;
            }
        }
        for r in &batch.records {
            let offset = batch.offset_of(r);
            if offset < fetched_at {
                continue;
            }
            records.push(ConsumerRecord {
                topic: Arc::clone(topic),
                partition: data.partition_index,
                offset,
                timestamp: batch.timestamp_of(r),
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
            });
        }
    }
    if let Some(n) = decoder.next_offset() {
        next_offset = next_offset.max(n);
    }
    PartitionOutcome::Data {
        records,
        next_offset,
        high_watermark: data.high_watermark,
        last_stable_offset: data.last_stable_offset,
    }
}

/// Groups fetchable partitions by leader; partitions without a known leader come back separately.
pub(crate) fn by_leader(
    fetchable: Vec<FetchTarget>,
    leader_of: impl Fn(&TopicPartition) -> Option<i32>,
) -> (BTreeMap<i32, Vec<FetchTarget>>, Vec<FetchTarget>) {
    let mut plan: BTreeMap<i32, Vec<FetchTarget>> = BTreeMap::new();
    let mut leaderless = Vec::new();
    for t in fetchable {
        match leader_of(&t.tp) {
            Some(leader) => plan.entry(leader).or_default().push(t),
            None => leaderless.push(t),
        }
    }
    (plan, leaderless)
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::{
        messages::{ProducerId, fetch_response::AbortedTransaction},
        protocol::Encodable,
    };

    use super::*;
    use crate::protocol::{
        ApiRequest, Headers,
        records::{Compression, Record, RecordBatch},
    };

    fn batch(base: i64, values: &[&str], compression: Compression) -> RecordBatch {
        RecordBatch {
            base_offset: base,
            compression,
            last_offset_delta: i32::try_from(values.len()).unwrap() - 1,
            records: values
                .iter()
                .enumerate()
                .map(|(i, v)| Record {
                    offset_delta: i32::try_from(i).unwrap(),
                    value: Some(Bytes::copy_from_slice(v.as_bytes())),
                    headers: {
                        let mut h = Headers::new();
                        h.insert("h", v.to_string());
                        h
                    },
                    ..Record::default()
                })
                .collect(),
            ..RecordBatch::default()
        }
    }

    fn encode(batches: &[RecordBatch]) -> Bytes {
        let mut buf = BytesMut::new();
        for b in batches {
            b.encode(&mut buf).unwrap();
        }
        buf.freeze()
    }

    fn values(outcome: &PartitionOutcome) -> Vec<(i64, String)> {
        match outcome {
            PartitionOutcome::Data { records, .. } => records
                .iter()
                .map(|r| {
                    (
                        r.offset,
                        String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap(),
                    )
                })
                .collect(),
            PartitionOutcome::Error(e) => panic!("{e}"),
        }
    }

    #[test]
    fn every_codec_decodes_and_records_before_the_fetch_offset_are_dropped() {
        let topic: Arc<str> = Arc::from("t");
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = encode(&[
                batch(10, &["a", "b", "c"], compression),
                batch(13, &["d"], compression),
            ]);
            let data = PartitionData::default()
                .with_high_watermark(14)
                .with_records(Some(bytes));
            let out = read_partition(&topic, 11, data, IsolationLevel::ReadUncommitted, true);
            assert_eq!(
                values(&out),
                vec![(11, "b".into()), (12, "c".into()), (13, "d".into())],
                "{compression:?}"
            );
            let PartitionOutcome::Data {
                next_offset,
                high_watermark,
                records,
                ..
            } = out
            else {
                unreachable!()
            };
            assert_eq!((next_offset, high_watermark), (14, 14));
            assert_eq!(records[0].headers.get_str("h"), Some("b"));
        }
    }

    #[test]
    fn read_committed_skips_aborted_transactions_and_control_batches() {
        let topic: Arc<str> = Arc::from("t");
        let txn = |base, v: &[&str], pid| RecordBatch {
            is_transactional: true,
            producer_id: pid,
            producer_epoch: 0,
            ..batch(base, v, Compression::None)
        };
        let marker = |base, pid| RecordBatch {
            is_transactional: true,
            is_control: true,
            producer_id: pid,
            producer_epoch: 0,
            ..batch(base, &["marker"], Compression::None)
        };
        let bytes = encode(&[
            txn(0, &["aborted-1", "aborted-2"], 7),
            txn(2, &["committed"], 8),
            marker(3, 7),
            marker(4, 8),
            batch(5, &["plain"], Compression::None),
        ]);
        let data = || {
            PartitionData::default()
                .with_high_watermark(6)
                .with_aborted_transactions(Some(vec![
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(7))
                        .with_first_offset(0),
                ]))
                .with_records(Some(bytes.clone()))
        };
        let committed = read_partition(&topic, 0, data(), IsolationLevel::ReadCommitted, true);
        assert_eq!(
            values(&committed),
            vec![(2, "committed".into()), (5, "plain".into())]
        );
        let uncommitted = read_partition(&topic, 0, data(), IsolationLevel::ReadUncommitted, true);
        assert_eq!(
            values(&uncommitted),
            vec![
                (0, "aborted-1".into()),
                (1, "aborted-2".into()),
                (2, "committed".into()),
                (5, "plain".into())
            ]
        );
        let PartitionOutcome::Data { next_offset, .. } = committed else {
            unreachable!()
        };
        assert_eq!(next_offset, 6);
    }

    #[test]
    fn control_only_answers_still_move_the_position_and_errors_are_reported() {
        let topic: Arc<str> = Arc::from("t");
        let marker = RecordBatch {
            is_transactional: true,
            is_control: true,
            producer_id: 1,
            ..batch(40, &["m"], Compression::None)
        };
        let out = read_partition(
            &topic,
            40,
            PartitionData::default().with_records(Some(encode(&[marker]))),
            IsolationLevel::ReadUncommitted,
            true,
        );
        assert!(
            matches!(out, PartitionOutcome::Data { ref records, next_offset: 41, .. } if records.is_empty())
        );
        let err = read_partition(
            &topic,
            0,
            PartitionData::default().with_error_code(1),
            IsolationLevel::ReadUncommitted,
            true,
        );
        assert!(matches!(err, PartitionOutcome::Error(_)));
    }

    #[test]
    fn requests_group_partitions_by_topic_and_encode_at_every_version() {
        let config = FetchConfig::default();
        let targets = vec![
            FetchTarget {
                tp: TopicPartition::new("a", 0),
                offset: 5,
                epoch: 1,
            },
            FetchTarget {
                tp: TopicPartition::new("b", 1),
                offset: 0,
                epoch: 1,
            },
            FetchTarget {
                tp: TopicPartition::new("a", 2),
                offset: 9,
                epoch: 1,
            },
        ];
        for v in FetchRequest::VERSIONS.min..=FetchRequest::VERSIONS.max {
            let r = fetch_request(v, &config, &targets);
            assert!(r.compute_size(v).is_ok(), "v{v}");
            assert_eq!(r.topics.len(), 2);
            assert_eq!(r.topics[0].partitions.len(), 2);
            assert_eq!(r.topics[0].partitions[1].fetch_offset, 9);
        }
        let (plan, leaderless) = by_leader(targets, |tp| (tp.topic == "a").then_some(3));
        assert_eq!(plan[&3].len(), 2);
        assert_eq!(leaderless.len(), 1);
    }
}
