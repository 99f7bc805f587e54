//! Test helpers shared by the assignors' tests: builders, a proptest strategy for groups, and the
//! checks every assignment must pass.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::{GroupAssignment, MemberSubscription, PartitionsPerTopic, Subscription, TopicPartition};

pub(crate) fn topics(list: &[(&str, i32)]) -> PartitionsPerTopic {
    list.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
}

pub(crate) fn member(topics: &[&str]) -> MemberSubscription {
    MemberSubscription::new(Subscription::new(topics.iter().copied()))
}

pub(crate) fn same_subscription(ids: &[&str], topics: &[&str]) -> BTreeMap<String, MemberSubscription> {
    ids.iter().map(|id| ((*id).to_owned(), member(topics))).collect()
}

pub(crate) fn tps(list: &[(&str, i32)]) -> Vec<TopicPartition> {
    list.iter().map(|(t, p)| TopicPartition::new(*t, *p)).collect()
}

/// A random group.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) metadata: PartitionsPerTopic,
    pub(crate) members: BTreeMap<String, MemberSubscription>,
    pub(crate) same_subscriptions: bool,
}

const TOPICS: [&str; 4] = ["a", "b", "c", "d"];

pub(crate) fn arb_case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(0..9i32, TOPICS.len()),
        1..7usize,
        any::<bool>(),
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<bool>(), TOPICS.len()),
                proptest::collection::vec((0..TOPICS.len(), 0..9i32), 0..6),
                proptest::option::of(0..3i32),
            ),
            7,
        ),
    )
        .prop_map(|(counts, n_members, same, raw)| {
            let metadata: PartitionsPerTopic = TOPICS
                .iter()
                .zip(counts)
                .map(|(t, n)| ((*t).to_owned(), n))
                .collect();
            let members = raw
                .into_iter()
                .take(n_members)
                .enumerate()
                .map(|(i, (subscribed, owned, generation))| {
                    let topics: Vec<String> = if same {
                        TOPICS[..3].iter().map(|t| (*t).to_owned()).collect()
                    } else {
                        TOPICS
                            .iter()
                            .zip(subscribed)
                            .filter(|(_, s)| *s)
                            .map(|(t, _)| (*t).to_owned())
                            .collect()
                    };
                    let mut sub = Subscription::new(topics);
                    sub.owned_partitions = owned
                        .into_iter()
                        .map(|(t, p)| TopicPartition::new(TOPICS[t], p))
                        .collect();
                    sub.generation_id = generation;
                    (format!("m{i}"), MemberSubscription::new(sub))
                })
                .collect();
            Case {
                metadata,
                members,
                same_subscriptions: same,
            }
        })
}

/// Every member has an entry; every assigned partition exists, goes to a subscriber and is assigned
/// once; with `complete`, every subscribed partition is assigned.
pub(crate) fn check_valid(
    metadata: &PartitionsPerTopic,
    members: &BTreeMap<String, MemberSubscription>,
    out: &GroupAssignment,
    complete: bool,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(out.keys().collect::<Vec<_>>(), members.keys().collect::<Vec<_>>());
    let mut seen = BTreeSet::new();
    for (id, parts) in out {
        for tp in parts {
            let count = metadata.get(&tp.topic).copied().unwrap_or(0);
            prop_assert!(tp.partition >= 0 && tp.partition < count, "{} does not exist", tp);
            prop_assert!(
                members[id].subscribes_to(&tp.topic),
                "{} given to non-subscriber {}",
                tp,
                id
            );
            prop_assert!(seen.insert(tp.clone()), "{} assigned twice", tp);
        }
    }
    if complete {
        for (topic, count) in metadata {
            if members.values().any(|m| m.subscribes_to(topic)) {
                for p in 0..*count {
                    prop_assert!(
                        seen.contains(&TopicPartition::new(topic.clone(), p)),
                        "{}-{} unassigned",
                        topic,
                        p
                    );
                }
            }
        }
    }
    Ok(())
}

/// Member sizes differ by at most one.
pub(crate) fn check_balanced(out: &GroupAssignment) -> Result<(), TestCaseError> {
    let sizes: Vec<usize> = out.values().map(Vec::len).collect();
    let (min, max) = (
        sizes.iter().min().copied().unwrap_or(0),
        sizes.iter().max().copied().unwrap_or(0),
    );
    prop_assert!(max - min <= 1, "unbalanced: {:?}", out);
    Ok(())
}
