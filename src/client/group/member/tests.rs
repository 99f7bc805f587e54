//! Simulation tests of [`Member`] on a virtual clock: no sockets, no sleeps.

use std::{sync::Arc, time::Duration};

use kafka_protocol::messages::{
    BrokerId, FindCoordinatorResponse, HeartbeatResponse, JoinGroupResponse, SyncGroupResponse,
    join_group_response::JoinGroupResponseMember,
};

use super::*;
use crate::{
    client::group::assignor::{CooperativeStickyAssignor, RangeAssignor},
    protocol::StrBytes,
};

fn timeouts() -> HeartbeatConfig {
    HeartbeatConfig {
        session_timeout: Duration::from_secs(6),
        heartbeat_interval: Duration::from_secs(1),
        max_poll_interval: Duration::from_secs(20),
        retry_backoff: Duration::from_millis(100),
    }
}

fn config(cooperative: bool) -> MemberConfig {
    let assignor: Arc<dyn Assignor> = if cooperative {
        Arc::new(CooperativeStickyAssignor)
    } else {
        Arc::new(RangeAssignor)
    };
    MemberConfig::new("g", ["t"])
        .with_assignors(vec![assignor])
        .with_timeouts(timeouts())
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn coordinator() -> FindCoordinatorResponse {
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(7))
        .with_host(s("broker-7"))
        .with_port(9092)
}

fn server(code: ResponseError) -> Failure {
    Failure::Server(ServerError { code, message: None })
}

fn join_ok(
    member: &str,
    leader: &str,
    generation: i32,
    protocol: &str,
    members: &[(&str, Bytes)],
) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_member_id(s(member))
        .with_leader(s(leader))
        .with_generation_id(generation)
        .with_protocol_name(Some(s(protocol)))
        .with_members(
            members
                .iter()
                .map(|(id, meta)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(id))
                        .with_metadata(meta.clone())
                })
                .collect(),
        )
}

fn sync_ok(partitions: Vec<TopicPartition>) -> SyncGroupResponse {
    SyncGroupResponse::default().with_assignment(Assignment::new(partitions).encode().unwrap())
}

fn events(m: &mut Member) -> Vec<MemberEvent> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

fn join_request(m: &mut Member, now: Instant) -> (String, Vec<(String, Bytes)>) {
    match m.poll_request(now) {
        Some(GroupRequest::JoinGroup {
            member_id, protocols, ..
        }) => (member_id, protocols),
        other => panic!("expected JoinGroup, got {other:?}"),
    }
}

/// The variant name of a request, for assertions.
fn kind(request: &GroupRequest) -> &'static str {
    match request {
        GroupRequest::FindCoordinator => "FindCoordinator",
        GroupRequest::Metadata { .. } => "Metadata",
        GroupRequest::JoinGroup { .. } => "JoinGroup",
        GroupRequest::SyncGroup { .. } => "SyncGroup",
        GroupRequest::Heartbeat { .. } => "Heartbeat",
        GroupRequest::LeaveGroup { .. } => "LeaveGroup",
    }
}

/// Asserts that the member's next request at `now` is a `expected` ("Heartbeat", "LeaveGroup", ...).
fn expect(m: &mut Member, now: Instant, expected: &str) -> GroupRequest {
    match m.poll_request(now) {
        Some(request) if kind(&request) == expected => request,
        other => panic!("expected {expected}, got {other:?}"),
    }
}

/// A new member with `config` that found its coordinator and sent its first JoinGroup at `now`: the
/// member and the JoinGroup's protocols.
fn joining(config: MemberConfig, now: Instant) -> (Member, Vec<(String, Bytes)>) {
    let mut m = Member::new(config, now);
    expect(&mut m, now, "FindCoordinator");
    m.handle_coordinator(now, Ok(coordinator()));
    let (_, protocols) = join_request(&mut m, now);
    (m, protocols)
}

/// Answers a JoinGroup that sent `protocols` by making the member leader of generation `generation`
/// with "other" beside it, answers its Metadata with 4 partitions of "t": the assignments of the
/// leader's SyncGroup.
fn lead(
    m: &mut Member,
    now: Instant,
    generation: i32,
    protocol: &str,
    protocols: &[(String, Bytes)],
) -> Vec<(String, Bytes)> {
    let members = me_and_other(protocols);
    m.handle_join(now, Ok(join_ok("me", "me", generation, protocol, &members)));
    expect(m, now, "Metadata");
    m.handle_metadata(now, Ok(BTreeMap::from([("t".to_owned(), 4)])));
    match expect(m, now, "SyncGroup") {
        GroupRequest::SyncGroup { assignments, .. } => assignments,
        _ => unreachable!(),
    }
}

/// The members of a JoinGroup answer naming this member leader: "me" with the `protocols` it sent, and
/// "other" subscribed to "t".
fn me_and_other(protocols: &[(String, Bytes)]) -> [(&'static str, Bytes); 2] {
    let other = Subscription::new(["t"]).encode().unwrap();
    [("me", protocols[0].1.clone()), ("other", other)]
}

/// Sends the heartbeat due at `now` and answers it with `response`.
fn heartbeat(m: &mut Member, now: Instant, response: Result<HeartbeatResponse, Failure>) {
    expect(m, now, "Heartbeat");
    answer_heartbeat(m, now, response);
}

/// An eager member told by its heartbeat at `now` that the group rebalances: it revokes everything and
/// rejoins; the JoinGroup's protocols.
fn rejoin_eagerly(m: &mut Member, now: Instant) -> Vec<(String, Bytes)> {
    heartbeat(m, now, Ok(rebalancing()));
    let _ = m.poll_request(now);
    events(m);
    m.handle_revoked(now);
    join_request(m, now).1
}

/// Answers the heartbeat sent in the member's current generation.
fn answer_heartbeat(m: &mut Member, now: Instant, response: Result<HeartbeatResponse, Failure>) {
    let sent = m.generation.clone().expect("a heartbeat needs a generation");
    m.handle_heartbeat(now, &sent, response);
}

/// Drives a follower from nothing to STABLE with `partitions`, generation 1.
fn stable_follower(cooperative: bool, partitions: Vec<TopicPartition>, now: Instant) -> Member {
    let mut m = Member::new(config(cooperative), now);
    assert_eq!(m.poll_request(now), Some(GroupRequest::FindCoordinator));
    m.handle_coordinator(now, Ok(coordinator()));
    join_request(&mut m, now);
    let protocol = if cooperative {
        "cooperative-sticky"
    } else {
        "range"
    };
    m.handle_join(now, Ok(join_ok("me", "other", 1, protocol, &[])));
    expect(&mut m, now, "SyncGroup");
    m.handle_sync(now, Ok(sync_ok(partitions)));
    assert_eq!(m.state(), MemberState::Stable);
    events(&mut m);
    m
}

#[test]
fn member_id_required_round_trip_then_leader_assigns_and_heartbeats() {
    let t0 = Instant::now();
    let mut m = Member::new(config(false), t0);
    assert_eq!(m.poll_request(t0), Some(GroupRequest::FindCoordinator));
    assert_eq!(m.poll_request(t0), None, "one group request at a time");
    m.handle_coordinator(t0, Ok(coordinator()));
    assert_eq!(m.coordinator(), Some((7, "broker-7:9092")));

    let (id, protocols) = join_request(&mut m, t0);
    assert_eq!(id, "");
    assert_eq!(protocols[0].0, "range");
    let required = JoinGroupResponse::default()
        .with_error_code(ResponseError::MemberIdRequired.code())
        .with_member_id(s("me-1"));
    m.handle_join(t0, Ok(required));
    let (id, protocols) = join_request(&mut m, t0);
    assert_eq!(
        id, "me-1",
        "rejoins at once with the id the coordinator handed out"
    );

    let other = Subscription::new(["t"]).encode().unwrap();
    m.handle_join(
        t0,
        Ok(join_ok(
            "me-1",
            "me-1",
            3,
            "range",
            &[("me-1", protocols[0].1.clone()), ("me-2", other)],
        )),
    );
    assert_eq!(
        m.poll_request(t0),
        Some(GroupRequest::Metadata {
            topics: vec!["t".to_owned()]
        })
    );
    m.handle_metadata(t0, Ok(BTreeMap::from([("t".to_owned(), 4)])));
    let Some(GroupRequest::SyncGroup {
        generation,
        assignments,
    }) = m.poll_request(t0)
    else {
        panic!("expected SyncGroup")
    };
    assert_eq!(generation.generation_id, 3);
    let decoded: BTreeMap<_, _> = assignments
        .iter()
        .map(|(id, b)| (id.clone(), Assignment::decode(b).unwrap().partitions))
        .collect();
    assert_eq!(decoded["me-1"], vec![tp(0), tp(1)]);
    assert_eq!(decoded["me-2"], vec![tp(2), tp(3)]);

    m.handle_sync(t0, Ok(sync_ok(decoded["me-1"].clone())));
    assert_eq!(m.state(), MemberState::Stable);
    assert_eq!(m.generation().map(|g| g.generation_id), Some(3));
    let ev = events(&mut m);
    assert!(
        matches!(&ev[..], [MemberEvent::Assigned { added, .. }] if *added == vec![tp(0), tp(1)]),
        "{ev:?}"
    );

    // Heartbeats every interval on the virtual clock, never two at once.
    assert_eq!(m.poll_request(t0), None);
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    let t1 = t0 + Duration::from_secs(1);
    expect(&mut m, t1, "Heartbeat");
    assert_eq!(m.poll_request(t1 + Duration::from_secs(3)), None);
    answer_heartbeat(&mut m, t1, Ok(HeartbeatResponse::default()));
    expect(&mut m, t0 + Duration::from_secs(2), "Heartbeat");
}

#[test]
fn eager_rebalance_revokes_everything_before_rejoining() {
    let t0 = Instant::now();
    let mut m = stable_follower(false, vec![tp(0), tp(1)], t0);
    let t1 = t0 + Duration::from_secs(1);
    heartbeat(&mut m, t1, Ok(rebalancing()));
    // The consumer must revoke (and commit, with the still-valid generation) before JoinGroup goes out.
    assert_eq!(m.poll_request(t1), None);
    assert_eq!(
        events(&mut m),
        vec![MemberEvent::Revoke {
            partitions: vec![tp(0), tp(1)],
            lost: false
        }]
    );
    assert!(m.generation().is_some(), "commit on revoke needs the generation");
    assert_eq!(m.poll_request(t1), None, "waits for handle_revoked");
    m.handle_revoked(t1);
    assert!(m.owned().is_empty());
    let (id, _) = join_request(&mut m, t1);
    assert_eq!(id, "me");
}

#[test]
fn cooperative_revokes_only_moved_partitions_then_rejoins() {
    let t0 = Instant::now();
    let mut m = stable_follower(true, vec![tp(0), tp(1), tp(2)], t0);
    let t1 = t0 + Duration::from_secs(1);
    heartbeat(&mut m, t1, Ok(rebalancing()));
    // Cooperative: nothing revoked before joining, owned partitions travel in the subscription.
    let (_, protocols) = join_request(&mut m, t1);
    let sub = Subscription::decode(&protocols[0].1).unwrap();
    assert_eq!(sub.owned_partitions, vec![tp(0), tp(1), tp(2)]);
    assert_eq!(sub.generation_id, Some(1));
    assert!(events(&mut m).is_empty());

    m.handle_join(t1, Ok(join_ok("me", "other", 2, "cooperative-sticky", &[])));
    expect(&mut m, t1, "SyncGroup");
    m.handle_sync(t1, Ok(sync_ok(vec![tp(0), tp(1)])));
    assert_eq!(
        events(&mut m),
        vec![
            MemberEvent::Revoke {
                partitions: vec![tp(2)],
                lost: false
            },
            MemberEvent::Assigned {
                added: vec![],
                assignment: vec![tp(0), tp(1)],
                generation: Generation {
                    generation_id: 2,
                    member_id: "me".into(),
                    protocol_name: Some("cooperative-sticky".into())
                }
            }
        ]
    );
    assert_eq!(m.poll_request(t1), None, "rejoin waits for the revocation");
    m.handle_revoked(t1);
    assert_eq!(m.owned(), &[tp(0), tp(1)]);
    let (_, protocols) = join_request(&mut m, t1);
    let sub = Subscription::decode(&protocols[0].1).unwrap();
    assert_eq!(sub.owned_partitions, vec![tp(0), tp(1)]);
}

#[test]
fn coordinator_loss_rediscovers_without_rejoining() {
    let t0 = Instant::now();
    let mut m = stable_follower(false, vec![tp(0)], t0);
    let t1 = t0 + Duration::from_secs(1);
    heartbeat(&mut m, t1, Err(Failure::Transport("connection reset".into())));
    assert_eq!(m.coordinator(), None);
    assert_eq!(m.poll_request(t1), None, "backs off first");
    let t2 = t1 + Duration::from_millis(100);
    m.handle_timeout(t2);
    assert_eq!(m.poll_request(t2), Some(GroupRequest::FindCoordinator));
    m.handle_coordinator(t2, Ok(coordinator()));
    expect(&mut m, t2, "Heartbeat");
    assert_eq!(m.state(), MemberState::Stable);
    assert!(events(&mut m).is_empty(), "partitions kept");
}

#[test]
fn illegal_generation_loses_partitions_and_rejoins_without_generation() {
    let t0 = Instant::now();
    let mut m = stable_follower(true, vec![tp(0)], t0);
    let t1 = t0 + Duration::from_secs(1);
    heartbeat(
        &mut m,
        t1,
        Ok(HeartbeatResponse::default().with_error_code(ResponseError::UnknownMemberId.code())),
    );
    assert_eq!(m.poll_request(t1), None);
    assert_eq!(
        events(&mut m),
        vec![MemberEvent::Revoke {
            partitions: vec![tp(0)],
            lost: true
        }]
    );
    m.handle_revoked(t1);
    let (id, protocols) = join_request(&mut m, t1);
    assert_eq!(id, "", "unknown member id is forgotten");
    let sub = Subscription::decode(&protocols[0].1).unwrap();
    assert!(sub.owned_partitions.is_empty());
    assert_eq!(sub.generation_id, None);
}

#[test]
fn session_expiry_without_heartbeat_answers_rediscovers_and_rejoins() {
    let t0 = Instant::now();
    let mut m = stable_follower(false, vec![tp(0)], t0);
    let t1 = t0 + Duration::from_secs(1);
    expect(&mut m, t1, "Heartbeat");
    // No answer ever comes; the session deadline is the next timeout.
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(6)));
    let t6 = t0 + Duration::from_secs(6);
    m.handle_timeout(t6);
    assert_eq!(m.coordinator(), None);
    m.handle_timeout(t6 + Duration::from_millis(100));
    assert_eq!(
        m.poll_request(t6 + Duration::from_millis(100)),
        Some(GroupRequest::FindCoordinator)
    );
}

#[test]
fn poll_timeout_revokes_then_leaves_and_rejoins_on_progress() {
    let t0 = Instant::now();
    let mut m = stable_follower(false, vec![tp(0)], t0);
    // Heartbeats keep the session alive while the application is stuck.
    let mut now = t0;
    while now < t0 + Duration::from_secs(19) {
        now += Duration::from_secs(1);
        m.handle_timeout(now);
        if let Some(GroupRequest::Heartbeat { .. }) = m.poll_request(now) {
            answer_heartbeat(&mut m, now, Ok(HeartbeatResponse::default()));
        }
    }
    assert!(events(&mut m).is_empty());
    let t20 = t0 + Duration::from_secs(20);
    assert!(m.poll_timeout().is_some_and(|at| at <= t20));
    m.handle_timeout(t20);
    assert_eq!(
        events(&mut m),
        vec![MemberEvent::Revoke {
            partitions: vec![tp(0)],
            lost: false
        }]
    );
    m.handle_revoked(t20);
    assert_eq!(
        m.poll_request(t20),
        Some(GroupRequest::LeaveGroup {
            member_id: "me".into(),
            reason: "consumer poll timeout has expired"
        })
    );
    assert_eq!(
        events(&mut m),
        vec![MemberEvent::Left {
            reason: LeaveReason::PollTimeout
        }]
    );
    m.handle_leave(t20);
    assert_eq!(
        m.poll_request(t20 + Duration::from_secs(5)),
        None,
        "stays out while stalled"
    );
    m.handle_poll(t20 + Duration::from_secs(5));
    let (id, _) = join_request(&mut m, t20 + Duration::from_secs(5));
    assert_eq!(id, "", "a member that left joins as a new one");
}

#[test]
fn close_revokes_then_leaves_dynamic_but_not_static() {
    let t0 = Instant::now();
    let mut m = stable_follower(false, vec![tp(0)], t0);
    m.close(t0);
    assert!(matches!(&events(&mut m)[..], [MemberEvent::Revoke { .. }]));
    assert!(m.generation().is_some());
    m.handle_revoked(t0);
    expect(&mut m, t0, "LeaveGroup");
    assert!(!m.is_closed());
    m.handle_leave(t0);
    assert!(m.is_closed());

    let mut cfg = config(false).with_group_instance_id("worker-1");
    cfg.topics = vec!["t".into()];
    let mut m = Member::new(cfg, t0);
    assert_eq!(m.poll_request(t0), Some(GroupRequest::FindCoordinator));
    m.handle_coordinator(t0, Ok(coordinator()));
    join_request(&mut m, t0);
    m.handle_join(t0, Ok(join_ok("static-me", "x", 1, "range", &[])));
    m.poll_request(t0);
    m.handle_sync(t0, Ok(sync_ok(vec![tp(1)])));
    events(&mut m);
    m.close(t0);
    events(&mut m);
    m.handle_revoked(t0);
    assert_eq!(
        m.poll_request(t0),
        None,
        "static members keep their slot: no LeaveGroup"
    );
    assert!(m.is_closed());
}

#[test]
fn fenced_instance_is_fatal() {
    let t0 = Instant::now();
    let mut m = stable_follower(false, vec![], t0);
    let t1 = t0 + Duration::from_secs(1);
    heartbeat(
        &mut m,
        t1,
        Ok(HeartbeatResponse::default().with_error_code(ResponseError::FencedInstanceId.code())),
    );
    assert!(matches!(&events(&mut m)[..], [MemberEvent::Fatal { .. }]));
    assert!(m.is_closed());
    assert_eq!(m.poll_request(t1 + Duration::from_secs(5)), None);
}

#[test]
fn join_errors_rejoin_or_rediscover() {
    let t0 = Instant::now();
    let (mut m, _) = joining(config(false), t0);
    m.handle_join(t0, Err(server(ResponseError::NotCoordinator)));
    assert_eq!(m.coordinator(), None);
    m.handle_timeout(t0 + Duration::from_millis(100));
    assert_eq!(
        m.poll_request(t0 + Duration::from_millis(100)),
        Some(GroupRequest::FindCoordinator)
    );
}

#[test]
fn heartbeats_go_on_while_revoking_so_a_slow_revocation_keeps_membership() {
    let t0 = Instant::now();
    let mut m = stable_follower(false, vec![tp(0), tp(1)], t0);
    let t1 = t0 + Duration::from_secs(1);
    heartbeat(&mut m, t1, Ok(rebalancing()));
    assert_eq!(m.poll_request(t1), None);
    assert!(matches!(events(&mut m)[..], [MemberEvent::Revoke { .. }]));
    // The revocation takes longer than the session timeout: the member keeps heartbeating all along.
    let mut at = t1;
    for _ in 0..10 {
        at += Duration::from_secs(1);
        assert!(
            m.poll_timeout().is_some_and(|t| t <= at),
            "a heartbeat timer runs while revoking"
        );
        m.handle_timeout(at);
        assert!(
            matches!(m.poll_request(at), Some(GroupRequest::Heartbeat { .. })),
            "heartbeat while revoking at +{:?}",
            at - t1
        );
        answer_heartbeat(&mut m, at, Ok(rebalancing()));
        assert_eq!(
            m.poll_request(at),
            None,
            "no JoinGroup before the revocation ends"
        );
    }
    assert!(
        m.generation().is_some(),
        "the revoke commit still has its generation"
    );
    m.handle_revoked(at);
    let (id, _) = join_request(&mut m, at);
    assert_eq!(id, "me");
}

#[test]
fn a_revocation_whose_commit_lost_the_coordinator_rediscovers_it_before_rejoining() {
    let t0 = Instant::now();
    let mut m = stable_follower(false, vec![tp(0), tp(1)], t0);
    let t1 = t0 + Duration::from_secs(1);
    heartbeat(&mut m, t1, Ok(rebalancing()));
    assert_eq!(m.poll_request(t1), None);
    assert!(matches!(events(&mut m)[..], [MemberEvent::Revoke { .. }]));
    // The revoke commit's connection is cut: the commit is retriable, the coordinator is looked up
    // again while the revocation is still open, and the generation stays for the retried commit.
    let cut = Failure::Transport("connection reset".into());
    assert!(cut.is_retriable());
    m.handle_commit_error(t1, &cut);
    assert_eq!(m.coordinator(), None);
    let t2 = t1 + Duration::from_millis(100);
    assert_eq!(m.poll_request(t2), Some(GroupRequest::FindCoordinator));
    m.handle_coordinator(t2, Ok(coordinator()));
    assert!(
        m.generation().is_some(),
        "the retried commit needs the generation"
    );
    assert_eq!(
        m.poll_request(t2),
        None,
        "no JoinGroup before the revocation ends"
    );
    m.handle_revoked(t2);
    let (id, _) = join_request(&mut m, t2);
    assert_eq!(id, "me");

    for (code, retriable) in [
        (ResponseError::NotCoordinator, true),
        (ResponseError::CoordinatorNotAvailable, true),
        (ResponseError::CoordinatorLoadInProgress, true),
        (ResponseError::RequestTimedOut, true),
        (ResponseError::UnknownMemberId, false),
        (ResponseError::IllegalGeneration, false),
        (ResponseError::RebalanceInProgress, false),
    ] {
        assert_eq!(server(code).is_retriable(), retriable, "{code:?}");
    }
}

fn rebalancing() -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(ResponseError::RebalanceInProgress.code())
}

/// Drives a member from nothing to STABLE as the leader of "me" and "other", generation 1.
fn stable_leader(now: Instant) -> Member {
    stable_leader_with(config(false), now)
}

/// [`stable_leader`] with `config` (an eager assignor).
fn stable_leader_with(config: MemberConfig, now: Instant) -> Member {
    let (mut m, protocols) = joining(config, now);
    lead(&mut m, now, 1, "range", &protocols);
    m.handle_sync(now, Ok(sync_ok(vec![tp(0), tp(1)])));
    assert_eq!(m.state(), MemberState::Stable);
    events(&mut m);
    m
}

fn decoded(assignments: &[(String, Bytes)]) -> BTreeMap<String, Vec<TopicPartition>> {
    assignments
        .iter()
        .map(|(id, b)| (id.clone(), Assignment::decode(b).unwrap().partitions))
        .collect()
}

#[test]
fn a_closing_leader_completes_a_started_rebalance_before_leaving() {
    // A coordinator that keeps a departed leader as the leader of the rebalance under way would wait
    // for its assignment for ever: the leader finishes the rebalance, handing everything over, first.
    let t0 = Instant::now();
    let mut m = stable_leader(t0);
    m.close(t0);
    assert!(matches!(&events(&mut m)[..], [MemberEvent::Revoke { .. }]));
    m.handle_revoked(t0);
    assert!(
        matches!(m.poll_request(t0), Some(GroupRequest::Heartbeat { .. })),
        "the closing leader checks whether a rebalance started before it leaves"
    );
    answer_heartbeat(&mut m, t0, Ok(rebalancing()));
    let (id, protocols) = join_request(&mut m, t0);
    assert_eq!(id, "me");
    m.handle_join(t0, Ok(join_ok("me", "me", 2, "range", &me_and_other(&protocols))));
    expect(&mut m, t0, "Metadata");
    m.handle_metadata(t0, Ok(BTreeMap::from([("t".to_owned(), 4)])));
    let Some(GroupRequest::SyncGroup {
        generation,
        assignments,
    }) = m.poll_request(t0)
    else {
        panic!("expected the leader's SyncGroup")
    };
    assert_eq!(generation.generation_id, 2);
    let decoded = decoded(&assignments);
    assert_eq!(decoded["me"], Vec::new(), "the leaving leader keeps nothing");
    assert_eq!(decoded["other"], vec![tp(0), tp(1), tp(2), tp(3)]);
    assert!(!m.is_closed());
    m.handle_sync(t0, Ok(sync_ok(Vec::new())));
    assert!(
        matches!(m.poll_request(t0), Some(GroupRequest::LeaveGroup { .. })),
        "leaves once the assignment is in"
    );
    assert!(
        !events(&mut m)
            .iter()
            .any(|e| matches!(e, MemberEvent::Assigned { .. })),
        "a closing member is assigned nothing"
    );
    m.handle_leave(t0);
    assert!(m.is_closed());
}

#[test]
fn a_closing_leader_of_a_stable_group_leaves_after_one_heartbeat() {
    let t0 = Instant::now();
    let mut m = stable_leader(t0);
    m.close(t0);
    events(&mut m);
    m.handle_revoked(t0);
    heartbeat(&mut m, t0, Ok(HeartbeatResponse::default()));
    expect(&mut m, t0, "LeaveGroup");
}

#[test]
fn a_closing_leader_leaves_anyway_after_a_session_timeout() {
    let t0 = Instant::now();
    let mut m = stable_leader(t0);
    m.close(t0);
    events(&mut m);
    m.handle_revoked(t0);
    heartbeat(&mut m, t0, Ok(rebalancing()));
    join_request(&mut m, t0);
    // The coordinator holds the JoinGroup: the hand-over is bounded by the session timeout.
    let deadline = m.poll_timeout().unwrap();
    assert!(deadline <= t0 + Duration::from_secs(6), "{:?}", deadline - t0);
    m.handle_timeout(t0 + Duration::from_secs(6));
    expect(&mut m, t0 + Duration::from_secs(6), "LeaveGroup");
}

#[test]
fn a_leader_closing_while_it_assigns_sends_the_assignment_then_leaves() {
    let t0 = Instant::now();
    let (mut m, protocols) = joining(config(false), t0);
    m.handle_join(t0, Ok(join_ok("me", "me", 1, "range", &me_and_other(&protocols))));
    expect(&mut m, t0, "Metadata");
    m.close(t0);
    assert_eq!(m.poll_request(t0), None, "waits for the metadata");
    m.handle_metadata(t0, Ok(BTreeMap::from([("t".to_owned(), 2)])));
    let Some(GroupRequest::SyncGroup { assignments, .. }) = m.poll_request(t0) else {
        panic!("expected the leader's SyncGroup")
    };
    assert_eq!(decoded(&assignments)["other"], vec![tp(0), tp(1)]);
    m.handle_sync(t0, Ok(sync_ok(Vec::new())));
    expect(&mut m, t0, "LeaveGroup");
}

#[test]
fn a_follower_closes_without_a_hand_over() {
    let t0 = Instant::now();
    let mut m = stable_follower(false, vec![tp(0)], t0);
    m.close(t0);
    events(&mut m);
    m.handle_revoked(t0);
    expect(&mut m, t0, "LeaveGroup");
}

#[test]
fn a_sync_held_past_its_generation_is_dropped_when_a_heartbeat_says_so() {
    // A coordinator may hold a follower's SyncGroup for seconds after the generation ended; the
    // heartbeat that goes beside it tells the member to rejoin at once.
    let t0 = Instant::now();
    let (mut m, _) = joining(config(false), t0);
    m.handle_join(t0, Ok(join_ok("me", "other", 1, "range", &[])));
    expect(&mut m, t0, "SyncGroup");
    assert_eq!(m.state(), MemberState::Syncing);
    // Heartbeats go while the SyncGroup waits.
    let t1 = t0 + Duration::from_secs(1);
    assert!(m.poll_timeout().is_some_and(|at| at <= t1));
    expect(&mut m, t1, "Heartbeat");
    // REBALANCE_IN_PROGRESS may be an older broker's answer for the whole sync phase: ignored.
    answer_heartbeat(&mut m, t0 + Duration::from_millis(500), Ok(rebalancing()));
    assert_eq!(m.state(), MemberState::Syncing);
    let t2 = t0 + Duration::from_secs(2);
    expect(&mut m, t2, "Heartbeat");
    answer_heartbeat(
        &mut m,
        t2,
        Ok(HeartbeatResponse::default().with_error_code(ResponseError::IllegalGeneration.code())),
    );
    assert_eq!(m.state(), MemberState::Unjoined);
    let (id, _) = join_request(&mut m, t2);
    assert_eq!(id, "me");
    // The held SyncGroup's late answer changes nothing.
    m.handle_sync(t2, Ok(sync_ok(vec![tp(0)])));
    assert_eq!(m.state(), MemberState::Joining);
    assert!(events(&mut m).is_empty());
}

#[test]
fn a_late_heartbeat_answer_of_an_older_generation_keeps_the_newer_sync() {
    // Cooperative member, generation 1, owns t-0 and t-1. A heartbeat of generation 1 is in flight
    // when the member rejoins (a commit said REBALANCE_IN_PROGRESS). The round completes quickly
    // (generation 2), SyncGroup goes out, and only then the generation-1 heartbeat is answered:
    // a Kafka coordinator at generation 2 answers it ILLEGAL_GENERATION.
    let t0 = Instant::now();
    let mut m = stable_follower(true, vec![tp(0), tp(1)], t0);
    let t1 = t0 + Duration::from_secs(1);
    let Some(GroupRequest::Heartbeat { generation: sent }) = m.poll_request(t1) else {
        panic!("expected a heartbeat")
    };
    assert_eq!(sent.generation_id, 1);
    m.handle_commit_error(t1, &server(ResponseError::RebalanceInProgress));
    join_request(&mut m, t1);
    m.handle_join(t1, Ok(join_ok("me", "other", 2, "cooperative-sticky", &[])));
    expect(&mut m, t1, "SyncGroup");
    let t2 = t1 + Duration::from_millis(5);
    m.handle_heartbeat(
        t2,
        &sent,
        Ok(HeartbeatResponse::default().with_error_code(ResponseError::IllegalGeneration.code())),
    );
    let _ = m.poll_request(t2);
    let lost: Vec<_> = events(&mut m)
        .into_iter()
        .filter(|e| matches!(e, MemberEvent::Revoke { lost: true, .. }))
        .collect();
    assert!(
        lost.is_empty(),
        "partitions given up as lost (no commit): {lost:?}"
    );
    assert_eq!(
        m.state(),
        MemberState::Syncing,
        "the generation-2 SyncGroup was dropped"
    );
}
#[test]
fn rebalance_in_progress_answered_for_the_whole_sync_phase_keeps_the_sync() {
    // A coordinator that answers REBALANCE_IN_PROGRESS for the whole CompletingRebalance phase (older
    // brokers do), with a leader that needs more than one heartbeat interval to send the assignment:
    // the follower keeps waiting for its SyncGroup instead of starting another round.
    let t0 = Instant::now();
    let (mut m, _) = joining(config(false), t0);
    m.handle_join(t0, Ok(join_ok("me", "other", 1, "range", &[])));
    expect(&mut m, t0, "SyncGroup");
    let t2 = t0 + Duration::from_secs(2);
    let _ = m.poll_request(t0 + Duration::from_secs(1));
    answer_heartbeat(&mut m, t0 + Duration::from_secs(1), Ok(rebalancing()));
    let _ = m.poll_request(t2);
    answer_heartbeat(&mut m, t2, Ok(rebalancing()));
    assert_eq!(
        m.state(),
        MemberState::Syncing,
        "the follower gave up a valid SyncGroup"
    );
}

#[test]
fn a_leader_closing_while_its_join_group_is_held_completes_the_round_first() {
    // Stable leader; a heartbeat says the group rebalances; it rejoins (JoinGroup held by the
    // coordinator, as in every rebalance round until all members are in) and closes now.
    let t0 = Instant::now();
    let mut m = stable_leader(t0);
    let t1 = t0 + Duration::from_secs(1);
    rejoin_eagerly(&mut m, t1);
    m.close(t1);
    assert!(
        !matches!(m.poll_request(t1), Some(GroupRequest::LeaveGroup { .. })),
        "the leader leaves during the rebalance without completing it"
    );
    // The join is answered: as the leader it hands everything to the others, then leaves.
    let me = Subscription::new(["t"]).encode().unwrap();
    let other = Subscription::new(["t"]).encode().unwrap();
    m.handle_join(
        t1,
        Ok(join_ok("me", "me", 2, "range", &[("me", me), ("other", other)])),
    );
    expect(&mut m, t1, "Metadata");
    m.handle_metadata(t1, Ok(BTreeMap::from([("t".to_owned(), 4)])));
    let Some(GroupRequest::SyncGroup { assignments, .. }) = m.poll_request(t1) else {
        panic!("expected the leader's SyncGroup")
    };
    assert_eq!(decoded(&assignments)["me"], Vec::new());
    assert_eq!(decoded(&assignments)["other"], (0..4).map(tp).collect::<Vec<_>>());
    m.handle_sync(t1, Ok(sync_ok(Vec::new())));
    expect(&mut m, t1, "LeaveGroup");
}

#[test]
fn a_leader_closing_while_its_join_group_is_held_leaves_when_the_hand_over_times_out() {
    let t0 = Instant::now();
    let mut m = stable_leader(t0);
    let t1 = t0 + Duration::from_secs(1);
    rejoin_eagerly(&mut m, t1);
    m.close(t1);
    assert_eq!(m.poll_request(t1), None);
    let deadline = m.poll_timeout().expect("a hand-over deadline");
    assert!(deadline <= t1 + timeouts().session_timeout);
    m.handle_timeout(deadline);
    expect(&mut m, deadline, "LeaveGroup");
}

#[test]
fn a_cooperative_leader_closing_while_it_assigns_assigns_itself_nothing() {
    let t0 = Instant::now();
    let (mut m, protocols) = joining(config(true), t0);
    lead(&mut m, t0, 1, "cooperative-sticky", &protocols);
    m.handle_sync(t0, Ok(sync_ok(vec![tp(0), tp(1)])));
    events(&mut m);
    // Generation 2: the cooperative leader keeps owning t-0, t-1 while it assigns, and closes meanwhile.
    m.handle_commit_error(t0, &server(ResponseError::RebalanceInProgress));
    let (_, protocols) = join_request(&mut m, t0);
    let members = me_and_other(&protocols);
    m.handle_join(t0, Ok(join_ok("me", "me", 2, "cooperative-sticky", &members)));
    expect(&mut m, t0, "Metadata");
    m.close(t0); // revocation of t-0, t-1 starts
    m.handle_metadata(t0, Ok(BTreeMap::from([("t".to_owned(), 4)])));
    let Some(GroupRequest::SyncGroup { assignments, .. }) = m.poll_request(t0) else {
        panic!("expected the leader's SyncGroup")
    };
    let me = &decoded(&assignments)["me"];
    assert_eq!(*me, Vec::new(), "the closing leader assigned itself {me:?}");
    // Once the sync is answered and the revocation done, it leaves.
    m.handle_sync(t0, Ok(sync_ok(Vec::new())));
    assert!(matches!(
        events(&mut m).as_slice(),
        [MemberEvent::Revoke { lost: false, .. }]
    ));
    m.handle_revoked(t0);
    expect(&mut m, t0, "LeaveGroup");
}

#[test]
fn a_cooperative_leader_closing_while_its_join_group_is_held_assigns_before_leaving() {
    // A cooperative leader still owns its partitions at close: the revocation runs while the
    // coordinator holds its JoinGroup. The answer naming it leader must not be dropped, or the group
    // waits for an assignment nobody sends.
    let t0 = Instant::now();
    let (mut m, protocols) = joining(config(true), t0);
    lead(&mut m, t0, 1, "cooperative-sticky", &protocols);
    m.handle_sync(t0, Ok(sync_ok(vec![tp(0), tp(1)])));
    events(&mut m);
    // Generation 2 starts: the member rejoins, keeping t-0 and t-1, and closes while the join is held.
    let t1 = t0 + Duration::from_secs(1);
    heartbeat(&mut m, t1, Ok(rebalancing()));
    let (_, protocols) = join_request(&mut m, t1);
    m.close(t1);
    assert!(matches!(
        events(&mut m).as_slice(),
        [MemberEvent::Revoke { lost: false, .. }]
    ));
    let members = me_and_other(&protocols);
    m.handle_join(t1, Ok(join_ok("me", "me", 2, "cooperative-sticky", &members)));
    m.handle_revoked(t1);
    let next = m.poll_request(t1);
    assert!(
        matches!(next, Some(GroupRequest::Metadata { .. })),
        "expected the leader's Metadata, got {next:?}"
    );
    m.handle_metadata(t1, Ok(BTreeMap::from([("t".to_owned(), 4)])));
    let Some(GroupRequest::SyncGroup { assignments, .. }) = m.poll_request(t1) else {
        panic!("expected the leader's SyncGroup")
    };
    assert_eq!(decoded(&assignments)["me"], Vec::new());
    assert_eq!(decoded(&assignments)["other"], (0..4).map(tp).collect::<Vec<_>>());
    m.handle_sync(t1, Ok(sync_ok(Vec::new())));
    expect(&mut m, t1, "LeaveGroup");
}

#[test]
fn a_hand_over_takes_at_most_5_s_with_a_long_session_timeout() {
    // Java's defaults: a 45 s session. The hand-over must leave time for the rest of a shutdown.
    let t0 = Instant::now();
    let long = HeartbeatConfig {
        session_timeout: Duration::from_secs(45),
        ..timeouts()
    };
    let mut m = stable_leader_with(config(false).with_timeouts(long), t0);
    m.close(t0);
    events(&mut m);
    m.handle_revoked(t0);
    expect(&mut m, t0, "Heartbeat");
    let deadline = t0 + Duration::from_secs(5);
    assert_eq!(
        m.handover,
        Some(deadline),
        "the hand-over may take longer than 5 s"
    );
    assert_eq!(m.poll_timeout(), Some(deadline));
    m.handle_timeout(deadline);
    expect(&mut m, deadline, "LeaveGroup");
}

#[test]
fn a_hand_over_deadline_during_the_leaders_own_sync_waits_for_its_answer() {
    let t0 = Instant::now();
    let mut m = stable_leader(t0);
    let t1 = t0 + Duration::from_secs(1);
    let protocols = rejoin_eagerly(&mut m, t1);
    lead(&mut m, t1, 2, "range", &protocols);
    m.close(t1);
    // The coordinator is slow to answer the leader's SyncGroup: the hand-over deadline passes.
    let late = t1 + Duration::from_secs(6);
    m.handle_timeout(late);
    let sent: Vec<_> = std::iter::from_fn(|| m.poll_request(late)).take(10).collect();
    assert!(
        !sent.iter().any(|r| matches!(r, GroupRequest::LeaveGroup { .. })),
        "the leader's own SyncGroup was aborted: {sent:?}"
    );
    assert!(
        m.poll_timeout().is_none_or(|at| at > late),
        "a deadline in the past"
    );
    // Its answer (or its failure) ends the hand-over.
    m.handle_sync(late, Ok(sync_ok(Vec::new())));
    expect(&mut m, late, "LeaveGroup");
}

/// A follower whose SyncGroup of generation 1 went out at `now` and is still held.
fn syncing_follower(now: Instant) -> Member {
    let (mut m, _) = joining(config(false), now);
    m.handle_join(now, Ok(join_ok("me", "other", 1, "range", &[])));
    expect(&mut m, now, "SyncGroup");
    m
}

#[test]
fn rebalance_in_progress_past_the_sync_hold_bound_drops_the_sync_and_rejoins() {
    // A coordinator that holds SyncGroup until its own timeout (0.8 × the session) while the next
    // round already began: heartbeats say REBALANCE_IN_PROGRESS. Within two heartbeat intervals or half
    // the session (3 s here) it is ignored; past that, the member rejoins with its id at once.
    let t0 = Instant::now();
    let mut m = syncing_follower(t0);
    let t2 = t0 + Duration::from_secs(2);
    heartbeat(&mut m, t2, Ok(rebalancing()));
    assert_eq!(m.state(), MemberState::Syncing, "within the bound: still waiting");
    let t3 = t0 + Duration::from_secs(3);
    heartbeat(&mut m, t3, Ok(rebalancing()));
    assert_eq!(m.state(), MemberState::Unjoined, "the held SyncGroup was kept");
    let (id, _) = join_request(&mut m, t3);
    assert_eq!(id, "me", "rejoins with the same member id");
    // The held SyncGroup's late answer changes nothing.
    let t4 = t0 + Duration::from_millis(4800);
    m.handle_sync(t4, Ok(sync_ok(vec![tp(0)])));
    assert_eq!(m.state(), MemberState::Joining);
    assert!(events(&mut m).is_empty());
    // And neither does a late REBALANCE_IN_PROGRESS answer to the sync itself.
    m.handle_sync(
        t4,
        Ok(SyncGroupResponse::default().with_error_code(ResponseError::RebalanceInProgress.code())),
    );
    assert_eq!(m.state(), MemberState::Joining);
    assert_eq!(
        m.poll_request(t4),
        None,
        "a second JoinGroup while one is in flight"
    );
}

#[test]
fn a_cooperative_member_whose_sync_is_held_past_the_bound_rejoins_keeping_its_partitions() {
    // Generation 1 owns t-0, t-1; generation 2's SyncGroup is held while generation 3 begins. The
    // partitions were not lost (the member is still in the group): no revocation, they go back to
    // the leader in the JoinGroup's subscription.
    let t0 = Instant::now();
    let mut m = stable_follower(true, vec![tp(0), tp(1)], t0);
    m.handle_commit_error(t0, &server(ResponseError::RebalanceInProgress));
    join_request(&mut m, t0);
    m.handle_join(t0, Ok(join_ok("me", "other", 2, "cooperative-sticky", &[])));
    expect(&mut m, t0, "SyncGroup");
    let t4 = t0 + Duration::from_secs(4);
    heartbeat(&mut m, t4, Ok(rebalancing()));
    let (id, protocols) = join_request(&mut m, t4);
    assert_eq!(id, "me");
    let owned = Subscription::decode(&protocols[0].1).unwrap().owned_partitions;
    assert_eq!(owned, vec![tp(0), tp(1)]);
    assert!(events(&mut m).is_empty(), "partitions revoked on a rejoin");
    assert_eq!(m.owned(), &[tp(0), tp(1)]);
}

#[test]
fn a_leader_past_the_sync_hold_bound_rejoins_unless_it_hands_over() {
    // A leader that is not closing: its held SyncGroup ends like a follower's.
    let t0 = Instant::now();
    let (mut m, protocols) = joining(config(false), t0);
    lead(&mut m, t0, 1, "range", &protocols);
    let t4 = t0 + Duration::from_secs(4);
    heartbeat(&mut m, t4, Ok(rebalancing()));
    assert_eq!(join_request(&mut m, t4).0, "me");

    // A closing leader in hand-over: its own SyncGroup carries everyone's assignment and is never cut.
    let mut m = stable_leader(t0);
    let t1 = t0 + Duration::from_secs(1);
    let protocols = rejoin_eagerly(&mut m, t1);
    lead(&mut m, t1, 2, "range", &protocols);
    m.close(t1);
    let t5 = t1 + Duration::from_secs(4);
    let sent: Vec<_> = std::iter::from_fn(|| m.poll_request(t5)).take(10).collect();
    assert!(
        matches!(sent.as_slice(), [GroupRequest::Heartbeat { .. }]),
        "{sent:?}"
    );
    answer_heartbeat(&mut m, t5, Ok(rebalancing()));
    assert_eq!(
        m.state(),
        MemberState::Syncing,
        "the closing leader's SyncGroup was cut"
    );
    let sent: Vec<_> = std::iter::from_fn(|| m.poll_request(t5)).take(10).collect();
    assert!(
        !sent.iter().any(|r| matches!(
            r,
            GroupRequest::LeaveGroup { .. } | GroupRequest::JoinGroup { .. }
        )),
        "{sent:?}"
    );
    m.handle_sync(t5, Ok(sync_ok(Vec::new())));
    expect(&mut m, t5, "LeaveGroup");
}

#[test]
fn a_later_syncgroup_is_timed_from_when_it_went_out() {
    // The first SyncGroup is cut at 3 s; generation 2's SyncGroup goes out at 6 s and is one second
    // old at 7 s: REBALANCE_IN_PROGRESS then leaves it waiting (a stale timestamp would cut it).
    let t0 = Instant::now();
    let mut m = syncing_follower(t0);
    let t3 = t0 + Duration::from_secs(3);
    heartbeat(&mut m, t3, Ok(rebalancing()));
    join_request(&mut m, t3);
    let t6 = t0 + Duration::from_secs(6);
    m.handle_join(t6, Ok(join_ok("me", "other", 2, "range", &[])));
    // A heartbeat of generation 2 is due first; then the SyncGroup goes out.
    heartbeat(&mut m, t6, Ok(HeartbeatResponse::default()));
    expect(&mut m, t6, "SyncGroup");
    let t7 = t0 + Duration::from_secs(7);
    heartbeat(&mut m, t7, Ok(rebalancing()));
    assert_eq!(m.state(), MemberState::Syncing);
}

#[test]
fn a_generation_answered_again_after_its_sync_was_cut_is_not_cut_twice() {
    // A broker that answers REBALANCE_IN_PROGRESS for the whole sync phase, behind a leader slower
    // than the bound: the rejoin is answered with the same generation, so the coordinator is still
    // completing it; its new SyncGroup is left to wait for the leader.
    let t0 = Instant::now();
    let mut m = syncing_follower(t0);
    let t3 = t0 + Duration::from_secs(3);
    heartbeat(&mut m, t3, Ok(rebalancing()));
    join_request(&mut m, t3);
    m.handle_join(t3, Ok(join_ok("me", "other", 1, "range", &[])));
    expect(&mut m, t3, "SyncGroup");
    for s in 4..=9 {
        let t = t0 + Duration::from_secs(s);
        if matches!(m.poll_request(t), Some(GroupRequest::Heartbeat { .. })) {
            answer_heartbeat(&mut m, t, Ok(rebalancing()));
        }
        assert_eq!(m.state(), MemberState::Syncing, "cut again at {s} s");
    }
    m.handle_sync(t0 + Duration::from_secs(9), Ok(sync_ok(vec![tp(0)])));
    assert_eq!(m.state(), MemberState::Stable);
}
