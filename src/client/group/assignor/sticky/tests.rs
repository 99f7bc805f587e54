use std::collections::BTreeMap;

use proptest::prelude::*;

use super::super::test_support::*;
use super::super::{AssignmentChange, Subscription};
use super::*;

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn owning(topics: &[&str], owned: Vec<TopicPartition>, generation: i32) -> MemberSubscription {
    let mut s = Subscription::new(topics.iter().copied());
    s.owned_partitions = owned;
    s.generation_id = Some(generation);
    MemberSubscription::new(s)
}

/// One rebalance in which every member reports what it owns after the previous one.
fn rebalance(
    metadata: &PartitionsPerTopic,
    subscriptions: &BTreeMap<String, Vec<&str>>,
    owned: &GroupAssignment,
    generation: i32,
) -> GroupAssignment {
    let members = subscriptions
        .iter()
        .map(|(id, topics)| {
            let mine = owned.get(id).cloned().unwrap_or_default();
            (id.clone(), owning(topics, mine, generation))
        })
        .collect();
    CooperativeStickyAssignor.assign(metadata, &members)
}

#[test]
fn fresh_group_of_two_over_six_partitions_alternates() {
    let out = CooperativeStickyAssignor.assign(&topics(&[("t", 6)]), &same_subscription(&["a", "b"], &["t"]));
    assert_eq!(out["a"], vec![tp(0), tp(2), tp(4)]);
    assert_eq!(out["b"], vec![tp(1), tp(3), tp(5)]);
}

#[test]
fn third_member_joins_two_member_group_in_two_phases() {
    let metadata = topics(&[("t", 6)]);
    let subs: BTreeMap<String, Vec<&str>> = ["a", "b", "c"]
        .iter()
        .map(|id| ((*id).to_owned(), vec!["t"]))
        .collect();
    let gen1: GroupAssignment = BTreeMap::from([
        ("a".into(), vec![tp(0), tp(2), tp(4)]),
        ("b".into(), vec![tp(1), tp(3), tp(5)]),
    ]);

    // Phase 1: a and b each give up one partition, which nobody gets yet.
    let gen2 = rebalance(&metadata, &subs, &gen1, 1);
    assert_eq!(gen2["a"], vec![tp(0), tp(2)]);
    assert_eq!(gen2["b"], vec![tp(1), tp(3)]);
    assert_eq!(gen2["c"], vec![]);
    let a_change = AssignmentChange::between(&gen1["a"], &gen2["a"]);
    assert_eq!(a_change.revoked, vec![tp(4)]);
    assert!(a_change.added.is_empty());
    assert!(a_change.needs_rejoin());
    assert_eq!(
        AssignmentChange::between(&gen1["b"], &gen2["b"]).revoked,
        vec![tp(5)]
    );

    // Phase 2: the revoked partitions go to c; a and b keep everything (nothing else is revoked).
    let gen3 = rebalance(&metadata, &subs, &gen2, 2);
    assert_eq!(gen3["a"], vec![tp(0), tp(2)]);
    assert_eq!(gen3["b"], vec![tp(1), tp(3)]);
    assert_eq!(gen3["c"], vec![tp(4), tp(5)]);
    for id in ["a", "b", "c"] {
        assert!(
            !AssignmentChange::between(&gen2[id], &gen3[id]).needs_rejoin(),
            "{id}"
        );
    }
    // Stable: another rebalance changes nothing.
    assert_eq!(rebalance(&metadata, &subs, &gen3, 3), gen3);
}

#[test]
fn java_add_remove_consumer_one_topic() {
    // AbstractStickyAssignorTest.testAddRemoveConsumerOneTopic, cooperative flavour: consumer1 keeps
    // t-0 and t-1; t-2 is revoked from it and only reaches consumer2 in the follow-up rebalance.
    let metadata = topics(&[("t", 3)]);
    let alone = CooperativeStickyAssignor.assign(&metadata, &same_subscription(&["consumer1"], &["t"]));
    assert_eq!(alone["consumer1"], vec![tp(0), tp(1), tp(2)]);
    let subs: BTreeMap<String, Vec<&str>> = ["consumer1", "consumer2"]
        .iter()
        .map(|id| ((*id).to_owned(), vec!["t"]))
        .collect();
    let first = rebalance(&metadata, &subs, &alone, 1);
    assert_eq!(first["consumer1"], vec![tp(0), tp(1)]);
    assert!(first["consumer2"].is_empty());
    let second = rebalance(&metadata, &subs, &first, 2);
    assert_eq!(second["consumer1"], vec![tp(0), tp(1)]);
    assert_eq!(second["consumer2"], vec![tp(2)]);
    // consumer2 leaves again: consumer1 takes t-2 back at once (nobody owns it any more).
    let subs: BTreeMap<String, Vec<&str>> = BTreeMap::from([("consumer1".to_owned(), vec!["t"])]);
    assert_eq!(
        rebalance(&metadata, &subs, &second, 3)["consumer1"],
        vec![tp(0), tp(1), tp(2)]
    );
}

#[test]
fn a_leaving_members_partitions_go_out_at_once() {
    let metadata = topics(&[("t", 6)]);
    let subs: BTreeMap<String, Vec<&str>> = ["a", "b"]
        .iter()
        .map(|id| ((*id).to_owned(), vec!["t"]))
        .collect();
    let before: GroupAssignment = BTreeMap::from([
        ("a".into(), vec![tp(0), tp(2)]),
        ("b".into(), vec![tp(1), tp(3)]),
        ("c".into(), vec![tp(4), tp(5)]),
    ]);
    let out = rebalance(&metadata, &subs, &before, 5);
    assert_eq!(out["a"], vec![tp(0), tp(2), tp(4)]);
    assert_eq!(out["b"], vec![tp(1), tp(3), tp(5)]);
}

#[test]
fn same_generation_double_claim_is_withheld_and_newer_generation_wins() {
    let metadata = topics(&[("t", 2)]);
    let members = BTreeMap::from([
        ("a".to_owned(), owning(&["t"], vec![tp(0)], 3)),
        ("b".to_owned(), owning(&["t"], vec![tp(0)], 3)),
    ]);
    let out = CooperativeStickyAssignor.assign(&metadata, &members);
    // t-0 was claimed twice: it is revoked from both, and handed out a rebalance later.
    assert!(!out.values().flatten().any(|p| *p == tp(0)), "{out:?}");
    assert!(out.values().flatten().any(|p| *p == tp(1)));

    let members = BTreeMap::from([
        ("a".to_owned(), owning(&["t"], vec![tp(0)], 2)),
        ("b".to_owned(), owning(&["t"], vec![tp(0)], 3)),
    ]);
    let out = CooperativeStickyAssignor.assign(&metadata, &members);
    assert_eq!(out["b"], vec![tp(0)]);
    assert_eq!(out["a"], vec![tp(1)]);
}

#[test]
fn generation_falls_back_to_user_data() {
    let mut m = owning(&["t"], vec![], 0);
    m.subscription.generation_id = None;
    assert_eq!(member_generation(&m), None);
    m.subscription.user_data = CooperativeStickyAssignor.subscription_user_data(Some(7));
    assert_eq!(member_generation(&m), Some(7));
    m.subscription.user_data = Some(Bytes::from_static(b"xy"));
    assert_eq!(member_generation(&m), Some(DEFAULT_GENERATION));
    assert_eq!(
        CooperativeStickyAssignor.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    );
}

#[test]
fn general_case_different_subscriptions() {
    // c1 subscribes to t1 (3 partitions), c2 to t1 and t2 (2 partitions). Topics with fewer
    // subscribers go first: t2 fills c2, then t1 goes to the least-loaded c1.
    let metadata = topics(&[("t1", 3), ("t2", 2)]);
    let members = BTreeMap::from([
        ("c1".to_owned(), member(&["t1"])),
        ("c2".to_owned(), member(&["t1", "t2"])),
    ]);
    let out = CooperativeStickyAssignor.assign(&metadata, &members);
    assert_eq!(out["c1"], tps(&[("t1", 0), ("t1", 1), ("t1", 2)]));
    assert_eq!(out["c2"], tps(&[("t2", 0), ("t2", 1)]));
}

#[test]
fn general_case_moves_only_what_balance_needs_and_withholds_it() {
    // c1 owns all of t (4 partitions); c2 now also subscribes to t and to u (2 partitions).
    let metadata = topics(&[("t", 4), ("u", 2)]);
    let members = BTreeMap::from([
        (
            "c1".to_owned(),
            owning(&["t"], tps(&[("t", 0), ("t", 1), ("t", 2), ("t", 3)]), 1),
        ),
        ("c2".to_owned(), owning(&["t", "u"], vec![], 1)),
    ]);
    let out = CooperativeStickyAssignor.assign(&metadata, &members);
    // c2 gets u at once; balance (4 vs 2) is within reach of one move, so c1 keeps at least 3 of t.
    assert!(
        out["c2"].contains(&TopicPartition::new("u", 0)) && out["c2"].contains(&TopicPartition::new("u", 1))
    );
    assert!(out["c1"].len() >= 3, "{out:?}");
    // Nothing c1 owned is given to c2 in this round.
    assert!(out["c2"].iter().all(|p| p.topic == "u"), "{out:?}");
}

/// A membership change: which of the 7 possible members are in the group before and after.
fn arb_history() -> impl Strategy<Value = (Case, Vec<bool>)> {
    (arb_case(), proptest::collection::vec(any::<bool>(), 7))
}

proptest! {
    #[test]
    fn valid_and_complete_for_fresh_groups(case in arb_case()) {
        let mut members = case.members.clone();
        for m in members.values_mut() {
            m.subscription.owned_partitions.clear();
        }
        let out = CooperativeStickyAssignor.assign(&case.metadata, &members);
        check_valid(&case.metadata, &members, &out, true)?;
        if case.same_subscriptions {
            check_balanced(&out)?;
        }
    }

    #[test]
    fn valid_for_arbitrary_claims(case in arb_case()) {
        let out = CooperativeStickyAssignor.assign(&case.metadata, &case.members);
        check_valid(&case.metadata, &case.members, &out, false)?;
    }

    /// Form a group, change its membership, and run the cooperative two-phase protocol.
    #[test]
    fn cooperative_rebalance_is_sticky_safe_and_converges((case, after) in arb_history()) {
        let metadata = case.metadata.clone();
        let all: BTreeMap<String, Vec<&str>> = case.members.iter()
            .map(|(id, m)| (id.clone(), m.subscription.topics.iter().map(String::as_str).collect()))
            .collect();
        let mut fresh = case.members.clone();
        fresh.values_mut().for_each(|m| m.subscription.owned_partitions.clear());
        let gen1 = CooperativeStickyAssignor.assign(&metadata, &fresh);

        // New membership: the members flagged in `after` (at least one).
        let mut subs: BTreeMap<String, Vec<&str>> =
            all.iter().zip(&after).filter(|(_, keep)| **keep).map(|((id, t), _)| (id.clone(), t.clone())).collect();
        if subs.is_empty() {
            let (id, t) = all.iter().next().unwrap();
            subs.insert(id.clone(), t.clone());
        }
        let gen2 = rebalance(&metadata, &subs, &gen1, 1);
        let members2: BTreeMap<String, MemberSubscription> =
            subs.iter().map(|(id, t)| (id.clone(), owning(t, vec![], 1))).collect();
        check_valid(&metadata, &members2, &gen2, false)?;

        // The cooperative rule: a partition whose owner is still in the group goes to no one else.
        let owner: BTreeMap<&TopicPartition, &String> =
            gen1.iter().filter(|(id, _)| subs.contains_key(*id)).flat_map(|(id, ps)| ps.iter().map(move |p| (p, id))).collect();
        for (id, ps) in &gen2 {
            for p in ps {
                if let Some(o) = owner.get(p) {
                    prop_assert_eq!(*o, id, "{} taken from its owner in the same rebalance", p);
                }
            }
        }
        // Stickiness: with equal subscriptions, a staying member keeps min(owned, quota) partitions.
        if case.same_subscriptions {
            let total: usize = metadata.iter().filter(|(t, _)| subs.values().next().unwrap().contains(&t.as_str())).map(|(_, n)| *n as usize).sum();
            let min_quota = total / subs.len();
            for (id, ps) in &gen2 {
                let old = gen1.get(id).cloned().unwrap_or_default();
                let kept = AssignmentChange::between(&old, ps).kept.len();
                prop_assert!(kept >= old.len().min(min_quota), "{} kept {} of {:?}", id, kept, old);
            }
        }

        // Phase 2: members revoked what they lost; the next rebalance completes the assignment.
        let gen3 = rebalance(&metadata, &subs, &gen2, 2);
        check_valid(&metadata, &members2, &gen3, true)?;
        for (id, ps) in &gen3 {
            let change = AssignmentChange::between(&gen2[id], ps);
            if case.same_subscriptions {
                prop_assert!(change.revoked.is_empty(), "{} revoked {:?} in phase 2", id, change.revoked);
            }
        }
        if case.same_subscriptions {
            check_balanced(&gen3)?;
            // And it is stable.
            prop_assert_eq!(rebalance(&metadata, &subs, &gen3, 3), gen3);
        }
    }
}
