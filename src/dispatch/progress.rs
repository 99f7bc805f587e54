//! Which offset of a partition may be committed: the dispatcher's tracker of records still being
//! handled. It owns no offset state of the consumer: the worker tracks each record it takes, completes
//! it once settled, and stores [`committable`](PartitionProgress::committable) with
//! `client::consumer::Progress::store_offset`; the consumer owns the
//! stored and committed offsets from there (see `client::consumer::offsets`).

use std::collections::BTreeSet;

/// The handling progress of one partition.
///
/// Offsets are [`track`](Self::track)ed in fetch order as they are handed to handlers and
/// [`complete`](Self::complete)d when handled (or dead-lettered and acknowledged by the broker), in any
/// order (per-key concurrency finishes them out of order). [`committable`](Self::committable) is the
/// offset to commit: one past the longest prefix of tracked offsets that are all complete. An offset is
/// therefore never committed while an earlier one is still being handled, and a crash can only cause
/// redelivery of what was in flight.
///
/// # Example
///
/// ```
/// use kafka_event_bus::dispatch::PartitionProgress;
///
/// let mut p = PartitionProgress::new(10);
/// for offset in [10, 11, 12] {
///     p.track(offset);
/// }
/// p.complete(12);
/// assert_eq!(p.committable(), None); // 10 and 11 are still running
/// p.complete(10);
/// assert_eq!(p.committable(), Some(11));
/// p.complete(11);
/// assert_eq!(p.committable(), Some(13));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionProgress {
    /// Tracked and not yet complete.
    pending: BTreeSet<i64>,
    /// One past the highest tracked offset (offsets can skip: compaction, control records).
    next: i64,
    /// The last offset returned as committable (or the starting position).
    committed: i64,
}

impl PartitionProgress {
    /// Progress starting at `position` (the committed offset the partition was assigned with).
    pub fn new(position: i64) -> Self {
        Self {
            pending: BTreeSet::new(),
            next: position,
            committed: position,
        }
    }

    /// Records that `offset` was handed to the handlers. Offsets must be tracked in increasing order;
    /// an offset below one already tracked is ignored (a re-fetch after a reconnect).
    pub fn track(&mut self, offset: i64) {
        if offset >= self.next {
            self.pending.insert(offset);
            self.next = offset + 1;
        }
    }

    /// Records that `offset` is done. Unknown offsets are ignored.
    pub fn complete(&mut self, offset: i64) {
        self.pending.remove(&offset);
    }

    /// How many tracked offsets are not complete.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The offset to commit now, if it moved since the last call: the first pending offset, or one past
    /// the last tracked offset when nothing is pending.
    pub fn committable(&mut self) -> Option<i64> {
        let target = self.pending.first().copied().unwrap_or(self.next);
        (target > self.committed).then(|| {
            self.committed = target;
            target
        })
    }

    /// The offset that would be committed, without marking it as committed.
    pub fn position(&self) -> i64 {
        self.pending.first().copied().unwrap_or(self.next)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn gaps_between_offsets_are_fine() {
        let mut p = PartitionProgress::new(0);
        p.track(3); // 0..3 were compacted away or were control records
        p.track(7);
        p.complete(7);
        assert_eq!(p.committable(), Some(3));
        p.complete(3);
        assert_eq!(p.committable(), Some(8));
        assert_eq!(p.committable(), None, "reported once");
        p.track(5); // a re-fetch of something older is ignored
        assert_eq!(p.in_flight(), 0);
    }

    proptest! {
        /// Whatever the completion order, the committable offset never passes an incomplete offset, and
        /// reaches the end once everything is complete.
        #[test]
        fn never_commits_past_unfinished_work(order in Just((0..40i64).collect::<Vec<_>>()).prop_shuffle()) {
            let mut p = PartitionProgress::new(0);
            for o in 0..40 { p.track(o); }
            let mut done = BTreeSet::new();
            let mut last = 0;
            for o in order {
                p.complete(o);
                done.insert(o);
                if let Some(c) = p.committable() {
                    prop_assert!(c > last);
                    prop_assert!((0..c).all(|x| done.contains(&x)));
                    last = c;
                }
            }
            prop_assert_eq!(last, 40);
        }
    }
}
