//! Java's `SubscriptionState`: the assigned partitions and, per partition, where fetching stands.
//!
//! Owns per partition: the fetch position, whether it must be reset (nothing committed), the paused
//! flag, how many fetched chunks wait for the application, and the high watermark. Committed and stored
//! offsets are the consumer's (`consumer::offsets`). May use [`crate::protocol`] only (and [`TopicPartition`]); no I/O, no clock.
//!
//! # Invariants
//!
//! - Every assignment of a partition gets a fresh `epoch`. Fetch results carry the epoch and position
//!   they were requested with, and [`SubscriptionState::advance`] drops a result whose epoch or position
//!   no longer matches (the partition was revoked, reassigned or reset meanwhile): stale data is never
//!   delivered.
//! - A partition is *fetchable* when it is assigned, has a position, is not paused, is not being
//!   revoked, and has fewer than the allowed number of chunks waiting for the application (this is
//!   the backpressure that keeps a slow handler from growing memory).

use std::{collections::BTreeMap, sync::Arc};

pub(crate) use super::TopicPartition;

/// What to do when a partition has no committed offset (`auto.offset.reset`). The bus's
/// `auto_offset_reset` setting is this type too (`bus::OffsetReset`), parsed from `"earliest"` or
/// `"latest"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OffsetReset {
    /// Start at the log start.
    #[default]
    Earliest,
    /// Start at the log end (only records produced from now on).
    Latest,
}

/// One assigned partition's fetch state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionState {
    /// Bumped on every (re)assignment.
    pub epoch: u64,
    /// The next offset to fetch; `None` until known (committed offset or reset).
    pub position: Option<i64>,
    /// The position must be found with the reset strategy.
    pub reset: Option<OffsetReset>,
    /// Paused by the application.
    pub paused: bool,
    /// Being revoked: never fetched again.
    pub revoking: bool,
    /// Fetched chunks handed to the application and not yet worked through.
    pub buffered: usize,
    /// The partition's high watermark from the last fetch (log end for `read_uncommitted`).
    pub high_watermark: Option<i64>,
    /// The last stable offset from the last fetch.
    pub last_stable_offset: Option<i64>,
    /// A fetch answered for the partition since it was last positioned, paused, held back by a full
    /// buffer or failed: the watermarks above still say whether records wait past the position.
    pub end_is_current: bool,
    /// The base offset of a batch that failed its checks once: it is fetched once more before the
    /// partition stops at it.
    pub bad_batch: Option<i64>,
    /// Stopped at the position by a batch that failed its checks twice: not fetched until the
    /// application passes it; fetching then goes on at this offset.
    pub stopped: Option<i64>,
}

impl PartitionState {
    /// Whether records wait past the position: see [`SubscriptionState::has_records_to_fetch`].
    pub(crate) fn records_to_fetch(&self, read_committed: bool) -> Option<bool> {
        let position = self.position?;
        let end = if read_committed {
            self.last_stable_offset.or(self.high_watermark)
        } else {
            self.high_watermark
        };
        match end {
            Some(end) if position < end => Some(true),
            _ if self.end_is_current => Some(false),
            _ => None,
        }
    }

    /// The watermarks belong to a position that no longer holds (a reset, or a log truncated under it).
    fn forget_end(&mut self) {
        self.high_watermark = None;
        self.last_stable_offset = None;
        self.end_is_current = false;
    }
}

/// The assignment and per-partition fetch state.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::{TopicPartition, subscription::SubscriptionState};
///
/// let mut subs = SubscriptionState::new(2);
/// let tp = TopicPartition::new("orders", 0);
/// let epoch = subs.assign(tp.clone(), Some(10), None);
/// assert_eq!(subs.fetchable(), vec![(tp.clone(), 10, epoch)]);
/// subs.pause(&tp);
/// assert!(subs.fetchable().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct SubscriptionState {
    /// By topic, then by partition number: a lookup compares the name with the few assigned topics
    /// only, then integers (keyed by the whole [`TopicPartition`], each of a lookup's ~10 steps among a
    /// topic's 1,000 partitions compared the topic name again). Iterates in `(topic, partition)` order.
    /// Each name is shared (`Arc`): the fetcher lists partitions in every Fetch without copying names.
    partitions: BTreeMap<String, BTreeMap<i32, (Arc<TopicPartition>, PartitionState)>>,
    next_epoch: u64,
    max_buffered: usize,
}

impl SubscriptionState {
    /// Empty; at most `max_buffered` fetched chunks per partition may wait for the application.
    pub fn new(max_buffered: usize) -> Self {
        Self {
            partitions: BTreeMap::new(),
            next_epoch: 1,
            max_buffered: max_buffered.max(1),
        }
    }

    /// Assigns `tp` at `position` (a committed offset) or, when `None`, for a reset with `reset`.
    /// Returns the new epoch.
    pub fn assign(&mut self, tp: TopicPartition, position: Option<i64>, reset: Option<OffsetReset>) -> u64 {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let state = PartitionState {
            epoch,
            position,
            reset: if position.is_none() {
                Some(reset.unwrap_or_default())
            } else {
                None
            },
            paused: false,
            revoking: false,
            buffered: 0,
            high_watermark: None,
            last_stable_offset: None,
            end_is_current: false,
            bad_batch: None,
            stopped: None,
        };
        self.partitions
            .entry(tp.topic.clone())
            .or_default()
            .insert(tp.partition, (Arc::new(tp), state));
        epoch
    }

    /// Stops fetching `tp` (it is being revoked).
    pub fn mark_revoking(&mut self, tp: &TopicPartition) {
        if let Some(p) = self.state_mut(tp) {
            p.revoking = true;
        }
    }

    /// Forgets `tp`.
    pub fn remove(&mut self, tp: &TopicPartition) -> Option<PartitionState> {
        let topic = self.partitions.get_mut(tp.topic.as_str())?;
        let (_, state) = topic.remove(&tp.partition)?;
        if topic.is_empty() {
            self.partitions.remove(tp.topic.as_str());
        }
        Some(state)
    }

    /// One partition's state.
    pub fn get(&self, tp: &TopicPartition) -> Option<&PartitionState> {
        self.state(tp)
    }

    fn state(&self, tp: &TopicPartition) -> Option<&PartitionState> {
        let (_, state) = self.partitions.get(tp.topic.as_str())?.get(&tp.partition)?;
        Some(state)
    }

    fn state_mut(&mut self, tp: &TopicPartition) -> Option<&mut PartitionState> {
        let (_, state) = self.partitions.get_mut(tp.topic.as_str())?.get_mut(&tp.partition)?;
        Some(state)
    }

    /// Every assigned partition with its state, in `(topic, partition)` order.
    fn iter(&self) -> impl Iterator<Item = (&TopicPartition, &PartitionState)> {
        self.partitions
            .values()
            .flat_map(BTreeMap::values)
            .map(|(tp, state)| (&**tp, state))
    }

    /// Whether a partition in state `p` may be fetched (see [`fetchable`](Self::fetchable)).
    pub(crate) fn is_fetchable(&self, p: &PartitionState) -> bool {
        !p.paused && !p.revoking && p.stopped.is_none() && p.buffered < self.max_buffered && p.position.is_some()
    }

    /// Every assigned partition by topic, in `(topic, partition)` order, with its shared name and
    /// state: the fetcher plans its Fetches and offset resets in one pass over it, copying no name.
    pub(crate) fn by_topic(
        &self,
    ) -> impl Iterator<Item = (&str, impl Iterator<Item = (&Arc<TopicPartition>, &PartitionState)>)> {
        self.partitions.iter().map(|(topic, partitions)| {
            (
                topic.as_str(),
                partitions.values().map(|(tp, p)| (tp, p)),
            )
        })
    }

    /// The assigned partitions.
    pub fn assigned(&self) -> impl Iterator<Item = &TopicPartition> {
        self.iter().map(|(tp, _)| tp)
    }

    /// Pauses fetching `tp`.
    pub fn pause(&mut self, tp: &TopicPartition) {
        if let Some(p) = self.state_mut(tp) {
            p.paused = true;
            p.end_is_current = false;
        }
    }

    /// Resumes fetching `tp`.
    pub fn resume(&mut self, tp: &TopicPartition) {
        if let Some(p) = self.state_mut(tp) {
            p.paused = false;
            // A Fetch that came back while it was paused may have made the end current again.
            p.end_is_current = false;
        }
    }

    /// `(partition, position, epoch)` of every fetchable partition.
    pub fn fetchable(&self) -> Vec<(TopicPartition, i64, u64)> {
        self.iter()
            .filter(|(_, p)| self.is_fetchable(p))
            .filter_map(|(tp, p)| p.position.map(|pos| (tp.clone(), pos, p.epoch)))
            .collect()
    }

    /// Partitions waiting for an offset reset: `(partition, strategy, epoch)`.
    pub fn needing_reset(&self) -> Vec<(TopicPartition, OffsetReset, u64)> {
        self.iter()
            .filter(|(_, p)| !p.revoking)
            .filter_map(|(tp, p)| p.reset.map(|r| (tp.clone(), r, p.epoch)))
            .collect()
    }

    /// Sets the position found by a reset, if `epoch` still matches.
    pub fn reset_to(&mut self, tp: &TopicPartition, epoch: u64, position: i64) -> bool {
        match self.state_mut(tp) {
            Some(p) if p.epoch == epoch && p.reset.is_some() => {
                p.position = Some(position);
                p.reset = None;
                p.forget_end();
                true
            }
            _ => false,
        }
    }

    /// Asks for a reset of `tp` (e.g. after OFFSET_OUT_OF_RANGE).
    pub fn request_reset(&mut self, tp: &TopicPartition, epoch: u64, reset: OffsetReset) {
        if let Some(p) = self.state_mut(tp).filter(|p| p.epoch == epoch) {
            p.position = None;
            p.reset = Some(reset);
            p.forget_end();
        }
    }

    /// A fetch of `tp` at `fetched_at` (epoch `epoch`) came back: moves the position to `next`, records
    /// the watermarks and, when `delivered`, counts one more chunk waiting for the application.
    /// Returns `false` (and changes nothing) when the result is stale.
    pub fn advance(
        &mut self,
        tp: &TopicPartition,
        epoch: u64,
        fetched_at: i64,
        next: i64,
        watermarks: (i64, i64),
        delivered: bool,
    ) -> bool {
        let max_buffered = self.max_buffered;
        let Some(p) = self.state_mut(tp) else {
            return false;
        };
        if p.epoch != epoch || p.position != Some(fetched_at) || p.revoking {
            return false;
        }
        p.position = Some(next.max(fetched_at));
        if p.bad_batch.is_some_and(|at| at < next) {
            p.bad_batch = None;
        }
        if watermarks.0 >= 0 {
            p.high_watermark = Some(watermarks.0);
        }
        if watermarks.1 >= 0 {
            p.last_stable_offset = Some(watermarks.1);
        }
        if delivered {
            p.buffered += 1;
        }
        // Held back by a full buffer (or paused), the partition is not fetched for a while: records may
        // arrive meanwhile, so its end must be looked at again before it is long-polled.
        p.end_is_current = !p.paused && p.buffered < max_buffered;
        true
    }

    /// The batch at `at` of `tp` (epoch `epoch`) failed its checks: returns whether it had already
    /// (then the partition is to stop at it), else remembers it.
    pub fn note_bad_batch(&mut self, tp: &TopicPartition, epoch: u64, at: i64) -> bool {
        let Some(p) = self.state_mut(tp).filter(|p| p.epoch == epoch) else {
            return false;
        };
        let again = p.bad_batch == Some(at);
        p.bad_batch = Some(at);
        again
    }

    /// Stops `tp` (fetched at `fetched_at`, epoch `epoch`) at its position, where a batch failed its
    /// checks twice: one chunk (the error) goes to the application, and the partition is not fetched
    /// again until [`pass_stopped_batch`](Self::pass_stopped_batch), which moves it to `past`.
    /// Returns `false` (and changes nothing) when the result is stale.
    pub fn stop_at_batch(
        &mut self,
        tp: &TopicPartition,
        epoch: u64,
        fetched_at: i64,
        watermarks: (i64, i64),
        past: i64,
    ) -> bool {
        if !self.advance(tp, epoch, fetched_at, fetched_at, watermarks, true) {
            return false;
        }
        if let Some(p) = self.state_mut(tp) {
            p.stopped = Some(past.max(fetched_at));
            p.end_is_current = false;
        }
        true
    }

    /// The application passed the batch `tp` (epoch `epoch`) stopped at: fetching goes on after it.
    /// Returns the new position, `None` if the partition was not stopped (or the epoch is stale).
    pub fn pass_stopped_batch(&mut self, tp: &TopicPartition, epoch: u64) -> Option<i64> {
        let p = self.state_mut(tp).filter(|p| p.epoch == epoch)?;
        let past = p.stopped.take()?;
        p.position = Some(past);
        p.bad_batch = None;
        p.forget_end();
        Some(past)
    }

    /// A Fetch of `tp` (epoch `epoch`) failed, for the partition or as a whole (an error code, a
    /// leader that moved, a lost connection): whatever arrived meanwhile is unknown, so its end is
    /// looked at again before it is long-polled (on the leader the next metadata names).
    pub fn fetch_failed(&mut self, tp: &TopicPartition, epoch: u64) {
        if let Some(p) = self.state_mut(tp).filter(|p| p.epoch == epoch) {
            p.forget_end();
        }
    }

    /// A Fetch of `tp` at `fetched_at` (epoch `epoch`) came back without it (a broker may leave out a
    /// partition it has nothing for; Kafka answers every partition of a full fetch): its end is as
    /// current as it will get, so it is long-polled next rather than looked at again.
    pub fn unanswered(&mut self, tp: &TopicPartition, epoch: u64, fetched_at: i64) {
        if let Some(p) = self.state_mut(tp)
            && p.epoch == epoch
            && p.position == Some(fetched_at)
            && !p.paused
        {
            p.end_is_current = true;
        }
    }

    /// The application took one chunk of `tp` (epoch `epoch`). Returns whether the buffered-fetch limit
    /// no longer holds `tp` back (its buffer was full and now is not): only then may the fetcher have
    /// something new to fetch for it. A paused, stopped or revoking partition stays unfetchable for its
    /// own reasons (`resume` wakes the fetcher itself).
    pub fn consumed_chunk(&mut self, tp: &TopicPartition, epoch: u64) -> bool {
        let max_buffered = self.max_buffered;
        let Some(p) = self.state_mut(tp).filter(|p| p.epoch == epoch) else {
            return false;
        };
        let was_full = p.buffered >= max_buffered;
        p.buffered = p.buffered.saturating_sub(1);
        was_full && p.buffered < max_buffered
    }

    /// Whether `tp` has records past its position, as far as fetches told: `Some(true)` while the
    /// position is below the end the last fetch reported (the high watermark, or the last stable offset
    /// for `read_committed`; an end moves down only when a log is truncated, which the next fetch
    /// reports), `Some(false)` when it reached it and that is still current (see
    /// [`PartitionState::end_is_current`]), `None` when it must be looked at again: just positioned,
    /// reset, resumed, after a failed fetch, or held back by a full buffer at its end. The fetcher
    /// long-polls only partitions at `Some(false)`, on a connection of their own, and looks at `None`
    /// with a short wait, so records known to wait do not wait behind a long poll.
    pub fn has_records_to_fetch(&self, tp: &TopicPartition, read_committed: bool) -> Option<bool> {
        self.state(tp)?.records_to_fetch(read_committed)
    }

    /// How far `tp`'s position is behind its high watermark.
    pub fn lag(&self, tp: &TopicPartition) -> Option<i64> {
        let p = self.state(tp)?;
        Some((p.high_watermark? - p.position?).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn partitions_of_several_topics_are_found_listed_in_order_and_removed() {
        let mut s = SubscriptionState::new(2);
        for (topic, p) in [("b", 2), ("a", 10), ("b", 0), ("a", 9), ("ab", 1)] {
            s.assign(TopicPartition::new(topic, p), Some(i64::from(p)), None);
        }
        let listed: Vec<_> = s.assigned().map(|tp| (tp.topic.as_str(), tp.partition)).collect();
        assert_eq!(listed, [("a", 9), ("a", 10), ("ab", 1), ("b", 0), ("b", 2)]);
        assert_eq!(s.get(&TopicPartition::new("a", 10)).unwrap().position, Some(10));
        assert!(s.get(&TopicPartition::new("a", 2)).is_none());
        assert!(s.get(&TopicPartition::new("c", 10)).is_none());
        assert_eq!(s.remove(&TopicPartition::new("ab", 1)).unwrap().position, Some(1));
        assert!(s.remove(&TopicPartition::new("ab", 1)).is_none());
        assert!(!s.partitions.contains_key("ab"), "a topic with no partition left is dropped");
        let fetchable: Vec<_> = s.fetchable().into_iter().map(|(tp, pos, _)| (tp.topic, pos)).collect();
        assert_eq!(fetchable.len(), 4);
        assert_eq!(fetchable[0], ("a".to_owned(), 9));
    }

    #[test]
    fn stale_results_are_dropped_after_reassignment() {
        let mut s = SubscriptionState::new(2);
        let e1 = s.assign(tp(0), Some(5), None);
        let e2 = s.assign(tp(0), Some(5), None);
        assert_ne!(e1, e2);
        assert!(!s.advance(&tp(0), e1, 5, 9, (10, 10), true), "old epoch");
        assert!(!s.advance(&tp(0), e2, 4, 9, (10, 10), true), "old position");
        assert!(s.advance(&tp(0), e2, 5, 9, (10, 10), true));
        assert_eq!(s.get(&tp(0)).and_then(|p| p.position), Some(9));
        assert_eq!(s.lag(&tp(0)), Some(1));
    }

    #[test]
    fn buffered_chunks_make_a_partition_unfetchable_until_taken() {
        let mut s = SubscriptionState::new(2);
        let e = s.assign(tp(0), Some(0), None);
        s.assign(tp(1), Some(0), None);
        assert!(s.advance(&tp(0), e, 0, 10, (100, 100), true));
        assert!(s.advance(&tp(0), e, 10, 20, (100, 100), true));
        let fetchable: Vec<_> = s.fetchable().into_iter().map(|(tp, ..)| tp).collect();
        assert_eq!(fetchable, vec![tp(1)]);
        s.consumed_chunk(&tp(0), e);
        assert_eq!(s.fetchable().len(), 2);
    }

    #[test]
    fn a_bad_batch_is_fetched_once_more_then_stops_the_partition_until_passed() {
        let mut s = SubscriptionState::new(2);
        let e = s.assign(tp(0), Some(3), None);
        assert!(!s.note_bad_batch(&tp(0), e, 3), "first failure: fetch it again");
        assert!(s.note_bad_batch(&tp(0), e, 3), "second failure at the same batch");
        assert!(
            !s.stop_at_batch(&tp(0), e, 4, (9, 9), 6),
            "stale: not at that position"
        );
        assert!(s.stop_at_batch(&tp(0), e, 3, (9, 9), 6));
        let p = s.get(&tp(0)).unwrap();
        assert_eq!((p.position, p.stopped, p.buffered), (Some(3), Some(6), 1));
        assert!(s.fetchable().is_empty(), "stopped: not fetched");
        assert_eq!(s.pass_stopped_batch(&tp(0), e + 1), None, "old epoch");
        assert_eq!(s.pass_stopped_batch(&tp(0), e), Some(6));
        assert_eq!(s.pass_stopped_batch(&tp(0), e), None, "passed once");
        s.consumed_chunk(&tp(0), e);
        assert_eq!(s.fetchable(), vec![(tp(0), 6, e)]);
        // A batch that failed once and then came back sound is forgotten once the position passes it.
        assert!(!s.note_bad_batch(&tp(0), e, 6));
        assert!(s.advance(&tp(0), e, 6, 9, (9, 9), false));
        assert_eq!(s.get(&tp(0)).unwrap().bad_batch, None);
    }

    #[test]
    fn reset_and_revoke() {
        let mut s = SubscriptionState::new(1);
        let e = s.assign(tp(0), None, Some(OffsetReset::Latest));
        assert!(s.fetchable().is_empty());
        assert_eq!(s.needing_reset(), vec![(tp(0), OffsetReset::Latest, e)]);
        assert!(!s.reset_to(&tp(0), e + 1, 7));
        assert!(s.reset_to(&tp(0), e, 7));
        assert_eq!(s.fetchable(), vec![(tp(0), 7, e)]);
        s.mark_revoking(&tp(0));
        assert!(s.fetchable().is_empty());
        assert!(!s.advance(&tp(0), e, 7, 9, (9, 9), true));
    }

    #[test]
    fn records_wait_below_the_reported_end_and_a_stale_end_is_looked_at_again() {
        let mut s = SubscriptionState::new(2);
        let e = s.assign(tp(0), Some(0), None);
        assert_eq!(s.has_records_to_fetch(&tp(0), false), None, "no fetch yet");
        assert!(s.advance(&tp(0), e, 0, 10, (30, 20), true));
        assert_eq!(s.has_records_to_fetch(&tp(0), false), Some(true), "10 < 30");
        s.consumed_chunk(&tp(0), e);
        assert!(s.advance(&tp(0), e, 10, 20, (30, 20), false));
        assert_eq!(s.has_records_to_fetch(&tp(0), false), Some(true));
        assert_eq!(
            s.has_records_to_fetch(&tp(0), true),
            Some(false),
            "at the last stable offset"
        );
        assert!(s.advance(&tp(0), e, 20, 30, (30, 30), true));
        assert_eq!(
            s.has_records_to_fetch(&tp(0), false),
            Some(false),
            "at the high watermark"
        );
        // A long poll came back with some of the new records.
        s.consumed_chunk(&tp(0), e);
        assert!(s.advance(&tp(0), e, 30, 35, (40, 40), true));
        assert_eq!(s.has_records_to_fetch(&tp(0), false), Some(true));
        // Reaching the end with the buffer now full: not fetched for a while, so the end goes stale.
        assert!(s.advance(&tp(0), e, 35, 40, (40, 40), true));
        assert_eq!(s.get(&tp(0)).map(|p| p.buffered), Some(2));
        assert_eq!(s.has_records_to_fetch(&tp(0), false), None, "look again");
        s.consumed_chunk(&tp(0), e);
        assert!(
            s.advance(&tp(0), e, 40, 40, (40, 40), false),
            "looked at: nothing new"
        );
        assert_eq!(s.has_records_to_fetch(&tp(0), false), Some(false));
        // Paused and resumed: look again, also when a Fetch in flight came back while it was paused.
        s.pause(&tp(0));
        s.resume(&tp(0));
        assert_eq!(s.has_records_to_fetch(&tp(0), false), None);
        assert!(s.advance(&tp(0), e, 40, 40, (40, 40), false));
        s.pause(&tp(0));
        assert!(
            s.advance(&tp(0), e, 40, 40, (40, 40), false),
            "the long poll came back"
        );
        s.resume(&tp(0));
        assert_eq!(s.has_records_to_fetch(&tp(0), false), None);
        // A failed fetch (an error code, a moved leader, a lost connection): look again.
        assert!(s.advance(&tp(0), e, 40, 40, (40, 40), false));
        assert_eq!(s.has_records_to_fetch(&tp(0), false), Some(false));
        s.fetch_failed(&tp(0), e);
        assert_eq!(s.has_records_to_fetch(&tp(0), false), None);
        // A broker that leaves the partition out of its answer: long-poll it rather than look again.
        s.unanswered(&tp(0), e, 39);
        assert_eq!(
            s.has_records_to_fetch(&tp(0), false),
            None,
            "not at that position"
        );
        s.unanswered(&tp(0), e, 40);
        assert_eq!(s.has_records_to_fetch(&tp(0), false), Some(false));
        // Without a last stable offset, read_committed goes by the high watermark.
        let e1 = s.assign(tp(1), Some(0), None);
        assert!(s.advance(&tp(1), e1, 0, 5, (5, -1), true));
        assert_eq!(s.has_records_to_fetch(&tp(1), true), Some(false));
        // A reset forgets the end, also once the new position is set: the log may have been
        // truncated under the old one. So does a reassignment.
        s.request_reset(&tp(0), e, OffsetReset::Latest);
        assert_eq!(s.has_records_to_fetch(&tp(0), false), None);
        assert!(s.reset_to(&tp(0), e, 12));
        assert_eq!(
            s.has_records_to_fetch(&tp(0), false),
            None,
            "12 < the old 40 says nothing"
        );
        s.assign(tp(1), Some(5), None);
        assert_eq!(s.has_records_to_fetch(&tp(1), false), None);
        assert_eq!(s.has_records_to_fetch(&tp(2), false), None, "not assigned");
    }
}
