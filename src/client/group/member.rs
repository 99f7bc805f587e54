//! One member of a classic consumer group, as an I/O-free state machine (quinn-style; Java's
//! `AbstractCoordinator` + `ConsumerCoordinator` without the network).
//!
//! ```text
//!  UNJOINED ──JoinGroup──▶ JOINING ──(leader: Metadata, assign)──SyncGroup──▶ SYNCING ──▶ STABLE
//!     ▲                       │ MEMBER_ID_REQUIRED: rejoin with the id       │ heartbeats
//!     └─── REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID ◀──┘
//! ```
//!
//! Inputs are `handle_*(now, ..)` (responses, timeouts, the application's progress); outputs are
//! [`Member::poll_request`] (what to send), [`Member::poll_event`] (what the consumer must do) and
//! [`Member::poll_timeout`] (when to call [`Member::handle_timeout`]). It reads no clock and does no I/O:
//! the group `driver` feeds it.
//!
//! Owns: the member id, generation, owned partitions and the rejoin logic. May use
//! [`assignor`](super::assignor), `heartbeat` and [`crate::protocol`].
//!
//! # Invariants
//!
//! - At most one of FindCoordinator / Metadata / JoinGroup / SyncGroup / LeaveGroup is in flight, plus
//!   at most one Heartbeat. Heartbeats go out in STABLE and while SyncGroup waits, and once more from a
//!   closing leader checking whether a rebalance started before it leaves.
//! - A closing dynamic leader completes the rebalance under way before LeaveGroup (the hand-over), for
//!   at most the session timeout or 5 s, whichever is shorter; its own SyncGroup, once sent, is never
//!   cut (it carries everyone's assignment) and ends with its answer or the request timeout.
//! - Partitions are given up only through a [`MemberEvent::Revoke`], and the member waits for
//!   [`Member::handle_revoked`] before the next step (JoinGroup under the eager protocol, LeaveGroup on
//!   close or poll timeout), so the consumer can finish and commit their work first.
//! - Under the cooperative protocol only partitions that move are revoked, and a member that revoked
//!   anything rejoins so the leader can hand them on.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use kafka_protocol::messages::{
    FindCoordinatorResponse, HeartbeatResponse, JoinGroupResponse, SyncGroupResponse,
};

use super::{
    assignor::{
        Assignment, AssignmentChange, Assignor, MemberSubscription, PartitionsPerTopic, RebalanceProtocol,
        Subscription, TopicPartition,
    },
    heartbeat::{Heartbeat, HeartbeatConfig},
};
use crate::protocol::{ResponseError, ServerError};

/// The longest a closing leader waits for the rebalance it leads to complete before LeaveGroup.
const HANDOVER_BOUND: Duration = Duration::from_secs(5);

/// What a member needs to know about its group.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use kafka_event_bus::client::group::{MemberConfig, assignor::CooperativeStickyAssignor};
///
/// let config = MemberConfig::new("billing", ["orders"])
///     .with_assignors(vec![Arc::new(CooperativeStickyAssignor)])
///     .with_group_instance_id("billing-1");
/// assert_eq!(config.group_instance_id.as_deref(), Some("billing-1"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemberConfig {
    /// `group.id`.
    pub group_id: String,
    /// `group.instance.id`: set it for static membership (a restart within the session timeout keeps
    /// the member's partitions without a rebalance). Static members do not send LeaveGroup on close.
    pub group_instance_id: Option<String>,
    /// The topics subscribed to.
    pub topics: Vec<String>,
    /// `partition.assignment.strategy`, preferred first. The group uses the cooperative protocol only if
    /// every assignor here supports it.
    pub assignors: Vec<Arc<dyn Assignor>>,
    /// Session, heartbeat and poll timeouts.
    pub timeouts: HeartbeatConfig,
    /// How long the coordinator waits for every member to rejoin (Java uses `max.poll.interval.ms`).
    pub rebalance_timeout: Duration,
}

impl MemberConfig {
    /// A dynamic member of `group_id` subscribed to `topics`, with the range assignor and Java's
    /// default timeouts.
    pub fn new(group_id: impl Into<String>, topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let timeouts = HeartbeatConfig::default();
        Self {
            group_id: group_id.into(),
            group_instance_id: None,
            topics: topics.into_iter().map(Into::into).collect(),
            assignors: vec![Arc::new(super::assignor::RangeAssignor)],
            timeouts,
            rebalance_timeout: timeouts.max_poll_interval,
        }
    }

    /// Sets the assignors.
    #[must_use]
    pub fn with_assignors(mut self, assignors: Vec<Arc<dyn Assignor>>) -> Self {
        self.assignors = assignors;
        self
    }

    /// Makes the member static.
    #[must_use]
    pub fn with_group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// Sets the timeouts; the rebalance timeout follows `max_poll_interval`.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: HeartbeatConfig) -> Self {
        self.timeouts = timeouts;
        self.rebalance_timeout = timeouts.max_poll_interval;
        self
    }

    fn protocol(&self) -> RebalanceProtocol {
        let all_cooperative = !self.assignors.is_empty()
            && self
                .assignors
                .iter()
                .all(|a| a.supported_protocols().contains(&RebalanceProtocol::Cooperative));
        if all_cooperative {
            RebalanceProtocol::Cooperative
        } else {
            RebalanceProtocol::Eager
        }
    }
}

/// A generation of the group as this member joined it: what OffsetCommit must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Generation {
    /// The generation id.
    pub generation_id: i32,
    /// This member's id.
    pub member_id: String,
    /// The assignor the group chose.
    pub protocol_name: Option<String>,
}

/// Where a member is in the join protocol (Java's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberState {
    /// Not in the group (yet, or any more).
    Unjoined,
    /// JoinGroup sent (or, as leader, computing the assignment).
    Joining,
    /// SyncGroup sent.
    Syncing,
    /// Has an assignment and heartbeats.
    Stable,
}

/// A request the driver must send for the member, and answer through the matching `handle_*`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GroupRequest {
    /// FindCoordinator for the group → [`Member::handle_coordinator`].
    FindCoordinator,
    /// The partition counts of `topics` (the leader is about to assign) → [`Member::handle_metadata`].
    Metadata {
        /// Every topic any member subscribes to.
        topics: Vec<String>,
    },
    /// JoinGroup → [`Member::handle_join`].
    JoinGroup {
        /// The member id ("" on the first join).
        member_id: String,
        /// `(assignor name, subscription bytes)`, preferred first.
        protocols: Vec<(String, Bytes)>,
        /// Why the member (re)joins.
        reason: String,
    },
    /// SyncGroup → [`Member::handle_sync`].
    SyncGroup {
        /// The generation joined.
        generation: Generation,
        /// The leader's assignments (member id, assignment bytes); empty for followers.
        assignments: Vec<(String, Bytes)>,
    },
    /// Heartbeat → [`Member::handle_heartbeat`].
    Heartbeat {
        /// The current generation.
        generation: Generation,
    },
    /// LeaveGroup → [`Member::handle_leave`].
    LeaveGroup {
        /// The member leaving.
        member_id: String,
        /// Why.
        reason: &'static str,
    },
}

/// Why a member left the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaveReason {
    /// The application made no progress for `max_poll_interval`.
    PollTimeout,
    /// The member was closed (`Member::close`).
    Closed,
}

/// What the consumer must do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MemberEvent {
    /// Stop fetching these partitions, let in-flight work finish, commit (unless `lost`), then call
    /// [`Member::handle_revoked`].
    Revoke {
        /// The partitions given up.
        partitions: Vec<TopicPartition>,
        /// The generation is gone (the partitions may already belong to someone else): do not commit.
        lost: bool,
    },
    /// New partitions: fetch their committed offsets and start consuming.
    Assigned {
        /// Newly assigned partitions.
        added: Vec<TopicPartition>,
        /// The whole assignment now.
        assignment: Vec<TopicPartition>,
        /// The generation it belongs to.
        generation: Generation,
    },
    /// The member left the group.
    Left {
        /// Why.
        reason: LeaveReason,
    },
    /// The group cannot be joined (e.g. FENCED_INSTANCE_ID, authorization); the member stops.
    Fatal {
        /// What the coordinator said.
        error: String,
    },
}

/// A failed group request: the coordinator's error code, or a transport failure (coordinator lost).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Failure {
    /// The request never got an answer (connection lost, timeout).
    Transport(String),
    /// The response carried an error code.
    Server(ServerError),
}

impl Failure {
    /// Whether the same request may succeed if sent again, after rediscovering the coordinator when it
    /// was lost: transport failures and the broker's retriable codes (NOT_COORDINATOR,
    /// COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, REQUEST_TIMED_OUT, ...). Fencing codes
    /// (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS) are not.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Server(e) => {
                e.is_retriable()
                    || matches!(
                        e.code,
                        ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable
                    )
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    FindCoordinator,
    Metadata,
    Join,
    Sync,
    Leave,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterRevoke {
    Join,
    Leave(LeaveReason),
}

/// The leader's JoinGroup result, kept while it waits for metadata.
#[derive(Debug, Clone)]
struct PendingAssign {
    members: BTreeMap<String, MemberSubscription>,
}

/// One consumer-group member. See the module docs for the protocol.
///
/// # Example
///
/// ```
/// use std::time::Instant;
/// use kafka_event_bus::client::group::{GroupRequest, Member, MemberConfig};
///
/// let now = Instant::now();
/// let mut member = Member::new(MemberConfig::new("billing", ["orders"]), now);
/// // The first thing a member needs is its coordinator.
/// assert_eq!(member.poll_request(now), Some(GroupRequest::FindCoordinator));
/// // Only one group request at a time.
/// assert_eq!(member.poll_request(now), None);
/// ```
#[derive(Debug)]
pub struct Member {
    config: MemberConfig,
    protocol: RebalanceProtocol,
    heartbeat: Heartbeat,
    state: MemberState,
    coordinator: Option<(i32, String)>,
    member_id: String,
    generation: Option<Generation>,
    generation_lost: bool,
    owned: Vec<TopicPartition>,
    owned_generation: Option<i32>,
    rejoin: Option<String>,
    in_flight: Option<InFlight>,
    retry_at: Option<Instant>,
    revoking: Option<(Vec<TopicPartition>, AfterRevoke)>,
    pending_assign: Option<PendingAssign>,
    /// The last JoinGroup answer named this member the leader.
    leader: bool,
    /// When the SyncGroup in flight went out (while SYNCING), and its generation.
    sync_sent: Option<(Instant, i32)>,
    /// The generation whose held SyncGroup this member last dropped on REBALANCE_IN_PROGRESS. A rejoin
    /// answered with that same generation means the coordinator was still completing it (a broker that
    /// answers REBALANCE_IN_PROGRESS for the whole sync phase, behind a slow leader): it is not cut again.
    sync_cut: Option<i32>,
    /// Closing as the leader: the LeaveGroup waits (until this instant at most) for the rebalance in
    /// flight to complete, so that the coordinator never keeps a departed member as the leader.
    handover: Option<Instant>,
    left_for_poll: bool,
    closing: bool,
    closed: bool,
    events: VecDeque<MemberEvent>,
    /// Requests decided inside a `handle_*` (SyncGroup, LeaveGroup), handed out by `poll_request`.
    queued: VecDeque<GroupRequest>,
}

impl Member {
    /// A member that has not joined yet.
    pub fn new(config: MemberConfig, now: Instant) -> Self {
        let protocol = config.protocol();
        Self {
            heartbeat: Heartbeat::new(config.timeouts, now),
            protocol,
            config,
            state: MemberState::Unjoined,
            coordinator: None,
            member_id: String::new(),
            generation: None,
            generation_lost: false,
            owned: Vec::new(),
            owned_generation: None,
            rejoin: Some("initial join".to_owned()),
            in_flight: None,
            retry_at: None,
            revoking: None,
            pending_assign: None,
            leader: false,
            sync_sent: None,
            sync_cut: None,
            handover: None,
            left_for_poll: false,
            closing: false,
            closed: false,
            events: VecDeque::new(),
            queued: VecDeque::new(),
        }
    }

    // ---- getters ----

    /// The configuration.
    pub fn config(&self) -> &MemberConfig {
        &self.config
    }

    /// Where the member is in the protocol.
    pub fn state(&self) -> MemberState {
        self.state
    }

    /// The coordinator's node id and `host:port`, when known.
    pub fn coordinator(&self) -> Option<(i32, &str)> {
        self.coordinator.as_ref().map(|(id, a)| (*id, a.as_str()))
    }

    /// The generation to commit offsets with: `Some` only while STABLE.
    pub fn generation(&self) -> Option<&Generation> {
        self.generation
            .as_ref()
            .filter(|_| self.state == MemberState::Stable)
    }

    /// The partitions the member owns now.
    pub fn owned(&self) -> &[TopicPartition] {
        &self.owned
    }

    /// The rebalance protocol in use.
    pub fn rebalance_protocol(&self) -> RebalanceProtocol {
        self.protocol
    }

    /// Whether [`close`](Self::close) has finished (or the member failed for good).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    // ---- mutators ----

    /// Starts leaving: revoke everything (the consumer commits), then LeaveGroup (dynamic members only).
    pub fn close(&mut self, now: Instant) {
        if self.closing || self.closed {
            return;
        }
        self.closing = true;
        self.start_leaving(now, LeaveReason::Closed);
    }

    /// The application made progress, or has nothing to process. A member that left because of a poll
    /// timeout rejoins.
    pub fn handle_poll(&mut self, now: Instant) {
        self.heartbeat.poll(now);
        if self.left_for_poll && self.revoking.is_none() && self.in_flight != Some(InFlight::Leave) {
            self.left_for_poll = false;
            self.request_rejoin("resuming after a poll timeout");
        }
    }

    /// The consumer finished revoking the partitions of the last [`MemberEvent::Revoke`].
    pub fn handle_revoked(&mut self, now: Instant) {
        let Some((partitions, after)) = self.revoking.take() else {
            return;
        };
        let gone: BTreeSet<_> = partitions.iter().collect();
        self.owned.retain(|tp| !gone.contains(tp));
        match after {
            AfterRevoke::Join => {}
            AfterRevoke::Leave(reason) => self.send_leave_or_finish(now, reason),
        }
    }

    /// An OffsetCommit failed with `error`: rejoin or rediscover the coordinator as the code demands.
    pub fn handle_commit_error(&mut self, now: Instant, error: &Failure) {
        match error {
            Failure::Transport(_) => self.coordinator_lost(now),
            Failure::Server(e) => match e.code {
                ResponseError::RebalanceInProgress => self.request_rejoin("commit: rebalance in progress"),
                ResponseError::IllegalGeneration => {
                    self.reset_generation(false, "commit: illegal generation")
                }
                ResponseError::UnknownMemberId => self.reset_generation(true, "commit: unknown member id"),
                ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable => {
                    self.coordinator_lost(now)
                }
                ResponseError::FencedInstanceId => self.fatal(e),
                _ => {}
            },
        }
    }

    // ---- outputs ----

    /// The next event for the consumer.
    pub fn poll_event(&mut self) -> Option<MemberEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let mut deadlines = Vec::with_capacity(4);
        if let Some(at) = self.retry_at {
            deadlines.push(at);
        }
        if let Some(at) = self.handover
            && self.in_flight != Some(InFlight::Sync)
        {
            deadlines.push(at);
        }
        if self.state == MemberState::Stable {
            if let Some(at) = self.heartbeat.next_heartbeat() {
                deadlines.push(at);
            }
            deadlines.push(self.heartbeat.session_deadline());
        }
        if self.state == MemberState::Syncing
            && let Some(at) = self.heartbeat.next_heartbeat()
        {
            deadlines.push(at);
        }
        if self.state != MemberState::Unjoined && !self.left_for_poll && !self.closing {
            deadlines.push(self.heartbeat.poll_deadline());
        }
        deadlines.into_iter().min()
    }

    /// Checks the session and poll timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|at| now >= at) {
            self.retry_at = None;
        }
        // The leader's own SyncGroup carries the assignment the group waits for: it is not aborted, its
        // answer (or its request timeout) ends the hand-over.
        if self.handover.is_some_and(|at| now >= at) && self.in_flight != Some(InFlight::Sync) {
            tracing::info!(group = %self.config.group_id, "the rebalance did not complete in time: leaving anyway");
            self.leave_now(now, LeaveReason::Closed);
        }
        if self.closed || self.closing {
            return;
        }
        if self.state != MemberState::Unjoined && !self.left_for_poll && self.heartbeat.poll_expired(now) {
            tracing::warn!(group = %self.config.group_id, "no progress within max_poll_interval: leaving the group");
            self.left_for_poll = true;
            self.start_leaving(now, LeaveReason::PollTimeout);
            return;
        }
        if self.state == MemberState::Stable && self.rejoin.is_none() && self.heartbeat.session_expired(now) {
            tracing::warn!(group = %self.config.group_id, "no heartbeat response within the session timeout");
            self.coordinator_lost(now);
            self.request_rejoin("session timeout expired");
        }
    }

    /// The next request to send, if any.
    pub fn poll_request(&mut self, now: Instant) -> Option<GroupRequest> {
        if self.closed {
            return None;
        }
        // Heartbeats run beside everything else while STABLE, also once a rejoin is due and while the
        // consumer revokes (as Java's heartbeat thread does until JoinGroup goes out): a revocation
        // slower than the session timeout must not get the member evicted and its commit refused.
        // They also run while SyncGroup waits (Java heartbeats in COMPLETING_REBALANCE): a coordinator
        // that holds SyncGroup learns the member is alive, and the member learns early that the
        // generation it syncs is already over.
        if matches!(self.state, MemberState::Stable | MemberState::Syncing)
            && self.coordinator.is_some()
            && self.heartbeat.should_heartbeat(now)
            && let Some(generation) = self.generation.clone()
        {
            self.heartbeat.sent(now);
            return Some(GroupRequest::Heartbeat { generation });
        }
        if let Some(request) = self.queued.pop_front() {
            return Some(request);
        }
        if self.in_flight.is_some() || self.retry_at.is_some_and(|at| now < at) {
            return None;
        }
        if self.revoking.is_some() {
            // The revocation's commit may have lost the coordinator: find it again meanwhile.
            if self.coordinator.is_none() {
                self.in_flight = Some(InFlight::FindCoordinator);
                return Some(GroupRequest::FindCoordinator);
            }
            return None;
        }
        if self.closing && self.handover.is_none() {
            // Nothing left to do once revoked and left (or leaving is impossible).
            self.closed = true;
            return None;
        }
        if self.coordinator.is_none() {
            self.in_flight = Some(InFlight::FindCoordinator);
            return Some(GroupRequest::FindCoordinator);
        }
        if let Some(pending) = &self.pending_assign {
            let topics: BTreeSet<String> = pending
                .members
                .values()
                .flat_map(|m| m.subscription.topics.iter().cloned())
                .collect();
            self.in_flight = Some(InFlight::Metadata);
            return Some(GroupRequest::Metadata {
                topics: topics.into_iter().collect(),
            });
        }
        if self.left_for_poll || self.handover.is_some() {
            return None;
        }
        let reason = self.rejoin.clone()?;
        // Prepare the join: eager members give up everything; members whose generation is gone lose it.
        if !self.owned.is_empty() && (self.protocol == RebalanceProtocol::Eager || self.generation_lost) {
            let partitions = self.owned.clone();
            self.events.push_back(MemberEvent::Revoke {
                partitions: partitions.clone(),
                lost: self.generation_lost,
            });
            self.revoking = Some((partitions, AfterRevoke::Join));
            if self.generation_lost {
                self.owned_generation = None;
            }
            return None;
        }
        self.generation_lost = false;
        match self.join_protocols() {
            Ok(protocols) => {
                self.state = MemberState::Joining;
                self.in_flight = Some(InFlight::Join);
                Some(GroupRequest::JoinGroup {
                    member_id: self.member_id.clone(),
                    protocols,
                    reason,
                })
            }
            Err(error) => {
                self.fatal_message(error);
                None
            }
        }
    }

    // ---- responses ----

    /// The FindCoordinator answer.
    pub fn handle_coordinator(&mut self, now: Instant, response: Result<FindCoordinatorResponse, Failure>) {
        self.take_in_flight(InFlight::FindCoordinator);
        let found = response.and_then(|r| {
            let (code, message, node, host, port) = match r.coordinators.first() {
                Some(c) => (
                    c.error_code,
                    c.error_message.clone(),
                    c.node_id.0,
                    c.host.clone(),
                    c.port,
                ),
                None => (
                    r.error_code,
                    r.error_message.clone(),
                    r.node_id.0,
                    r.host.clone(),
                    r.port,
                ),
            };
            match ServerError::from_code(code, message.as_deref()) {
                Some(e) => Err(Failure::Server(e)),
                None => Ok((node, format!("{host}:{port}"))),
            }
        });
        match found {
            Ok((id, address)) if id >= 0 => self.coordinator = Some((id, address)),
            Ok(_) => self.backoff(now),
            Err(Failure::Server(e))
                if !e.is_retriable() && e.code != ResponseError::CoordinatorNotAvailable =>
            {
                self.fatal(&e)
            }
            Err(_) => self.backoff(now),
        }
    }

    /// The partition counts the leader asked for with [`GroupRequest::Metadata`].
    pub fn handle_metadata(&mut self, now: Instant, metadata: Result<PartitionsPerTopic, Failure>) {
        self.take_in_flight(InFlight::Metadata);
        let Some(pending) = self.pending_assign.take() else {
            return;
        };
        let metadata = match metadata {
            Ok(m) => m,
            Err(_) => {
                self.pending_assign = Some(pending);
                self.backoff(now);
                return;
            }
        };
        let Some(generation) = self.generation.clone() else {
            self.request_rejoin("lost generation while assigning");
            return;
        };
        let name = generation.protocol_name.clone().unwrap_or_default();
        let Some(assignor) = self.config.assignors.iter().find(|a| a.name() == name) else {
            self.fatal_message(format!(
                "the group chose assignor {name:?}, which this member does not have"
            ));
            return;
        };
        let mut members = pending.members;
        let mut result = BTreeMap::new();
        if self.closing && members.remove(&generation.member_id).is_some() {
            // Leaving (handing over, or still revoking after close): everything goes to the others; the
            // leader keeps an empty assignment.
            result.insert(generation.member_id.clone(), Vec::new());
        }
        result.extend(assignor.assign(&metadata, &members));
        let mut assignments = Vec::with_capacity(result.len());
        for (member, partitions) in result {
            match Assignment::new(partitions).encode() {
                Ok(bytes) => assignments.push((member, bytes)),
                Err(e) => {
                    self.fatal_message(e.to_string());
                    return;
                }
            }
        }
        self.send_sync(now, generation, assignments);
    }

    /// The JoinGroup answer.
    pub fn handle_join(&mut self, now: Instant, response: Result<JoinGroupResponse, Failure>) {
        self.take_in_flight(InFlight::Join);
        if self.handover.is_some() && self.state == MemberState::Joining {
            return self.handover_join(now, response);
        }
        if self.state != MemberState::Joining {
            return;
        }
        if self.closing {
            return self.closing_join(response);
        }
        let response = match response {
            Ok(r) => match ServerError::from_code(r.error_code, None) {
                None => r,
                Some(e) => {
                    if e.code == ResponseError::MemberIdRequired {
                        // KIP-394: the coordinator hands out the id; join again with it at once.
                        self.member_id = r.member_id.to_string();
                        self.state = MemberState::Unjoined;
                        self.request_rejoin("member id required");
                    } else {
                        self.join_or_sync_failed(now, e);
                    }
                    return;
                }
            },
            Err(Failure::Server(e)) => return self.join_or_sync_failed(now, e),
            Err(Failure::Transport(_)) => return self.transport_failure(now),
        };
        self.member_id = response.member_id.to_string();
        let generation = Generation {
            generation_id: response.generation_id,
            member_id: self.member_id.clone(),
            protocol_name: response.protocol_name.as_ref().map(ToString::to_string),
        };
        self.generation = Some(generation.clone());
        self.leader = response.leader == response.member_id;
        if self.leader && !response.skip_assignment {
            self.pending_assign = Some(Self::pending_assign(&response));
        } else {
            self.send_sync(now, generation, Vec::new());
        }
    }

    /// The JoinGroup answer of a leader that closes and rejoined to complete the rebalance: as leader it
    /// hands every partition to the others; anything else, and it leaves.
    fn handover_join(&mut self, now: Instant, response: Result<JoinGroupResponse, Failure>) {
        let response = match response {
            Ok(r) if r.error_code == 0 => r,
            _ => return self.leave_now(now, LeaveReason::Closed),
        };
        self.generation = Some(Generation {
            generation_id: response.generation_id,
            member_id: self.member_id.clone(),
            protocol_name: response.protocol_name.as_ref().map(ToString::to_string),
        });
        self.leader = response.leader == response.member_id;
        if self.leader && !response.skip_assignment {
            self.pending_assign = Some(Self::pending_assign(&response));
        } else {
            self.leave_now(now, LeaveReason::Closed);
        }
    }

    /// The JoinGroup answer of a member that closes while it still revokes (a cooperative member owns
    /// partitions until the revocation ends). As the leader of the new generation it keeps the answer
    /// as its pending assignment, which gives it nothing since it closes: the group waits for that
    /// assignment, and the hand-over sends it once the revocation ends. Any other answer is dropped.
    fn closing_join(&mut self, response: Result<JoinGroupResponse, Failure>) {
        let Ok(response) = response else {
            return;
        };
        let leader = response.error_code == 0
            && !response.skip_assignment
            && self.config.group_instance_id.is_none()
            && response.leader == response.member_id;
        if !leader {
            return;
        }
        self.member_id = response.member_id.to_string();
        self.generation = Some(Generation {
            generation_id: response.generation_id,
            member_id: self.member_id.clone(),
            protocol_name: response.protocol_name.as_ref().map(ToString::to_string),
        });
        self.leader = true;
        self.pending_assign = Some(Self::pending_assign(&response));
    }

    /// The subscriptions of a JoinGroup answer's members, for the leader to assign.
    fn pending_assign(response: &JoinGroupResponse) -> PendingAssign {
        let mut members = BTreeMap::new();
        for m in &response.members {
            let subscription = match Subscription::decode(&m.metadata) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(member = %m.member_id, error = %e, "undecodable subscription; ignoring its topics");
                    Subscription::default()
                }
            };
            let mut sub = MemberSubscription::new(subscription);
            if let Some(id) = &m.group_instance_id {
                sub = sub.with_group_instance_id(id.to_string());
            }
            members.insert(m.member_id.to_string(), sub);
        }
        PendingAssign { members }
    }

    /// The SyncGroup answer.
    pub fn handle_sync(&mut self, now: Instant, response: Result<SyncGroupResponse, Failure>) {
        self.take_in_flight(InFlight::Sync);
        if self.handover.is_some() && self.state == MemberState::Syncing {
            // The leader's assignment is in (or refused): the group no longer waits for this member.
            return self.leave_now(now, LeaveReason::Closed);
        }
        if self.state != MemberState::Syncing || self.closing {
            return;
        }
        let response = match response {
            Ok(r) => match ServerError::from_code(r.error_code, None) {
                None => r,
                Some(e) => return self.join_or_sync_failed(now, e),
            },
            Err(Failure::Server(e)) => return self.join_or_sync_failed(now, e),
            Err(Failure::Transport(_)) => return self.transport_failure(now),
        };
        let assignment = match Assignment::decode(&response.assignment) {
            Ok(a) => a,
            Err(e) => return self.fatal_message(format!("undecodable assignment: {e}")),
        };
        let Some(generation) = self.generation.clone() else {
            return self.request_rejoin("no generation after sync");
        };
        let mut new = assignment.partitions;
        new.sort();
        new.dedup();
        let change = AssignmentChange::between(&self.owned, &new);
        self.state = MemberState::Stable;
        self.rejoin = None;
        self.heartbeat.reset_timeouts(now);
        self.heartbeat.poll(now);
        self.owned_generation = Some(generation.generation_id);
        // Revoked partitions stay owned until the consumer has let them go.
        self.owned = new.clone();
        self.owned.extend(change.revoked.iter().cloned());
        self.owned.sort();
        if !change.revoked.is_empty() {
            self.events.push_back(MemberEvent::Revoke {
                partitions: change.revoked.clone(),
                lost: false,
            });
            self.revoking = Some((change.revoked.clone(), AfterRevoke::Join));
            self.request_rejoin("partitions revoked; the leader can hand them on");
        }
        self.events.push_back(MemberEvent::Assigned {
            added: change.added,
            assignment: new,
            generation,
        });
    }

    /// The answer to a Heartbeat sent with generation `sent`.
    ///
    /// ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID and REBALANCE_IN_PROGRESS speak about the generation the
    /// heartbeat carried: when the member has moved to another generation since (a late answer), they
    /// are ignored, in every state (Java's `generationUnchanged`).
    pub fn handle_heartbeat(
        &mut self,
        now: Instant,
        sent: &Generation,
        response: Result<HeartbeatResponse, Failure>,
    ) {
        if self.generation.as_ref() != Some(sent)
            && let Ok(r) = &response
            && ServerError::from_code(r.error_code, None).is_some_and(|e| {
                matches!(
                    e.code,
                    ResponseError::IllegalGeneration
                        | ResponseError::UnknownMemberId
                        | ResponseError::RebalanceInProgress
                )
            })
        {
            tracing::debug!(group = %self.config.group_id, generation = sent.generation_id, error = r.error_code, "late heartbeat answer of an older generation ignored");
            self.heartbeat.received(now);
            return;
        }
        if self.handover.is_some() && matches!(self.state, MemberState::Stable | MemberState::Unjoined) {
            return self.handover_heartbeat(now, response);
        }
        if self.state == MemberState::Syncing {
            return self.heartbeat_while_syncing(now, response);
        }
        if self.state != MemberState::Stable {
            self.heartbeat.failed(now);
            return;
        }
        let error = match response {
            Ok(r) => ServerError::from_code(r.error_code, None),
            Err(_) => {
                self.heartbeat.failed(now);
                self.coordinator_lost(now);
                return;
            }
        };
        let Some(e) = error else {
            self.heartbeat.received(now);
            return;
        };
        match e.code {
            ResponseError::RebalanceInProgress => {
                self.heartbeat.received(now);
                self.request_rejoin("rebalance in progress");
            }
            ResponseError::IllegalGeneration => {
                self.heartbeat.failed(now);
                self.reset_generation(false, "heartbeat: illegal generation");
            }
            ResponseError::UnknownMemberId => {
                self.heartbeat.failed(now);
                self.reset_generation(true, "heartbeat: unknown member id");
            }
            ResponseError::FencedInstanceId => self.fatal(&e),
            ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable => {
                self.heartbeat.failed(now);
                self.coordinator_lost(now);
            }
            _ => self.heartbeat.failed(now),
        }
    }

    /// A heartbeat answered while SyncGroup waits. A coordinator that holds SyncGroup until the leader's
    /// assignment arrives may hold it long after the generation ended; ILLEGAL_GENERATION or
    /// UNKNOWN_MEMBER_ID for the generation being synced says so at once, and the member rejoins instead
    /// of waiting for the held answer.
    ///
    /// REBALANCE_IN_PROGRESS is ignored while the SyncGroup is younger than
    /// [`sync_hold_bound`](Self::sync_hold_bound), as Java ignores it in every state but STABLE: some
    /// brokers (Kafka before heartbeats in CompletingRebalance were answered NONE, Redpanda) answer it
    /// for the whole sync phase, which lasts until the leader's assignment arrives. Heard past that
    /// bound, the round is taken as over (a Kafka coordinator answers every pending SyncGroup the moment
    /// it prepares a new rebalance; a coordinator that holds the SyncGroup until its own timeout has
    /// not): the member drops the held SyncGroup and rejoins with its member id at once. If that rejoin
    /// is answered with the same generation, the coordinator was still completing it behind a slow
    /// leader, and that generation's SyncGroup is not cut again. A closing leader's own SyncGroup, which
    /// carries everyone's assignment, is never cut.
    fn heartbeat_while_syncing(&mut self, now: Instant, response: Result<HeartbeatResponse, Failure>) {
        let error = match response {
            Ok(r) => ServerError::from_code(r.error_code, None),
            Err(_) => {
                self.heartbeat.failed(now);
                return;
            }
        };
        let Some(e) = error else {
            self.heartbeat.received(now);
            return;
        };
        match e.code {
            ResponseError::RebalanceInProgress => {
                self.heartbeat.received(now);
                let (held, generation) = self
                    .sync_sent
                    .map_or((Duration::ZERO, None), |(at, g)| (now.saturating_duration_since(at), Some(g)));
                if self.closing
                    || self.handover.is_some()
                    || held < self.sync_hold_bound()
                    || generation == self.sync_cut
                {
                    return;
                }
                self.sync_cut = generation;
                tracing::info!(group = %self.config.group_id, "SyncGroup held {}s while the group rebalances: rejoining", held.as_secs_f32());
            }
            ResponseError::IllegalGeneration | ResponseError::UnknownMemberId => {
                self.heartbeat.failed(now);
                tracing::debug!(group = %self.config.group_id, error = %e, "generation over while syncing: rejoining");
            }
            ResponseError::FencedInstanceId => return self.fatal(&e),
            _ => {
                self.heartbeat.failed(now);
                return;
            }
        }
        // The held SyncGroup is dropped: its answer no longer matters (the state is not SYNCING).
        self.take_in_flight(InFlight::Sync);
        if self.handover.is_some() {
            return self.leave_now(now, LeaveReason::Closed);
        }
        self.join_or_sync_failed(now, e);
    }

    /// How long a SyncGroup may be held before REBALANCE_IN_PROGRESS from a heartbeat ends it: two
    /// heartbeat intervals or half the session timeout, whichever is longer. A leader's assignment takes
    /// milliseconds, so a broker that answers REBALANCE_IN_PROGRESS for the whole sync phase has
    /// answered the SyncGroup long before. The cut comes with the first heartbeat answer past the
    /// bound, so between the bound and the bound plus one heartbeat interval; with a heartbeat interval
    /// well below the session timeout that is before a coordinator's hold of 0.8 × the session ends.
    fn sync_hold_bound(&self) -> Duration {
        let config = self.heartbeat.config();
        (config.heartbeat_interval * 2).max(config.session_timeout / 2)
    }

    /// The heartbeat a closing leader sends before LeaveGroup. A coordinator that started a rebalance
    /// keeps this member as the group's leader; leaving now could leave the group waiting for an
    /// assignment nobody will send (a coordinator that does not elect a new leader when the leader
    /// leaves). So the member rejoins, hands every partition to the others, and then leaves.
    fn handover_heartbeat(&mut self, now: Instant, response: Result<HeartbeatResponse, Failure>) {
        let rebalancing = matches!(
            &response,
            Ok(r) if r.error_code == ResponseError::RebalanceInProgress.code()
        );
        if !rebalancing {
            return self.leave_now(now, LeaveReason::Closed);
        }
        match self.join_protocols() {
            Ok(protocols) => {
                tracing::debug!(group = %self.config.group_id, "closing leader: completing the rebalance before leaving");
                self.state = MemberState::Joining;
                self.in_flight = Some(InFlight::Join);
                self.queued.push_back(GroupRequest::JoinGroup {
                    member_id: self.member_id.clone(),
                    protocols,
                    reason: "the leader hands its partitions over before leaving".to_owned(),
                });
            }
            Err(_) => self.leave_now(now, LeaveReason::Closed),
        }
    }

    /// The LeaveGroup answer (its content does not matter: the member is gone either way).
    pub fn handle_leave(&mut self, _now: Instant) {
        self.take_in_flight(InFlight::Leave);
        if self.closing {
            self.closed = true;
        }
    }

    // ---- internals ----

    fn take_in_flight(&mut self, kind: InFlight) {
        if self.in_flight == Some(kind) {
            self.in_flight = None;
        }
    }

    fn backoff(&mut self, now: Instant) {
        self.retry_at = Some(now + self.heartbeat.config().retry_backoff);
    }

    fn request_rejoin(&mut self, reason: &str) {
        if self.rejoin.is_none() {
            tracing::debug!(group = %self.config.group_id, reason, "rejoin needed");
            self.rejoin = Some(reason.to_owned());
        }
        // The state stays STABLE (heartbeats go on, and revocation can still commit with the current
        // generation) until poll_request sends JoinGroup, after revoking if eager.
    }

    fn reset_generation(&mut self, forget_member_id: bool, reason: &str) {
        if forget_member_id {
            self.member_id.clear();
            self.leader = false;
        }
        self.generation = None;
        self.generation_lost = true;
        self.state = MemberState::Unjoined;
        self.request_rejoin(reason);
    }

    fn coordinator_lost(&mut self, now: Instant) {
        if self.coordinator.take().is_some() {
            tracing::info!(group = %self.config.group_id, "coordinator lost; rediscovering");
        }
        self.backoff(now);
    }

    fn transport_failure(&mut self, now: Instant) {
        self.state = MemberState::Unjoined;
        self.coordinator_lost(now);
        self.request_rejoin("coordinator unreachable during join");
    }

    fn join_or_sync_failed(&mut self, now: Instant, e: ServerError) {
        self.state = MemberState::Unjoined;
        self.pending_assign = None;
        match e.code {
            ResponseError::UnknownMemberId => self.reset_generation(true, "unknown member id"),
            ResponseError::IllegalGeneration => self.reset_generation(false, "illegal generation"),
            ResponseError::RebalanceInProgress => self.request_rejoin("rebalance in progress"),
            ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable => {
                self.coordinator_lost(now);
                self.request_rejoin("coordinator moved");
            }
            ResponseError::FencedInstanceId
            | ResponseError::GroupAuthorizationFailed
            | ResponseError::InconsistentGroupProtocol
            | ResponseError::InvalidSessionTimeout
            | ResponseError::GroupMaxSizeReached
            | ResponseError::InvalidGroupId => self.fatal(&e),
            _ => {
                self.backoff(now);
                self.request_rejoin("retrying the join");
            }
        }
    }

    fn send_sync(&mut self, now: Instant, generation: Generation, assignments: Vec<(String, Bytes)>) {
        self.state = MemberState::Syncing;
        self.sync_sent = Some((now, generation.generation_id));
        self.in_flight = Some(InFlight::Sync);
        self.queued.push_back(GroupRequest::SyncGroup {
            generation,
            assignments,
        });
    }

    fn join_protocols(&self) -> Result<Vec<(String, Bytes)>, String> {
        let mut owned = self.owned.clone();
        owned.sort();
        self.config
            .assignors
            .iter()
            .map(|a| {
                let sub = Subscription::new(self.config.topics.iter().cloned())
                    .with_owned_partitions(owned.clone())
                    .with_generation_id(self.owned_generation)
                    .with_user_data(a.subscription_user_data(self.owned_generation));
                sub.encode()
                    .map(|bytes| (a.name().to_owned(), bytes))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    fn start_leaving(&mut self, now: Instant, reason: LeaveReason) {
        if reason != LeaveReason::Closed {
            self.pending_assign = None;
        }
        if self.owned.is_empty() {
            self.send_leave_or_finish(now, reason);
        } else {
            let partitions = self.owned.clone();
            self.events.push_back(MemberEvent::Revoke {
                partitions: partitions.clone(),
                lost: self.generation_lost,
            });
            self.revoking = Some((partitions, AfterRevoke::Leave(reason)));
        }
    }

    /// Leaves once revoked. A closing dynamic leader first lets the coordinator finish the rebalance it
    /// may be leading (see [`handover_heartbeat`](Self::handover_heartbeat)): its assignment in flight
    /// goes out, its own JoinGroup held by the coordinator is answered (and, as leader, it assigns), or a
    /// heartbeat checks whether a rebalance started; for at most the session timeout or 5 s, whichever is
    /// shorter, except that the leader's own SyncGroup in flight is never aborted: its answer (or its
    /// request timeout) ends the wait.
    ///
    /// Java's `AbstractCoordinator.maybeLeaveGroup` and librdkafka's `rd_kafka_cgrp_leave` send
    /// LeaveGroup on the coordinator's connection, behind any request the coordinator still holds
    /// there; a Kafka coordinator elects a new leader when the leader leaves. The hand-over keeps a
    /// coordinator that does not (Tansu keeps the departed leader) from stalling the group.
    fn send_leave_or_finish(&mut self, now: Instant, reason: LeaveReason) {
        let dynamic = self.config.group_instance_id.is_none();
        let joined = !self.member_id.is_empty() && self.coordinator.is_some();
        if reason == LeaveReason::Closed && dynamic && joined && self.leader && self.handover.is_none() {
            let assigning = self.pending_assign.is_some()
                || matches!(self.in_flight, Some(InFlight::Metadata | InFlight::Sync));
            // Its own JoinGroup held: the answer may make it the leader of the new generation, and the
            // group would wait for its assignment.
            let joining = self.state == MemberState::Joining && self.in_flight == Some(InFlight::Join);
            let check = !assigning
                && matches!(self.state, MemberState::Stable | MemberState::Unjoined)
                && self.in_flight.is_none();
            if joining {
                self.handover = Some(now + self.handover_bound());
                return;
            }
            if assigning || check {
                self.handover = Some(now + self.handover_bound());
                if let (true, Some(generation)) = (check, self.generation.clone()) {
                    self.heartbeat.sent(now);
                    self.queued.push_back(GroupRequest::Heartbeat { generation });
                    return;
                }
                if assigning {
                    return;
                }
                self.handover = None;
            }
        }
        self.leave_now(now, reason);
    }

    /// How long a closing leader's hand-over may take: the session timeout, at most
    /// [`HANDOVER_BOUND`], so that it never eats a whole shutdown timeout.
    fn handover_bound(&self) -> Duration {
        self.heartbeat.config().session_timeout.min(HANDOVER_BOUND)
    }

    fn leave_now(&mut self, _now: Instant, reason: LeaveReason) {
        let dynamic = self.config.group_instance_id.is_none();
        let joined = !self.member_id.is_empty() && self.coordinator.is_some();
        self.handover = None;
        self.pending_assign = None;
        self.leader = false;
        self.state = MemberState::Unjoined;
        self.generation = None;
        self.owned_generation = None;
        self.events.push_back(MemberEvent::Left { reason });
        if dynamic && joined {
            self.in_flight = Some(InFlight::Leave);
            self.queued.push_back(GroupRequest::LeaveGroup {
                member_id: std::mem::take(&mut self.member_id),
                reason: match reason {
                    LeaveReason::PollTimeout => "consumer poll timeout has expired",
                    LeaveReason::Closed => "the consumer is being closed",
                },
            });
        } else {
            self.in_flight = None;
            if self.closing {
                self.closed = true;
            }
        }
    }

    fn fatal(&mut self, e: &ServerError) {
        self.fatal_message(e.to_string());
    }

    fn fatal_message(&mut self, error: String) {
        tracing::error!(group = %self.config.group_id, %error, "group membership failed for good");
        self.events.push_back(MemberEvent::Fatal { error });
        self.closed = true;
        self.state = MemberState::Unjoined;
    }
}

#[cfg(test)]
mod tests;
