//! What the group driver is waiting for: each request or revocation in flight, to whom it went and
//! since when, so that a long wait is logged at INFO while it lasts (a member that looks idle says why).
//!
//! Owns only instants and labels; reads no clock (every method takes `now`). Used by the `driver`.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tokio::task::Id;

/// A wait longer than this is logged at INFO, then again every time it doubles.
pub(crate) const LONG_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug)]
struct Wait {
    what: &'static str,
    /// The coordinator's node id, for requests sent to it.
    coordinator: Option<i32>,
    since: Instant,
    next_report: Instant,
}

/// The driver's waits, by task id.
#[derive(Debug, Default)]
pub(crate) struct Waits {
    waits: HashMap<Id, Wait>,
}

impl Waits {
    pub(crate) fn started(&mut self, id: Id, what: &'static str, coordinator: Option<i32>, now: Instant) {
        self.waits.insert(
            id,
            Wait {
                what,
                coordinator,
                since: now,
                next_report: now + LONG_WAIT,
            },
        );
    }

    /// The task ended: how long it waited, when that was long enough to mention.
    pub(crate) fn ended(&mut self, id: Id, group: &str, now: Instant) {
        if let Some(w) = self.waits.remove(&id) {
            let waited = now.saturating_duration_since(w.since);
            if waited >= LONG_WAIT {
                tracing::info!(group, what = w.what, coordinator = ?w.coordinator, ?waited, "long wait ended");
            }
        }
    }

    /// Logs every wait that has gone on for [`LONG_WAIT`] (then twice as long, and so on).
    pub(crate) fn report(&mut self, group: &str, now: Instant) {
        for w in self.waits.values_mut() {
            if now >= w.next_report {
                let waited = now.saturating_duration_since(w.since);
                tracing::info!(group, what = w.what, coordinator = ?w.coordinator, ?waited, "still waiting");
                w.next_report = w.since + waited * 2;
            }
        }
    }

    /// When [`report`](Self::report) has something to say next.
    pub(crate) fn next_report(&self) -> Option<Instant> {
        self.waits.values().map(|w| w.next_report).min()
    }

    pub(crate) fn clear(&mut self) {
        self.waits.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_is_reported_after_long_wait_then_when_it_doubles() {
        let task = tokio::spawn(async {});
        let id = task.id();
        let t0 = Instant::now();
        let mut waits = Waits::default();
        waits.started(id, "JoinGroup", Some(1), t0);
        assert_eq!(waits.next_report(), Some(t0 + LONG_WAIT));
        waits.report("g", t0 + LONG_WAIT);
        assert_eq!(waits.next_report(), Some(t0 + LONG_WAIT * 2));
        waits.ended(id, "g", t0 + LONG_WAIT * 2);
        assert_eq!(waits.next_report(), None);
        let _ = task.await;
    }
}
