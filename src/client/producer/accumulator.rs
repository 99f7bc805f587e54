//! The caller side of the producer: records are appended to per-partition batches here, and the sender
//! drains the batches that are ready.
//!
//! ```text
//!  send(record) ─ reserve bytes (await: backpressure) ─▶ lock ─▶ partition ─▶ open batch of that partition
//!                                                                 │ full, or linger expired, or flush
//!                                                                 ▼
//!  sender ◀─ drain(now, leaders): at most one batch in flight per partition, grouped by leader
//! ```
//!
//! Invariants:
//! - **Reserve, then commit.** The only await in [`Accumulator::append`] is for buffer memory, before the
//!   lock is taken; a cancelled `send` therefore appended nothing. The reserved bytes are released when
//!   the batch completes (acknowledged or failed), so `buffer_memory` bounds the record bytes buffered
//!   or in flight. Batch buffers come on top: each partition holding records has one, of at least
//!   `min(batch_size, 16 KiB)`, growing (by doubling) with its batch; a completed batch's buffer, once
//!   no request holds it, is kept for a next batch (at most `SPARE_BUFFERS` of them, each at most
//!   twice `batch_size` or 32 KiB, whichever is more), so a full batch does not grow its buffer again.
//! - **Ordering.** A partition has at most one batch in flight; a batch that must be retried goes back
//!   to the front of its partition's queue. Records of one partition are therefore written in the order
//!   they were appended, retries included.
//! - **Idempotence.** A batch gets its sequence number when it is first drained, in partition order, and
//!   keeps it across retries, so the broker discards a retry of a batch it already wrote (a batch
//!   returned or failed unsent, never seen by the broker, gives it back: `request_cap`). When the
//!   broker refuses a partition's sequences (OUT_OF_ORDER_SEQUENCE / UNKNOWN_PRODUCER_ID) the producer
//!   takes a new id or epoch; each partition moves to it at sequence 0 with its next new batch, a retry
//!   keeps its identity while its partition still trusts it, and a batch of a refused partition that
//!   may already have been written is failed ([`Drained::uncertain`]) rather than sent again. A batch
//!   that carries a sequence and fails for good (written or not) leaves its partition's sequences
//!   unresolved: the partition waits for the sender's next identity (`take_unresolved`) (see
//!   `idempotence`).
//! - **Work follows data.** A drain looks only at the partitions that may have a batch to send: those
//!   listed in `ready` (a batch sealed, a linger or backoff ended, a completion, a flush), parked
//!   behind a broker that was busy, or returned unsent by the sender (looked at first). Lingers end in creation order (`lingering`), so the sender sleeps
//!   until the oldest one and only a first lingering batch wakes it. Idle partitions cost a drain
//!   nothing, and a partition's batch buffer exists only while it holds records.
//! - **Requests as sent.** A request holds batches up to `max_request_size` counted as sent: a drain
//!   estimates a batch not yet encoded by its topic's compression ratio, and the sender returns the
//!   batches that do not fit once encoded to the front of their partitions, with no attempt counted
//!   (`request_cap`); a request always holds at least one batch.
//! - No I/O and no clock: `now` is passed in, so the rules above are unit-tested with virtual time.

use std::{
    cmp::Reverse,
    collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::{
    Error, ProducerConfig, ProducerRecord,
    compression_ratio::CompressionRatio,
    delivery::{BatchDelivery, Delivery},
    idempotence::{Assignment, assignment},
    partitioner::Partitioner,
};
use crate::{
    client::cluster::ClusterMetadata,
    protocol::records::{self, RecordBatchBuilder},
};

/// Producer id and epoch (idempotence).
pub(crate) type ProducerState = (i64, i16);

/// One batch of one partition, from its first record to its acknowledgement.
#[derive(Debug)]
pub(crate) struct ProducerBatch {
    id: u64,
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    builder: Option<RecordBatchBuilder>,
    /// The batch as sent (kept for retries, which must resend the same bytes).
    encoded: Option<Bytes>,
    /// Its records' answers.
    delivery: BatchDelivery,
    _permit: Option<OwnedSemaphorePermit>,
    pub(crate) created: Instant,
    retry_at: Option<Instant>,
    pub(crate) attempts: u32,
    pub(crate) last_error: Option<String>,
    /// An attempt went unanswered (timeout, lost connection): the broker may have written the batch.
    pub(crate) maybe_written: bool,
    /// The broker refused the producer identity it carries for its partition (OUT_OF_ORDER_SEQUENCE_NUMBER,
    /// UNKNOWN_PRODUCER_ID, a fenced epoch): once it is requeued or completed, its partition no longer
    /// trusts that identity's sequences (see `idempotence`).
    pub(crate) sequence_refused: bool,
    /// (producer id, epoch, base sequence) once assigned.
    producer: Option<(i64, i16, i32)>,
    /// The encoded bytes carry an older producer state than `producer`.
    stale_encoding: bool,
    /// Drained and not yet completed or requeued: its partition is in flight because of it.
    in_flight: bool,
    /// Compressed / uncompressed size of its records, once encoded with a codec and until its topic's
    /// estimate learned from it.
    compression_ratio: Option<f32>,
}

impl ProducerBatch {
    /// How many records it holds.
    pub(crate) fn record_count(&self) -> usize {
        self.delivery.len()
    }

    /// The producer identity it was last sent with, if any.
    pub(crate) fn identity(&self) -> Option<ProducerState> {
        self.producer.map(|(id, epoch, _)| (id, epoch))
    }

    /// Its size in a request: as encoded, or as expected after compression at `compression_ratio`.
    fn size(&self, compression_ratio: f32) -> usize {
        match (&self.encoded, &self.builder) {
            (Some(bytes), _) => bytes.len(),
            (None, Some(builder)) => builder.estimated_size(compression_ratio),
            (None, None) => 0,
        }
    }

    /// The bytes to send: encodes (and compresses) the batch on first use, and rewrites the producer
    /// state of an already encoded batch whose state changed. CPU-heavy for compressed batches: the
    /// sender calls it outside the accumulator's lock.
    pub(crate) fn encode(&mut self) -> Result<Bytes, records::Error> {
        if let Some(mut builder) = self.builder.take() {
            if let Some((id, epoch, sequence)) = self.producer {
                builder.set_producer_state(id, epoch, sequence);
            }
            let (size, records) = (builder.size(), builder.records_size());
            let encoded = builder.finish()?;
            if builder.compression() != records::Compression::None && records > 0 {
                let header = size - records;
                self.compression_ratio = Some(encoded.len().saturating_sub(header) as f32 / records as f32);
            }
            self.encoded = Some(encoded);
            self.stale_encoding = false;
        }
        if self.stale_encoding
            && let (Some(bytes), Some((id, epoch, sequence))) = (&self.encoded, self.producer)
        {
            let mut rewritten = bytes.to_vec();
            records::rewrite_producer_state(&mut rewritten, id, epoch, sequence)?;
            self.encoded = Some(Bytes::from(rewritten));
            self.stale_encoding = false;
        }
        Ok(self.encoded.clone().unwrap_or_default())
    }

    /// The buffer of its encoded bytes, for a new batch to reuse, when nothing else holds them (a
    /// request still encoding them, say) and its capacity is one a new batch would reach anyway: at
    /// least a fresh batch's first capacity (a codec's output may be much smaller), at most what the
    /// doubling up to `batch_size` can reach. Not more: `buffer_memory` counts records, not
    /// capacity, and a spare is taken by the next new batch, so with larger spares (gzip's output
    /// keeps 32 KiB of room) every queued batch would hold more memory than its records count for.
    fn take_buffer(&mut self, batch_size: usize) -> Option<BytesMut> {
        let least = batch_size.min(INITIAL_BATCH_CAPACITY);
        let most = batch_size.max(INITIAL_BATCH_CAPACITY).saturating_mul(2);
        let buffer = self.encoded.take()?.try_into_mut().ok()?;
        (least..=most).contains(&buffer.capacity()).then_some(buffer)
    }
}

/// The first capacity of a new batch's buffer; it grows (doubling) up to `batch_size` as records
/// come. Small, so that a partition with a record or two pending does not hold a `batch_size` buffer
/// (unless it took one of the few spare buffers of completed batches).
const INITIAL_BATCH_CAPACITY: usize = 16 * 1024;

/// How many buffers of completed batches the accumulator keeps for new batches: enough for a batch
/// per partition of a few requests in flight, few enough that idle buffers hold little memory.
const SPARE_BUFFERS: usize = 8;

/// How often a drain looks for expired batches in every partition (not only in the ones it visits).
const EXPIRY_SWEEP: Duration = Duration::from_secs(1);

/// A partition the accumulator holds a queue for: (index in `State::topics`, partition).
type PartitionKey = (usize, i32);

#[derive(Debug, Default)]
struct PartitionQueue {
    open: Option<ProducerBatch>,
    sealed: VecDeque<ProducerBatch>,
    in_flight: bool,
    /// In `State::ready`, `State::parked` or `State::returned`: the next drain looks at it.
    listed: bool,
    next_sequence: i32,
    /// The identity the partition's sequences belong to; `None` once the broker refused them.
    sequence_owner: Option<ProducerState>,
    /// The renewal generation (`State::generation`) `sequence_owner` was taken in.
    owner_generation: u64,
    /// An identity, and the generation it was taken in, the partition sends nothing more under: the
    /// broker refused its sequences, or a batch that carried one of them failed (they are unresolved).
    /// The generation, not the identity, tells whether the sender renewed it: a renewal may hand out
    /// an equal id and epoch again.
    abandoned: Option<(ProducerState, u64)>,
}

impl PartitionQueue {
    fn has_data(&self) -> bool {
        self.open.is_some() || !self.sealed.is_empty()
    }
}

#[derive(Debug)]
struct TopicQueues {
    name: Arc<str>,
    partitions: Vec<PartitionQueue>,
    /// How well this topic's batches compressed so far: a drain counts a batch not yet encoded at
    /// its expected compressed size.
    compression: CompressionRatio,
}

#[derive(Debug)]
struct State {
    partitioner: Partitioner,
    topics: Vec<TopicQueues>,
    /// Index in `topics` by name.
    topic_index: HashMap<Arc<str>, usize>,
    /// Partitions the next drain looks at, each once (`PartitionQueue::listed`).
    ready: VecDeque<PartitionKey>,
    /// Listed partitions whose leader was busy at the last drain, by leader: looked at again once the
    /// leader is not busy, or the metadata changed.
    parked: HashMap<i32, Vec<PartitionKey>>,
    /// Partitions whose batch the sender returned unsent (`request_cap`), in request order: the next
    /// drain looks at them first, before `ready` and the partitions `unpark` lists.
    returned: Vec<PartitionKey>,
    /// The metadata generation the parked partitions' leaders come from.
    parked_generation: u64,
    /// (end of linger, partition, batch id) of each new batch, in creation order (so by end of linger).
    lingering: VecDeque<(Instant, PartitionKey, u64)>,
    /// (end of backoff, partition) of batches waiting to be retried.
    backoff: BinaryHeap<Reverse<(Instant, PartitionKey)>>,
    /// When a drain last looked for expired batches in every partition.
    swept: Option<Instant>,
    /// Buffers of completed batches, for new batches to write into (at most `SPARE_BUFFERS`).
    spare_buffers: Vec<BytesMut>,
    next_batch_id: u64,
    /// Batches not yet completed, by id (flush waits for the ones that existed when it was called).
    incomplete: BTreeSet<u64>,
    /// Batches with a smaller id are sent without waiting for `linger`.
    flush_below: u64,
    /// Identities some partition abandoned since the sender last looked (`take_unresolved`).
    unresolved: Vec<ProducerState>,
    /// Counts the producer identities the sender installed (`renewed`, or a drain under an identity
    /// other than the last one).
    generation: u64,
    /// The identity of the last drain.
    last_producer: Option<ProducerState>,
    closed: bool,
}

/// What the sender gets from one [`Accumulator::drain`].
#[derive(Debug, Default)]
pub(crate) struct Drained {
    /// Batches to send, grouped by leader broker id.
    pub(crate) by_broker: Vec<(i32, Vec<ProducerBatch>)>,
    /// Batches past their delivery timeout, to be failed.
    pub(crate) expired: Vec<ProducerBatch>,
    /// Batches that may have been written under an identity their partition no longer trusts, to be
    /// failed with [`Error::DeliveryUncertain`] (their partition stays busy until they are).
    pub(crate) uncertain: Vec<ProducerBatch>,
    /// The next instant something becomes ready (a linger or retry backoff ending).
    pub(crate) next_wake: Option<Instant>,
    /// Some ready batch has no known leader: metadata should be refreshed.
    pub(crate) needs_metadata: bool,
}

/// Per-partition batches between the callers and the sender.
#[derive(Debug)]
pub(crate) struct Accumulator {
    config: Arc<ProducerConfig>,
    state: Mutex<State>,
    memory: Arc<Semaphore>,
    /// Wakes the sender: a batch became ready, a new batch started its linger, a flush, a completion.
    pub(crate) wake_sender: Notify,
    /// Notified whenever a batch completes (for flush).
    completed: Notify,
}

impl Accumulator {
    pub(crate) fn new(config: Arc<ProducerConfig>, partitioner: Partitioner) -> Self {
        Self {
            memory: Arc::new(Semaphore::new(config.buffer_memory)),
            config,
            state: Mutex::new(State {
                partitioner,
                topics: Vec::new(),
                topic_index: HashMap::new(),
                ready: VecDeque::new(),
                parked: HashMap::new(),
                returned: Vec::new(),
                parked_generation: 0,
                lingering: VecDeque::new(),
                backoff: BinaryHeap::new(),
                swept: None,
                spare_buffers: Vec::new(),
                next_batch_id: 0,
                incomplete: BTreeSet::new(),
                flush_below: 0,
                unresolved: Vec::new(),
                generation: 0,
                last_producer: None,
                closed: false,
            }),
            wake_sender: Notify::new(),
            completed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves buffer memory for `record`, waiting while the buffer is full (backpressure).
    pub(crate) async fn reserve(&self, record: &ProducerRecord) -> Result<OwnedSemaphorePermit, Error> {
        let size = record.buffered_size();
        let max = self.config.max_request_size.min(self.config.buffer_memory);
        if size > max {
            return Err(Error::RecordTooLarge { size, max });
        }
        let permits = u32::try_from(size).map_err(|_| Error::RecordTooLarge { size, max })?;
        Arc::clone(&self.memory)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Error::Closed)
    }

    /// Appends `record` (whose memory is `permit`) to its partition's batch. `num_partitions` and
    /// `available` (partitions with a leader) come from the metadata.
    pub(crate) fn append(
        &self,
        record: ProducerRecord,
        permit: OwnedSemaphorePermit,
        num_partitions: i32,
        available: &[i32],
        now: Instant,
        timestamp_now: i64,
    ) -> Result<Delivery, Error> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.closed {
            return Err(Error::Closed);
        }
        let key = record.key.as_deref();
        let explicit = record.partition;
        let pick = |state: &mut State| match explicit {
            Some(p) if (0..num_partitions).contains(&p) => Ok(p),
            Some(p) => Err(Error::UnknownPartition {
                topic: record.topic.clone(),
                partition: p,
            }),
            None => state
                .partitioner
                .partition(&record.topic, key, num_partitions, available)
                .ok_or_else(|| Error::UnknownTopic {
                    topic: record.topic.clone(),
                }),
        };
        let mut partition = pick(state)?;
        let timestamp = record.timestamp.unwrap_or(timestamp_now);
        let batch_size = self.config.batch_size;
        let compression = self.config.compression;
        let linger = self.config.linger;
        let topic = topic_slot(state, &record.topic);

        // Would the record overflow the open batch? Then seal it, and (unkeyed, KIP-480) let the
        // partitioner move on before choosing again.
        // The record's size is measured once: the append below reuses it.
        let mut measured = None;
        let fits = match &queue_mut(state, topic, partition, num_partitions).open {
            Some(batch) => batch.builder.as_ref().is_some_and(|b| {
                if b.is_empty() {
                    return true;
                }
                let size = b.measure(timestamp, key, record.value.as_deref(), &record.headers);
                measured = size.as_ref().ok().copied();
                size.is_ok_and(|n| b.size() + n.total <= batch_size)
            }),
            None => true,
        };
        if !fits {
            measured = None;
            let queue = queue_mut(state, topic, partition, num_partitions);
            if let Some(full) = queue.open.take() {
                queue.sealed.push_back(full);
            }
            list(state, (topic, partition));
            if explicit.is_none() && key.is_none() {
                state
                    .partitioner
                    .on_new_batch(&record.topic, partition, num_partitions, available);
                partition = pick(state)?;
            }
            self.wake_sender.notify_one();
        }

        let id = state.next_batch_id;
        let topic_name = Arc::clone(&state.topics[topic].name);
        let new_batch = queue_mut(state, topic, partition, num_partitions).open.is_none();
        let spare = if new_batch {
            state.spare_buffers.pop()
        } else {
            None
        };
        let queue = queue_mut(state, topic, partition, num_partitions);
        let batch = queue.open.get_or_insert_with(|| ProducerBatch {
            id,
            delivery: BatchDelivery::new(Arc::clone(&topic_name)),
            topic: topic_name,
            partition,
            builder: Some(match spare {
                Some(buffer) => RecordBatchBuilder::with_buffer(compression, buffer),
                None => {
                    RecordBatchBuilder::with_capacity(compression, batch_size.min(INITIAL_BATCH_CAPACITY))
                }
            }),
            encoded: None,
            _permit: None,
            created: now,
            retry_at: None,
            attempts: 0,
            last_error: None,
            maybe_written: false,
            sequence_refused: false,
            producer: None,
            stale_encoding: false,
            in_flight: false,
            compression_ratio: None,
        });
        let builder = batch.builder.as_mut().ok_or(Error::Closed)?;
        let value = record.value.as_deref();
        let appended = match measured {
            Some(size) => builder.append_measured(timestamp, key, value, &record.headers, size),
            None => builder.append(timestamp, key, value, &record.headers),
        };
        if let Err(e) = appended {
            // Nothing was appended; an empty new batch is dropped again.
            if new_batch {
                queue.open = None;
            }
            return Err(Error::Encode { source: Arc::new(e) });
        }
        let delivery = batch.delivery.add(timestamp);
        match &mut batch._permit {
            Some(p) => p.merge(permit),
            slot @ None => *slot = Some(permit),
        }
        let full = builder.size() >= batch_size;
        if full && let Some(batch) = queue.open.take() {
            queue.sealed.push_back(batch);
        }
        let mut wake = full;
        if full {
            list(state, (topic, partition));
        }
        if new_batch {
            state.incomplete.insert(id);
            state.next_batch_id += 1;
            if !full {
                // The sender sleeps until the oldest linger ends: only a first one must wake it.
                wake |= state.lingering.is_empty() || linger.is_zero();
                state.lingering.push_back((now + linger, (topic, partition), id));
            }
        }
        if wake {
            self.wake_sender.notify_one();
        }
        Ok(delivery)
    }

    /// Takes the batches that are ready to send now.
    ///
    /// A batch is ready when it is sealed (full), or its linger has passed, or a flush or close asked
    /// for it, and its partition has no batch in flight and a known leader that is not `busy`. Batches
    /// for one broker are grouped up to `max_request_size`, a batch not yet encoded counted at its
    /// topic's expected compressed size (the sender caps the request again once encoded, see
    /// `request_cap`). With `producer` set (idempotence), each batch gets its sequence number here.
    pub(crate) fn drain(
        &self,
        now: Instant,
        metadata: &ClusterMetadata,
        busy: &HashSet<i32>,
        producer: Option<ProducerState>,
    ) -> Drained {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut drained = Drained::default();
        let linger = self.config.linger;
        let timeout = self.config.delivery_timeout;
        let flush_below = if state.closed { u64::MAX } else { state.flush_below };
        if producer != state.last_producer {
            state.last_producer = producer;
            state.generation += 1;
        }
        let generation = state.generation;

        // Lingers that ended (or that a flush or close cut short), and retry backoffs that ended.
        while let Some(&(due, key, id)) = state.lingering.front() {
            if due > now && id >= flush_below {
                break;
            }
            state.lingering.pop_front();
            list(state, key);
        }
        while let Some(&Reverse((at, key))) = state.backoff.peek() {
            if at > now {
                break;
            }
            state.backoff.pop();
            list(state, key);
        }
        if state
            .swept
            .is_none_or(|at| now.saturating_duration_since(at) >= EXPIRY_SWEEP)
        {
            state.swept = Some(now);
            for topic in &mut state.topics {
                for queue in &mut topic.partitions {
                    take_expired(queue, now, timeout, &mut drained.expired);
                }
            }
        }
        unpark(state, metadata.generation, busy);
        // Returned batches go first: before the partitions just unparked.
        let returned_count = state.returned.len();
        for key in state.returned.drain(..).rev() {
            state.ready.push_front(key);
        }

        let State {
            topics,
            ready,
            parked,
            returned,
            backoff,
            ..
        } = state;
        // How many of the returned partitions each busy leader got: they park ahead of the others.
        let mut parked_first: HashMap<i32, usize> = HashMap::new();
        let mut popped = 0usize;
        let mut request_bytes: HashMap<i32, usize> = HashMap::new();
        // Partitions with no known leader, or whose batch did not fit this drain's request.
        let mut again: Vec<PartitionKey> = Vec::new();
        let mut request_full = false;
        let mut leaders: Option<(usize, Option<&crate::client::cluster::TopicMetadata>)> = None;
        while let Some(key @ (topic_at, partition)) = ready.pop_front() {
            popped += 1;
            let first_in_line = popped <= returned_count;
            let Some(topic) = topics.get_mut(topic_at) else {
                continue;
            };
            let Some(queue) = usize::try_from(partition)
                .ok()
                .and_then(|p| topic.partitions.get_mut(p))
            else {
                continue;
            };
            queue.listed = false;
            take_expired(queue, now, timeout, &mut drained.expired);
            if queue.in_flight {
                continue; // its completion lists it again
            }
            let ready_now = match (queue.sealed.front(), &queue.open) {
                (Some(batch), _) => match batch.retry_at {
                    Some(at) if at > now => {
                        backoff.push(Reverse((at, key)));
                        false
                    }
                    _ => true,
                },
                // Not yet: its entry in `lingering` lists it when the linger ends.
                (None, Some(open)) => open.id < flush_below || open.created + linger <= now,
                (None, None) => false,
            };
            if !ready_now {
                continue;
            }
            let topic_metadata = match leaders {
                Some((at, meta)) if at == topic_at => meta,
                _ => {
                    let meta = metadata.topics.get(&*topic.name);
                    leaders = Some((topic_at, meta));
                    meta
                }
            };
            let leader = topic_metadata
                .and_then(|t| t.partition(partition))
                .and_then(|p| p.leader);
            let Some(leader) = leader else {
                drained.needs_metadata = true;
                queue.listed = true;
                again.push(key);
                continue;
            };
            if producer.is_some() && queue.abandoned.is_some_and(|(_, g)| g == generation) {
                // Waits for the sender's next identity (`take_unresolved`).
                queue.listed = true;
                again.push(key);
                continue;
            }
            if busy.contains(&leader) {
                queue.listed = true;
                let keys = parked.entry(leader).or_default();
                if first_in_line {
                    let at = parked_first.entry(leader).or_default();
                    keys.insert((*at).min(keys.len()), key);
                    *at += 1;
                } else {
                    keys.push(key);
                }
                continue;
            }
            let size = queue
                .sealed
                .front()
                .or(queue.open.as_ref())
                .map_or(0, |batch| batch.size(topic.compression.estimate()));
            let used = request_bytes.entry(leader).or_default();
            if *used > 0 && *used + size > self.config.max_request_size {
                queue.listed = true;
                if first_in_line {
                    returned.push(key);
                } else {
                    again.push(key);
                }
                request_full = true;
                continue;
            }
            *used += size;
            let Some(mut batch) = queue.sealed.pop_front().or_else(|| queue.open.take()) else {
                continue;
            };
            queue.in_flight = true;
            batch.in_flight = true;
            if let Some(state) = producer
                && !assign_sequence(queue, &mut batch, state, generation)
            {
                drained.uncertain.push(batch);
                continue;
            }
            match drained.by_broker.iter_mut().find(|(id, _)| *id == leader) {
                Some((_, batches)) => batches.push(batch),
                None => drained.by_broker.push((leader, vec![batch])),
            }
        }
        for key in again.into_iter().rev() {
            ready.push_front(key);
        }
        if request_full {
            // The rest goes in the next request, at once.
            wake_at(&mut drained.next_wake, now);
        }
        if let Some(&(due, _, _)) = state.lingering.front() {
            wake_at(&mut drained.next_wake, due);
        }
        if let Some(&Reverse((at, _))) = state.backoff.peek() {
            wake_at(&mut drained.next_wake, at);
        }
        drained
    }

    /// Completes a batch that was drained (or expired): its records get their offsets or the error,
    /// its memory is released, and its partition may send again.
    pub(crate) fn complete(&self, mut batch: ProducerBatch, result: Result<i64, Error>) {
        let spare = batch.take_buffer(self.config.batch_size);
        let failed = result.is_err();
        // Its records are answered before it leaves `incomplete`: `flush` returns once that is
        // empty, and its caller may then look at their answers.
        batch.delivery.settle(batch.partition, result);
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            if let Some(buffer) = spare
                && state.spare_buffers.len() < SPARE_BUFFERS
            {
                state.spare_buffers.push(buffer);
            }
            forget_refused(state, &batch);
            if failed {
                abandon_unresolved(state, &batch);
            }
            // An expired batch was never in flight: another batch of its partition may be.
            if batch.in_flight
                && let Some(key) = key_of(state, &batch.topic, batch.partition)
            {
                if let Some(queue) = queue_at(&mut state.topics, key) {
                    queue.in_flight = false;
                }
                list(state, key);
            }
            state.incomplete.remove(&batch.id);
        }
        self.completed.notify_waiters();
        self.wake_sender.notify_one();
    }

    /// Puts a drained batch back at the front of its partition's queue, to be retried after the backoff.
    pub(crate) fn requeue(&self, mut batch: ProducerBatch, now: Instant, error: String) {
        batch.retry_at = Some(now + self.config.retry_backoff);
        batch.attempts += 1;
        batch.last_error = Some(error);
        batch.in_flight = false;
        let mut guard = self.lock();
        let state = &mut *guard;
        forget_refused(state, &batch);
        batch.sequence_refused = false;
        let key = key_of(state, &batch.topic, batch.partition);
        let Some((key, queue)) = key.and_then(|key| Some((key, queue_at(&mut state.topics, key)?))) else {
            drop(guard);
            self.fail_orphan(batch);
            return;
        };
        queue.in_flight = false;
        queue.sealed.push_front(batch);
        list(state, key);
        drop(guard);
        self.wake_sender.notify_one();
    }

    /// Fails a drained batch whose partition the accumulator holds no queue for: it cannot be put
    /// back, and a batch dropped instead would never answer its records (nor let `flush` return).
    fn fail_orphan(&self, batch: ProducerBatch) {
        let error = Error::UnknownPartition {
            topic: batch.topic.to_string(),
            partition: batch.partition,
        };
        self.complete(batch, Err(error));
    }

    /// Makes every batch that exists now ready at once, and waits until all of them completed.
    pub(crate) async fn flush(&self) {
        let target = {
            let mut state = self.lock();
            state.flush_below = state.next_batch_id;
            state.next_batch_id
        };
        self.wake_sender.notify_one();
        loop {
            let completed = self.completed.notified();
            tokio::pin!(completed);
            completed.as_mut().enable();
            if self.lock().incomplete.first().is_none_or(|&id| id >= target) {
                return;
            }
            completed.await;
        }
    }

    /// Refuses new records; everything buffered becomes ready at once.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake_sender.notify_one();
    }

    /// Whether nothing is buffered or in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().incomplete.is_empty()
    }

    /// Whether the producer was closed and everything it held has completed.
    pub(crate) fn is_closed_and_empty(&self) -> bool {
        let state = self.lock();
        state.closed && state.incomplete.is_empty()
    }

    /// Fails the waiting batches that are past their delivery timeout (while no batch can be sent at
    /// all, e.g. no producer id can be had).
    pub(crate) fn fail_expired(&self, now: Instant, last_error: &str) {
        let expired: Vec<ProducerBatch> = {
            let mut state = self.lock();
            let timeout = self.config.delivery_timeout;
            let mut expired = Vec::new();
            for topic in &mut state.topics {
                for queue in &mut topic.partitions {
                    take_expired(queue, now, timeout, &mut expired);
                }
            }
            expired
        };
        for mut batch in expired {
            batch.last_error = Some(last_error.to_owned());
            let error = Error::DeliveryTimeout {
                topic: batch.topic.to_string(),
                partition: batch.partition,
                timeout: self.config.delivery_timeout,
                last_error: batch.last_error.clone(),
            };
            self.complete(batch, Err(error));
        }
        // Only a drain ends lingers: without one (no producer id, say) the entries of batches that
        // completed here would pile up for as long as the outage lasts.
        let mut state = self.lock();
        let State {
            lingering,
            incomplete,
            ..
        } = &mut *state;
        lingering.retain(|&(_, _, id)| incomplete.contains(&id));
    }

    /// The identities some partition abandoned since the last call (a batch that carried a sequence
    /// failed): the sender replaces the current one if it is among them.
    pub(crate) fn take_unresolved(&self) -> Vec<ProducerState> {
        std::mem::take(&mut self.lock().unresolved)
    }

    /// The sender installed a new producer identity: partitions that abandoned the previous one may
    /// send again (at sequence 0), even if the new one has the same id and epoch.
    pub(crate) fn renewed(&self) {
        self.lock().generation += 1;
    }

    /// Bytes of buffer memory in use.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.config.buffer_memory - self.memory.available_permits()
    }
}

/// Moves the batches of `queue` that waited past the delivery timeout into `out`, oldest first (a
/// younger batch never expires before an older one of the same partition).
fn take_expired(queue: &mut PartitionQueue, now: Instant, timeout: Duration, out: &mut Vec<ProducerBatch>) {
    let expired = |b: &ProducerBatch| now.saturating_duration_since(b.created) >= timeout;
    while let Some(batch) = queue.sealed.pop_front_if(|b| expired(b)) {
        // One that carries a sequence leaves the partition's sequences unresolved at once (written or
        // not, the broker's next expected sequence is unknown or behind the partition's), before this
        // drain reaches its next batch (`abandon_unresolved` reports it when it completes).
        if let Some(identity) = batch.identity()
            && queue.sequence_owner == Some(identity)
        {
            abandon(queue, identity);
        }
        out.push(batch);
    }
    if queue.sealed.is_empty() && queue.open.as_ref().is_some_and(expired) {
        out.extend(queue.open.take());
    }
}

fn wake_at(slot: &mut Option<Instant>, at: Instant) {
    *slot = Some(slot.map_or(at, |current| current.min(at)));
}

/// Gives `batch` its sequence under `state`; `false` (nothing assigned) when it may already have been
/// written under an identity its partition no longer trusts and must not be sent again.
fn assign_sequence(
    queue: &mut PartitionQueue,
    batch: &mut ProducerBatch,
    state: ProducerState,
    generation: u64,
) -> bool {
    match assignment(batch.producer, batch.maybe_written, queue.sequence_owner) {
        Assignment::Keep => return true, // a retry keeps its identity and sequence
        Assignment::Uncertain => return false,
        Assignment::Next => {}
    }
    if queue.sequence_owner != Some(state) {
        queue.sequence_owner = Some(state);
        queue.owner_generation = generation;
        queue.next_sequence = 0;
    }
    let sequence = queue.next_sequence;
    let count = i32::try_from(batch.record_count()).unwrap_or(i32::MAX);
    queue.next_sequence = sequence_after(sequence, count);
    batch.stale_encoding = batch.encoded.is_some();
    batch.producer = Some((state.0, state.1, sequence));
    true
}

/// Makes the partition of `batch` forget its sequences when the broker refused them under the identity
/// the batch carries (a later identity the partition moved to meanwhile is kept).
fn forget_refused(state: &mut State, batch: &ProducerBatch) {
    if !batch.sequence_refused {
        return;
    }
    if let Some(key) = key_of(state, &batch.topic, batch.partition)
        && let Some(queue) = queue_at(&mut state.topics, key)
        && let Some(identity) = batch.identity()
        && queue.sequence_owner == Some(identity)
    {
        abandon(queue, identity);
    }
}

/// A batch that carries a sequence failed for good: the broker may hold it (an attempt went
/// unanswered) or not (it was rejected, or never reached the leader), so the broker's next expected
/// sequence is unknown or behind the partition's. The partition sends nothing more under its identity
/// (a next batch would follow a possible gap) and the sender is told to take a new one, under which the
/// partition restarts at 0. A batch that gave its sequence back (`request_cap`) carries none.
fn abandon_unresolved(state: &mut State, batch: &ProducerBatch) {
    let Some(identity) = batch.identity() else {
        return;
    };
    if let Some(key) = key_of(state, &batch.topic, batch.partition)
        && let Some(queue) = queue_at(&mut state.topics, key)
        && (queue.sequence_owner == Some(identity) || queue.abandoned.is_some_and(|(a, _)| a == identity))
    {
        if queue.sequence_owner == Some(identity) {
            abandon(queue, identity);
        }
        if !state.unresolved.contains(&identity) {
            state.unresolved.push(identity);
        }
    }
}

/// Makes `queue`, whose sequences belong to `identity`, send nothing more under it until the sender
/// renews it.
fn abandon(queue: &mut PartitionQueue, identity: ProducerState) {
    queue.sequence_owner = None;
    queue.abandoned = Some((identity, queue.owner_generation));
}

/// The sequence after a batch of `count` records from `sequence`: sequences wrap from i32::MAX to 0,
/// as the protocol says.
fn sequence_after(sequence: i32, count: i32) -> i32 {
    ((i64::from(sequence) + i64::from(count)) % (i64::from(i32::MAX) + 1)) as i32
}

/// Lists `key` for the next drain, unless it is listed already, in flight or empty.
fn list(state: &mut State, key: PartitionKey) {
    if let Some(queue) = queue_at(&mut state.topics, key)
        && !queue.listed
        && !queue.in_flight
        && queue.has_data()
    {
        queue.listed = true;
        state.ready.push_back(key);
    }
}

/// Moves the parked partitions whose leader is no longer busy (all of them when the metadata changed)
/// to the front of `ready`.
fn unpark(state: &mut State, generation: u64, busy: &HashSet<i32>) {
    if state.parked.is_empty() {
        state.parked_generation = generation;
        return;
    }
    let changed = state.parked_generation != generation;
    state.parked_generation = generation;
    let ready = &mut state.ready;
    state.parked.retain(|leader, keys| {
        if !changed && busy.contains(leader) {
            return true;
        }
        for key in keys.drain(..).rev() {
            ready.push_front(key);
        }
        false
    });
}

/// The index of `topic` in `state.topics`, adding it if new.
fn topic_slot(state: &mut State, topic: &str) -> usize {
    if let Some(&index) = state.topic_index.get(topic) {
        return index;
    }
    let name: Arc<str> = Arc::from(topic);
    let index = state.topics.len();
    state.topics.push(TopicQueues {
        name: Arc::clone(&name),
        partitions: Vec::new(),
        compression: CompressionRatio::default(),
    });
    state.topic_index.insert(name, index);
    index
}

fn queue_mut(state: &mut State, topic: usize, partition: i32, num_partitions: i32) -> &mut PartitionQueue {
    let wanted = usize::try_from(num_partitions.max(partition + 1)).unwrap_or(0);
    let index = usize::try_from(partition).unwrap_or(0);
    let queues = &mut state.topics[topic].partitions;
    if queues.len() < wanted.max(index + 1) {
        queues.resize_with(wanted.max(index + 1), PartitionQueue::default);
    }
    &mut queues[index]
}

fn key_of(state: &State, topic: &str, partition: i32) -> Option<PartitionKey> {
    state.topic_index.get(topic).map(|&index| (index, partition))
}

fn queue_at(topics: &mut [TopicQueues], (topic, partition): PartitionKey) -> Option<&mut PartitionQueue> {
    topics
        .get_mut(topic)?
        .partitions
        .get_mut(usize::try_from(partition).ok()?)
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn epoch_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

mod request_cap;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod request_cap_tests;
