//! The bus's counters and timestamps, exact under concurrency (atomics), readable as eventsource-py's
//! `get_stats_dict()`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

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
    /// When the last publish was acknowledged.
    #[serde(serialize_with = "iso")]
    pub last_publish_at: Option<OffsetDateTime>,
    /// When the last record was consumed.
    #[serde(serialize_with = "iso")]
    pub last_consume_at: Option<OffsetDateTime>,
    /// When the last publish or processing error happened.
    #[serde(serialize_with = "iso")]
    pub last_error_at: Option<OffsetDateTime>,
    /// When the bus connected.
    #[serde(serialize_with = "iso")]
    pub connected_at: Option<OffsetDateTime>,
}

fn iso<S: serde::Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&crate::event::timefmt::format_isoformat(*t)),
        None => s.serialize_none(),
    }
}

/// The live counters.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) events_published: AtomicU64,
    pub(crate) events_consumed: AtomicU64,
    pub(crate) events_processed_success: AtomicU64,
    pub(crate) events_processed_failed: AtomicU64,
    pub(crate) messages_sent_to_dlq: AtomicU64,
    pub(crate) handler_errors: AtomicU64,
    pub(crate) reconnections: AtomicU64,
    pub(crate) rebalance_count: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    /// The four timestamps, by [`Stamp`], as Unix nanoseconds ([`NEVER`] = not yet): a store per event
    /// on the hot path, not a lock.
    times: [AtomicI64; 4],
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            events_published: AtomicU64::default(),
            events_consumed: AtomicU64::default(),
            events_processed_success: AtomicU64::default(),
            events_processed_failed: AtomicU64::default(),
            messages_sent_to_dlq: AtomicU64::default(),
            handler_errors: AtomicU64::default(),
            reconnections: AtomicU64::default(),
            rebalance_count: AtomicU64::default(),
            events_dropped: AtomicU64::default(),
            times: std::array::from_fn(|_| AtomicI64::new(NEVER)),
        }
    }
}

/// A timestamp that was never set.
const NEVER: i64 = i64::MIN;

/// Which timestamp to set.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stamp {
    Publish = 0,
    Consume = 1,
    Error = 2,
    Connected = 3,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn stamp(&self, which: Stamp) {
        let now = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX);
        self.times[which as usize].store(now, Ordering::Relaxed);
    }

    fn time(&self, which: Stamp) -> Option<OffsetDateTime> {
        match self.times[which as usize].load(Ordering::Relaxed) {
            NEVER => None,
            t => OffsetDateTime::from_unix_timestamp_nanos(i128::from(t)).ok(),
        }
    }

    pub(crate) fn snapshot(&self) -> BusStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BusStats {
            events_published: load(&self.events_published),
            events_consumed: load(&self.events_consumed),
            events_processed_success: load(&self.events_processed_success),
            events_processed_failed: load(&self.events_processed_failed),
            messages_sent_to_dlq: load(&self.messages_sent_to_dlq),
            handler_errors: load(&self.handler_errors),
            reconnections: load(&self.reconnections),
            rebalance_count: load(&self.rebalance_count),
            events_dropped: load(&self.events_dropped),
            last_publish_at: self.time(Stamp::Publish),
            last_consume_at: self.time(Stamp::Consume),
            last_error_at: self.time(Stamp::Error),
            connected_at: self.time(Stamp::Connected),
        }
    }
}
