//! Java's `CooperativeStickyAssignor` (on `AbstractStickyAssignor`): balanced, and moving as few
//! partitions as possible from the owners members report in their subscriptions.
//!
//! Owns [`CooperativeStickyAssignor`] and the validation of owned partitions shared by the two
//! algorithms: [`constrained`] when every member subscribes to the same topics, [`general`] otherwise.
//!
//! # The cooperative rule
//!
//! A partition that the sticky algorithm moves away from a member that still owns it is left out of
//! this rebalance's assignment: its owner sees it disappear, revokes it (committing first) and
//! rejoins; the next rebalance hands it to the new owner. So at no time do two members consume one
//! partition, and only the partitions that move are ever revoked.
//!
//! # Invariants
//!
//! - Owned partitions count only if their topic is subscribed by someone and exists in the metadata,
//!   the partition number exists, and no member of the same generation claims it too (then nobody
//!   keeps it); between two claimants of different generations the newer one wins (Java's rules).
//! - A member's generation is its subscription's `generation_id`, else the one in its `user_data`
//!   (four bytes, big-endian, as Java's cooperative-sticky writes), else unknown.
//! - Deviation from Java: Java treats a member with an empty topic list as subscribed to the same
//!   topics as the others (its equality check starts from the first non-empty list), which can hand
//!   it partitions it did not subscribe to; here an empty subscription is simply different.

mod constrained;
mod general;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::{
    Assignor, GroupAssignment, MemberSubscription, PartitionsPerTopic, RebalanceProtocol, TopicPartition,
    empty_assignment, subscribed_partitions,
};

/// Java's `DEFAULT_GENERATION`: a member's generation when it has none.
const DEFAULT_GENERATION: i32 = -1;

/// The `cooperative-sticky` assignor. See the module documentation.
///
/// # Example
///
/// A third member joins a group of two over six partitions: the first rebalance takes one partition
/// from each old member and gives it to nobody; the second hands both to the newcomer.
///
/// ```
/// use std::collections::BTreeMap;
/// use kafka_event_bus::client::group::assignor::{
///     Assignor, CooperativeStickyAssignor, MemberSubscription, Subscription,
/// };
/// use kafka_event_bus::client::TopicPartition;
///
/// let tp = |p| TopicPartition::new("t", p);
/// let member = |owned: Vec<TopicPartition>| {
///     let mut s = Subscription::new(["t"]);
///     s.owned_partitions = owned;
///     s.generation_id = Some(1);
///     MemberSubscription::new(s)
/// };
/// let metadata = BTreeMap::from([("t".to_owned(), 6)]);
/// let members = BTreeMap::from([
///     ("a".to_owned(), member(vec![tp(0), tp(2), tp(4)])),
///     ("b".to_owned(), member(vec![tp(1), tp(3), tp(5)])),
///     ("c".to_owned(), MemberSubscription::new(Subscription::new(["t"]))),
/// ]);
/// let out = CooperativeStickyAssignor.assign(&metadata, &members);
/// assert_eq!(out["a"], vec![tp(0), tp(2)]);
/// assert_eq!(out["b"], vec![tp(1), tp(3)]);
/// assert!(out["c"].is_empty()); // t-4 and t-5 are being revoked first
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &'static str {
        "cooperative-sticky"
    }

    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        &[RebalanceProtocol::Cooperative, RebalanceProtocol::Eager]
    }

    /// The member's generation as four big-endian bytes (-1 when it has none), as Java writes it for
    /// leaders that only read subscription v0/v1.
    fn subscription_user_data(&self, generation: Option<i32>) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(
            &generation.unwrap_or(DEFAULT_GENERATION).to_be_bytes(),
        ))
    }

    fn assign(
        &self,
        metadata: &PartitionsPerTopic,
        members: &BTreeMap<String, MemberSubscription>,
    ) -> GroupAssignment {
        if members.is_empty() {
            return GroupAssignment::new();
        }
        let partitions = subscribed_partitions(metadata, members);
        let prepared = Prepared::new(&partitions, members);
        let (mut assignment, transferring) = if prepared.all_equal {
            let c = constrained::assign(&partitions, &prepared.owned, &prepared.multiply_owned);
            (c.assignment, c.transferring)
        } else {
            let subscriptions = members
                .iter()
                .map(|(id, m)| (id.clone(), m.subscription.topics.iter().cloned().collect()))
                .collect();
            let prev = prepared.previous_owners(members);
            let assignment = general::General::assign(&partitions, &subscriptions, prepared.owned, &prev);
            let transferring = transferring_ownership(members, &assignment);
            (assignment, transferring)
        };
        // The cooperative rule: what must first be revoked elsewhere is assigned to nobody yet.
        for (tp, member) in transferring {
            if let Some(list) = assignment.get_mut(&member) {
                list.retain(|p| *p != tp);
            }
        }
        let mut out = empty_assignment(members);
        for (member, mut list) in assignment {
            if let Some(slot) = out.get_mut(&member) {
                list.sort();
                list.dedup();
                *slot = list;
            }
        }
        out
    }
}

/// A member's generation: `generation_id`, else the one in `user_data`.
fn member_generation(m: &MemberSubscription) -> Option<i32> {
    let sub = &m.subscription;
    if sub.generation_id.is_some() {
        return sub.generation_id;
    }
    let data = sub.user_data.as_ref()?;
    // Java reads the struct and falls back to DEFAULT_GENERATION when that fails.
    Some(data.get(..4).map_or(DEFAULT_GENERATION, |b| {
        i32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }))
}

/// Owned partitions validated across members (Java's `allSubscriptionsEqual` side effects).
struct Prepared {
    all_equal: bool,
    owned: BTreeMap<String, Vec<TopicPartition>>,
    multiply_owned: BTreeSet<TopicPartition>,
    max_generation: i32,
}

impl Prepared {
    fn new(partitions: &BTreeMap<String, i32>, members: &BTreeMap<String, MemberSubscription>) -> Self {
        let exists = |tp: &TopicPartition| {
            partitions
                .get(&tp.topic)
                .is_some_and(|n| (0..*n).contains(&tp.partition))
        };
        let mut first_topics: Option<BTreeSet<&String>> = None;
        let mut all_equal = true;
        let mut owned: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
        let mut multiply_owned = BTreeSet::new();
        let mut owner_of: BTreeMap<TopicPartition, (String, i32)> = BTreeMap::new();
        let mut max_generation = DEFAULT_GENERATION;
        for (id, m) in members {
            let topics: BTreeSet<&String> = m.subscription.topics.iter().collect();
            match &first_topics {
                None => first_topics = Some(topics),
                Some(first) => all_equal &= *first == topics,
            }
            let generation = member_generation(m).unwrap_or(DEFAULT_GENERATION);
            max_generation = max_generation.max(generation);
            owned.insert(id.clone(), Vec::new());
            let mut seen = BTreeSet::new();
            for tp in &m.subscription.owned_partitions {
                if !exists(tp) || !seen.insert(tp) {
                    continue;
                }
                match owner_of.get(tp).cloned() {
                    None => {
                        push(&mut owned, id, tp);
                        owner_of.insert(tp.clone(), (id.clone(), generation));
                    }
                    Some((other, other_generation)) if other_generation == generation => {
                        // Two owners in one generation: nobody keeps it.
                        multiply_owned.insert(tp.clone());
                        remove(&mut owned, &other, tp);
                        owner_of.insert(tp.clone(), (id.clone(), generation));
                    }
                    Some((other, other_generation)) if generation > other_generation => {
                        push(&mut owned, id, tp);
                        remove(&mut owned, &other, tp);
                        owner_of.insert(tp.clone(), (id.clone(), generation));
                    }
                    Some(_) => {}
                }
            }
        }
        Self {
            all_equal,
            owned,
            multiply_owned,
            max_generation,
        }
    }

    /// For the general algorithm: partition → the member of the newest older generation that owned it.
    fn previous_owners(
        &self,
        members: &BTreeMap<String, MemberSubscription>,
    ) -> BTreeMap<TopicPartition, (String, i32)> {
        let mut prev: BTreeMap<TopicPartition, (String, i32)> = BTreeMap::new();
        for (id, m) in members {
            let generation = match member_generation(m) {
                Some(g) if g < self.max_generation => g,
                None if self.max_generation > DEFAULT_GENERATION => DEFAULT_GENERATION,
                _ => continue,
            };
            for tp in &m.subscription.owned_partitions {
                let newer = prev.get(tp).is_none_or(|(_, g)| generation > *g);
                if newer {
                    prev.insert(tp.clone(), (id.clone(), generation));
                }
            }
        }
        prev
    }
}

fn push(owned: &mut BTreeMap<String, Vec<TopicPartition>>, id: &str, tp: &TopicPartition) {
    if let Some(list) = owned.get_mut(id) {
        list.push(tp.clone());
    }
}

fn remove(owned: &mut BTreeMap<String, Vec<TopicPartition>>, id: &str, tp: &TopicPartition) {
    if let Some(list) = owned.get_mut(id) {
        list.retain(|p| p != tp);
    }
}

/// Partitions newly assigned to a member that another member reported as owned (Java's
/// `computePartitionsTransferringOwnership`, from the raw owned lists).
fn transferring_ownership(
    members: &BTreeMap<String, MemberSubscription>,
    assignment: &BTreeMap<String, Vec<TopicPartition>>,
) -> BTreeMap<TopicPartition, String> {
    let mut added = BTreeMap::new();
    let mut revoked = BTreeSet::new();
    for (id, assigned) in assignment {
        let owned: BTreeSet<&TopicPartition> = members
            .get(id)
            .map(|m| m.subscription.owned_partitions.iter().collect())
            .unwrap_or_default();
        let assigned_set: BTreeSet<&TopicPartition> = assigned.iter().collect();
        for tp in assigned {
            if !owned.contains(tp) {
                added.insert(tp.clone(), id.clone());
            }
        }
        revoked.extend(owned.difference(&assigned_set).map(|tp| (*tp).clone()));
    }
    added.retain(|tp, _| revoked.contains(tp));
    added
}

#[cfg(test)]
mod tests;
