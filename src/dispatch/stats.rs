//! The bus's counters and timestamps, exact under concurrency (atomics), readable as eventsource-py's
//! `get_stats_dict()`.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;
use time::OffsetDateTime;

/// A snapshot of the bus's statistics, serialized with eventsource-py's `get_stats_dict()` keys
/// (timestamps as ISO 8601 `+00:00` strings or `null`), plus `events_dropped`.
///
/// # Example
///
/// ```
/// let stats = kafka_event_bus::bus::BusStats::default();
/// let json = serde_json::to_value(&stats).unwrap();
/// assert_eq!(json["events_published"], 0);
/// assert!(json["last_publish_at"].is_null());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BusStats {
    /// Events the broker acknowledged.
    pub events_published: u64,
    /// Records taken from the topic (a retried delivery counts once).
    pub events_consumed: u64,
    /// Records whose handlers all succeeded (or that had no handler).
    pub events_processed_success: u64,
    /// Records whose handlers still failed after the last retry.
    pub events_processed_failed: u64,
    /// Records the broker acknowledged in the DLQ.
    pub messages_sent_to_dlq: u64,
    /// Failed handler calls (every attempt counts).
    pub handler_errors: u64,
    /// Times consuming restarted after an error.
    pub reconnections: u64,
    /// Rebalances that took partitions from this member.
    pub rebalance_count: u64,
    /// Undecodable or failed records skipped without a DLQ because `enable_dlq` is off (each is logged
    /// at ERROR with its coordinates).
    pub events_dropped: u64,
    /// Records that could not be dead-lettered for good (the DLQ topic is missing or forbidden, the
    /// record is too large for it): each paused its partition, with the record uncommitted.
    pub dead_letter_failures: u64,
    /// Partition workers that died outside a handler (a panic in the worker's own code): each paused
    /// its partition, with the record it held uncommitted.
    pub worker_failures: u64,
    /// Record batches of the main topic that could not be decoded, also when fetched a second time
    /// (each dead-lettered, or the partition stopped at it: see `corrupt_batch_policy`).
    pub corrupt_batches: u64,
    /// When the last publish was acknowledged.
    #[serde(serialize_with = "iso")]
    pub last_publish_at: Option<OffsetDateTime>,
    /// When the last record was consumed (to the millisecond: a busy consumer reads the wall clock
    /// at most once a millisecond for it).
    #[serde(serialize_with = "iso")]
    pub last_consume_at: Option<OffsetDateTime>,
    /// When the last publish or processing error happened.
    #[serde(serialize_with = "iso")]
    pub last_error_at: Option<OffsetDateTime>,
    /// When the bus connected.
    #[serde(serialize_with = "iso")]
    pub connected_at: Option<OffsetDateTime>,
}

/// One line: `published 1000, consumed 1000 (998 ok, 2 failed), sent to DLQ 2, handler errors 8,
/// dropped 0, reconnections 0, rebalances 0`, then the DLQ refusals, worker failures and corrupt batches
/// when there were any.
///
/// ```
/// let stats = kafka_event_bus::bus::BusStats::default();
/// assert_eq!(
///     stats.to_string(),
///     "published 0, consumed 0 (0 ok, 0 failed), sent to DLQ 0, handler errors 0, dropped 0, \
///      reconnections 0, rebalances 0"
/// );
/// ```
impl std::fmt::Display for BusStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "published {}, consumed {} ({} ok, {} failed), sent to DLQ {}, handler errors {}, dropped {}, \
             reconnections {}, rebalances {}",
            self.events_published,
            self.events_consumed,
            self.events_processed_success,
            self.events_processed_failed,
            self.messages_sent_to_dlq,
            self.handler_errors,
            self.events_dropped,
            self.reconnections,
            self.rebalance_count,
        )?;
        for (name, n) in [
            ("dead-letter failures", self.dead_letter_failures),
            ("worker failures", self.worker_failures),
            ("corrupt batches", self.corrupt_batches),
        ] {
            if n > 0 {
                write!(f, ", {name} {n}")?;
            }
        }
        Ok(())
    }
}

fn iso<S: serde::Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&crate::event::timefmt::format_isoformat(*t)),
        None => s.serialize_none(),
    }
}

/// The live counters and timestamps, sharded by thread: the consume path of every partition worker adds
/// to them per record, so one shared cache line would bounce between cores on every event. A snapshot
/// sums the counters and takes the latest of each timestamp.
///
/// A timestamp is the wall clock's time when it was taken, kept with the monotonic time of the same
/// moment (nanoseconds since `origin`): the latest of a kind is the one with the latest monotonic time,
/// so a step of the wall clock (an NTP sync, a manual change) never makes an older stamp the latest, and
/// a snapshot reports times as they were read (two snapshots agree; a suspend does not shift them). A
/// consumed record ([`Stats::stamp_at`]) reads the wall clock only when its shard's stamp is at least
/// [`CONSUME_RESOLUTION_NANOS`] old, so `last_consume_at` is exact to that, at one clock read per
/// millisecond instead of one per record.
#[derive(Debug)]
pub(crate) struct Stats {
    shards: [Shard; SHARDS],
    origin: Instant,
    /// The wall clock (a test steps its own).
    wall: fn() -> OffsetDateTime,
}

const SHARDS: usize = 8;

/// One thread's share, on its own cache lines.
#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    counters: [AtomicU64; COUNTERS],
    /// By [`Stamp`], the latest stamp's monotonic time, read without the lock by
    /// [`Stats::stamp_at`] to decide whether a record needs a stamp at all.
    latest: [AtomicI64; 4],
    /// By [`Stamp`]: (nanoseconds since [`Stats::origin`], the wall clock's Unix nanoseconds at the same
    /// moment), written and read as a pair ([`NEVER`] = not yet).
    stamps: Mutex<[(i64, i64); 4]>,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            latest: std::array::from_fn(|_| AtomicI64::new(NEVER)),
            stamps: Mutex::new([(NEVER, NEVER); 4]),
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Shard::default()),
            origin: Instant::now(),
            wall: OffsetDateTime::now_utc,
        }
    }
}

/// A timestamp that was never set.
const NEVER: i64 = i64::MIN;

/// How old a shard's `last_consume_at` may be before a consumed record reads the wall clock (1 ms).
const CONSUME_RESOLUTION_NANOS: i64 = 1_000_000;

const COUNTERS: usize = 12;

/// Which counter to add to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    EventsPublished = 0,
    EventsConsumed = 1,
    EventsProcessedSuccess = 2,
    EventsProcessedFailed = 3,
    MessagesSentToDlq = 4,
    HandlerErrors = 5,
    Reconnections = 6,
    RebalanceCount = 7,
    EventsDropped = 8,
    DeadLetterFailures = 9,
    WorkerFailures = 10,
    CorruptBatches = 11,
}

/// Which timestamp to set.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stamp {
    Publish = 0,
    Consume = 1,
    Error = 2,
    Connected = 3,
}

/// The calling thread's shard.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl Stats {
    fn shard(&self) -> &Shard {
        &self.shards[shard_index()]
    }

    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.shard().counters[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn stamp(&self, which: Stamp) {
        self.store(self.shard(), which, self.since_origin(Instant::now()));
    }

    /// Sets `which` for an event at `at`, an instant the caller read anyway: the wall clock is read
    /// only when the shard's stamp is at least [`CONSUME_RESOLUTION_NANOS`] older.
    pub(crate) fn stamp_at(&self, which: Stamp, at: Instant) {
        let shard = self.shard();
        let monotonic = self.since_origin(at);
        let last = shard.latest[which as usize].load(Ordering::Relaxed);
        if monotonic.saturating_sub(last) >= CONSUME_RESOLUTION_NANOS {
            self.store(shard, which, monotonic);
        }
    }

    /// Stamps `which` in `shard` at `monotonic` with the wall clock's time now, unless the shard holds a
    /// later stamp (another thread of the same shard got there first): a stamp never moves back.
    fn store(&self, shard: &Shard, which: Stamp, monotonic: i64) {
        let wall = i64::try_from((self.wall)().unix_timestamp_nanos()).unwrap_or(i64::MAX);
        let mut stamps = shard.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        let stamp = &mut stamps[which as usize];
        if monotonic >= stamp.0 {
            *stamp = (monotonic, wall);
            shard.latest[which as usize].store(monotonic, Ordering::Relaxed);
        }
    }

    fn since_origin(&self, at: Instant) -> i64 {
        i64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(i64::MAX)
    }

    fn count(&self, counter: Counter) -> u64 {
        self.shards
            .iter()
            .map(|s| s.counters[counter as usize].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    fn time(&self, which: Stamp) -> Option<OffsetDateTime> {
        let (_, wall) = self
            .shards
            .iter()
            .map(|s| s.stamps.lock().unwrap_or_else(PoisonError::into_inner)[which as usize])
            .max_by_key(|&(monotonic, _)| monotonic)?;
        match wall {
            NEVER => None,
            wall => OffsetDateTime::from_unix_timestamp_nanos(i128::from(wall)).ok(),
        }
    }

    pub(crate) fn snapshot(&self) -> BusStats {
        BusStats {
            events_published: self.count(Counter::EventsPublished),
            events_consumed: self.count(Counter::EventsConsumed),
            events_processed_success: self.count(Counter::EventsProcessedSuccess),
            events_processed_failed: self.count(Counter::EventsProcessedFailed),
            messages_sent_to_dlq: self.count(Counter::MessagesSentToDlq),
            handler_errors: self.count(Counter::HandlerErrors),
            reconnections: self.count(Counter::Reconnections),
            rebalance_count: self.count(Counter::RebalanceCount),
            events_dropped: self.count(Counter::EventsDropped),
            dead_letter_failures: self.count(Counter::DeadLetterFailures),
            worker_failures: self.count(Counter::WorkerFailures),
            corrupt_batches: self.count(Counter::CorruptBatches),
            last_publish_at: self.time(Stamp::Publish),
            last_consume_at: self.time(Stamp::Consume),
            last_error_at: self.time(Stamp::Error),
            connected_at: self.time(Stamp::Connected),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_display_as_one_readable_line() {
        let stats = BusStats {
            events_published: 1000,
            events_consumed: 1000,
            events_processed_success: 998,
            events_processed_failed: 2,
            messages_sent_to_dlq: 2,
            handler_errors: 8,
            corrupt_batches: 1,
            connected_at: Some(OffsetDateTime::now_utc()),
            ..BusStats::default()
        };
        assert_eq!(
            stats.to_string(),
            "published 1000, consumed 1000 (998 ok, 2 failed), sent to DLQ 2, handler errors 8, dropped 0, \
             reconnections 0, rebalances 0, corrupt batches 1"
        );
    }

    #[test]
    fn counts_from_many_threads_add_up_and_the_latest_stamp_wins() {
        let stats = Stats::default();
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        stats.add(Counter::EventsConsumed, 1);
                    }
                    stats.add(Counter::HandlerErrors, 2);
                    stats.stamp(Stamp::Consume);
                });
            }
        });
        let before = OffsetDateTime::now_utc();
        stats.stamp(Stamp::Consume);
        let snap = stats.snapshot();
        assert_eq!(
            (snap.events_consumed, snap.handler_errors, snap.events_published),
            (12_000, 24, 0)
        );
        assert!(snap.last_consume_at.is_some_and(|t| t >= before));
        assert_eq!((snap.last_publish_at, snap.connected_at), (None, None));
    }

    /// A wall clock the test steps: the real one plus `STEP_SECS`.
    fn stepped() -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(STEP_SECS.load(Ordering::Relaxed))
    }
    static STEP_SECS: AtomicI64 = AtomicI64::new(0);

    fn close(a: OffsetDateTime, b: OffsetDateTime) -> bool {
        (a - b).abs() < time::Duration::milliseconds(50)
    }

    #[test]
    fn the_wall_clock_steps_and_stamps_stay_as_taken() {
        let stats = Stats {
            wall: stepped,
            ..Stats::default()
        };
        let at = Instant::now();
        stats.stamp(Stamp::Connected);
        stats.stamp_at(Stamp::Consume, at);
        let before = stats.snapshot();
        assert!(before.last_consume_at.is_some_and(|t| close(t, stepped())), "{before:?}");
        // The wall clock steps an hour ahead (an NTP sync, or a suspend: the monotonic clock stands
        // still meanwhile). Stamps already taken keep their time; two snapshots agree.
        STEP_SECS.store(3600, Ordering::Relaxed);
        let after = stats.snapshot();
        assert_eq!(after, before);
        // A record consumed later (past the resolution) is stamped with the new time...
        stats.stamp_at(Stamp::Consume, at + std::time::Duration::from_millis(2));
        let stamped = stats.snapshot().last_consume_at;
        assert!(stamped.is_some_and(|t| close(t, stepped())), "{stamped:?}");
        // ...and stays the latest when the clock steps back.
        STEP_SECS.store(0, Ordering::Relaxed);
        assert_eq!(stats.snapshot().last_consume_at, stamped);
        assert_eq!(stats.snapshot().connected_at, before.connected_at);
    }

    #[test]
    fn the_latest_stamp_of_any_shard_is_the_latest_by_the_monotonic_clock() {
        // A wall clock that reads an hour ahead, then (stepped back) the real time.
        fn ahead() -> OffsetDateTime {
            OffsetDateTime::now_utc() + time::Duration::hours(1)
        }
        let mut stats = Stats {
            wall: ahead,
            ..Stats::default()
        };
        stats.store(&stats.shards[3], Stamp::Error, 10);
        stats.wall = OffsetDateTime::now_utc;
        stats.store(&stats.shards[5], Stamp::Error, 20);
        let latest = stats.snapshot().last_error_at;
        assert!(latest.is_some_and(|t| close(t, OffsetDateTime::now_utc())), "{latest:?}");
        // A stamp older than what its shard holds (another thread of the shard got there first)
        // does not move it back.
        stats.wall = ahead;
        stats.store(&stats.shards[5], Stamp::Error, 15);
        assert_eq!(stats.snapshot().last_error_at, latest);
    }

    #[test]
    fn consumed_records_read_the_wall_clock_once_a_millisecond() {
        static READINGS: AtomicUsize = AtomicUsize::new(0);
        fn counted() -> OffsetDateTime {
            READINGS.fetch_add(1, Ordering::Relaxed);
            OffsetDateTime::now_utc()
        }
        let stats = Stats {
            wall: counted,
            ..Stats::default()
        };
        let at = Instant::now();
        stats.stamp_at(Stamp::Consume, at);
        assert_eq!(READINGS.load(Ordering::Relaxed), 1);
        for micros in [1, 10, 100, 999] {
            stats.stamp_at(Stamp::Consume, at + std::time::Duration::from_micros(micros));
        }
        assert_eq!(READINGS.load(Ordering::Relaxed), 1, "re-stamped within the resolution");
        stats.stamp_at(Stamp::Consume, at + std::time::Duration::from_millis(1));
        assert_eq!(READINGS.load(Ordering::Relaxed), 2, "not re-stamped past the resolution");
    }
}
