//! The bus's counters and timestamps, exact under concurrency (atomics), readable as eventsource-py's
//! `get_stats_dict()`.

use std::sync::{
    Mutex, PoisonError,
    atomic::{AtomicU64, Ordering},
};

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
#[derive(Debug, Default)]
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
    times: Mutex<Times>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Times {
    last_publish_at: Option<OffsetDateTime>,
    last_consume_at: Option<OffsetDateTime>,
    last_error_at: Option<OffsetDateTime>,
    connected_at: Option<OffsetDateTime>,
}

/// Which timestamp to set.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stamp {
    Publish,
    Consume,
    Error,
    Connected,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn stamp(&self, which: Stamp) {
        let now = Some(OffsetDateTime::now_utc());
        let mut times = self.times.lock().unwrap_or_else(PoisonError::into_inner);
        match which {
            Stamp::Publish => times.last_publish_at = now,
            Stamp::Consume => times.last_consume_at = now,
            Stamp::Error => times.last_error_at = now,
            Stamp::Connected => times.connected_at = now,
        }
    }

    pub(crate) fn snapshot(&self) -> BusStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let times = *self.times.lock().unwrap_or_else(PoisonError::into_inner);
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
            last_publish_at: times.last_publish_at,
            last_consume_at: times.last_consume_at,
            last_error_at: times.last_error_at,
            connected_at: times.connected_at,
        }
    }
}
