//! Java's `RoundRobinAssignor`: all subscribed partitions, sorted by topic then partition, dealt out
//! one at a time to the members in member order, skipping members not subscribed to a partition's
//! topic.
//!
//! Owns [`RoundRobinAssignor`]. Uses the shared helpers of [`super`]. Invariant: with identical
//! subscriptions the member sizes differ by at most one.

use std::collections::BTreeMap;

use super::{
    Assignor, GroupAssignment, MemberSubscription, PartitionsPerTopic, TopicPartition, empty_assignment,
    java_member_order, subscribed_partitions,
};

/// The `roundrobin` assignor (eager). See the module documentation.
///
/// # Example
///
/// ```
/// use std::collections::BTreeMap;
/// use kafka_event_bus::client::group::assignor::{
///     Assignor, MemberSubscription, RoundRobinAssignor, Subscription,
/// };
/// use kafka_event_bus::client::TopicPartition;
///
/// let metadata = BTreeMap::from([("t".to_owned(), 3)]);
/// let members: BTreeMap<_, _> = ["a", "b"]
///     .into_iter()
///     .map(|id| (id.to_owned(), MemberSubscription::new(Subscription::new(["t"]))))
///     .collect();
/// let out = RoundRobinAssignor.assign(&metadata, &members);
/// assert_eq!(out["a"], vec![TopicPartition::new("t", 0), TopicPartition::new("t", 2)]);
/// assert_eq!(out["b"], vec![TopicPartition::new("t", 1)]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn assign(
        &self,
        metadata: &PartitionsPerTopic,
        members: &BTreeMap<String, MemberSubscription>,
    ) -> GroupAssignment {
        let mut out = empty_assignment(members);
        let order = java_member_order(members);
        if order.is_empty() {
            return out;
        }
        // The circular iterator's position: the member that gets the next partition.
        let mut next = 0usize;
        for (topic, count) in subscribed_partitions(metadata, members) {
            // Someone subscribes (subscribed_partitions guarantees it), so the scan below ends.
            for partition in 0..count {
                let mut scanned = 0;
                while !members[order[next]].subscribes_to(&topic) && scanned < order.len() {
                    next = (next + 1) % order.len();
                    scanned += 1;
                }
                if let Some(list) = out.get_mut(order[next]) {
                    list.push(TopicPartition::new(topic.clone(), partition));
                }
                next = (next + 1) % order.len();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn javadoc_example_different_subscriptions() {
        // RoundRobinAssignor's Javadoc: t0 has 1 partition, t1 2, t2 3; C0 subscribes to t0, C1 to t0
        // and t1, C2 to t0, t1 and t2. Then C0 = [t0p0], C1 = [t1p0], C2 = [t1p1, t2p0, t2p1, t2p2].
        let metadata = topics(&[("t0", 1), ("t1", 2), ("t2", 3)]);
        let mut members = BTreeMap::new();
        members.insert("C0".to_owned(), member(&["t0"]));
        members.insert("C1".to_owned(), member(&["t0", "t1"]));
        members.insert("C2".to_owned(), member(&["t0", "t1", "t2"]));
        let out = RoundRobinAssignor.assign(&metadata, &members);
        assert_eq!(out["C0"], tps(&[("t0", 0)]));
        assert_eq!(out["C1"], tps(&[("t1", 0)]));
        assert_eq!(out["C2"], tps(&[("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)]));
    }

    #[test]
    fn javadoc_example_same_subscription() {
        // C0 = [t0p0, t0p2, t1p1], C1 = [t0p1, t1p0, t1p2].
        let metadata = topics(&[("t0", 3), ("t1", 3)]);
        let out = RoundRobinAssignor.assign(&metadata, &same_subscription(&["C0", "C1"], &["t0", "t1"]));
        assert_eq!(out["C0"], tps(&[("t0", 0), ("t0", 2), ("t1", 1)]));
        assert_eq!(out["C1"], tps(&[("t0", 1), ("t1", 0), ("t1", 2)]));
    }

    proptest::proptest! {
        #[test]
        fn valid_complete_and_balanced(case in arb_case()) {
            let out = RoundRobinAssignor.assign(&case.metadata, &case.members);
            check_valid(&case.metadata, &case.members, &out, true)?;
            if case.same_subscriptions {
                check_balanced(&out)?;
            }
        }
    }
}
