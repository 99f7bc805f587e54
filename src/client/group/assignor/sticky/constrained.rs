//! The sticky assignment when every member subscribes to the same topics: Java's
//! `AbstractStickyAssignor.ConstrainedAssignmentBuilder` without racks.
//!
//! Steps: (1) each member keeps its owned partitions up to its quota (`min` or, while fewer than
//! `total % members` members have it, `max`); (2) the rest, sorted by topic then partition, is dealt
//! round-robin to the members below `min` (sorted by id), then one each to members at exactly `min`
//! until the expected number reaches `max`. Partitions a member gave up in step 1 and that another
//! member gets in step 2 are recorded as transferring ownership.
//!
//! Invariant: the result is balanced (sizes are `min` or `max`) and assigns every partition once.
//! Where Java iterates its member `HashMap`, this iterates member ids in sorted order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::super::TopicPartition;

/// The result: member → partitions, and partition → its new owner for partitions that move.
pub(super) struct Constrained {
    pub(super) assignment: BTreeMap<String, Vec<TopicPartition>>,
    pub(super) transferring: BTreeMap<TopicPartition, String>,
}

/// `owned`: every member's still-valid owned partitions (every member has an entry);
/// `multiply_owned`: partitions claimed by several members of one generation.
pub(super) fn assign(
    partitions: &BTreeMap<String, i32>,
    owned: &BTreeMap<String, Vec<TopicPartition>>,
    multiply_owned: &BTreeSet<TopicPartition>,
) -> Constrained {
    let total: usize = partitions.values().map(|n| n.unsigned_abs() as usize).sum();
    let n_members = owned.len().max(1);
    let min_quota = total / n_members;
    let max_quota = total.div_ceil(n_members);
    let expected_over_min = total % n_members;
    let mut current_over_min = 0usize;

    let mut assignment: BTreeMap<String, Vec<TopicPartition>> = owned
        .keys()
        .map(|id| (id.clone(), Vec::with_capacity(max_quota)))
        .collect();
    let mut assigned = BTreeSet::new();
    let mut revoked = BTreeSet::new();
    let mut transferring = BTreeMap::new();
    let mut under_min: Vec<String> = Vec::new();
    let mut exactly_min: VecDeque<String> = VecDeque::new();

    // Step 1: keep owned partitions up to the quota.
    for (member, member_owned) in owned {
        let mut kept: Vec<TopicPartition> = member_owned
            .iter()
            .filter(|tp| !multiply_owned.contains(tp))
            .cloned()
            .collect();
        // Java sorts by partition, then topic, before cutting at the quota.
        kept.sort_by(|a, b| a.partition.cmp(&b.partition).then_with(|| a.topic.cmp(&b.topic)));
        let Some(target) = assignment.get_mut(member) else {
            continue;
        };
        if kept.len() < min_quota {
            assigned.extend(kept.iter().cloned());
            target.extend(kept);
            under_min.push(member.clone());
        } else if kept.len() >= max_quota && current_over_min < expected_over_min {
            current_over_min += 1;
            if current_over_min == expected_over_min {
                exactly_min.clear();
            }
            let rest = kept.split_off(max_quota);
            revoked.extend(rest);
            assigned.extend(kept.iter().cloned());
            target.extend(kept);
        } else {
            let rest = kept.split_off(min_quota);
            revoked.extend(rest);
            assigned.extend(kept.iter().cloned());
            target.extend(kept);
            if current_over_min < expected_over_min {
                exactly_min.push_back(member.clone());
            }
        }
    }

    let unassigned: Vec<TopicPartition> = partitions
        .iter()
        .flat_map(|(topic, n)| (0..*n).map(move |p| TopicPartition::new(topic.clone(), p)))
        .filter(|tp| !assigned.contains(tp))
        .collect();
    under_min.sort();
    exactly_min.make_contiguous().sort();

    // Step 2: round-robin over the members below min, then the members at exactly min.
    let mut cursor = 0usize; // Java's iterator over `under_min`: the index of the next member.
    for tp in unassigned {
        let (member, from_under) = if cursor < under_min.len() {
            cursor += 1;
            (under_min[cursor - 1].clone(), true)
        } else if under_min.is_empty() {
            match exactly_min.pop_front() {
                Some(m) => (m, false),
                // Unreachable by the quota arithmetic; Java throws. Leave it unassigned.
                None => break,
            }
        } else {
            cursor = 1;
            (under_min[0].clone(), true)
        };
        let Some(target) = assignment.get_mut(&member) else {
            continue;
        };
        target.push(tp.clone());
        let count = target.len();
        if revoked.contains(&tp) || multiply_owned.contains(&tp) {
            transferring.insert(tp, member.clone());
        }
        if count == min_quota && from_under {
            cursor -= 1;
            under_min.remove(cursor);
            exactly_min.push_back(member);
        }
    }
    Constrained {
        assignment,
        transferring,
    }
}
