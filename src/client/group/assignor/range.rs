//! Java's `RangeAssignor`: per topic, contiguous ranges of partitions to the subscribed members in
//! member order, the first `partitions % members` members getting one extra.
//!
//! Owns [`RangeAssignor`]. Uses the shared helpers of [`super`]. Invariant: each topic is assigned
//! independently, so with several topics the first members can get up to one extra partition per topic.

use std::collections::BTreeMap;

use super::{
    Assignor, GroupAssignment, MemberSubscription, PartitionsPerTopic, TopicPartition, empty_assignment,
    java_member_order, subscribed_partitions,
};

/// The `range` assignor (eager). See the module documentation.
///
/// # Example
///
/// ```
/// use std::collections::BTreeMap;
/// use kafka_event_bus::client::group::assignor::{Assignor, MemberSubscription, RangeAssignor, Subscription};
///
/// let metadata = BTreeMap::from([("t".to_owned(), 7)]);
/// let members: BTreeMap<_, _> = ["a", "b", "c"]
///     .into_iter()
///     .map(|id| (id.to_owned(), MemberSubscription::new(Subscription::new(["t"]))))
///     .collect();
/// let out = RangeAssignor.assign(&metadata, &members);
/// let sizes: Vec<usize> = out.values().map(Vec::len).collect();
/// assert_eq!(sizes, [3, 2, 2]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(
        &self,
        metadata: &PartitionsPerTopic,
        members: &BTreeMap<String, MemberSubscription>,
    ) -> GroupAssignment {
        let mut out = empty_assignment(members);
        let order = java_member_order(members);
        for (topic, count) in subscribed_partitions(metadata, members) {
            let consumers: Vec<&str> = order
                .iter()
                .copied()
                .filter(|id| members[*id].subscribes_to(&topic))
                .collect();
            let Ok(n_consumers) = i32::try_from(consumers.len()) else {
                continue;
            };
            if n_consumers == 0 {
                continue;
            }
            let per = count / n_consumers;
            let extra = count % n_consumers;
            for (i, id) in (0..).zip(consumers) {
                let start = per * i + i.min(extra);
                let len = per + i32::from(i < extra);
                if let Some(list) = out.get_mut(id) {
                    list.extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
                }
            }
        }
        out.values_mut().for_each(|v| v.sort());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn javadoc_example_two_topics_three_partitions() {
        // RangeAssignor's Javadoc: C0 gets t0p0, t0p1, t1p0, t1p1; C1 gets t0p2, t1p2.
        let metadata = topics(&[("t0", 3), ("t1", 3)]);
        let members = same_subscription(&["C0", "C1"], &["t0", "t1"]);
        let out = RangeAssignor.assign(&metadata, &members);
        assert_eq!(out["C0"], tps(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)]));
        assert_eq!(out["C1"], tps(&[("t0", 2), ("t1", 2)]));
    }

    #[test]
    fn static_members_come_first_in_instance_id_order() {
        let metadata = topics(&[("t", 3)]);
        let mut members = same_subscription(&["a", "b", "z"], &["t"]);
        members.get_mut("z").unwrap().group_instance_id = Some("i1".into());
        members.get_mut("b").unwrap().group_instance_id = Some("i0".into());
        let out = RangeAssignor.assign(&metadata, &members);
        assert_eq!(out["b"], tps(&[("t", 0)]));
        assert_eq!(out["z"], tps(&[("t", 1)]));
        assert_eq!(out["a"], tps(&[("t", 2)]));
    }

    #[test]
    fn unsubscribed_members_and_unknown_topics_get_nothing() {
        let metadata = topics(&[("t", 2), ("other", 5)]);
        let mut members = same_subscription(&["a"], &["t", "missing"]);
        members.insert("b".into(), member(&["nope"]));
        let out = RangeAssignor.assign(&metadata, &members);
        assert_eq!(out["a"], tps(&[("t", 0), ("t", 1)]));
        assert!(out["b"].is_empty());
    }

    proptest::proptest! {
        #[test]
        fn valid_and_complete(case in arb_case()) {
            let out = RangeAssignor.assign(&case.metadata, &case.members);
            check_valid(&case.metadata, &case.members, &out, true)?;
        }
    }
}
