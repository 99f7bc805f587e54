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
//!   the batch completes (acknowledged or failed), so `buffer_memory` bounds everything buffered or in
//!   flight.
//! - **Ordering.** A partition has at most one batch in flight; a batch that must be retried goes back
//!   to the front of its partition's queue. Records of one partition are therefore written in the order
//!   they were appended, retries included.
//! - **Idempotence.** A batch gets its sequence number when it is first drained, in partition order, and
//!   keeps it across retries, so the broker discards a retry of a batch it already wrote. When the
//!   producer id or epoch changes (after OUT_OF_ORDER_SEQUENCE / UNKNOWN_PRODUCER_ID), sequences
//!   restart at 0, and a batch that may already have been written under the old one is failed
//!   ([`Drained::uncertain`]) rather than sent again (see `idempotence`).
//! - No I/O and no clock: `now` is passed in, so the rules above are unit-tested with virtual time.

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

use super::{
    Error, ProducerConfig, ProducerRecord, RecordMetadata,
    idempotence::{Assignment, assignment},
    partitioner::Partitioner,
};
use crate::{
    client::cluster::ClusterMetadata,
    protocol::records::{self, RecordBatchBuilder},
};

/// The answer a sent record waits for.
pub(crate) type Delivery = oneshot::Receiver<Result<RecordMetadata, Error>>;

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
    deliveries: Vec<(oneshot::Sender<Result<RecordMetadata, Error>>, i64)>,
    _permit: Option<OwnedSemaphorePermit>,
    pub(crate) created: Instant,
    retry_at: Option<Instant>,
    pub(crate) attempts: u32,
    pub(crate) last_error: Option<String>,
    /// An attempt went unanswered (timeout, lost connection): the broker may have written the batch.
    pub(crate) maybe_written: bool,
    /// (producer id, epoch, base sequence) once assigned.
    producer: Option<(i64, i16, i32)>,
    /// The encoded bytes carry an older producer state than `producer`.
    stale_encoding: bool,
}

impl ProducerBatch {
    /// How many records it holds.
    pub(crate) fn record_count(&self) -> usize {
        self.deliveries.len()
    }

    fn size(&self) -> usize {
        match (&self.encoded, &self.builder) {
            (Some(bytes), _) => bytes.len(),
            (None, Some(builder)) => builder.size(),
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
            self.encoded = Some(builder.finish()?);
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

    /// Completes every record: offsets from `base_offset` (or -1), or the error.
    fn complete(self, result: Result<i64, Error>) {
        for (i, (delivery, timestamp)) in self.deliveries.into_iter().enumerate() {
            let outcome = match &result {
                Ok(base) => Ok(RecordMetadata {
                    topic: self.topic.to_string(),
                    partition: self.partition,
                    offset: if *base < 0 { -1 } else { base + i as i64 },
                    timestamp,
                }),
                Err(e) => Err(e.clone()),
            };
            // The caller may have stopped waiting; that is fine.
            let _ = delivery.send(outcome);
        }
    }
}

#[derive(Debug, Default)]
struct PartitionQueue {
    open: Option<ProducerBatch>,
    sealed: VecDeque<ProducerBatch>,
    in_flight: bool,
    next_sequence: i32,
    sequence_owner: Option<ProducerState>,
}

#[derive(Debug)]
struct TopicQueues {
    name: Arc<str>,
    partitions: Vec<PartitionQueue>,
}

#[derive(Debug)]
struct State {
    partitioner: Partitioner,
    topics: HashMap<String, TopicQueues>,
    next_batch_id: u64,
    /// Batches not yet completed, by id (flush waits for the ones that existed when it was called).
    incomplete: BTreeSet<u64>,
    /// Batches with a smaller id are sent without waiting for `linger`.
    flush_below: u64,
    closed: bool,
}

/// What the sender gets from one [`Accumulator::drain`].
#[derive(Debug, Default)]
pub(crate) struct Drained {
    /// Batches to send, grouped by leader broker id.
    pub(crate) by_broker: Vec<(i32, Vec<ProducerBatch>)>,
    /// Batches past their delivery timeout, to be failed.
    pub(crate) expired: Vec<ProducerBatch>,
    /// Batches that may have been written under an earlier producer id or epoch, to be failed with
    /// [`Error::DeliveryUncertain`] (their partition stays busy until they are).
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
                topics: HashMap::new(),
                next_batch_id: 0,
                incomplete: BTreeSet::new(),
                flush_below: 0,
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

        // Would the record overflow the open batch? Then seal it, and (unkeyed, KIP-480) let the
        // partitioner move on before choosing again.
        let fits = |queue: &PartitionQueue| match &queue.open {
            Some(batch) => batch.builder.as_ref().is_some_and(|b| {
                b.is_empty()
                    || b.record_size(timestamp, key, record.value.as_deref(), &record.headers)
                        .is_ok_and(|n| b.size() + n <= batch_size)
            }),
            None => true,
        };
        if !fits(queue_mut(state, &record.topic, partition, num_partitions)) {
            let queue = queue_mut(state, &record.topic, partition, num_partitions);
            if let Some(full) = queue.open.take() {
                queue.sealed.push_back(full);
            }
            if explicit.is_none() && key.is_none() {
                state
                    .partitioner
                    .on_new_batch(&record.topic, partition, num_partitions, available);
                partition = pick(state)?;
            }
            self.wake_sender.notify_one();
        }

        let id = state.next_batch_id;
        let queue = queue_mut(state, &record.topic, partition, num_partitions);
        let new_batch = queue.open.is_none();
        let topic_name = Arc::clone(&topic_arc(state, &record.topic));
        let queue = queue_mut(state, &record.topic, partition, num_partitions);
        let batch = queue.open.get_or_insert_with(|| ProducerBatch {
            id,
            topic: topic_name,
            partition,
            builder: Some(RecordBatchBuilder::with_capacity(
                compression,
                batch_size.min(1 << 20),
            )),
            encoded: None,
            deliveries: Vec::new(),
            _permit: None,
            created: now,
            retry_at: None,
            attempts: 0,
            last_error: None,
            maybe_written: false,
            producer: None,
            stale_encoding: false,
        });
        let builder = batch.builder.as_mut().ok_or(Error::Closed)?;
        let appended = builder.append(timestamp, key, record.value.as_deref(), &record.headers);
        let (tx, rx) = oneshot::channel();
        if let Err(e) = appended {
            // Nothing was appended; an empty new batch is dropped again.
            if new_batch {
                queue.open = None;
            }
            return Err(Error::Encode { source: Arc::new(e) });
        }
        batch.deliveries.push((tx, timestamp));
        match &mut batch._permit {
            Some(p) => p.merge(permit),
            slot @ None => *slot = Some(permit),
        }
        let full = builder.size() >= batch_size;
        if full && let Some(batch) = queue.open.take() {
            queue.sealed.push_back(batch);
        }
        if new_batch {
            state.incomplete.insert(id);
            state.next_batch_id += 1;
        }
        if new_batch || full {
            self.wake_sender.notify_one();
        }
        Ok(rx)
    }

    /// Takes the batches that are ready to send now.
    ///
    /// A batch is ready when it is sealed (full), or its linger has passed, or a flush or close asked
    /// for it, and its partition has no batch in flight and a known leader that is not `busy`. Batches
    /// for one broker are grouped up to `max_request_size`. With `producer` set (idempotence), each
    /// batch gets its sequence number here.
    pub(crate) fn drain(
        &self,
        now: Instant,
        metadata: &ClusterMetadata,
        busy: &HashSet<i32>,
        producer: Option<ProducerState>,
    ) -> Drained {
        let mut state = self.lock();
        let state = &mut *state;
        let mut drained = Drained::default();
        let mut request_bytes: HashMap<i32, usize> = HashMap::new();
        let linger = self.config.linger;
        let flush_below = if state.closed { u64::MAX } else { state.flush_below };
        for (name, topic) in &mut state.topics {
            for (index, queue) in topic.partitions.iter_mut().enumerate() {
                take_expired(queue, now, self.config.delivery_timeout, &mut drained.expired);
                if queue.in_flight {
                    continue;
                }
                let ready = match (queue.sealed.front(), &queue.open) {
                    (Some(batch), _) => match batch.retry_at {
                        Some(at) if at > now => {
                            wake_at(&mut drained.next_wake, at);
                            false
                        }
                        _ => true,
                    },
                    (None, Some(open)) => {
                        let due = open.created + linger;
                        let ready = open.id < flush_below || due <= now;
                        if !ready {
                            wake_at(&mut drained.next_wake, due);
                        }
                        ready
                    }
                    (None, None) => false,
                };
                if !ready {
                    continue;
                }
                let partition = index as i32;
                let leader = metadata
                    .topics
                    .get(name.as_str())
                    .and_then(|t| t.partition(partition))
                    .and_then(|p| p.leader);
                let Some(leader) = leader else {
                    drained.needs_metadata = true;
                    continue;
                };
                if busy.contains(&leader) {
                    continue;
                }
                let size = queue
                    .sealed
                    .front()
                    .or(queue.open.as_ref())
                    .map_or(0, ProducerBatch::size);
                let used = request_bytes.entry(leader).or_default();
                if *used > 0 && *used + size > self.config.max_request_size {
                    continue;
                }
                *used += size;
                let Some(mut batch) = queue.sealed.pop_front().or_else(|| queue.open.take()) else {
                    continue;
                };
                queue.in_flight = true;
                if let Some(state) = producer
                    && !assign_sequence(queue, &mut batch, state)
                {
                    drained.uncertain.push(batch);
                    continue;
                }
                match drained.by_broker.iter_mut().find(|(id, _)| *id == leader) {
                    Some((_, batches)) => batches.push(batch),
                    None => drained.by_broker.push((leader, vec![batch])),
                }
            }
        }
        drained
    }

    /// Completes a batch that was drained (or expired): its records get their offsets or the error,
    /// its memory is released, and its partition may send again.
    pub(crate) fn complete(&self, batch: ProducerBatch, result: Result<i64, Error>) {
        {
            let mut state = self.lock();
            if let Some(queue) = queue_of(&mut state, &batch.topic, batch.partition) {
                queue.in_flight = false;
            }
            state.incomplete.remove(&batch.id);
        }
        batch.complete(result);
        self.completed.notify_waiters();
        self.wake_sender.notify_one();
    }

    /// Puts a drained batch back at the front of its partition's queue, to be retried after the backoff.
    pub(crate) fn requeue(&self, mut batch: ProducerBatch, now: Instant, error: String) {
        batch.retry_at = Some(now + self.config.retry_backoff);
        batch.attempts += 1;
        batch.last_error = Some(error);
        let mut state = self.lock();
        if let Some(queue) = queue_of(&mut state, &batch.topic, batch.partition) {
            queue.in_flight = false;
            queue.sealed.push_front(batch);
        }
        drop(state);
        self.wake_sender.notify_one();
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
            for topic in state.topics.values_mut() {
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
    while queue.sealed.front().is_some_and(expired) {
        out.extend(queue.sealed.pop_front());
    }
    if queue.sealed.is_empty() && queue.open.as_ref().is_some_and(expired) {
        out.extend(queue.open.take());
    }
}

fn wake_at(slot: &mut Option<Instant>, at: Instant) {
    *slot = Some(slot.map_or(at, |current| current.min(at)));
}

/// Gives `batch` its sequence under `state`; `false` (nothing assigned) when it may already have been
/// written under an earlier state and must not be sent again.
fn assign_sequence(queue: &mut PartitionQueue, batch: &mut ProducerBatch, state: ProducerState) -> bool {
    match assignment(batch.producer, batch.maybe_written, state) {
        Assignment::Keep => return true, // a retry keeps its sequence
        Assignment::Uncertain => return false,
        Assignment::Next => {}
    }
    if queue.sequence_owner != Some(state) {
        queue.sequence_owner = Some(state);
        queue.next_sequence = 0;
    }
    let sequence = queue.next_sequence;
    let count = i32::try_from(batch.record_count()).unwrap_or(i32::MAX);
    // Sequences wrap from i32::MAX to 0, as the protocol says.
    queue.next_sequence = ((i64::from(sequence) + i64::from(count)) % (i64::from(i32::MAX) + 1)) as i32;
    batch.stale_encoding = batch.encoded.is_some();
    batch.producer = Some((state.0, state.1, sequence));
    true
}

fn topic_arc(state: &mut State, topic: &str) -> Arc<str> {
    state
        .topics
        .get(topic)
        .map(|t| Arc::clone(&t.name))
        .unwrap_or_else(|| Arc::from(topic))
}

fn queue_mut<'a>(
    state: &'a mut State,
    topic: &str,
    partition: i32,
    num_partitions: i32,
) -> &'a mut PartitionQueue {
    if !state.topics.contains_key(topic) {
        let queues = TopicQueues {
            name: Arc::from(topic),
            partitions: Vec::new(),
        };
        state.topics.insert(topic.to_owned(), queues);
    }
    let Some(queues) = state.topics.get_mut(topic) else {
        unreachable!("inserted above")
    };
    let wanted = usize::try_from(num_partitions.max(partition + 1)).unwrap_or(0);
    if queues.partitions.len() < wanted {
        queues.partitions.resize_with(wanted, PartitionQueue::default);
    }
    let index = usize::try_from(partition).unwrap_or(0);
    &mut queues.partitions[index]
}

fn queue_of<'a>(state: &'a mut State, topic: &str, partition: i32) -> Option<&'a mut PartitionQueue> {
    state
        .topics
        .get_mut(topic)
        .and_then(|t| t.partitions.get_mut(usize::try_from(partition).ok()?))
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn epoch_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
