//! The consumer the layer above uses (Java's `KafkaConsumer`, shaped for async workers): group
//! membership plus the fetcher, turned into per-partition ordered record streams, assignment and
//! revocation events, and a way to store the offset to commit.
//!
//! ```text
//!   group driver ──assigned──▶ ConsumerEvent::Assigned(PartitionStream…) ──▶ one worker per partition
//!        │ revoke: end streams, wait (bounded) for in-flight work, commit stored offsets
//!   fetcher ──CompletedFetch per partition──▶ PartitionStream::next ──▶ worker ──▶ Progress::store_offset
//! ```
//!
//! Owns: [`Consumer`], [`PartitionStream`], [`Progress`], the glue between [`crate::client::group`] and
//! [`crate::client::fetcher`]. May use both (and never their internals beyond their crate API).
//!
//! # Invariants
//!
//! - Only offsets stored through [`Progress::store_offset`] (the next offset to read, one past the
//!   last record handled) are committed. Who reads and writes which offset: `offsets` (the module).
//! - A revoked partition's stream ends at once; the revocation then waits up to `revoke_timeout` for
//!   an offset past every record handed out on it to be stored (or the stream to be dropped), commits, and only
//!   then lets the group move the partition.
//! - Dropping a [`Consumer`] without [`Consumer::close`] stops it like a crash: no commit, no
//!   LeaveGroup (the coordinator evicts it after the session timeout).

mod listener;
mod offsets;
mod probe;
mod stream;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use snafu::Snafu;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub(crate) use probe::PartitionProbe;
pub use stream::{PartitionStream, Progress};

pub use super::fetcher::ConsumerRecord;
use super::{
    Cluster,
    fetcher::{self, FetchConfig, FetchShared},
    group::{
        HeartbeatConfig, LeaveReason, MemberConfig,
        assignor::{Assignor, RangeAssignor},
        driver::{self, DriverConfig},
        driver_thread,
    },
    subscription::TopicPartition,
};
use listener::{Listener, Shared};

/// Why a consumer could not start or stopped.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::consumer::Error;
///
/// let e = Error::GroupFailed { reason: "fenced by a newer instance".into() };
/// assert!(e.is_retriable());
/// assert!(!Error::NoRuntime.is_retriable());
/// ```
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work.
    #[snafu(display("invalid consumer configuration: {reason}"))]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// [`Consumer::connect`] was called outside a tokio runtime.
    #[snafu(display("Consumer::connect must be called inside a tokio runtime"))]
    NoRuntime,
    /// The group membership failed for good ([`ConsumerEvent::Fatal`]): this consumer has stopped.
    #[snafu(display("group membership failed: {reason}"))]
    GroupFailed {
        /// The group driver's reason.
        reason: String,
    },
    /// The consumer stopped without being closed (its background tasks ended).
    #[snafu(display("the consumer stopped: {reason}"))]
    Stopped {
        /// What ended it.
        reason: String,
    },
}

impl Error {
    /// Whether a new consumer with the same configuration may succeed later: yes after a failed
    /// membership or a stop (a fresh member joins again), no for a configuration that cannot work.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::InvalidConfig { .. } | Self::NoRuntime => false,
            Self::GroupFailed { .. } | Self::Stopped { .. } => true,
        }
    }
}

/// Everything a group consumer needs.
///
/// # Example
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use kafka_event_bus::client::consumer::ConsumerConfig;
/// use kafka_event_bus::client::group::assignor::CooperativeStickyAssignor;
///
/// let config = ConsumerConfig::new("billing", ["orders"])
///     .with_assignors(vec![Arc::new(CooperativeStickyAssignor)])
///     .with_session_timeout(Duration::from_secs(6))
///     .with_heartbeat_interval(Duration::from_millis(500));
/// assert_eq!(config.group.timeouts.session_timeout, Duration::from_secs(6));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// Group, subscription, assignors and group timeouts.
    pub group: MemberConfig,
    /// Fetch settings, `auto_offset_reset` and `isolation_level`.
    pub fetch: FetchConfig,
    /// `auto.commit.interval.ms`: how often stored offsets are committed. Below 1 ms (zero included)
    /// it is taken as 1 ms, so the group's thread never spins.
    pub commit_interval: Duration,
    /// The longest a revocation waits for in-flight work on a partition before committing what is done.
    pub revoke_timeout: Duration,
    /// The timeout of group requests (JoinGroup gets the rebalance timeout on top).
    pub request_timeout: Duration,
}

impl ConsumerConfig {
    /// A consumer of `topics` in group `group_id`, with Java's defaults and the range assignor.
    pub fn new(group_id: impl Into<String>, topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            group: MemberConfig::new(group_id, topics).with_assignors(vec![Arc::new(RangeAssignor)]),
            fetch: FetchConfig::default(),
            commit_interval: Duration::from_secs(5),
            revoke_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Sets the assignors (`partition.assignment.strategy`).
    #[must_use]
    pub fn with_assignors(mut self, assignors: Vec<Arc<dyn Assignor>>) -> Self {
        self.group.assignors = assignors;
        self
    }

    /// Makes the member static (`group.instance.id`).
    #[must_use]
    pub fn with_group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group.group_instance_id = Some(id.into());
        self
    }

    /// Sets `session.timeout.ms`.
    #[must_use]
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.group.timeouts.session_timeout = timeout;
        self
    }

    /// Sets `heartbeat.interval.ms`.
    #[must_use]
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.group.timeouts.heartbeat_interval = interval;
        self
    }

    /// Sets `max.poll.interval.ms` (and the rebalance timeout with it).
    #[must_use]
    pub fn with_max_poll_interval(mut self, interval: Duration) -> Self {
        self.group.timeouts.max_poll_interval = interval;
        self.group.rebalance_timeout = interval;
        self
    }

    /// Sets all group timeouts at once.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: HeartbeatConfig) -> Self {
        self.group = self.group.with_timeouts(timeouts);
        self
    }

    /// Sets the fetch settings.
    #[must_use]
    pub fn with_fetch(mut self, fetch: FetchConfig) -> Self {
        self.fetch = fetch;
        self
    }

    /// Sets `auto.offset.reset`.
    #[must_use]
    pub fn with_auto_offset_reset(mut self, reset: super::subscription::OffsetReset) -> Self {
        self.fetch.auto_offset_reset = reset;
        self
    }

    /// Sets the commit interval (at least 1 ms is used).
    #[must_use]
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// The interval the group's thread commits at: `commit_interval`, at least 1 ms (a zero interval
    /// made its next commit always due, so the thread woke without pause).
    fn effective_commit_interval(&self) -> Duration {
        self.commit_interval.max(Duration::from_millis(1))
    }

    /// Sets the bounded wait of a revocation.
    #[must_use]
    pub fn with_revoke_timeout(mut self, timeout: Duration) -> Self {
        self.revoke_timeout = timeout;
        self
    }
}

/// What happened to the consumer's assignment.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConsumerEvent {
    /// New partitions, each with its record stream (positioned at the committed offset, or per
    /// `auto_offset_reset`).
    Assigned(Vec<PartitionStream>),
    /// These partitions are gone (their streams have ended; stored offsets were committed unless `lost`).
    Revoked {
        /// The partitions.
        partitions: Vec<TopicPartition>,
        /// The generation was lost: nothing could be committed.
        lost: bool,
    },
    /// The member left the group (after a poll timeout it rejoins once the application makes progress).
    Left(LeaveReason),
    /// Membership failed for good ([`Error::GroupFailed`]); the consumer has stopped.
    Fatal(Error),
}

/// A consumer-group member with a fetcher: see the module docs.
///
/// # Example
///
/// ```no_run
/// # async fn example(cluster: kafka_event_bus::client::Cluster) {
/// use kafka_event_bus::client::consumer::{Consumer, ConsumerConfig, ConsumerEvent};
///
/// let mut consumer = Consumer::connect(&cluster, ConsumerConfig::new("billing", ["orders"])).unwrap();
/// while let Some(event) = consumer.next_event().await {
///     if let ConsumerEvent::Assigned(streams) = event {
///         for mut stream in streams {
///             tokio::spawn(async move {
///                 while let Some(record) = stream.next().await {
///                     // handle, then:
///                     stream.store_offset(record.offset + 1);
///                 }
///             });
///         }
///     }
/// }
/// consumer.close().await;
/// # }
/// ```
#[derive(Debug)]
pub struct Consumer {
    events: mpsc::UnboundedReceiver<ConsumerEvent>,
    shared: Arc<Shared>,
    stop_group: CancellationToken,
    stop_fetcher: CancellationToken,
    driver: Option<JoinHandle<()>>,
    fetcher: Option<JoinHandle<()>>,
}

impl Consumer {
    /// Creates the consumer: joins `config`'s group, subscribed to its topics, over `cluster`, and
    /// starts fetching (in background tasks on the current tokio runtime). Assignments arrive through
    /// [`next_event`](Self::next_event).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an empty group id, no topics or no assignor; [`Error::NoRuntime`]
    /// outside a tokio runtime.
    pub fn connect(cluster: &Cluster, config: ConsumerConfig) -> Result<Self, Error> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return NoRuntimeSnafu.fail();
        };
        let reason = if config.group.group_id.is_empty() {
            Some("group_id is empty")
        } else if config.group.topics.is_empty() {
            Some("no topics")
        } else if config.group.assignors.is_empty() {
            Some("no assignor")
        } else {
            None
        };
        if let Some(reason) = reason {
            return InvalidConfigSnafu { reason }.fail();
        }
        let (tx, events) = mpsc::unbounded_channel();
        let fetch = Arc::new(FetchShared::new(config.fetch.max_buffered_fetches));
        let shared = Arc::new(Shared {
            fetch: Arc::clone(&fetch),
            partitions: Mutex::new(HashMap::new()),
            zombies: Mutex::new(Vec::new()),
            events: tx,
            revoke_timeout: config.revoke_timeout,
            reset: config.fetch.auto_offset_reset,
        });
        let stop_group = CancellationToken::new();
        let stop_fetcher = CancellationToken::new();
        let driver = driver_thread::spawn(
            &runtime,
            driver::run(
                cluster.clone(),
                DriverConfig {
                    member: config.group.clone(),
                    commit_interval: config.effective_commit_interval(),
                    request_timeout: config.request_timeout,
                    cluster_runtime: Some(runtime.clone()),
                },
                Arc::new(Listener(Arc::clone(&shared))),
                stop_group.clone(),
            ),
        );
        let fetcher = runtime.spawn(fetcher::run(
            cluster.clone(),
            config.fetch,
            fetch,
            stop_fetcher.clone(),
        ));
        Ok(Self {
            events,
            shared,
            stop_group,
            stop_fetcher,
            driver: Some(driver),
            fetcher: Some(fetcher),
        })
    }

    /// The next assignment change; `None` once the consumer has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: no event is lost if the future is dropped.
    pub async fn next_event(&mut self) -> Option<ConsumerEvent> {
        self.events.recv().await
    }

    /// The partitions assigned now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        let mut tps: Vec<TopicPartition> = self.shared.partitions_lock().keys().cloned().collect();
        tps.sort();
        tps
    }

    /// The last committed offset of `tp` known to this consumer (the next offset to read), while `tp`
    /// is assigned.
    pub fn committed(&self, tp: &TopicPartition) -> Option<i64> {
        self.shared.partitions_lock().get(tp)?.offsets.committed()
    }

    /// How many fetched chunks of `tp` its stream has not worked through yet.
    pub fn buffered_chunks(&self, tp: &TopicPartition) -> usize {
        self.shared.fetch.buffered_chunks(tp)
    }

    /// The position (next offset to fetch) of `tp`.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.shared.fetch.position(tp)
    }

    /// Leaves the group gracefully: ends every stream, waits (bounded) for in-flight work, commits
    /// what is done, sends LeaveGroup (dynamic members), then stops fetching.
    pub async fn close(mut self) {
        self.stop_group.cancel();
        if let Some(driver) = self.driver.take() {
            let _ = driver.await;
        }
        self.stop_fetcher.cancel();
        if let Some(fetcher) = self.fetcher.take() {
            let _ = fetcher.await;
        }
    }
}

/// The assignment changes, as [`next_event`](Consumer::next_event) hands them out; ends once the
/// consumer has stopped.
///
/// # Example
///
/// ```no_run
/// # async fn example(cluster: kafka_event_bus::client::Cluster) {
/// use futures::StreamExt;
/// use kafka_event_bus::client::consumer::{Consumer, ConsumerConfig, ConsumerEvent};
///
/// let consumer = Consumer::connect(&cluster, ConsumerConfig::new("billing", ["orders"])).unwrap();
/// let mut assigned = std::pin::pin!(consumer.filter_map(|event| async move {
///     match event {
///         ConsumerEvent::Assigned(streams) => Some(streams),
///         _ => None,
///     }
/// }));
/// # let _ = assigned.next().await;
/// # }
/// ```
impl futures_core::Stream for Consumer {
    type Item = ConsumerEvent;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ConsumerEvent>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Like a crash: no commit, no LeaveGroup. `close` is the graceful way.
        for task in [self.driver.take(), self.fetcher.take()].into_iter().flatten() {
            task.abort();
        }
        for handle in self.shared.partitions_lock().values() {
            handle.revoked.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send + 'static>() {}

    #[test]
    fn handles_cross_tasks() {
        assert_send::<Consumer>();
        assert_send::<ConsumerEvent>();
        assert_send::<PartitionStream>();
        assert_send::<Progress>();
    }

    /// A stream lives inline in its worker (the bus keeps one worker per assigned partition): a failed
    /// batch's error, absent nearly always, is kept out of line (inline it made every stream 448 bytes).
    /// The chunk being decoded stays inline: boxed, it cost the raw consumer CPU per event.
    #[test]
    fn a_partition_stream_keeps_a_failed_batchs_error_out_of_line() {
        let size = size_of::<PartitionStream>();
        let chunk = size_of::<crate::client::fetcher::CompletedFetch>();
        assert!(size <= chunk + 96, "{size} bytes, of which {chunk} the chunk");
    }

    #[test]
    fn config_defaults_follow_java() {
        let c = ConsumerConfig::new("g", ["t"]);
        assert_eq!(c.group.timeouts.session_timeout, Duration::from_secs(45));
        assert_eq!(c.group.rebalance_timeout, Duration::from_secs(300));
        assert_eq!(c.commit_interval, Duration::from_secs(5));
        assert_eq!(
            c.clone()
                .with_commit_interval(Duration::ZERO)
                .effective_commit_interval(),
            Duration::from_millis(1)
        );
        let c = c.with_max_poll_interval(Duration::from_secs(10));
        assert_eq!(c.group.rebalance_timeout, Duration::from_secs(10));
    }
}
