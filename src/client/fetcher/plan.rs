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

use super::{ConsumerRecord, Error, FetchConfig, IsolationLevel};
use crate::{
    client::subscription::TopicPartition,
    protocol::{
        ServerError, StrBytes,
        records::{CheckedBatch, DecodeOptions, RecordBatchDecoder, TimestampType, check_batch},
    },
};

/// One partition in a Fetch: where it was fetched from and under which assignment epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchTarget {
    /// Shared with the subscription state: listing a partition in a Fetch copies no name.
    pub(crate) tp: Arc<TopicPartition>,
    pub(crate) offset: i64,
    pub(crate) epoch: u64,
}

/// What a Fetch response carries besides records, at most: the response header and, per partition,
/// its fields (aborted transactions aside).
const RESPONSE_OVERHEAD: usize = 64 << 10;
const PARTITION_OVERHEAD: usize = 128;

/// The `max_bytes` and `partition_max_bytes` a Fetch of `partitions` asks for: the configured ones,
/// each on its own as Java's consumer sends them (a partition limit above the response limit is not
/// cut to it: the broker returns the first batch of the first non-empty partition whole, and leaves
/// out other partitions' batches that do not fit, which later Fetches, starting from another
/// partition, take first), lowered so that the response fits in `max_response_size` (the largest
/// frame the connection accepts; a response above it breaks the connection, and the same Fetch sent
/// again would break it again).
pub(crate) fn fetch_limits(config: &FetchConfig, max_response_size: usize, partitions: usize) -> (i32, i32) {
    let room = max_response_size
        .saturating_sub(RESPONSE_OVERHEAD)
        .saturating_sub(partitions.saturating_mul(PARTITION_OVERHEAD))
        .max(1);
    let room = i32::try_from(room).unwrap_or(i32::MAX);
    let max_bytes = config.fetch_max_bytes.min(room).max(1);
    (max_bytes, config.max_partition_fetch_bytes.min(room).max(1))
}

/// Builds the Fetch for one broker covering `targets`, in their order (topics in order of first
/// appearance), within `max_response_size` (see [`fetch_limits`]).
pub(crate) fn fetch_request(
    version: i16,
    config: &FetchConfig,
    max_response_size: usize,
    targets: &[FetchTarget],
) -> FetchRequest {
    let (max_bytes, partition_max_bytes) = fetch_limits(config, max_response_size, targets.len());
    let mut topics: Vec<(&str, Vec<FetchPartition>)> = Vec::new();
    for t in targets {
        let partition = FetchPartition::default()
            .with_partition(t.tp.partition)
            .with_fetch_offset(t.offset)
            .with_partition_max_bytes(partition_max_bytes);
        match topics.iter_mut().find(|(name, _)| *name == t.tp.topic) {
            Some((_, partitions)) => partitions.push(partition),
            None => topics.push((t.tp.topic.as_str(), vec![partition])),
        }
    }
    let _ = version;
    FetchRequest::default()
        .with_max_wait_ms(i32::try_from(config.fetch_max_wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(config.fetch_min_bytes)
        .with_max_bytes(max_bytes)
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
    /// Raw batches (decoded later, by the application's task), where the next fetch starts, the
    /// watermarks, and the batch that stopped the walk if one did (the next fetch then starts at it).
    Data {
        chunk: Option<Box<CompletedFetch>>,
        next_offset: i64,
        high_watermark: i64,
        last_stable_offset: i64,
        bad: Option<Box<BadBatch>>,
    },
    /// The broker's error for this partition.
    Error(ServerError),
}

/// A batch that cannot be handed out: its frame, header or CRC is broken, or it came back cut short
/// while first in the answer.
#[derive(Debug)]
pub(crate) struct BadBatch {
    /// Where it starts.
    pub(crate) base_offset: i64,
    /// Where fetching goes on once the application has passed it: the batch's own claim bounded by the
    /// next batch's base offset when the answer shows a sound one (whole, passing its checks) and by
    /// the high watermark; without a sound next batch the claim is not trusted and it is one past its
    /// base (or past the fetch offset).
    pub(crate) past: i64,
    pub(crate) error: Error,
}

/// Where a [`CompletedFetch`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// A batch of the chunk failed to decode: the chunk goes on after it once passed.
    InChunk,
    /// The fetcher stopped the partition at a batch: fetching goes on at this offset once passed.
    AtFetch(i64),
}

/// One partition's batches from one Fetch (Java's `CompletedFetch`), handed to the partition's stream
/// and decoded there one batch at a time as records are asked for: the fetcher only walks and checks
/// batch headers (and CRCs), several partitions decode in parallel, and a compressed fetch is never
/// decompressed all at once. Iterating yields one batch's records per item: records before the fetch
/// offset are dropped (a compressed batch may start earlier), control batches and, under
/// `read_committed`, aborted transactions are skipped. A batch that fails to decode is an error item,
/// after which the iteration stops until [`CompletedFetch::pass_failed`]. Items are never empty. A
/// completed fetch may instead carry only the error that stops its partition (see
/// [`CompletedFetch::failed`]).
#[derive(Debug)]
pub(crate) struct CompletedFetch {
    /// The assignment epoch the partition was fetched under (set when it is handed to the stream).
    pub(crate) epoch: u64,
    decoder: RecordBatchDecoder,
    aborted: std::iter::Peekable<std::vec::IntoIter<(i64, i64)>>,
    active_aborts: HashSet<i64>,
    read_committed: bool,
    topic: Arc<str>,
    partition: i32,
    fetched_at: i64,
    /// The error to hand out after the records, and the offset past the failed batch.
    failure: Option<Box<(Error, i64)>>,
    failed: Option<Failed>,
}

/// The result of walking a partition's batches by their headers.
struct Walk {
    /// The bytes of the sound batches at the start.
    sound: usize,
    /// The offset after the last sound batch.
    next: Option<i64>,
    bad: Option<BadBatch>,
}

/// The offset after a batch at `base` whose header claims `delta`, bounded by what is known for sure:
/// the base of a batch after it (`following`) and the high watermark.
fn bounded_next(base: i64, delta: i32, following: Option<i64>, high_watermark: i64) -> i64 {
    let mut next = base.saturating_add(i64::from(delta.max(0))).saturating_add(1);
    if let Some(f) = following.filter(|&f| f > base) {
        next = next.min(f);
    }
    if high_watermark > base {
        next = next.min(high_watermark);
    }
    next.max(base.saturating_add(1))
}

/// Where fetching goes on past a batch at `base` whose extent is not known for sure: one offset past it
/// (or past the fetch offset, when the batch starts before it), so that no record is passed unseen;
/// the worst case is the same batch met again at the next offset.
fn one_past(base: i64, fetched_at: i64) -> i64 {
    base.max(fetched_at).saturating_add(1)
}

/// The base offset of the batch at `at` in `records` if that batch is whole and passes its checks.
fn sound_batch_at(records: &Bytes, at: usize, check_crcs: bool) -> Option<i64> {
    let length = usize::try_from(read_i32(records, at.checked_add(8)?)?).ok()?;
    let frame = records.get(at..at.checked_add(LOG_OVERHEAD)?.checked_add(length)?)?;
    check_batch(frame, check_crcs).ok().map(|b| b.base_offset)
}

fn read_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn read_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// baseOffset + batchLength: the bytes before what `batchLength` counts.
const LOG_OVERHEAD: usize = 12;

/// Walks the batches of `records` by their headers, checking each one's frame, magic, last offset
/// delta and (with `check_crcs`) CRC, up to the first that fails or the end. A batch cut short at the
/// end is left for the next fetch, unless it is the first (then it is a [`BadBatch`]: the broker sends
/// the first batch whole, so it will not come back whole by fetching again).
fn walk(records: &Bytes, at: (&str, i32, i64), high_watermark: i64, check_crcs: bool, limit: i32) -> Walk {
    let (topic, partition, fetched_at) = at;
    let mut pos = 0usize;
    let mut next = None;
    let mut last_sound: Option<(i64, i32)> = None;
    let mut bad = None;
    while let (Some(rest), Some(base)) = (records.get(pos..), read_i64(records, pos)) {
        let Some(length) = read_i32(rest, 8) else {
            break;
        };
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| pos.checked_add(LOG_OVERHEAD)?.checked_add(l));
        let frame = match end {
            Some(end) if end <= records.len() => records.slice(pos..end),
            Some(_) if pos > 0 => break,
            Some(_) => {
                bad = Some(BadBatch {
                    base_offset: base,
                    // Its header is not checked (the batch is not whole): nothing bounds its claim.
                    past: one_past(base, fetched_at),
                    error: Error::BatchTooLarge {
                        topic: topic.to_owned(),
                        partition,
                        base_offset: base,
                        size: u64::try_from(length)
                            .unwrap_or(0)
                            .saturating_add(LOG_OVERHEAD as u64),
                        received: rest.len(),
                        limit,
                    },
                });
                break;
            }
            // A negative length: nothing after it can be delimited.
            None => records.slice(pos..),
        };
        let frame_end = pos.saturating_add(frame.len());
        match check_batch(&frame, check_crcs) {
            Ok(CheckedBatch {
                base_offset,
                last_offset_delta,
            }) => {
                last_sound = Some((base_offset, last_offset_delta));
                pos = frame_end;
            }
            Err(source) => {
                // The header failed its checks, so its lastOffsetDelta (and its length) may be
                // corrupt: trusted only up to a sound batch after it; else one offset is passed.
                let past = match sound_batch_at(records, frame_end, check_crcs) {
                    Some(following) => {
                        let delta = frame
                            .get(16)
                            .filter(|&&magic| magic == 2)
                            .and_then(|_| read_i32(&frame, 23))
                            .unwrap_or(0);
                        bounded_next(base, delta, Some(following), high_watermark)
                    }
                    None => one_past(base, fetched_at),
                };
                bad = Some(BadBatch {
                    base_offset: base,
                    past,
                    error: Error::CorruptBatch {
                        topic: topic.to_owned(),
                        partition,
                        base_offset: base,
                        last_offset: past.saturating_sub(1),
                        batch: frame,
                        source,
                    },
                });
                break;
            }
        }
    }
    if let Some((base, delta)) = last_sound {
        let following = bad
            .as_ref()
            .map(|b| b.base_offset)
            .or_else(|| read_i64(records, pos));
        next = Some(bounded_next(base, delta, following, high_watermark));
    }
    Walk {
        sound: pos,
        next,
        bad,
    }
}

/// Reads one partition's answer without decoding records: the error, or the sound batches as a raw
/// chunk, the next position, the watermarks and the batch that stopped the walk, if any.
pub(crate) fn scan_partition(
    topic: &Arc<str>,
    fetched_at: i64,
    data: PartitionData,
    config: &FetchConfig,
) -> PartitionOutcome {
    if let Some(e) = ServerError::from_code(data.error_code, None) {
        return PartitionOutcome::Error(e);
    }
    let records = data.records.unwrap_or_default();
    let walk = walk(
        &records,
        (topic, data.partition_index, fetched_at),
        data.high_watermark,
        config.check_crcs,
        config.max_partition_fetch_bytes,
    );
    let next_offset = match &walk.bad {
        Some(bad) if walk.sound > 0 => bad.base_offset.max(fetched_at),
        Some(_) => fetched_at,
        None => walk.next.map_or(fetched_at, |n| n.max(fetched_at)),
    };
    let chunk = (next_offset > fetched_at).then(|| {
        let mut aborted: Vec<(i64, i64)> = data
            .aborted_transactions
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.first_offset, a.producer_id.0))
            .collect();
        aborted.sort_unstable();
        // A copy of the topic per chunk: its records' reference counts then stay with the partition's
        // worker instead of one count every partition's records touch.
        Box::new(CompletedFetch::new(
            Arc::from(&**topic),
            data.partition_index,
            fetched_at,
            records.slice(..walk.sound),
            aborted,
            (config.isolation_level, config.max_uncompressed_batch_bytes),
        ))
    });
    PartitionOutcome::Data {
        chunk,
        next_offset,
        high_watermark: data.high_watermark,
        last_stable_offset: data.last_stable_offset,
        bad: walk.bad.map(Box::new),
    }
}

impl CompletedFetch {
    /// `records` of `topic`/`partition` fetched at `fetched_at`, with the aborted transactions
    /// (`(first_offset, producer_id)`, sorted), decoded under `isolation` with batches decompressing to
    /// at most `max_uncompressed_batch_bytes`.
    fn new(
        topic: Arc<str>,
        partition: i32,
        fetched_at: i64,
        records: Bytes,
        aborted: Vec<(i64, i64)>,
        (isolation, max_uncompressed_batch_bytes): (IsolationLevel, usize),
    ) -> Self {
        let read_committed = isolation == IsolationLevel::ReadCommitted;
        let options = DecodeOptions {
            skip_control_batches: !read_committed,
            // Checked when the batches were fetched.
            check_crcs: false,
            max_uncompressed_batch_bytes,
        };
        Self {
            epoch: 0,
            decoder: RecordBatchDecoder::new(records, options),
            aborted: aborted.into_iter().peekable(),
            active_aborts: HashSet::new(),
            read_committed,
            topic,
            partition,
            fetched_at,
            failure: None,
            failed: None,
        }
    }

    /// A completed fetch of no records that hands out `bad`'s error: the partition stops at it.
    pub(crate) fn failed(topic: &Arc<str>, partition: i32, fetched_at: i64, bad: BadBatch) -> Self {
        let mut fetch = Self::new(
            Arc::from(&**topic),
            partition,
            fetched_at,
            Bytes::new(),
            Vec::new(),
            (IsolationLevel::ReadUncommitted, 0),
        );
        fetch.failure = Some(Box::new((bad.error, bad.past)));
        fetch
    }

    /// Every record at once (up to a failure).
    #[cfg(test)]
    pub(crate) fn decode(self) -> Vec<ConsumerRecord> {
        self.map_while(Result::ok).flatten().collect()
    }

    /// Goes on after the failed batch; returns where it failed, `None` if nothing failed.
    /// A batch of the chunk whose bounds cannot be trusted (the decoder cannot resume after it) is not
    /// passed: the iteration stays stopped at it (`None`, and [`is_stopped`](Self::is_stopped)).
    pub(crate) fn pass_failed(&mut self) -> Option<Failed> {
        let failed = self.failed.take()?;
        if failed == Failed::InChunk && !self.decoder.resume() {
            self.failed = Some(failed);
            return None;
        }
        Some(failed)
    }

    /// Whether the iteration is stopped at a failed batch.
    pub(crate) fn is_stopped(&self) -> bool {
        self.failed.is_some()
    }

    fn decode_failed(&mut self, source: crate::protocol::records::Error) -> Error {
        let batch = self.decoder.last_batch();
        let base_offset = source_base(&batch);
        let delta = read_i32(&batch, 23).unwrap_or(0).max(0);
        self.failed = Some(Failed::InChunk);
        Error::CorruptBatch {
            topic: self.topic.to_string(),
            partition: self.partition,
            base_offset,
            last_offset: base_offset.saturating_add(i64::from(delta)),
            batch,
            source,
        }
    }
}

fn source_base(batch: &[u8]) -> i64 {
    read_i64(batch, 0).unwrap_or(-1)
}

impl Iterator for CompletedFetch {
    type Item = Result<Vec<ConsumerRecord>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed.is_some() {
            return None;
        }
        loop {
            let batch = match self.decoder.next() {
                Some(Ok(b)) => b,
                Some(Err(e)) => return Some(Err(self.decode_failed(e))),
                None => {
                    let (error, past) = *self.failure.take()?;
                    self.failed = Some(Failed::AtFetch(past));
                    return Some(Err(error));
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
                return Some(Ok(records));
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

/// The partitions of one Fetch, and whether one of them is to be looked at again (its end is not
/// current: the Fetch waits at most [`LOOK_MAX_WAIT`]).
#[derive(Debug, Default)]
pub(crate) struct PlannedFetch {
    pub(crate) targets: Vec<FetchTarget>,
    pub(crate) look: bool,
}

/// The Fetches to send: one per leader and lane.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) fetches: BTreeMap<(i32, Lane), PlannedFetch>,
    /// How many fetchable partitions have no known leader (metadata is to be refreshed).
    pub(crate) leaderless: usize,
}

impl Plan {
    /// Adds `target` to the Fetch of its `leader` on the lane `has_records_to_fetch` picks
    /// ([`Lane::of`]); without a leader it is only counted.
    pub(crate) fn add(
        &mut self,
        target: FetchTarget,
        has_records_to_fetch: Option<bool>,
        leader: Option<i32>,
    ) {
        let Some(leader) = leader else {
            self.leaderless += 1;
            return;
        };
        let fetch = self
            .fetches
            .entry((leader, Lane::of(has_records_to_fetch)))
            .or_default();
        fetch.targets.push(target);
        fetch.look |= has_records_to_fetch.is_none();
    }
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
        let config = FetchConfig {
            isolation_level: isolation,
            check_crcs,
            ..FetchConfig::default()
        };
        match scan_partition(topic, fetched_at, data, &config) {
            PartitionOutcome::Data {
                chunk,
                next_offset,
                high_watermark,
                ..
            } => (
                chunk.map(|c| c.decode()).unwrap_or_default(),
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
            &FetchConfig::default(),
        );
        assert!(matches!(err, PartitionOutcome::Error(_)));
    }

    fn scan(
        fetched_at: i64,
        hw: i64,
        records: Bytes,
        check_crcs: bool,
    ) -> (Option<Box<CompletedFetch>>, i64, Option<Box<BadBatch>>) {
        let config = FetchConfig {
            check_crcs,
            ..FetchConfig::default()
        };
        let data = PartitionData::default()
            .with_high_watermark(hw)
            .with_records(Some(records));
        match scan_partition(&Arc::from("t"), fetched_at, data, &config) {
            PartitionOutcome::Data {
                chunk,
                next_offset,
                bad,
                ..
            } => (chunk, next_offset, bad),
            PartitionOutcome::Error(e) => panic!("{e}"),
        }
    }

    /// `bytes` with the byte at `at` xor `mask`.
    fn flip(bytes: &Bytes, at: usize, mask: u8) -> Bytes {
        let mut b = BytesMut::from(&bytes[..]);
        b[at] ^= mask;
        b.freeze()
    }

    #[test]
    fn a_corrupt_batch_stops_the_position_at_it_and_keeps_its_neighbours() {
        let a = encode(&[batch(0, &["a0", "a1"], Compression::None)]);
        let b = encode(&[batch(2, &["b0", "b1"], Compression::None)]);
        let c = encode(&[batch(4, &["c0"], Compression::Gzip)]);
        let bad_b = flip(&b, b.len() - 2, 1);
        let all = [a.clone(), bad_b.clone(), c.clone()].concat();
        let (chunk, next, bad) = scan(0, 5, Bytes::from(all.clone()), true);
        let records = chunk.unwrap().decode();
        assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(next, 2, "the position stops at B");
        let bad = bad.unwrap();
        assert_eq!((bad.base_offset, bad.past), (2, 4));
        assert!(
            matches!(&bad.error, Error::CorruptBatch { source, batch, .. } if source.is_retriable() && *batch == bad_b),
            "{:?}",
            bad.error
        );
        // Fetched at B: nothing to hand out, the position stays.
        let (chunk, next, bad) = scan(2, 5, Bytes::from(all[a.len()..].to_vec()), true);
        assert!(chunk.is_none());
        assert_eq!((next, bad.map(|b| b.past)), (2, Some(4)));
        // A flipped lastOffsetDelta fails the CRC too; with CRCs off it moves the position no further
        // than the batches after it or the high watermark say.
        let jumpy = flip(&a, 26, 0x40);
        let (_, next, bad) = scan(0, 5, Bytes::from([jumpy.clone(), c.clone()].concat()), true);
        assert_eq!((next, bad.map(|b| b.base_offset)), (0, Some(0)));
        let (_, next, _) = scan(0, 5, Bytes::from([jumpy.clone(), c.clone()].concat()), false);
        assert_eq!(next, 5, "C's end, not A's claim");
        let (_, next, _) = scan(0, 2, jumpy, false);
        assert_eq!(next, 2, "bounded by the high watermark");
    }

    #[test]
    fn a_first_batch_cut_short_or_in_an_old_format_is_reported_not_refetched_quietly() {
        let big = encode(&[batch(7, &["x", "y", "z"], Compression::None)]);
        let (chunk, next, bad) = scan(7, 10, big.slice(..big.len() - 1), true);
        assert!(chunk.is_none());
        assert_eq!(next, 7);
        let bad = bad.unwrap();
        assert!(
            matches!(bad.error, Error::BatchTooLarge { base_offset: 7, size, received, .. } if size == big.len() as u64 && received == big.len() - 1),
            "{:?}",
            bad.error
        );
        // After a whole batch, a cut one is left for the next fetch.
        let two = [encode(&[batch(0, &["a"], Compression::None)]), big.clone()].concat();
        let (chunk, next, bad) = scan(0, 10, Bytes::from(two[..two.len() - 1].to_vec()), true);
        assert!(chunk.is_some() && bad.is_none());
        assert_eq!(next, 1);
        // A magic 1 message set (offset, size, crc, magic, ...): the old format is an error.
        let mut old = BytesMut::new();
        old.extend_from_slice(&5i64.to_be_bytes());
        old.extend_from_slice(&14i32.to_be_bytes());
        old.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let (_, next, bad) = scan(5, 6, old.freeze(), true);
        assert_eq!(next, 5);
        assert!(matches!(
            bad.unwrap().error,
            Error::CorruptBatch {
                source: crate::protocol::records::Error::UnsupportedMagic { magic: 1, .. },
                ..
            }
        ));
        // A negative batch length.
        let mut negative = BytesMut::from(&big[..]);
        negative[8..12].copy_from_slice(&(-3i32).to_be_bytes());
        let (_, next, bad) = scan(7, 10, negative.freeze(), true);
        assert_eq!((next, bad.map(|b| b.past)), (7, Some(8)));
    }

    #[test]
    fn a_corrupt_header_moves_past_only_what_a_sound_following_batch_bounds() {
        let b = encode(&[batch(2, &["b0", "b1"], Compression::None)]);
        let c = encode(&[batch(4, &["c0"], Compression::None)]);
        // B's lastOffsetDelta corrupted (its CRC fails): alone in the answer, its claim is not trusted.
        let jumpy = flip(&b, 26, 0x40);
        let (_, next, bad) = scan(2, 100, jumpy.clone(), true);
        assert_eq!(
            (next, bad.map(|b| b.past)),
            (2, Some(3)),
            "one past its base, not the watermark"
        );
        // Fetched again one past B's base: one further each time, never past a record unseen.
        let (_, _, bad) = scan(3, 100, jumpy.clone(), true);
        assert_eq!(bad.map(|b| b.past), Some(4));
        // A sound C after it bounds the claim.
        let (_, _, bad) = scan(2, 100, Bytes::from([jumpy.clone(), c.clone()].concat()), true);
        assert_eq!(bad.map(|b| b.past), Some(4));
        // A following batch that fails its own CRC bounds nothing.
        let bad_c = flip(&c, c.len() - 2, 1);
        let (_, _, bad) = scan(2, 100, Bytes::from([jumpy, bad_c].concat()), true);
        assert_eq!(bad.map(|b| b.past), Some(3));
        // A length shortened into B's records: "the following batch" is read from inside B.
        let mut short = BytesMut::from(&[b.clone(), c].concat()[..]);
        let length = i32::try_from(b.len() - LOG_OVERHEAD - 8).unwrap();
        short[8..12].copy_from_slice(&length.to_be_bytes());
        let (_, _, bad) = scan(2, 100, short.freeze(), true);
        assert_eq!(bad.map(|b| b.past), Some(3));
    }

    #[test]
    fn a_failed_batch_the_decoder_cannot_resume_after_is_not_passed() {
        let a = encode(&[batch(0, &["a"], Compression::None)]);
        let c = encode(&[batch(2, &["c"], Compression::None)]);
        // B with magic 3: its frame is not understood, so nothing after it can be delimited.
        let b = flip(&encode(&[batch(1, &["b"], Compression::None)]), 16, 0x01);
        let mut records = CompletedFetch::new(
            Arc::from("t"),
            0,
            0,
            Bytes::from([a, b, c].concat()),
            Vec::new(),
            (IsolationLevel::ReadUncommitted, 1 << 20),
        );
        assert_eq!(records.next().unwrap().unwrap()[0].offset, 0);
        assert!(matches!(
            records.next(),
            Some(Err(Error::CorruptBatch { base_offset: 1, .. }))
        ));
        assert_eq!(records.pass_failed(), None, "not passed");
        assert!(records.is_stopped());
        assert!(records.next().is_none());
        assert!(records.is_stopped(), "still stopped at B");
    }

    #[test]
    fn a_batch_that_fails_to_decompress_is_an_error_item_and_the_chunk_goes_on_after_it() {
        let a = encode(&[batch(0, &["a"], Compression::None)]);
        let c = encode(&[batch(2, &["c"], Compression::None)]);
        // B: a gzip batch whose compressed records are garbage, with a correct CRC.
        let mut b = BytesMut::from(&encode(&[batch(1, &["b"], Compression::Gzip)])[..]);
        let end = b.len();
        b[61..end].fill(0x5a);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let b = b.freeze();
        let (chunk, next, bad) = scan(0, 3, Bytes::from([a, b.clone(), c].concat()), true);
        assert!(bad.is_none(), "the header and CRC are sound");
        assert_eq!(next, 3);
        let mut records = chunk.unwrap();
        assert_eq!(records.next().unwrap().unwrap()[0].offset, 0);
        match records.next() {
            Some(Err(Error::CorruptBatch {
                base_offset: 1,
                last_offset: 1,
                batch,
                ..
            })) => assert_eq!(batch, b),
            other => panic!("{other:?}"),
        }
        assert!(records.next().is_none(), "stopped at B until it is passed");
        assert_eq!(records.pass_failed(), Some(Failed::InChunk));
        assert_eq!(records.next().unwrap().unwrap()[0].offset, 2);
        assert!(records.next().is_none());
        assert_eq!(records.pass_failed(), None);
    }

    #[test]
    fn requests_group_partitions_by_topic_and_encode_at_every_version() {
        let config = FetchConfig::default();
        let targets = vec![
            FetchTarget {
                tp: Arc::new(TopicPartition::new("a", 0)),
                offset: 5,
                epoch: 1,
            },
            FetchTarget {
                tp: Arc::new(TopicPartition::new("b", 1)),
                offset: 0,
                epoch: 1,
            },
            FetchTarget {
                tp: Arc::new(TopicPartition::new("a", 2)),
                offset: 9,
                epoch: 1,
            },
        ];
        for v in FetchRequest::VERSIONS.min..=FetchRequest::VERSIONS.max {
            let r = fetch_request(v, &config, usize::MAX, &targets);
            assert!(r.compute_size(v).is_ok(), "v{v}");
            assert_eq!(r.topics.len(), 2);
            assert_eq!(r.topics[0].partitions.len(), 2);
            assert_eq!(r.topics[0].partitions[1].fetch_offset, 9);
        }
        let known = [Some(true), Some(false), None];
        let mut plan = Plan::default();
        for (t, known) in targets.into_iter().zip(known) {
            let leader = (t.tp.topic == "a").then_some(3);
            plan.add(t, known, leader);
        }
        let data = &plan.fetches[&(3, Lane::Data)];
        assert_eq!(data.targets.len(), 2);
        assert!(data.look, "a-2's end is to be looked at again");
        assert!(
            !plan.fetches.contains_key(&(3, Lane::Poll)),
            "b-1 (polled) has no leader"
        );
        assert_eq!(plan.leaderless, 1);
        let mut plan = Plan::default();
        let t = |p| FetchTarget {
            tp: Arc::new(TopicPartition::new("a", p)),
            offset: 0,
            epoch: 1,
        };
        plan.add(t(0), Some(true), Some(1));
        plan.add(t(1), Some(false), Some(1));
        assert!(!plan.fetches[&(1, Lane::Data)].look && !plan.fetches[&(1, Lane::Poll)].look);
    }

    #[test]
    fn a_default_fetch_asks_for_one_response_of_at_most_2_mib() {
        // Whatever the partition count: a response is held until its last record is dropped, so its
        // size is the consumer's resident floor.
        let config = FetchConfig::default();
        for partitions in [1, 6, 1000] {
            let targets: Vec<_> = (0..partitions)
                .map(|p| FetchTarget {
                    tp: Arc::new(TopicPartition::new("a", p)),
                    offset: 0,
                    epoch: 1,
                })
                .collect();
            let r = fetch_request(12, &config, 100 << 20, &targets);
            assert_eq!(r.max_bytes, 2 << 20, "{partitions} partitions");
            assert!(
                r.topics[0]
                    .partitions
                    .iter()
                    .all(|p| p.partition_max_bytes <= 1 << 20)
            );
        }
    }

    #[test]
    fn a_partition_limit_above_the_response_limit_is_asked_for_as_set() {
        let config = FetchConfig {
            max_partition_fetch_bytes: 8 << 20,
            ..FetchConfig::default()
        };
        assert_eq!(fetch_limits(&config, 100 << 20, 3), (2 << 20, 8 << 20));
        // A response limit below the partition limit stays as set.
        let small = FetchConfig {
            fetch_max_bytes: 512 << 10,
            ..FetchConfig::default()
        };
        assert_eq!(fetch_limits(&small, 100 << 20, 3), (512 << 10, 1 << 20));
        // Both within the largest response the connection takes.
        let (max_bytes, partition) = fetch_limits(&config, 4 << 20, 3);
        assert!(
            max_bytes == 2 << 20 && partition < 4 << 20,
            "{max_bytes} {partition}"
        );
    }

    #[test]
    fn fetches_start_from_each_partition_in_turn() {
        let target = |topic: &str, partition| FetchTarget {
            tp: Arc::new(TopicPartition::new(topic, partition)),
            offset: 7,
            epoch: 1,
        };
        let all = vec![target("b", 0), target("b", 1), target("a", 0), target("b", 2)];
        let config = FetchConfig::default();
        let order = |turn| {
            let mut targets = all.clone();
            rotate(&mut targets, turn);
            fetch_request(12, &config, usize::MAX, &targets)
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
