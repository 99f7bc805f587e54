//! The async driver of one [`Member`]: it sends what the member asks for, feeds back answers and timer
//! expiries, and carries out offset work (OffsetFetch on assignment, OffsetCommit periodically, on
//! revoke and on shutdown) with the member's generation (quinn's `ConnectionDriver` shape).
//!
//! ```text
//!  Member::poll_request ──▶ JoinSet of request tasks ──▶ coordinator connection (its own socket)
//!        ▲ handle_*(now)            │ Completion
//!        └──────────────────────────┘
//!  Member::poll_event ──▶ RebalanceListener (the consumer): assigned / revoke (bounded wait) / left
//! ```
//!
//! May use [`member`](super::member), [`coordinator`](super::coordinator), [`offsets`](super::offsets)
//! and [`crate::client::cluster`]. The only state is in the task; nothing here is locked.
//!
//! # Invariants
//!
//! - Offsets are committed only from [`RebalanceListener::pending_commits`] and
//!   [`RebalanceListener::on_revoke`]: what the application reported done.
//! - A revocation completes (and the member may rejoin or leave) only after the listener returned and
//!   the revoked partitions' offsets were committed (or the commit failed for good: fenced, or still
//!   failing `request_timeout` after the first attempt; retriable failures are retried meanwhile).
//! - Shutdown: close the member (revoke and commit everything), LeaveGroup (dynamic members), return.
//!   A dynamic leader first completes the rebalance under way (its held JoinGroup answered, its
//!   assignment sent) or checks with one heartbeat that none started: at most the session timeout or
//!   5 s, whichever is shorter, except that the leader's own SyncGroup (everyone's assignment) is never
//!   cut and may take up to `request_timeout`. LeaveGroup during a held JoinGroup/SyncGroup drops it
//!   and goes on a new connection.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    actions::{Action, next_action},
    assignor::{PartitionsPerTopic, TopicPartition},
    coordinator::{self, CoordinatorConnection},
    member::{Failure, Generation, GroupRequest, LeaveReason, Member, MemberConfig, MemberEvent},
    offsets,
    waits::Waits,
};
use crate::client::Cluster;

/// How much longer than the rebalance timeout a JoinGroup may wait for its answer (Java's margin).
const JOIN_MARGIN: Duration = Duration::from_secs(5);

pub(crate) use crate::future::BoxFuture;

/// What the group driver needs from the consumer above it.
pub trait RebalanceListener: Send + Sync + 'static {
    /// Newly assigned partitions with their committed offsets (`None`: nothing committed yet).
    fn on_assigned(&self, added: Vec<(TopicPartition, Option<i64>)>);
    /// Stop delivering `partitions`, wait (bounded) for in-flight work on them, and return the offsets
    /// to commit for them (next offset to read). With `lost`, nothing will be committed.
    fn on_revoke(&self, partitions: Vec<TopicPartition>, lost: bool)
    -> BoxFuture<Vec<(TopicPartition, i64)>>;
    /// The revocation is complete (offsets committed or the commit failed): forget the partitions.
    fn on_revoked(&self, partitions: &[TopicPartition], lost: bool);
    /// Offsets the application marked done and that are not committed yet.
    fn pending_commits(&self) -> Vec<(TopicPartition, i64)>;
    /// These offsets were committed.
    fn on_committed(&self, offsets: &[(TopicPartition, i64)]);
    /// The instant of the application's last progress; `now` when it has nothing pending.
    fn last_progress(&self, now: Instant) -> Instant;
    /// The member left the group (poll timeout or close).
    fn on_left(&self, reason: LeaveReason);
    /// Membership failed for good.
    fn on_fatal(&self, error: String);
}

/// Settings of the driver beyond the member's own.
#[derive(Debug, Clone)]
pub(crate) struct DriverConfig {
    pub(crate) member: MemberConfig,
    /// How often done offsets are committed (`auto.commit.interval.ms`).
    pub(crate) commit_interval: Duration,
    /// The timeout of group requests other than JoinGroup.
    pub(crate) request_timeout: Duration,
    /// The runtime the cluster's shared connections belong to, when the driver runs on a runtime of its
    /// own: requests over them (FindCoordinator, Metadata) run there, so that connections the cluster
    /// opens or reopens meanwhile do not die with the driver's runtime.
    pub(crate) cluster_runtime: Option<tokio::runtime::Handle>,
}

/// Runs `work` on `runtime` (when given) and waits for it there; a task that could not finish is a
/// transport failure.
async fn on_runtime<T: Send + 'static>(
    runtime: Option<tokio::runtime::Handle>,
    work: impl Future<Output = Result<T, Failure>> + Send + 'static,
) -> Result<T, Failure> {
    match runtime {
        Some(runtime) => runtime
            .spawn(work)
            .await
            .unwrap_or_else(|e| Err(Failure::Transport(e.to_string()))),
        None => work.await,
    }
}

enum Completion {
    Coordinator(Result<kafka_protocol::messages::FindCoordinatorResponse, Failure>),
    Metadata(Result<PartitionsPerTopic, Failure>),
    Join(Result<kafka_protocol::messages::JoinGroupResponse, Failure>),
    Sync(Result<kafka_protocol::messages::SyncGroupResponse, Failure>),
    /// The heartbeat's answer, with the generation it was sent with.
    Heartbeat(
        Generation,
        Result<kafka_protocol::messages::HeartbeatResponse, Failure>,
    ),
    Leave,
    Fetched {
        added: Vec<TopicPartition>,
        generation_id: i32,
        result: Result<BTreeMap<TopicPartition, Option<i64>>, Failure>,
    },
    Revoked {
        partitions: Vec<TopicPartition>,
        lost: bool,
        offsets: Vec<(TopicPartition, i64)>,
    },
    Committed {
        offsets: Vec<(TopicPartition, i64)>,
        result: Result<(), Failure>,
        revoked: Option<RevokeCommit>,
    },
}

/// Offsets to commit (next offset to read, per partition).
type Offsets = Vec<(TopicPartition, i64)>;

/// The commit that ends a revocation (on rebalance or close): a retriable failure is retried, after the
/// coordinator is found again if it was lost, until `deadline`.
#[derive(Debug, Clone)]
struct RevokeCommit {
    partitions: Vec<TopicPartition>,
    deadline: Instant,
}

/// Runs the member until it is closed (after `shutdown` is cancelled) or fails for good.
pub(crate) async fn run(
    cluster: Cluster,
    config: DriverConfig,
    listener: Arc<dyn RebalanceListener>,
    shutdown: CancellationToken,
) {
    let mut driver = Driver {
        member: Member::new(config.member.clone(), Instant::now()),
        config: Arc::new(config),
        cluster,
        listener,
        coordinator: None,
        heartbeats: None,
        tasks: JoinSet::new(),
        waits: Waits::default(),
        rebalance_request: None,
        revoke_commit_retry: None,
        commits_in_flight: 0,
        next_commit: Instant::now(),
    };
    driver.next_commit = Instant::now() + driver.config.commit_interval;
    let mut closing = false;
    loop {
        let now = Instant::now();
        let progress = driver.listener.last_progress(now);
        if progress + driver.member.config().timeouts.max_poll_interval > now {
            driver.member.handle_poll(progress);
        }
        driver.member.handle_timeout(now);
        driver.step(now);
        if driver.member.is_closed() {
            // Revocation commits and LeaveGroup are done by now; what is left (a JoinGroup the
            // coordinator is holding, a heartbeat) no longer matters.
            driver.tasks.abort_all();
            driver.waits.clear();
            break;
        }
        driver.waits.report(&driver.config.member.group_id, now);
        let deadline = [
            driver.member.poll_timeout(),
            driver.waits.next_report(),
            driver.revoke_commit_retry.as_ref().map(|(_, _, at)| *at),
            Some(driver.next_commit),
            Some(now + Duration::from_secs(1)),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
        tokio::select! {
            Some(done) = driver.tasks.join_next_with_id() => {
                let now = Instant::now();
                match done {
                    Ok((id, done)) => {
                        driver.waits.ended(id, &driver.config.member.group_id, now);
                        driver.complete(now, done);
                    }
                    Err(e) => driver.waits.ended(e.id(), &driver.config.member.group_id, now),
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = shutdown.cancelled(), if !closing => {
                closing = true;
                driver.member.close(Instant::now());
            }
        }
    }
    tracing::debug!(group = %driver.config.member.group_id, "group driver stopped");
}

struct Driver {
    config: Arc<DriverConfig>,
    member: Member,
    cluster: Cluster,
    listener: Arc<dyn RebalanceListener>,
    coordinator: Option<CoordinatorConnection>,
    /// A second connection to the coordinator for heartbeats, so that they never wait behind a
    /// JoinGroup or SyncGroup the coordinator holds (a broker answers a connection's requests in order).
    heartbeats: Option<CoordinatorConnection>,
    tasks: JoinSet<Completion>,
    waits: Waits,
    /// The JoinGroup or SyncGroup in flight, if any.
    rebalance_request: Option<AbortHandle>,
    /// A revocation's commit that failed and is retried at the instant given.
    revoke_commit_retry: Option<(Offsets, RevokeCommit, Instant)>,
    commits_in_flight: usize,
    next_commit: Instant,
}

impl Driver {
    /// Runs `task` beside the others, remembering what it waits for (to log long waits).
    fn spawn(
        &mut self,
        what: &'static str,
        to_coordinator: bool,
        task: impl Future<Output = Completion> + Send + 'static,
    ) -> AbortHandle {
        let coordinator = self
            .coordinator
            .as_ref()
            .map(|c| c.node_id)
            .filter(|_| to_coordinator);
        let handle = self.tasks.spawn(task);
        self.waits.started(handle.id(), what, coordinator, Instant::now());
        handle
    }

    /// Drains the member's events and requests, and commits when due.
    fn step(&mut self, now: Instant) {
        self.sync_coordinator();
        if self
            .revoke_commit_retry
            .as_ref()
            .is_some_and(|(_, _, at)| now >= *at)
            && let Some((offsets, revoke, _)) = self.revoke_commit_retry.take()
        {
            self.commit(offsets, Some(revoke));
        }
        while let Some(action) = next_action(&mut self.member, now) {
            match action {
                Action::Event(event) => self.event(event),
                Action::Request(request) => self.send(request),
            }
            self.sync_coordinator();
        }
        if now >= self.next_commit {
            self.next_commit = now + self.config.commit_interval;
            let offsets = self.listener.pending_commits();
            if !offsets.is_empty() && self.commits_in_flight == 0 {
                self.commit(offsets, None);
            }
        }
    }

    fn sync_coordinator(&mut self) {
        match self.member.coordinator() {
            Some((id, address)) => {
                let stale = self
                    .coordinator
                    .as_ref()
                    .is_none_or(|c| c.node_id != id || c.address() != address);
                if stale {
                    tracing::debug!(group = %self.config.member.group_id, coordinator = id, address, "coordinator found");
                    self.coordinator = Some(CoordinatorConnection::new(id, address, self.cluster.config()));
                    self.heartbeats = Some(CoordinatorConnection::new(id, address, self.cluster.config()));
                }
            }
            None => {
                self.coordinator = None;
                self.heartbeats = None;
            }
        }
    }

    fn event(&mut self, event: MemberEvent) {
        match event {
            MemberEvent::Assigned {
                added, generation, ..
            } => {
                tracing::info!(group = %self.config.member.group_id, generation = generation.generation_id, added = ?added, "assigned");
                if !added.is_empty() {
                    self.fetch_committed(added, generation.generation_id, Duration::ZERO);
                }
            }
            MemberEvent::Revoke { partitions, lost } => {
                tracing::info!(group = %self.config.member.group_id, revoked = ?partitions, lost, "revoking");
                let revoke = self.listener.on_revoke(partitions.clone(), lost);
                self.spawn("revocation (workers finishing)", false, async move {
                    let offsets = revoke.await;
                    Completion::Revoked {
                        partitions,
                        lost,
                        offsets,
                    }
                });
            }
            MemberEvent::Left { reason } => self.listener.on_left(reason),
            MemberEvent::Fatal { error } => self.listener.on_fatal(error),
        }
    }

    fn fetch_committed(&mut self, added: Vec<TopicPartition>, generation_id: i32, delay: Duration) {
        let coordinator = self.coordinator.clone();
        let group = self.config.member.group_id.clone();
        let timeout = self.config.request_timeout;
        self.spawn("OffsetFetch", true, async move {
            tokio::time::sleep(delay).await;
            let result = match coordinator {
                Some(c) => offsets::fetch_committed(&c, &group, &added, timeout).await,
                None => Err(Failure::Transport("no coordinator".into())),
            };
            Completion::Fetched {
                added,
                generation_id,
                result,
            }
        });
    }

    fn commit(&mut self, offsets: Vec<(TopicPartition, i64)>, revoked: Option<RevokeCommit>) {
        let Some(generation) = self.member.generation().cloned() else {
            // Not a stable member (no generation): nothing can be committed; a revocation goes on.
            tracing::debug!(group = %self.config.member.group_id, "no generation: offsets not committed");
            if let Some(revoke) = revoked {
                self.finish_revoke(&revoke.partitions);
            }
            return;
        };
        let Some(coordinator) = self.coordinator.clone() else {
            match revoked {
                // Being looked up again (the member asks for FindCoordinator while revoking).
                Some(revoke) => self.retry_revoke_commit(offsets, revoke),
                None => {
                    tracing::debug!(group = %self.config.member.group_id, "no coordinator: offsets not committed")
                }
            }
            return;
        };
        self.commits_in_flight += 1;
        let config = Arc::clone(&self.config);
        self.spawn("OffsetCommit", true, async move {
            let result = offsets::commit(
                &coordinator,
                &config.member,
                &generation,
                &offsets,
                config.request_timeout,
            )
            .await;
            Completion::Committed {
                offsets,
                result,
                revoked,
            }
        });
    }

    /// Schedules another attempt at a revocation's commit, or gives up past its deadline.
    fn retry_revoke_commit(&mut self, offsets: Vec<(TopicPartition, i64)>, revoke: RevokeCommit) {
        let now = Instant::now();
        if now >= revoke.deadline {
            tracing::warn!(group = %self.config.member.group_id, partitions = ?revoke.partitions, "revocation commit failed until its deadline; offsets not committed");
            self.finish_revoke(&revoke.partitions);
            return;
        }
        let at = now + self.config.member.timeouts.retry_backoff;
        self.revoke_commit_retry = Some((offsets, revoke, at));
    }

    fn finish_revoke(&mut self, partitions: &[TopicPartition]) {
        self.listener.on_revoked(partitions, false);
        self.member.handle_revoked(Instant::now());
    }

    fn send(&mut self, request: GroupRequest) {
        let config = Arc::clone(&self.config);
        let timeout = config.request_timeout;
        if let GroupRequest::FindCoordinator = request {
            let cluster = self.cluster.clone();
            self.spawn("FindCoordinator", false, async move {
                let runtime = config.cluster_runtime.clone();
                let result = on_runtime(runtime, async move {
                    let group = config.member.group_id.as_str();
                    cluster
                        .request_any_with(|v| coordinator::find_coordinator(v, group))
                        .await
                        .map(|(_, r)| r)
                        .map_err(|e| Failure::Transport(e.to_string()))
                })
                .await;
                Completion::Coordinator(result)
            });
            return;
        }
        if let GroupRequest::Metadata { topics } = request {
            let cluster = self.cluster.clone();
            let runtime = config.cluster_runtime.clone();
            self.spawn("Metadata", false, async move {
                let result = on_runtime(runtime, async move {
                    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                    cluster
                        .refresh_topics(&names)
                        .await
                        .map(|m| {
                            m.topics
                                .iter()
                                .filter(|(name, _)| topics.contains(name))
                                .map(|(name, t)| {
                                    (
                                        name.clone(),
                                        i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
                                    )
                                })
                                .collect()
                        })
                        .map_err(|e| Failure::Transport(e.to_string()))
                })
                .await;
                Completion::Metadata(result)
            });
            return;
        }
        let Some(mut c) = self.coordinator.clone() else {
            let lost = || Failure::Transport("coordinator unknown".into());
            let done = match request {
                GroupRequest::JoinGroup { .. } => Completion::Join(Err(lost())),
                GroupRequest::SyncGroup { .. } => Completion::Sync(Err(lost())),
                GroupRequest::Heartbeat { generation } => Completion::Heartbeat(generation, Err(lost())),
                _ => Completion::Leave,
            };
            self.spawn("nothing (no coordinator)", false, async move { done });
            return;
        };
        let rebalancing = matches!(
            request,
            GroupRequest::JoinGroup { .. } | GroupRequest::SyncGroup { .. } | GroupRequest::LeaveGroup { .. }
        );
        if rebalancing && let Some(held) = self.rebalance_request.take().filter(|r| !r.is_finished()) {
            // The member moved on (it leaves, or the generation ended while the coordinator held its
            // JoinGroup or SyncGroup): a broker answers a connection's requests in order, so the next
            // request goes on a new connection, and the held one is dropped.
            held.abort();
            tracing::debug!(group = %config.member.group_id, "a held JoinGroup or SyncGroup is dropped");
            let fresh = CoordinatorConnection::new(c.node_id, c.address(), self.cluster.config());
            self.coordinator = Some(fresh.clone());
            c = fresh;
        }
        match request {
            GroupRequest::JoinGroup {
                member_id,
                protocols,
                reason,
            } => {
                tracing::debug!(group = %config.member.group_id, coordinator = c.node_id, member = %member_id, reason, "JoinGroup sent");
                // The coordinator holds JoinGroup until every member rejoined: up to the rebalance timeout.
                // Past it (plus a margin, as Java does) the member rediscovers the coordinator and rejoins.
                let join_timeout = config.member.rebalance_timeout + JOIN_MARGIN;
                self.rebalance_request = Some(self.spawn("JoinGroup", true, async move {
                    let m = &config.member;
                    Completion::Join(
                        c.send(
                            |v| coordinator::join_group(v, m, &member_id, &protocols, &reason),
                            join_timeout,
                        )
                        .await,
                    )
                }));
            }
            GroupRequest::SyncGroup {
                generation,
                assignments,
            } => {
                tracing::debug!(group = %config.member.group_id, coordinator = c.node_id, generation = generation.generation_id, leader = !assignments.is_empty(), "SyncGroup sent");
                // Like every request but JoinGroup (Java): a SyncGroup the coordinator never answers ends
                // in rediscovery and a rejoin, not in a wait as long as the rebalance timeout.
                let sync_timeout = timeout;
                self.rebalance_request = Some(self.spawn("SyncGroup", true, async move {
                    let m = &config.member;
                    Completion::Sync(
                        c.send(
                            |v| coordinator::sync_group(v, m, &generation, &assignments),
                            sync_timeout,
                        )
                        .await,
                    )
                }));
            }
            GroupRequest::Heartbeat { generation } => {
                let c = self.heartbeats.clone().unwrap_or(c);
                self.spawn("Heartbeat", true, async move {
                    let m = &config.member;
                    let result = c.send(|_| coordinator::heartbeat(m, &generation), timeout).await;
                    Completion::Heartbeat(generation, result)
                });
            }
            GroupRequest::LeaveGroup { member_id, reason } => {
                self.spawn("LeaveGroup", true, async move {
                    let m = &config.member;
                    let result = c
                        .send(|v| coordinator::leave_group(v, m, &member_id, reason), timeout)
                        .await;
                    if let Err(e) = result {
                        tracing::debug!(error = ?e, "LeaveGroup failed; the session will expire instead");
                    }
                    Completion::Leave
                });
            }
            GroupRequest::FindCoordinator | GroupRequest::Metadata { .. } => {}
        }
    }

    fn complete(&mut self, now: Instant, done: Completion) {
        match done {
            Completion::Coordinator(r) => self.member.handle_coordinator(now, r),
            Completion::Metadata(r) => self.member.handle_metadata(now, r),
            Completion::Join(r) => {
                if let Ok(r) = &r {
                    tracing::debug!(group = %self.config.member.group_id, error = r.error_code, generation = r.generation_id, member = %r.member_id, leader = %r.leader, "JoinGroup answered");
                }
                self.member.handle_join(now, r)
            }
            Completion::Sync(r) => {
                if let Ok(r) = &r {
                    tracing::debug!(group = %self.config.member.group_id, error = r.error_code, "SyncGroup answered");
                }
                self.member.handle_sync(now, r)
            }
            Completion::Heartbeat(sent, r) => {
                match &r {
                    Ok(r) if r.error_code != 0 => {
                        tracing::debug!(group = %self.config.member.group_id, error = r.error_code, "Heartbeat answered");
                    }
                    Err(e) => {
                        tracing::debug!(group = %self.config.member.group_id, error = ?e, "Heartbeat failed")
                    }
                    Ok(_) => {}
                }
                self.member.handle_heartbeat(now, &sent, r)
            }
            Completion::Leave => self.member.handle_leave(now),
            Completion::Fetched {
                added,
                generation_id,
                result,
            } => {
                // Only partitions still owned matter; a newer generation fetches its own.
                let owned: Vec<TopicPartition> = added
                    .into_iter()
                    .filter(|tp| self.member.owned().contains(tp))
                    .collect();
                if owned.is_empty() {
                    return;
                }
                match result {
                    Ok(committed) => self.listener.on_assigned(
                        owned
                            .into_iter()
                            .map(|tp| (tp.clone(), committed.get(&tp).copied().flatten()))
                            .collect(),
                    ),
                    Err(e) => {
                        tracing::warn!(error = ?e, "OffsetFetch failed; retrying");
                        self.member.handle_commit_error(now, &e);
                        self.fetch_committed(owned, generation_id, self.config.member.timeouts.retry_backoff);
                    }
                }
            }
            Completion::Revoked {
                partitions,
                lost,
                offsets,
            } => {
                if lost || offsets.is_empty() {
                    self.listener.on_revoked(&partitions, lost);
                    self.member.handle_revoked(now);
                } else {
                    let deadline = now + self.config.request_timeout;
                    self.commit(offsets, Some(RevokeCommit { partitions, deadline }));
                }
            }
            Completion::Committed {
                offsets,
                result,
                revoked,
            } => {
                self.commits_in_flight = self.commits_in_flight.saturating_sub(1);
                match result {
                    Ok(()) => self.listener.on_committed(&offsets),
                    Err(e) => {
                        tracing::warn!(group = %self.config.member.group_id, error = ?e, "OffsetCommit failed");
                        self.member.handle_commit_error(now, &e);
                        if e.is_retriable()
                            && let Some(revoke) = revoked
                        {
                            self.retry_revoke_commit(offsets, revoke);
                            return;
                        }
                    }
                }
                if let Some(revoke) = revoked {
                    self.finish_revoke(&revoke.partitions);
                }
            }
        }
    }
}
