//! The pure half of fetching: which Fetch request goes to which broker, and what a partition's answer
//! means (records to deliver, the next position, the watermarks).
//!
//! No I/O, no clock. Unit-tested with record batches built by [`crate::protocol::records`].

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
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
        records::{DecodeOptions, RecordBatchDecoder, TimestampType},
    },
};

/// One partition in a Fetch: where it was fetched from and under which assignment epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchTarget {
    pub(crate) tp: TopicPartition,
    pub(crate) offset: i64,
    pub(crate) epoch: u64,
}

/// Builds the Fetch for one broker covering `targets`, in their order (topics in order of first
/// appearance).
pub(crate) fn fetch_request(version: i16, config: &FetchConfig, targets: &[FetchTarget]) -> FetchRequest {
    let mut topics: Vec<(&str, Vec<FetchPartition>)> = Vec::new();
    for t in targets {
        let partition = FetchPartition::default()
            .with_partition(t.tp.partition)
            .with_fetch_offset(t.offset)
            .with_partition_max_bytes(config.max_partition_fetch_bytes);
        match topics.iter_mut().find(|(name, _)| *name == t.tp.topic) {
            Some((_, partitions)) => partitions.push(partition),
            None => topics.push((t.tp.topic.as_str(), vec![partition])),
        }
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
    /// Raw batches (decoded later, by the application's task) and where the next fetch starts.
    Data {
        chunk: Option<RawChunk>,
        next_offset: i64,
        high_watermark: i64,
        last_stable_offset: i64,
    },
    /// The broker's error for this partition.
    Error(ServerError),
}

/// One partition's fetched batches, not decoded yet: decoding (decompression, CRC, record parsing)
/// happens in the task that takes the chunk, so the fetcher only walks batch headers and several
/// partitions decode in parallel (Java's `CompletedFetch` is lazy the same way).
#[derive(Debug)]
pub(crate) struct RawChunk {
    topic: Arc<str>,
    partition: i32,
    fetched_at: i64,
    records: Bytes,
    /// `(first_offset, producer_id)` of aborted transactions, sorted.
    aborted: Vec<(i64, i64)>,
    isolation: IsolationLevel,
    check_crcs: bool,
}

/// The offset after the last complete batch in `records` (batch headers only; `None` if there is no
/// complete batch). Layout: baseOffset i64 | batchLength i32 | leaderEpoch i32 | magic i8 | crc u32 |
/// attributes i16 | lastOffsetDelta i32 | ...
fn end_of_batches(records: &[u8]) -> Option<i64> {
    let mut pos = 0usize;
    let mut next = None;
    loop {
        let rest = records.get(pos..)?;
        let (Some(base), Some(len)) = (rest.get(0..8), rest.get(8..12)) else {
            return next;
        };
        let base = i64::from_be_bytes(base.try_into().ok()?);
        let len = usize::try_from(i32::from_be_bytes(len.try_into().ok()?)).ok()?;
        let Some(end) = pos.checked_add(12).and_then(|p| p.checked_add(len)) else {
            return next;
        };
        if end > records.len() || len < 49 {
            return next;
        }
        let delta = i32::from_be_bytes(rest.get(23..27)?.try_into().ok()?);
        next = Some(base.saturating_add(i64::from(delta)).saturating_add(1));
        pos = end;
    }
}

/// Reads one partition's answer without decoding records: the error, or the raw chunk, the next
/// position and the watermarks.
pub(crate) fn scan_partition(
    topic: &Arc<str>,
    fetched_at: i64,
    data: PartitionData,
    isolation: IsolationLevel,
    check_crcs: bool,
) -> PartitionOutcome {
    if let Some(e) = ServerError::from_code(data.error_code, None) {
        return PartitionOutcome::Error(e);
    }
    let records = data.records.unwrap_or_default();
    let next_offset = end_of_batches(&records).map_or(fetched_at, |n| n.max(fetched_at));
    let chunk = (next_offset > fetched_at).then(|| {
        let mut aborted: Vec<(i64, i64)> = data
            .aborted_transactions
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.first_offset, a.producer_id.0))
            .collect();
        aborted.sort_unstable();
        RawChunk {
            // A copy per chunk: its records' reference counts then stay with the partition's worker
            // instead of one count every partition's records touch.
            topic: Arc::from(&**topic),
            partition: data.partition_index,
            fetched_at,
            records,
            aborted,
            isolation,
            check_crcs,
        }
    });
    PartitionOutcome::Data {
        chunk,
        next_offset,
        high_watermark: data.high_watermark,
        last_stable_offset: data.last_stable_offset,
    }
}

impl RawChunk {
    /// The chunk's records, decoded one batch at a time as they are asked for (a compressed chunk is
    /// never decompressed all at once). See [`ChunkRecords`].
    pub(crate) fn records(self) -> ChunkRecords {
        let read_committed = self.isolation == IsolationLevel::ReadCommitted;
        let options = DecodeOptions {
            skip_control_batches: !read_committed,
            check_crcs: self.check_crcs,
            ..DecodeOptions::default()
        };
        ChunkRecords {
            decoder: RecordBatchDecoder::new(self.records, options),
            aborted: self.aborted.into_iter().peekable(),
            active_aborts: HashSet::new(),
            read_committed,
            topic: self.topic,
            partition: self.partition,
            fetched_at: self.fetched_at,
        }
    }

    /// Every record of the chunk at once.
    #[cfg(test)]
    pub(crate) fn decode(self) -> Vec<ConsumerRecord> {
        self.records().flatten().collect()
    }
}

/// The records of a [`RawChunk`], one batch's worth per item: records before the fetch offset are
/// dropped (a compressed batch may start earlier), control batches and, under `read_committed`, aborted
/// transactions are skipped, and a corrupt batch ends the chunk (the records before it are kept).
/// Items are never empty.
#[derive(Debug)]
pub(crate) struct ChunkRecords {
    decoder: RecordBatchDecoder,
    aborted: std::iter::Peekable<std::vec::IntoIter<(i64, i64)>>,
    active_aborts: HashSet<i64>,
    read_committed: bool,
    topic: Arc<str>,
    partition: i32,
    fetched_at: i64,
}

impl Iterator for ChunkRecords {
    type Item = Vec<ConsumerRecord>;

    fn next(&mut self) -> Option<Vec<ConsumerRecord>> {
        loop {
            let batch = match self.decoder.next()? {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "corrupt record batch; stopping here");
                    return None;
                }
            };
            if self.read_committed {
                while let Some((_, pid)) = self.aborted.next_if(|(first, _)| *first <= batch.last_offset()) {
                    self.active_aborts.insert(pid);
                }
                if batch.is_control {
                    self.active_aborts.remove(&batch.producer_id);
                    continue;
                }
                if batch.is_transactional && self.active_aborts.contains(&batch.producer_id) {
                    continue;
                }
            }
            let (base_offset, base_ts, max_ts, log_append) = (
                batch.base_offset,
                batch.base_timestamp,
                batch.max_timestamp,
                batch.timestamp_type == TimestampType::LogAppendTime,
            );
            let records: Vec<ConsumerRecord> = batch
                .records
                .into_iter()
                .filter_map(|r| {
                    let offset = base_offset.saturating_add(i64::from(r.offset_delta));
                    (offset >= self.fetched_at).then(|| ConsumerRecord {
                        topic: Arc::clone(&self.topic),
                        partition: self.partition,
                        offset,
                        timestamp: if log_append {
                            max_ts
                        } else {
                            base_ts.saturating_add(r.timestamp_delta)
                        },
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                    })
                })
                .collect();
            if !records.is_empty() {
                return Some(records);
            }
        }
    }
}

/// Lists `targets` starting from the `turn`-th (modulo their number). A broker fills a response's byte
/// budget in request order, so Fetches that start from a different partition each time serve every
/// partition in turn instead of the first ones first (librdkafka rotates its fetch list the same way;
/// Java moves the partitions that returned data to the end).
pub(crate) fn rotate(targets: &mut [FetchTarget], turn: usize) {
    if !targets.is_empty() {
        targets.rotate_left(turn % targets.len());
    }
}

/// Which of a broker's two fetch connections a partition is fetched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Lane {
    /// Partitions known to have records past their position: the broker answers at once.
    Data,
    /// Partitions that were caught up at their last fetch: a long poll (`fetch_max_wait`) for new
    /// records. Its own connection, so a partition of the data lane never waits behind it.
    Poll,
}

impl Lane {
    /// The lane of a partition given whether it has records to fetch (`None`: to be looked at again, with
    /// at most [`LOOK_MAX_WAIT`] of wait).
    pub(crate) fn of(has_records_to_fetch: Option<bool>) -> Self {
        match has_records_to_fetch {
            Some(false) => Self::Poll,
            Some(true) | None => Self::Data,
        }
    }
}

/// The longest a data-lane Fetch waits when it holds a partition whose end is not current (just
/// assigned, reset or resumed, after a failed fetch, or held back at its end by a full buffer): it may
/// be caught up, and must not hold the lane for `fetch_max_wait`. Not zero: Tansu answers a zero wait
/// before reading anything.
pub(crate) const LOOK_MAX_WAIT: Duration = Duration::from_millis(10);

/// The Fetches to send: the partitions of each (leader, lane).
pub(crate) type Plan = BTreeMap<(i32, Lane), Vec<FetchTarget>>;

/// Groups fetchable partitions by the Fetch they go in: one per leader and lane. Partitions without a
/// known leader come back separately.
pub(crate) fn by_leader(
    fetchable: Vec<(FetchTarget, Lane)>,
    leader_of: impl Fn(&TopicPartition) -> Option<i32>,
) -> (Plan, Vec<FetchTarget>) {
    let mut plan = Plan::new();
    let mut leaderless = Vec::new();
    for (t, lane) in fetchable {
        match leader_of(&t.tp) {
            Some(leader) => plan.entry((leader, lane)).or_default().push(t),
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

    /// Scan, then decode (as the fetcher, then the stream, do).
    fn read_partition(
        topic: &Arc<str>,
        fetched_at: i64,
        data: PartitionData,
        isolation: IsolationLevel,
        check_crcs: bool,
    ) -> (Vec<ConsumerRecord>, i64, i64) {
        match scan_partition(topic, fetched_at, data, isolation, check_crcs) {
            PartitionOutcome::Data {
                chunk,
                next_offset,
                high_watermark,
                ..
            } => (
                chunk.map(RawChunk::decode).unwrap_or_default(),
                next_offset,
                high_watermark,
            ),
            PartitionOutcome::Error(e) => panic!("{e}"),
        }
    }

    fn values(outcome: &(Vec<ConsumerRecord>, i64, i64)) -> Vec<(i64, String)> {
        outcome
            .0
            .iter()
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap(),
                )
            })
            .collect()
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
            let (records, next_offset, high_watermark) = out;
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
        assert_eq!(committed.1, 6);
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
        assert!(out.0.is_empty());
        assert_eq!(out.1, 41);
        // A batch cut short by the size limit is not counted.
        let full = encode(&[
            batch(0, &["a", "b"], Compression::None),
            batch(2, &["c"], Compression::None),
        ]);
        let cut = full.slice(..full.len() - 5);
        let out = read_partition(
            &topic,
            0,
            PartitionData::default().with_records(Some(cut)),
            IsolationLevel::ReadUncommitted,
            true,
        );
        assert_eq!((out.0.len(), out.1), (2, 2));
        let err = scan_partition(
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
        let lanes = [Lane::Data, Lane::Poll, Lane::Data];
        let (plan, leaderless) = by_leader(targets.into_iter().zip(lanes).collect(), |tp| {
            (tp.topic == "a").then_some(3)
        });
        assert_eq!(plan[&(3, Lane::Data)].len(), 2);
        assert!(!plan.contains_key(&(3, Lane::Poll)), "b-1 (polled) has no leader");
        assert_eq!(leaderless.len(), 1);
    }

    #[test]
    fn fetches_start_from_each_partition_in_turn() {
        let target = |topic: &str, partition| FetchTarget {
            tp: TopicPartition::new(topic, partition),
            offset: 7,
            epoch: 1,
        };
        let all = vec![target("b", 0), target("b", 1), target("a", 0), target("b", 2)];
        let config = FetchConfig::default();
        let order = |turn| {
            let mut targets = all.clone();
            rotate(&mut targets, turn);
            fetch_request(12, &config, &targets)
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), p.partition)))
                .collect::<Vec<_>>()
        };
        let first: Vec<_> = (0..4).map(|turn| order(turn)[0].clone()).collect();
        let name = |t: &str, p| (t.to_owned(), p);
        assert_eq!(first, [name("b", 0), name("b", 1), name("a", 0), name("b", 2)]);
        // Partitions of one topic stay together, topics in order of first appearance.
        assert_eq!(order(1), [name("b", 1), name("b", 2), name("b", 0), name("a", 0)]);
        assert_eq!(order(4), order(0));
        rotate(&mut [], 3);
    }
}
