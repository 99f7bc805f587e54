//! [`PartitionProbe`]: a read-only look at how far the application got with one assigned partition,
//! for waiting until it has caught up with the log.

use std::sync::{Arc, atomic::Ordering};

use super::stream::PartitionHandle;
use crate::client::fetcher::FetchShared;

/// How far one assignment of one partition got; cheap to clone, reads only.
#[derive(Debug, Clone)]
pub(crate) struct PartitionProbe {
    handle: Arc<PartitionHandle>,
    fetch: Arc<FetchShared>,
}

/// What a probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reach {
    /// The next offset to commit (every record before it is settled); `None` before the first.
    pub(crate) done: Option<i64>,
    /// The next offset to fetch.
    pub(crate) position: Option<i64>,
    /// No record is handed out and unsettled, and no fetched chunk waits: all that was fetched is
    /// settled.
    pub(crate) idle: bool,
    /// The partition was revoked (or reassigned): this probe no longer speaks for it.
    pub(crate) revoked: bool,
}

impl Reach {
    /// Whether every record before `end` is settled: marked done, or fetched past with nothing left
    /// waiting (which also covers offsets without a record to settle, such as control batches).
    pub(crate) fn reached(&self, end: i64) -> bool {
        !self.revoked
            && (self.done.is_some_and(|d| d >= end) || (self.idle && self.position.is_some_and(|p| p >= end)))
    }
}

impl PartitionProbe {
    pub(super) fn new(handle: Arc<PartitionHandle>, fetch: Arc<FetchShared>) -> Self {
        Self { handle, fetch }
    }

    /// The partition's number.
    pub(crate) fn partition(&self) -> i32 {
        self.handle.tp.partition
    }

    /// How far the application got, now.
    pub(crate) fn reach(&self) -> Reach {
        let state = self.fetch.lock();
        // Read under the lock, after `buffered`'s writers: a record taken from the buffer before the
        // lock shows in `delivered`, and one delivered before `done` is read shows as settled or not.
        let delivered = self.handle.delivered.load(Ordering::Acquire);
        let done = self.handle.done.load(Ordering::Acquire);
        let current = state
            .subscriptions
            .get(&self.handle.tp)
            .filter(|p| p.epoch == self.handle.epoch);
        Reach {
            done: Some(done).filter(|&d| d >= 0),
            position: current.and_then(|p| p.position),
            idle: current.is_some_and(|p| p.buffered == 0) && delivered <= done,
            revoked: self.handle.revoked.is_cancelled() || current.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(done: Option<i64>, position: Option<i64>, idle: bool) -> Reach {
        Reach {
            done,
            position,
            idle,
            revoked: false,
        }
    }

    #[test]
    fn caught_up_means_settled_up_to_the_end() {
        // Everything before 10 done.
        assert!(reach(Some(10), Some(10), true).reached(10));
        // Busy with later records, but everything before the end is done.
        assert!(reach(Some(12), Some(20), false).reached(10));
        // Records fetched and not yet settled.
        assert!(!reach(Some(5), Some(10), false).reached(10));
        // Nothing to do since the committed offset: positioned at the end, idle.
        assert!(reach(None, Some(10), true).reached(10));
        // A control batch at the end: the last record is done, the position is past it.
        assert!(reach(Some(9), Some(10), true).reached(10));
        // Not positioned yet.
        assert!(!reach(None, None, true).reached(10));
        let mut revoked = reach(Some(10), Some(10), true);
        revoked.revoked = true;
        assert!(!revoked.reached(10));
    }
}
