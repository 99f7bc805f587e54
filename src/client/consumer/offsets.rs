//! The consumer's offsets of one assigned partition: their one owner.
//!
//! Kafka's vocabulary throughout: an offset *to commit* is the **next** offset to read (Java's
//! `commitSync(offsets)`), one past the last record handled.
//!
//! | offset | written by | read by |
//! |---|---|---|
//! | **position** (next to fetch) | the fetcher (`SubscriptionState`) | the fetcher, [`Consumer::position`](super::Consumer::position) |
//! | **stored** (next to commit) | the application, through [`Progress::store_offset`](super::Progress::store_offset) | the group driver, through the listener (`pending_commits`, `on_revoke`) |
//! | **committed** (acknowledged by the coordinator) | the listener's `on_committed`, after the group driver's commit succeeded | the listener (only a stored offset above it is sent), [`Consumer::committed`](super::Consumer::committed) |
//!
//! Not offsets state, though they touch offsets: the dispatcher's `PartitionProgress` tracks which
//! handed-out records are still being handled (out of order, per key) and tells the store the next
//! offset once a prefix is done; the group driver's in-flight commits are requests built from the
//! stored offsets and acknowledged here when they succeed.
//!
//! Lock-free: the application stores on its hot path.

use std::sync::atomic::{AtomicI64, Ordering};

/// No offset (an offset is never negative).
const NONE: i64 = -1;

/// The stored and committed offsets of one assignment of one partition.
#[derive(Debug)]
pub(crate) struct PartitionOffsets {
    /// The next offset to commit; [`NONE`] while nothing was stored.
    stored: AtomicI64,
    /// The last offset the coordinator acknowledged; [`NONE`] while unknown.
    committed: AtomicI64,
}

impl PartitionOffsets {
    /// Offsets of a partition assigned with `committed` as the group's committed offset.
    pub(crate) fn new(committed: Option<i64>) -> Self {
        Self {
            stored: AtomicI64::new(NONE),
            committed: AtomicI64::new(committed.filter(|&c| c >= 0).unwrap_or(NONE)),
        }
    }

    /// Stores `next` as the offset to commit; an offset below the stored one is ignored.
    pub(crate) fn store(&self, next: i64) {
        self.stored.fetch_max(next.max(NONE), Ordering::AcqRel);
    }

    /// The stored offset, if any.
    pub(crate) fn stored(&self) -> Option<i64> {
        Some(self.stored.load(Ordering::Acquire)).filter(|&o| o >= 0)
    }

    /// The last committed offset known.
    pub(crate) fn committed(&self) -> Option<i64> {
        Some(self.committed.load(Ordering::Acquire)).filter(|&o| o >= 0)
    }

    /// The coordinator acknowledged a commit of `offset`.
    pub(crate) fn acknowledge_commit(&self, offset: i64) {
        self.committed.fetch_max(offset, Ordering::AcqRel);
    }

    /// The stored offset, if it is above what is committed.
    pub(crate) fn to_commit(&self) -> Option<i64> {
        let stored = self.stored()?;
        self.committed().is_none_or(|c| stored > c).then_some(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stored_offset_above_the_committed_one_is_to_commit() {
        let o = PartitionOffsets::new(Some(5));
        assert_eq!(o.to_commit(), None);
        o.store(5);
        assert_eq!(o.to_commit(), None, "already committed");
        o.store(8);
        o.store(7);
        assert_eq!(o.stored(), Some(8), "a store never moves back");
        assert_eq!(o.to_commit(), Some(8));
        o.acknowledge_commit(8);
        assert_eq!((o.committed(), o.to_commit()), (Some(8), None));
        let fresh = PartitionOffsets::new(None);
        fresh.store(0);
        assert_eq!(fresh.to_commit(), Some(0), "nothing committed: any stored offset");
    }
}
