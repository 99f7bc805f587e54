//! One assigned partition as the application sees it: an ordered stream of records and a progress
//! handle to mark offsets done.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Instant,
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::{
    fetcher::{ChunkRecords, CompletedFetch, ConsumerRecord, FetchShared},
    subscription::TopicPartition,
};

/// What the consumer and the application share about one assignment of one partition.
#[derive(Debug)]
pub(crate) struct PartitionHandle {
    pub(crate) tp: TopicPartition,
    pub(crate) epoch: u64,
    /// The next offset to commit (last done + 1); -1 while nothing is done.
    pub(crate) done: AtomicI64,
    /// The offset after the last record handed to the application; -1 before the first.
    pub(crate) delivered: AtomicI64,
    /// Cancelled when the partition is revoked: the stream ends.
    pub(crate) revoked: CancellationToken,
    /// The application dropped the stream (and, with it, any work on it).
    pub(crate) dropped: AtomicBool,
    pub(crate) paused: AtomicBool,
    /// The progress counters (`delivered`, `done`) as last seen, and when they last changed: the
    /// consumer watches them for `max.poll.interval` instead of the hot path reading a clock.
    pub(crate) observed: Mutex<Observed>,
}

/// See [`PartitionHandle::last_activity`].
#[derive(Debug)]
pub(crate) struct Observed {
    at: Instant,
    delivered: i64,
    done: i64,
}

impl PartitionHandle {
    pub(crate) fn new(tp: TopicPartition, epoch: u64) -> Self {
        Self {
            tp,
            epoch,
            done: AtomicI64::new(-1),
            delivered: AtomicI64::new(-1),
            revoked: CancellationToken::new(),
            dropped: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            observed: Mutex::new(Observed {
                at: Instant::now(),
                delivered: -1,
                done: -1,
            }),
        }
    }

    /// When the application last made progress on this partition (took a record or marked one done),
    /// as far as calls of this at `now` can tell: the first call that sees the counters moved dates the
    /// progress to its `now`.
    pub(crate) fn last_activity(&self, now: Instant) -> Instant {
        let delivered = self.delivered.load(Ordering::Acquire);
        let done = self.done.load(Ordering::Acquire);
        let mut seen = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        if (seen.delivered, seen.done) != (delivered, done) {
            *seen = Observed {
                at: now,
                delivered,
                done,
            };
        }
        seen.at
    }

    /// Records were handed out and not all marked done, and the stream is still alive.
    pub(crate) fn has_work_in_flight(&self) -> bool {
        !self.dropped.load(Ordering::Acquire)
            && self.delivered.load(Ordering::Acquire) > self.done.load(Ordering::Acquire)
    }
}

/// Marks offsets of one partition done; cheap to clone and to send to a worker.
///
/// # Example
///
/// ```no_run
/// # async fn example(mut stream: kafka_event_bus::client::consumer::PartitionStream) {
/// let progress = stream.progress();
/// while let Some(record) = stream.next().await {
///     // ... handle the record ...
///     progress.mark_done(record.offset);
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Progress {
    handle: Arc<PartitionHandle>,
}

impl Progress {
    /// Marks every record of this partition up to and including `offset` as done: the consumer will
    /// commit `offset + 1` (periodically, on revoke and on close). Marking an older offset is a no-op.
    pub fn mark_done(&self, offset: i64) {
        self.handle
            .done
            .fetch_max(offset.saturating_add(1), Ordering::AcqRel);
    }

    /// The next offset that will be committed (last done + 1), if anything was marked done.
    pub fn done(&self) -> Option<i64> {
        Some(self.handle.done.load(Ordering::Acquire)).filter(|&d| d >= 0)
    }
}

/// The records of one assigned partition, in offset order; ends when the partition is revoked.
///
/// # Cancel safety
///
/// [`next`](Self::next) and [`next_chunk`](Self::next_chunk) are cancel-safe: a record is handed out
/// only when the future completes.
///
/// # Dropping
///
/// Dropping the stream tells a pending revocation that no work on this partition is in flight any more.
#[derive(Debug)]
pub struct PartitionStream {
    pub(crate) handle: Arc<PartitionHandle>,
    pub(crate) rx: mpsc::UnboundedReceiver<CompletedFetch>,
    /// The records of the batch being handed out.
    pub(crate) current: std::vec::IntoIter<ConsumerRecord>,
    /// The rest of the chunk being handed out (and its assignment epoch), decoded a batch at a time. It
    /// counts against `max_buffered_fetches` until it is used up.
    pub(crate) batches: Option<(u64, ChunkRecords)>,
    pub(crate) fetch: Arc<FetchShared>,
}

impl PartitionStream {
    /// The partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.handle.tp
    }

    /// A handle to mark this partition's offsets done (give it to the worker).
    pub fn progress(&self) -> Progress {
        Progress {
            handle: Arc::clone(&self.handle),
        }
    }

    /// Shorthand for `self.progress().mark_done(offset)`.
    pub fn mark_done(&self, offset: i64) {
        self.progress().mark_done(offset);
    }

    /// Whether the partition was revoked (the stream yields nothing more).
    pub fn is_revoked(&self) -> bool {
        self.handle.revoked.is_cancelled()
    }

    /// A token cancelled when the partition is revoked, for work on it that must stop then.
    pub(crate) fn revocation(&self) -> CancellationToken {
        self.handle.revoked.clone()
    }

    /// Stops fetching this partition (records already fetched are still delivered).
    pub fn pause(&self) {
        self.handle.paused.store(true, Ordering::Release);
        self.fetch.lock().subscriptions.pause(&self.handle.tp);
    }

    /// Resumes fetching.
    pub fn resume(&self) {
        self.handle.paused.store(false, Ordering::Release);
        self.fetch.lock().subscriptions.resume(&self.handle.tp);
        self.fetch.wake.notify_one();
    }

    /// The high watermark from the last fetch.
    pub fn high_watermark(&self) -> Option<i64> {
        let state = self.fetch.lock();
        state
            .subscriptions
            .get(&self.handle.tp)
            .filter(|p| p.epoch == self.handle.epoch)
            .and_then(|p| p.high_watermark)
    }

    /// How many records are behind this stream's next record: high watermark minus the next offset
    /// the application will see.
    pub fn lag(&self) -> Option<i64> {
        let hw = self.high_watermark()?;
        let next = match self.current.as_slice().first() {
            Some(r) => r.offset,
            None => self.handle.delivered.load(Ordering::Acquire).max(0),
        };
        Some((hw - next).max(0))
    }

    fn take_chunk(&mut self, chunk: CompletedFetch) {
        self.batches = Some((chunk.epoch, chunk.chunk.records()));
    }

    /// Moves on to the next batch of the chunk being handed out. When the chunk is used up it stops
    /// counting against `max_buffered_fetches` (so a chunk being worked through still bounds how much
    /// more is fetched) and the fetcher is woken.
    fn next_batch(&mut self) {
        let Some((epoch, batches)) = &mut self.batches else {
            return;
        };
        if let Some(records) = batches.next() {
            self.current = records.into_iter();
            return;
        }
        let epoch = *epoch;
        self.batches = None;
        self.fetch
            .lock()
            .subscriptions
            .consumed_chunk(&self.handle.tp, epoch);
        self.fetch.wake.notify_one();
    }

    async fn fill(&mut self) -> bool {
        while self.current.as_slice().is_empty() {
            if self.handle.revoked.is_cancelled() {
                return false;
            }
            if self.batches.is_some() {
                self.next_batch();
                continue;
            }
            tokio::select! {
                biased;
                () = self.handle.revoked.cancelled() => return false,
                chunk = self.rx.recv() => match chunk {
                    Some(chunk) => self.take_chunk(chunk),
                    None => return false,
                },
            }
        }
        !self.handle.revoked.is_cancelled()
    }

    /// The next record; `None` once the partition is revoked (or the consumer closed).
    pub async fn next(&mut self) -> Option<ConsumerRecord> {
        if let Some(record) = self.next_ready() {
            return Some(record);
        }
        if !self.fill().await {
            return None;
        }
        let record = self.current.next()?;
        self.delivered(&record);
        Some(record)
    }

    /// The next record if one was already fetched: [`next`](Self::next) without waiting. `None` if
    /// nothing is buffered or the partition was revoked.
    pub fn next_ready(&mut self) -> Option<ConsumerRecord> {
        if self.handle.revoked.is_cancelled() {
            return None;
        }
        loop {
            if let Some(record) = self.current.next() {
                self.delivered(&record);
                return Some(record);
            }
            if self.batches.is_some() {
                self.next_batch();
            } else {
                let chunk = self.rx.try_recv().ok()?;
                self.take_chunk(chunk);
            }
        }
    }

    fn delivered(&self, record: &ConsumerRecord) {
        self.handle
            .delivered
            .store(record.offset.saturating_add(1), Ordering::Release);
    }

    /// The next records already fetched (at least one; at most one record batch's worth, so a
    /// compressed fetch is decompressed a batch at a time), in order; `None` once revoked. Faster than
    /// [`next`](Self::next) for handlers that take batches.
    pub async fn next_chunk(&mut self) -> Option<Vec<ConsumerRecord>> {
        if !self.fill().await {
            return None;
        }
        let records: Vec<ConsumerRecord> = std::mem::take(&mut self.current).collect();
        if let Some(last) = records.last() {
            self.delivered(last);
        }
        Some(records)
    }
}

impl Drop for PartitionStream {
    fn drop(&mut self) {
        self.handle.dropped.store(true, Ordering::Release);
    }
}
