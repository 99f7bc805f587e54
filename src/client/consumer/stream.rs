//! One assigned partition as the application sees it: an ordered stream of records and a progress
//! handle to store the offset to commit.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use futures_core::Stream;
use tokio_util::sync::WaitForCancellationFutureOwned;

use tokio_util::sync::CancellationToken;

use super::offsets::PartitionOffsets;
use crate::client::{
    fetcher::{self, ChunkReceiver, CompletedFetch, ConsumerRecord, Failed, FetchShared},
    subscription::TopicPartition,
};

/// What the consumer and the application share about one assignment of one partition.
#[derive(Debug)]
pub(crate) struct PartitionHandle {
    pub(crate) tp: TopicPartition,
    pub(crate) epoch: u64,
    /// The stored and committed offsets (see [`super::offsets`]).
    pub(crate) offsets: PartitionOffsets,
    /// The offset after the last record handed to the application; -1 before the first.
    pub(crate) delivered: AtomicI64,
    /// Cancelled when the partition is revoked: the stream ends.
    pub(crate) revoked: CancellationToken,
    /// The application dropped the stream (and, with it, any work on it).
    pub(crate) dropped: AtomicBool,
    pub(crate) paused: AtomicBool,
    /// The progress counters (`delivered`, the stored offset) as last seen, and when they last changed: the
    /// consumer watches them for `max.poll.interval` instead of the hot path reading a clock.
    pub(crate) observed: Mutex<Observed>,
}

/// See [`PartitionHandle::last_activity`].
#[derive(Debug)]
pub(crate) struct Observed {
    at: Instant,
    delivered: i64,
    stored: i64,
}

impl PartitionHandle {
    /// A partition assigned with `committed` as the group's committed offset.
    pub(crate) fn new(tp: TopicPartition, epoch: u64, committed: Option<i64>) -> Self {
        Self {
            tp,
            epoch,
            offsets: PartitionOffsets::new(committed),
            delivered: AtomicI64::new(-1),
            revoked: CancellationToken::new(),
            dropped: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            observed: Mutex::new(Observed {
                at: Instant::now(),
                delivered: -1,
                stored: -1,
            }),
        }
    }

    /// When the application last made progress on this partition (took a record or stored an offset),
    /// as far as calls of this at `now` can tell: the first call that sees the counters moved dates the
    /// progress to its `now`.
    pub(crate) fn last_activity(&self, now: Instant) -> Instant {
        let delivered = self.delivered.load(Ordering::Acquire);
        let stored = self.stored();
        let mut seen = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        if (seen.delivered, seen.stored) != (delivered, stored) {
            *seen = Observed {
                at: now,
                delivered,
                stored,
            };
        }
        seen.at
    }

    /// The stored offset, -1 when none.
    fn stored(&self) -> i64 {
        self.offsets.stored().unwrap_or(-1)
    }

    /// Records were handed out past the stored offset, and the stream is still alive.
    pub(crate) fn has_work_in_flight(&self) -> bool {
        !self.dropped.load(Ordering::Acquire) && self.delivered.load(Ordering::Acquire) > self.stored()
    }
}

/// Stores the offset to commit of one partition; cheap to clone and to send to a worker.
///
/// The offset stored is the **next** offset to read, one past the last record handled (Java's
/// `commitSync(offsets)`); the consumer commits it periodically, on revoke and on close.
///
/// # Example
///
/// ```no_run
/// # async fn example(mut stream: kafka_event_bus::client::consumer::PartitionStream) {
/// let progress = stream.progress();
/// while let Some(record) = stream.next().await {
///     // ... handle the record ...
///     progress.store_offset(record.offset + 1);
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Progress {
    handle: Arc<PartitionHandle>,
}

impl Progress {
    /// Stores `next_offset` (one past the last record handled: every record before it is done) as the
    /// offset to commit. Storing an offset below the stored one is a no-op.
    pub fn store_offset(&self, next_offset: i64) {
        self.handle.offsets.store(next_offset);
    }

    /// The stored offset (the next offset to read, to be committed), if one was stored.
    pub fn stored_offset(&self) -> Option<i64> {
        self.handle.offsets.stored()
    }
}

/// The records of one assigned partition, in offset order; ends when the partition is revoked.
///
/// # A batch that cannot be decoded
///
/// A record batch that fails to decode (also when fetched a second time) stops the stream at it:
/// [`try_next`](Self::try_next) returns the [`fetcher::Error`] once, with the batch's bytes, and then
/// waits (until the partition is revoked) unless the application passes the batch with
/// [`skip_failed_batch`](Self::skip_failed_batch), for instance once it has stored the bytes elsewhere.
/// Nothing after the batch is handed out before that, so no offset past it can be stored: the
/// committed offset stays at the batch. [`next`](Self::next), [`next_ready`](Self::next_ready) and
/// [`next_chunk`](Self::next_chunk) do not pass it either: they log the error and stop there.
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
    pub(crate) rx: ChunkReceiver,
    /// The records of the batch being handed out.
    pub(crate) current: std::vec::IntoIter<ConsumerRecord>,
    /// The rest of the completed fetch being handed out, decoded a batch at a time. It counts against
    /// `max_buffered_fetches` until it is used up.
    pub(crate) batches: Option<CompletedFetch>,
    pub(crate) fetch: Arc<FetchShared>,
    /// The error of the batch the stream stopped at, until handed out.
    pub(crate) failure: Option<Box<fetcher::Error>>,
    /// Stopped at a failed batch (its error handed out) until it is passed.
    pub(crate) stopped: bool,
    /// What wakes a [`Stream`] poll when the partition is revoked (made on the first poll that waits).
    pub(crate) revoked_wait: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

/// What [`PartitionStream::fill`] found.
enum Fill {
    /// Records are ready.
    Ready,
    /// A batch failed: its error is in `failure`.
    Failed,
    /// Revoked, or the consumer stopped.
    Ended,
}

impl PartitionStream {
    /// The partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.handle.tp
    }

    /// A handle to store this partition's offset to commit (give it to the worker).
    pub fn progress(&self) -> Progress {
        Progress {
            handle: Arc::clone(&self.handle),
        }
    }

    /// A read-only look at how far the application got with this partition.
    pub(crate) fn probe(&self) -> super::PartitionProbe {
        super::PartitionProbe::new(Arc::clone(&self.handle), Arc::clone(&self.fetch))
    }

    /// Shorthand for `self.progress().store_offset(next_offset)`.
    pub fn store_offset(&self, next_offset: i64) {
        self.handle.offsets.store(next_offset);
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
        self.fetch.pause(&self.handle.tp);
    }

    /// Resumes fetching.
    pub fn resume(&self) {
        self.handle.paused.store(false, Ordering::Release);
        self.fetch.resume(&self.handle.tp);
    }

    /// The high watermark from the last fetch.
    pub fn high_watermark(&self) -> Option<i64> {
        self.fetch
            .high_watermark(&self.handle.tp, Some(self.handle.epoch))
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

    /// Whether the stream holds a buffer of decoded records (possibly all handed out already).
    #[cfg(test)]
    pub(crate) fn holds_decoded_records(&self) -> bool {
        self.current.as_slice().as_ptr() != std::ptr::NonNull::<ConsumerRecord>::dangling().as_ptr()
    }

    fn take_chunk(&mut self, chunk: Box<CompletedFetch>) {
        self.batches = Some(*chunk);
    }

    /// Moves on to the next batch of the chunk being handed out (or to its error). When the chunk is
    /// used up it stops counting against `max_buffered_fetches` (so a chunk being worked through still
    /// bounds how much more is fetched); the fetcher is woken when that lifts the buffered-fetch limit.
    fn next_batch(&mut self) {
        let Some(batches) = &mut self.batches else {
            return;
        };
        match batches.next() {
            Some(Ok(records)) => {
                self.current = records.into_iter();
                return;
            }
            Some(Err(e)) => {
                self.failure = Some(Box::new(e));
                return;
            }
            None => {}
        }
        let epoch = batches.epoch;
        self.batches = None;
        self.fetch.chunk_consumed(&self.handle.tp, epoch);
    }

    async fn fill(&mut self) -> Fill {
        loop {
            if self.handle.revoked.is_cancelled() {
                return Fill::Ended;
            }
            if !self.current.as_slice().is_empty() {
                return Fill::Ready;
            }
            if self.failure.is_some() {
                return Fill::Failed;
            }
            if self.stopped {
                self.handle.revoked.cancelled().await;
                return Fill::Ended;
            }
            if self.batches.is_some() {
                self.next_batch();
                continue;
            }
            // About to wait: the used-up batch's records buffer is freed first, not kept while the
            // partition is idle.
            self.current = Vec::new().into_iter();
            tokio::select! {
                biased;
                () = self.handle.revoked.cancelled() => return Fill::Ended,
                chunk = self.rx.recv() => match chunk {
                    Some(chunk) => self.take_chunk(chunk),
                    None => return Fill::Ended,
                },
            }
        }
    }

    /// Hands out the failed batch's error and stops there.
    fn fail(&mut self) -> Option<fetcher::Error> {
        let error = self.failure.take()?;
        self.stopped = true;
        Some(*error)
    }

    /// The next record, or the error of a batch that cannot be decoded (see the type's docs: the
    /// stream then stops at that batch until [`skip_failed_batch`](Self::skip_failed_batch)); `None`
    /// once the partition is revoked (or the consumer closed).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, like [`next`](Self::next).
    pub async fn try_next(&mut self) -> Option<Result<ConsumerRecord, fetcher::Error>> {
        if let Some(record) = self.next_ready() {
            return Some(Ok(record));
        }
        match self.fill().await {
            Fill::Ready => {
                let record = self.current.next()?;
                self.delivered(&record);
                Some(Ok(record))
            }
            Fill::Failed => self.fail().map(Err),
            Fill::Ended => None,
        }
    }

    /// Passes the batch the stream stopped at (after [`try_next`](Self::try_next) returned its error):
    /// the records after it are handed out next. Returns `false` if the stream was not stopped, or if the
    /// batch cannot be passed (its bounds cannot be trusted): the stream then stays stopped at it.
    ///
    /// Stores nothing: the offsets of the batch are passed by the committed offset once an offset after
    /// it is stored.
    pub fn skip_failed_batch(&mut self) -> bool {
        if !self.stopped && self.failure.take().is_none() {
            return false;
        }
        self.stopped = false;
        let Some(batches) = &mut self.batches else {
            return false;
        };
        let passed = batches.pass_failed();
        if batches.is_stopped() {
            // A batch whose bounds cannot be trusted: passing it could pass records never seen.
            self.stopped = true;
            tracing::error!(tp = %self.handle.tp, "the failed record batch cannot be passed; the partition stays stopped at it");
            return false;
        }
        if let Some(Failed::AtFetch(_)) = passed {
            let epoch = batches.epoch;
            let position = self.fetch.pass_stopped_batch(&self.handle.tp, epoch);
            tracing::debug!(tp = %self.handle.tp, ?position, "passed a failed record batch");
        }
        true
    }

    /// Logs the error that stops the stream (for the methods that hand out records only).
    fn stop_with_log(&mut self) {
        if let Some(error) = self.fail() {
            tracing::error!(tp = %self.handle.tp, %error, "record batch cannot be decoded; the partition stops at it");
        }
    }

    /// The next record; `None` once the partition is revoked (or the consumer closed). A batch that
    /// cannot be decoded stops the stream at it with an error log (see the type's docs; use
    /// [`try_next`](Self::try_next) to handle it).
    pub async fn next(&mut self) -> Option<ConsumerRecord> {
        loop {
            match self.try_next().await? {
                Ok(record) => return Some(record),
                Err(error) => {
                    tracing::error!(tp = %self.handle.tp, %error, "record batch cannot be decoded; the partition stops at it");
                }
            }
        }
    }

    /// The next record if one was already fetched: [`next`](Self::next) without waiting. `None` if
    /// nothing is buffered, the partition was revoked, or the stream is at a batch that cannot be
    /// decoded ([`try_next`](Self::try_next) hands out its error).
    pub fn next_ready(&mut self) -> Option<ConsumerRecord> {
        if self.handle.revoked.is_cancelled() {
            return None;
        }
        loop {
            if let Some(record) = self.current.next() {
                self.delivered(&record);
                return Some(record);
            }
            // Used up: its buffer is freed now, not kept until a next batch replaces it (a partition
            // may then wait idle for long, and there may be thousands of them).
            self.current = Vec::new().into_iter();
            if self.failure.is_some() || self.stopped {
                return None;
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
    /// [`next`](Self::next) for handlers that take batches. Stops at a batch that cannot be decoded,
    /// like [`next`](Self::next).
    pub async fn next_chunk(&mut self) -> Option<Vec<ConsumerRecord>> {
        loop {
            match self.fill().await {
                Fill::Ready => break,
                Fill::Failed => self.stop_with_log(),
                Fill::Ended => return None,
            }
        }
        let records: Vec<ConsumerRecord> = std::mem::take(&mut self.current).collect();
        if let Some(last) = records.last() {
            self.delivered(last);
        }
        Some(records)
    }
}

/// The records of the partition as [`try_next`](PartitionStream::try_next) hands them out: a record,
/// or once the error of a batch that cannot be decoded (the stream then stops at it until
/// [`skip_failed_batch`](PartitionStream::skip_failed_batch)); ends when the partition is revoked.
///
/// # Example
///
/// ```no_run
/// # async fn example(mut stream: kafka_event_bus::client::consumer::PartitionStream) {
/// use futures::StreamExt;
///
/// while let Some(Ok(record)) = StreamExt::next(&mut stream).await {
///     // ... handle the record ...
///     stream.store_offset(record.offset + 1);
/// }
/// # }
/// ```
impl Stream for PartitionStream {
    type Item = Result<ConsumerRecord, fetcher::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(record) = this.next_ready() {
                return Poll::Ready(Some(Ok(record)));
            }
            if this.handle.revoked.is_cancelled() {
                return Poll::Ready(None);
            }
            if this.failure.is_some() {
                return Poll::Ready(this.fail().map(Err));
            }
            let handle = &this.handle;
            let revoked = this
                .revoked_wait
                .get_or_insert_with(|| Box::pin(handle.revoked.clone().cancelled_owned()));
            if revoked.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            if this.stopped {
                return Poll::Pending;
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => this.take_chunk(chunk),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for PartitionStream {
    fn drop(&mut self) {
        self.handle.dropped.store(true, Ordering::Release);
    }
}
