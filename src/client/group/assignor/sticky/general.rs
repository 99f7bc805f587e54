//! The sticky assignment when members subscribe to different topics: Java's
//! `AbstractStickyAssignor.GeneralAssignmentBuilder` without racks.
//!
//! Steps: keep every valid owned partition; give each unassigned partition to the least-loaded
//! subscriber; then move partitions from members with at least two more than a fellow subscriber,
//! preferring to send a partition back to its owner of an older generation, until the assignment is
//! balanced; keep the moves only if they improved the balance score (or nothing was owned before).
//! [`Movements`] records moves per topic so a partition and its reverse move cancel out (stickiness).
//!
//! Invariant: every partition with a subscriber is assigned exactly once. Where Java iterates a
//! `HashMap` or `HashSet`, this iterates in sorted order; the reassignment loop is bounded.

use std::collections::{BTreeMap, BTreeSet};

use super::super::TopicPartition;

type Pair = (String, String);

/// Partition moves during one assignment, so a later move can undo an earlier one instead of moving
/// a second partition (Java's `PartitionMovements`).
#[derive(Default)]
struct Movements {
    by_topic: BTreeMap<String, BTreeMap<Pair, BTreeSet<TopicPartition>>>,
    moves: BTreeMap<TopicPartition, Pair>,
}

impl Movements {
    fn remove_record(&mut self, tp: &TopicPartition) -> Option<Pair> {
        let pair = self.moves.remove(tp)?;
        if let Some(topic_moves) = self.by_topic.get_mut(&tp.topic) {
            if let Some(set) = topic_moves.get_mut(&pair) {
                set.remove(tp);
                if set.is_empty() {
                    topic_moves.remove(&pair);
                }
            }
            if topic_moves.is_empty() {
                self.by_topic.remove(&tp.topic);
            }
        }
        Some(pair)
    }

    fn add_record(&mut self, tp: TopicPartition, pair: Pair) {
        self.by_topic
            .entry(tp.topic.clone())
            .or_default()
            .entry(pair.clone())
            .or_default()
            .insert(tp.clone());
        self.moves.insert(tp, pair);
    }

    fn move_partition(&mut self, tp: &TopicPartition, old: &str, new: &str) {
        match self.remove_record(tp) {
            // Moved before: record one move from its first owner, or none if it goes back there.
            Some((src, _)) if src != new => self.add_record(tp.clone(), (src, new.to_owned())),
            Some(_) => {}
            None => self.add_record(tp.clone(), (old.to_owned(), new.to_owned())),
        }
    }

    /// If some partition of the topic already moved the opposite way, move that one back instead.
    fn partition_to_move(&self, tp: &TopicPartition, old: &str, new: &str) -> TopicPartition {
        let Some(topic_moves) = self.by_topic.get(&tp.topic) else {
            return tp.clone();
        };
        let old = self.moves.get(tp).map_or(old, |(src, _)| src.as_str());
        topic_moves
            .get(&(new.to_owned(), old.to_owned()))
            .and_then(|set| set.first())
            .cloned()
            .unwrap_or_else(|| tp.clone())
    }
}

pub(super) struct General<'a> {
    partitions: &'a BTreeMap<String, i32>,
    topic_consumers: BTreeMap<String, Vec<String>>,
    consumer_topics: BTreeMap<String, BTreeSet<String>>,
    current: BTreeMap<String, Vec<TopicPartition>>,
    owner: BTreeMap<TopicPartition, String>,
    sorted_all: Vec<TopicPartition>,
    /// Members ordered by (assignment size, id): Java's `sortedCurrentSubscriptions`.
    sorted: BTreeSet<(usize, String)>,
    movements: Movements,
    revocation_required: bool,
    total: usize,
}

impl<'a> General<'a> {
    /// `subscriptions`: member → subscribed topics; `owned`: member → valid owned partitions (every
    /// member has an entry); `prev`: partition → (member, generation) of an older-generation owner.
    pub(super) fn assign(
        partitions: &'a BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, BTreeSet<String>>,
        owned: BTreeMap<String, Vec<TopicPartition>>,
        prev: &BTreeMap<TopicPartition, (String, i32)>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut topic_consumers: BTreeMap<String, Vec<String>> =
            partitions.keys().map(|t| (t.clone(), Vec::new())).collect();
        let mut consumer_topics = BTreeMap::new();
        let mut current = owned;
        for (member, topics) in subscriptions {
            let mine: BTreeSet<String> = topics
                .iter()
                .filter(|t| partitions.contains_key(*t))
                .cloned()
                .collect();
            for t in &mine {
                if let Some(list) = topic_consumers.get_mut(t) {
                    list.push(member.clone());
                }
            }
            consumer_topics.insert(member.clone(), mine);
            current.entry(member.clone()).or_default();
        }
        let mut topics_sorted: Vec<&String> = topic_consumers.keys().collect();
        topics_sorted.sort_by_key(|t| (topic_consumers[*t].len(), *t));
        let sorted_all = topics_sorted
            .into_iter()
            .flat_map(|t| (0..partitions[t]).map(move |p| TopicPartition::new(t.clone(), p)))
            .collect();
        let mut builder = General {
            partitions,
            topic_consumers,
            consumer_topics,
            current,
            owner: BTreeMap::new(),
            sorted_all,
            sorted: BTreeSet::new(),
            movements: Movements::default(),
            revocation_required: false,
            total: partitions.values().map(|n| n.unsigned_abs() as usize).sum(),
        };
        builder.build(prev);
        builder.current
    }

    fn size(&self, member: &str) -> Option<usize> {
        self.current.get(member).map(Vec::len)
    }

    fn unsort(&mut self, member: &str) {
        if let Some(n) = self.size(member) {
            self.sorted.remove(&(n, member.to_owned()));
        }
    }

    fn resort(&mut self, member: &str) {
        if let Some(n) = self.size(member) {
            self.sorted.insert((n, member.to_owned()));
        }
    }

    fn subscribes(&self, member: &str, topic: &str) -> bool {
        self.consumer_topics
            .get(member)
            .is_some_and(|t| t.contains(topic))
    }

    fn build(&mut self, prev: &BTreeMap<TopicPartition, (String, i32)>) {
        // Keep owned partitions whose member is still subscribed to their topic.
        let mut assigned = BTreeSet::new();
        let members: Vec<String> = self.current.keys().cloned().collect();
        for member in &members {
            let list = self
                .current
                .get_mut(member)
                .map(std::mem::take)
                .unwrap_or_default();
            let mut kept = Vec::with_capacity(list.len());
            for tp in list {
                if self.subscribes(member, &tp.topic) {
                    self.owner.insert(tp.clone(), member.clone());
                    assigned.insert(tp.clone());
                    kept.push(tp);
                } else {
                    self.revocation_required = true;
                }
            }
            if let Some(slot) = self.current.get_mut(member) {
                *slot = kept;
            }
        }
        let mut unassigned: Vec<TopicPartition> = self
            .sorted_all
            .iter()
            .filter(|tp| !assigned.contains(*tp))
            .cloned()
            .collect();
        for member in &members {
            self.resort(member);
        }
        self.balance(prev, &mut unassigned);
    }

    fn balance(
        &mut self,
        prev: &BTreeMap<TopicPartition, (String, i32)>,
        unassigned: &mut Vec<TopicPartition>,
    ) {
        let initializing = self.sorted.last().is_none_or(|(n, _)| *n == 0);

        for tp in unassigned.iter() {
            if self.topic_consumers.get(&tp.topic).is_none_or(Vec::is_empty) {
                continue;
            }
            let target = self
                .sorted
                .iter()
                .find(|(_, m)| self.subscribes(m, &tp.topic))
                .map(|(_, m)| m.clone());
            if let Some(member) = target {
                self.unsort(&member);
                if let Some(list) = self.current.get_mut(&member) {
                    list.push(tp.clone());
                }
                self.owner.insert(tp.clone(), member.clone());
                self.resort(&member);
            }
        }

        // Only topics with two or more subscribers, and members that could change, take part.
        let movable_topic =
            |t: &str, tc: &BTreeMap<String, Vec<String>>| tc.get(t).is_some_and(|c| c.len() >= 2);
        self.sorted_all
            .retain(|tp| movable_topic(&tp.topic, &self.topic_consumers));
        unassigned.retain(|tp| movable_topic(&tp.topic, &self.topic_consumers));
        let mut fixed = BTreeMap::new();
        let members: Vec<String> = self.consumer_topics.keys().cloned().collect();
        for member in members {
            let list = self.current.get(&member).map(Vec::as_slice).unwrap_or_default();
            let can_move = list.len() < self.max_assignment_size(&member)
                || list
                    .iter()
                    .any(|tp| movable_topic(&tp.topic, &self.topic_consumers));
            if !can_move {
                self.unsort(&member);
                if let Some(list) = self.current.remove(&member) {
                    fixed.insert(member, list);
                }
            }
        }

        let pre_current = self.current.clone();
        let pre_owner = self.owner.clone();
        if !self.revocation_required {
            let first = unassigned.clone();
            self.perform_reassignments(&first, prev);
        }
        let all = self.sorted_all.clone();
        let performed = self.perform_reassignments(&all, prev);
        if !initializing && performed && balance_score(&self.current) >= balance_score(&pre_current) {
            self.current = pre_current;
            self.owner = pre_owner;
        }
        self.current.extend(fixed);
    }

    fn max_assignment_size(&self, member: &str) -> usize {
        let topics = self.consumer_topics.get(member);
        if topics.map_or(0, BTreeSet::len) == self.partitions.len() {
            return self.total;
        }
        topics
            .into_iter()
            .flatten()
            .map(|t| self.partitions.get(t).map_or(0, |n| n.unsigned_abs() as usize))
            .sum()
    }

    fn is_balanced(&self) -> bool {
        let min = self.sorted.first().map_or(0, |(n, _)| *n);
        let max = self.sorted.last().map_or(0, |(n, _)| *n);
        if min + 1 >= max {
            return true;
        }
        for (size, member) in &self.sorted {
            if *size == self.max_assignment_size(member) {
                continue;
            }
            let mine = self.current.get(member).map(Vec::as_slice).unwrap_or_default();
            for topic in self.consumer_topics.get(member).into_iter().flatten() {
                for p in 0..self.partitions.get(topic).copied().unwrap_or(0) {
                    let tp = TopicPartition::new(topic.clone(), p);
                    if mine.contains(&tp) {
                        continue;
                    }
                    let other = self.owner.get(&tp).and_then(|o| self.size(o));
                    if other.is_some_and(|other| size + 1 < other) {
                        return false;
                    }
                }
            }
        }
        true
    }

    fn perform_reassignments(
        &mut self,
        partitions: &[TopicPartition],
        prev: &BTreeMap<TopicPartition, (String, i32)>,
    ) -> bool {
        let mut performed = false;
        // Java loops until nothing moves; the bound only guards against a cycle.
        let mut rounds = 0usize;
        let max_rounds = 16 + partitions.len() * self.current.len().max(1);
        loop {
            let mut modified = false;
            for tp in partitions {
                if self.is_balanced() {
                    break;
                }
                let Some(consumer) = self.owner.get(tp).cloned() else {
                    continue;
                };
                let Some(size) = self.size(&consumer) else {
                    continue;
                };
                // Java does not check that the older owner still subscribes to the topic; we do.
                if let Some((prev_owner, _)) = prev.get(tp)
                    && self.subscribes(prev_owner, &tp.topic)
                    && self.size(prev_owner).is_some_and(|p| size > p + 1)
                {
                    let prev_owner = prev_owner.clone();
                    self.reassign_to(tp, &consumer, &prev_owner);
                    performed = true;
                    modified = true;
                    continue;
                }
                let candidates = self.topic_consumers.get(&tp.topic).cloned().unwrap_or_default();
                if candidates
                    .iter()
                    .any(|other| self.size(other).is_some_and(|o| size > o + 1))
                {
                    let new = self
                        .sorted
                        .iter()
                        .find(|(_, m)| self.subscribes(m, &tp.topic))
                        .map(|(_, m)| m.clone());
                    if let Some(new) = new {
                        self.reassign_to(tp, &consumer, &new);
                        performed = true;
                        modified = true;
                    }
                }
            }
            rounds += 1;
            if !modified || rounds >= max_rounds {
                return performed;
            }
        }
    }

    fn reassign_to(&mut self, tp: &TopicPartition, consumer: &str, new: &str) {
        let actual = self.movements.partition_to_move(tp, consumer, new);
        let Some(old) = self.owner.get(&actual).cloned() else {
            return;
        };
        if old == new {
            return;
        }
        self.unsort(&old);
        self.unsort(new);
        self.movements.move_partition(&actual, &old, new);
        if let Some(list) = self.current.get_mut(&old)
            && let Some(i) = list.iter().position(|p| *p == actual)
        {
            list.remove(i);
        }
        if let Some(list) = self.current.get_mut(new) {
            list.push(actual.clone());
        }
        self.owner.insert(actual, new.to_owned());
        self.resort(new);
        self.resort(&old);
    }
}

/// The sum over all member pairs of the difference of their sizes; 0 is perfectly balanced.
fn balance_score(assignment: &BTreeMap<String, Vec<TopicPartition>>) -> usize {
    let sizes: Vec<usize> = assignment.values().map(Vec::len).collect();
    let mut score = 0;
    for (i, a) in sizes.iter().enumerate() {
        for b in &sizes[i + 1..] {
            score += a.abs_diff(*b);
        }
    }
    score
}
