//! The multi-partition fetcher: per broker, one Fetch for the fetchable partitions it leads that have
//! records waiting and one long poll for those that are caught up, decoded into per-partition chunks.
//!
//! ```text
//!  SubscriptionState::by_topic ──by leader, lane──▶ one Fetch per broker and lane (own connections)
//!          ▲ advance(position, watermarks)            │ decode (4 codecs, control/aborted skipped)
//!          └──────────────────────────────────────────┴──▶ per-partition sink (CompletedFetch)
//! ```
//!
//! Owns: the fetch task, its broker connections, offset resets (`reset`), and the plain reads of one
//! partition that resets and the DLQ admin share (`partition_reader`). May use
//! [`crate::client::cluster`], `client::subscription` and [`crate::protocol`].
//!
//! # Invariants
//!
//! - A broker gets at most two Fetches in flight, one per lane, each on its own connection: the *data*
//!   lane fetches the partitions known to have records past their position, the *poll* lane long-polls
//!   the caught-up ones (`plan::Lane`). A partition with records known to wait does not wait behind a
//!   long poll (with one Fetch per broker, a partition whose buffer was full when an idle sibling's long
//!   poll left waited up to `fetch_max_wait` each time its buffer drained). A partition whose end is not
//!   current (just positioned, resumed, after a failed fetch, or held back at its end by a full buffer)
//!   is looked at on the data lane with at most `plan::LOOK_MAX_WAIT` of wait. (A data-lane Fetch can
//!   still wait when `fetch_min_bytes` is above what is there, or briefly after a leader moved.) A
//!   partition that catches up while the poll lane's long poll is in flight joins the next one, as with
//!   Java's one Fetch per broker. A partition is in at most one Fetch.
//! - Each Fetch lists its partitions starting from a different one (`plan::rotate`): a broker that
//!   fills its response budget in request order still serves every partition in turn.
//! - A partition is fetched only while fetchable (assigned, positioned, not paused, not revoking, fewer
//!   than `max_buffered_fetches` chunks waiting for the application): a slow or paused partition stops
//!   being fetched, so its memory stays bounded while the others keep flowing.
//! - A result is delivered only if the partition's epoch and position still match what was fetched
//!   (no stale records after a revoke, reassignment or reset).
//! - The fetcher's connections are its own: long-polls never hold up other requests to the broker.
//! - Partitions waiting for an `earliest` offset reset are resolved per leader, a bounded number a
//!   request (`reset::batches`): one ListOffsets per broker, applied when it answers. `latest` is
//!   resolved per partition (a log-end Fetch of many cold partitions is unbounded work; see `reset`).
//!   A partition whose reset failed under its current assignment waits `retry_backoff` before it is
//!   tried again.
//! - The position passes a batch only after its frame, magic and (with `check_crcs`) CRC were checked
//!   (`plan::walk`); it moves over a batch no further than the next batch's base offset or the high
//!   watermark, whatever its `lastOffsetDelta` claims. A batch that fails is fetched once more after
//!   `retry_backoff`; failing again, the partition stops at it (`SubscriptionState::stop_at_batch`):
//!   its stream hands out an [`Error`] and nothing is fetched until the application passes it. A batch
//!   that decodes badly later (decompression, records) stops the stream the same way.
//! - A Fetch asks for no more than the connection's `max_response_size` takes, and half as much per
//!   response that was still too large (`Fetcher::response_too_large`).

mod error;
mod plan;
pub use error::Error;
pub(crate) use plan::{CompletedFetch, Failed};
#[cfg(test)]
mod fake_broker_tests;
pub(crate) mod partition_reader;
mod partition_set;
mod reset;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::{
    sync::{Notify, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    client::{
        Cluster,
        connection::{self, BrokerConnection},
        subscription::{OffsetReset, SubscriptionState, TopicPartition},
    },
    protocol::{Headers, ResponseError},
};
use partition_set::PartitionSet;
use plan::{FetchTarget, Lane, PartitionOutcome};

/// `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IsolationLevel {
    /// Every record, including those of open and aborted transactions (Java's default).
    #[default]
    ReadUncommitted,
    /// Only committed records, up to the last stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    fn code(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// Fetch settings (Java names; Java's defaults but for [`fetch_max_bytes`](Self::fetch_max_bytes)).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kafka_event_bus::client::fetcher::FetchConfig;
///
/// let c = FetchConfig::default();
/// assert_eq!(c.fetch_max_wait, Duration::from_millis(500));
/// assert_eq!(c.max_partition_fetch_bytes, 1 << 20);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FetchConfig {
    /// `fetch.max.wait.ms`: how long the broker may hold a Fetch waiting for data.
    pub fetch_max_wait: Duration,
    /// `fetch.min.bytes`.
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes`: the most one Fetch response may carry (the broker still returns the first
    /// batch of the response's first non-empty partition when it is larger). Default 2 MiB, not
    /// Kafka's 50 MiB: the records handed out point into their response, so a response stays
    /// resident until the last record of it is dropped, and the connection keeps the buffer it was
    /// read into for the next one. A smaller value lowers the
    /// consumer's memory further (1 MiB: ~1.5 MiB less at 1,000 partitions) at the cost of more
    /// Fetches, each of which walks every fetchable partition (1 MiB: ~10 % more client CPU per
    /// record at 1,000 partitions); a larger one saves round trips when the broker is far.
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`: the most one partition may contribute to a response. It may be
    /// above [`fetch_max_bytes`](Self::fetch_max_bytes) (for records larger than that): it is asked
    /// for as set, and a partition whose batch does not fit in a response is left out of it and taken
    /// first by a later Fetch (Fetches start from each partition in turn).
    pub max_partition_fetch_bytes: i32,
    /// `isolation.level`.
    pub isolation_level: IsolationLevel,
    /// `auto.offset.reset`.
    pub auto_offset_reset: OffsetReset,
    /// `check.crcs`.
    pub check_crcs: bool,
    /// How many fetched chunks per partition may be waiting for the application or being worked
    /// through by it before the partition stops being fetched (memory bound: about this many ×
    /// `max_partition_fetch_bytes` per partition; 2 keeps one fetch ahead of the application).
    pub max_buffered_fetches: usize,
    /// The pause before retrying a broker whose Fetch failed, and before fetching a batch again that
    /// failed its checks once.
    pub retry_backoff: Duration,
    /// The most bytes one compressed batch may decompress to: a batch past it fails to decode
    /// ([`Error::CorruptBatch`]) instead of taking the memory. Default 128 MiB.
    pub max_uncompressed_batch_bytes: usize,
}

/// [`FetchConfig::fetch_max_bytes`]'s default.
const DEFAULT_FETCH_MAX_BYTES: i32 = 2 << 20;

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            max_partition_fetch_bytes: 1 << 20,
            isolation_level: IsolationLevel::ReadUncommitted,
            auto_offset_reset: OffsetReset::Earliest,
            check_crcs: true,
            max_buffered_fetches: 2,
            retry_backoff: Duration::from_millis(100),
            max_uncompressed_batch_bytes: 128 << 20,
        }
    }
}

/// One record as the consumer hands it up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The timestamp (ms since the epoch).
    pub timestamp: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value (`None`: a tombstone).
    pub value: Option<Bytes>,
    /// The headers, in wire order.
    pub headers: Headers,
}

/// Where fetched chunks of one partition go. Boxed: the channel allocates 32 slots of its item when it
/// is made, so an assigned partition costs 32 pointers, not 32 chunks, before its first record.
pub(crate) type Sink = mpsc::UnboundedSender<Box<CompletedFetch>>;

/// The fetcher as the consumer sees it: the assignment's fetch state and where each partition's
/// chunks go, changed only through these methods (each wakes the fetch task when it may have
/// something new to fetch).
#[derive(Debug)]
pub(crate) struct FetchShared {
    state: Mutex<FetchState>,
    /// Wakes the fetcher (a partition became fetchable).
    wake: Notify,
}

#[derive(Debug)]
struct FetchState {
    subscriptions: SubscriptionState,
    /// By assignment epoch (each assignment of a partition has its own): a chunk goes to the stream of
    /// the assignment it was fetched under without its partition's name being hashed or compared.
    sinks: BTreeMap<u64, Sink>,
}

/// Where one assignment of a partition receives its fetched chunks.
pub(crate) type ChunkReceiver = mpsc::UnboundedReceiver<Box<CompletedFetch>>;

impl FetchShared {
    pub(crate) fn new(max_buffered: usize) -> Self {
        Self {
            state: Mutex::new(FetchState {
                subscriptions: SubscriptionState::new(max_buffered),
                sinks: BTreeMap::new(),
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FetchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Assigns `tp` at `committed` (or, with nothing committed, for a reset with `reset`): a new
    /// assignment epoch and the receiver of its chunks. Call [`wake`](Self::wake) once all are assigned.
    pub(crate) fn assign(
        &self,
        tp: &TopicPartition,
        committed: Option<i64>,
        reset: OffsetReset,
    ) -> (u64, ChunkReceiver) {
        let mut state = self.lock();
        state.forget_sink(tp);
        let epoch = state.subscriptions.assign(tp.clone(), committed, Some(reset));
        let (tx, rx) = mpsc::unbounded_channel();
        state.sinks.insert(epoch, tx);
        (epoch, rx)
    }

    /// Stops fetching `tp` and delivering its chunks (it is being revoked); its position stays until
    /// [`revoked`](Self::revoked).
    pub(crate) fn revoke(&self, tp: &TopicPartition) {
        let mut state = self.lock();
        state.forget_sink(tp);
        state.subscriptions.mark_revoking(tp);
    }

    /// Forgets `tp` (the revocation completed).
    pub(crate) fn revoked(&self, tp: &TopicPartition) {
        let mut state = self.lock();
        state.forget_sink(tp);
        state.subscriptions.remove(tp);
    }

    /// The application worked through one chunk of `tp` (assignment `epoch`): one more may be fetched.
    /// The fetch task is woken only when that makes the partition fetchable again: while it is
    /// fetchable anyway, the task plans its next Fetch when one completes, and a wake-up per chunk
    /// would have it walk every assigned partition per chunk.
    pub(crate) fn chunk_consumed(&self, tp: &TopicPartition, epoch: u64) {
        let unblocked = self.lock().subscriptions.consumed_chunk(tp, epoch);
        if unblocked {
            self.wake();
        }
    }

    /// Stops fetching `tp` (chunks already fetched are still delivered).
    pub(crate) fn pause(&self, tp: &TopicPartition) {
        self.lock().subscriptions.pause(tp);
    }

    /// Resumes fetching `tp`.
    pub(crate) fn resume(&self, tp: &TopicPartition) {
        self.lock().subscriptions.resume(tp);
        self.wake();
    }

    /// Fetching of `tp` (assignment `epoch`) goes on after the batch it stopped at; the new position.
    pub(crate) fn pass_stopped_batch(&self, tp: &TopicPartition, epoch: u64) -> Option<i64> {
        let position = self.lock().subscriptions.pass_stopped_batch(tp, epoch);
        self.wake();
        position
    }

    /// The high watermark of `tp` from its last fetch, for assignment `epoch` (any when `None`).
    pub(crate) fn high_watermark(&self, tp: &TopicPartition, epoch: Option<u64>) -> Option<i64> {
        self.lock()
            .subscriptions
            .get(tp)
            .filter(|p| epoch.is_none_or(|e| p.epoch == e))
            .and_then(|p| p.high_watermark)
    }

    /// The position (next offset to fetch) of `tp`.
    pub(crate) fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.lock().subscriptions.get(tp).and_then(|p| p.position)
    }

    /// How many fetched chunks of `tp` wait for the application or are being worked through.
    pub(crate) fn buffered_chunks(&self, tp: &TopicPartition) -> usize {
        self.lock().subscriptions.get(tp).map_or(0, |p| p.buffered)
    }

    /// Runs `f` with the position and the buffered chunk count of `tp`'s assignment `epoch` (`None`
    /// when `tp` is not assigned at that epoch), under the fetcher's lock. The fetch task moves the
    /// position and hands a chunk out under this lock, and a worker reports a chunk consumed under it
    /// after counting what it handed out: progress counters `f` reads are as new as the state it sees.
    pub(crate) fn with_assignment<R>(
        &self,
        tp: &TopicPartition,
        epoch: u64,
        f: impl FnOnce(Option<(Option<i64>, usize)>) -> R,
    ) -> R {
        let state = self.lock();
        f(state
            .subscriptions
            .get(tp)
            .filter(|p| p.epoch == epoch)
            .map(|p| (p.position, p.buffered)))
    }

    /// Wakes the fetch task (a partition may have become fetchable).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Plays the fetch task in unit tests: positions `tp` at `position` if it waits for a reset, and
    /// hands it a chunk of `records` (a record batch at offset 0) as a Fetch at 0 would.
    #[cfg(test)]
    pub(crate) fn deliver_for_tests(&self, tp: &TopicPartition, records: bytes::Bytes) {
        let mut state = self.lock();
        let Some(epoch) = state.subscriptions.get(tp).map(|p| p.epoch) else {
            return;
        };
        let Some(sink) = state.sinks.get(&epoch).cloned() else {
            return;
        };
        if state.subscriptions.get(tp).is_some_and(|p| p.position.is_none()) {
            state.subscriptions.reset_to(tp, epoch, 0);
        }
        let data =
            kafka_protocol::messages::fetch_response::PartitionData::default().with_records(Some(records));
        let plan::PartitionOutcome::Data {
            chunk: Some(chunk),
            next_offset,
            ..
        } = plan::scan_partition(&Arc::from(tp.topic.as_str()), 0, data, &FetchConfig::default())
        else {
            return;
        };
        if state
            .subscriptions
            .advance(tp, epoch, 0, next_offset, (-1, -1), true)
        {
            let mut chunk = chunk;
            chunk.epoch = epoch;
            let _ = sink.send(chunk);
        }
    }
}

impl FetchState {
    /// Drops the sink of `tp`'s current assignment (it is revoked or assigned anew).
    fn forget_sink(&mut self, tp: &TopicPartition) {
        if let Some(epoch) = self.subscriptions.get(tp).map(|p| p.epoch) {
            self.sinks.remove(&epoch);
        }
    }
}

enum FetchDone {
    Fetch {
        broker: i32,
        lane: Lane,
        targets: Vec<FetchTarget>,
        result: Result<kafka_protocol::messages::FetchResponse, connection::Error>,
    },
    /// The partitions of one [`reset::ResetBatch`] and the position found for each, in its order.
    Resets {
        partitions: Vec<(Arc<TopicPartition>, u64)>,
        results: Vec<Result<i64, partition_reader::ReadError>>,
    },
    Metadata,
}

/// Whether a Fetch failed because its response was larger than the connection accepts
/// (`max_response_size`).
fn is_too_large(error: &connection::Error) -> bool {
    matches!(error, connection::Error::Protocol { source, .. }
        if matches!(**source, crate::protocol::Error::FrameSize { .. }))
}

/// How many times a broker's Fetches are halved in size after responses too large for the connection.
const MAX_HALVINGS: u32 = 8;

/// Hands `chunk` to `target`'s stream, or (no stream of that assignment) forgets it.
fn send(state: &mut FetchState, target: &FetchTarget, mut chunk: Box<CompletedFetch>) {
    chunk.epoch = target.epoch;
    let sent = state
        .sinks
        .get(&target.epoch)
        .is_some_and(|sink| sink.send(chunk).is_ok());
    if !sent {
        state.subscriptions.consumed_chunk(&target.tp, target.epoch);
    }
}

/// Runs the fetcher until `shutdown`.
pub(crate) async fn run(
    cluster: Cluster,
    config: FetchConfig,
    shared: Arc<FetchShared>,
    shutdown: CancellationToken,
) {
    let mut f = Fetcher::new(cluster, config, shared);
    loop {
        let now = Instant::now();
        f.plan(now);
        let wake_at = f
            .backoff
            .values()
            .chain(f.held.values())
            .min()
            .copied()
            .unwrap_or(now + Duration::from_secs(1));
        tokio::select! {
            Some(done) = f.tasks.join_next() => {
                if let Ok(done) = done {
                    f.complete(done);
                }
                // Whatever else completed meanwhile (offset resets finish in bursts, one per
                // partition) is taken before the next plan, which walks the whole assignment.
                while let Some(done) = f.tasks.try_join_next() {
                    if let Ok(done) = done {
                        f.complete(done);
                    }
                }
            }
            () = f.shared.wake.notified() => {}
            () = tokio::time::sleep_until(wake_at.max(now + Duration::from_millis(1)).into()) => {}
            () = shutdown.cancelled() => break,
        }
    }
    f.tasks.abort_all();
}

struct Fetcher {
    cluster: Cluster,
    config: Arc<FetchConfig>,
    shared: Arc<FetchShared>,
    /// One connection per broker and lane.
    connections: HashMap<(i32, Lane), Arc<BrokerConnection>>,
    /// The brokers' lanes with a Fetch in flight.
    busy: HashSet<(i32, Lane)>,
    /// By topic, then partition number: no name hashed or copied per partition and Fetch.
    in_flight: PartitionSet,
    /// The partitions whose offset reset is under way.
    resetting: PartitionSet,
    backoff: HashMap<i32, Instant>,
    /// Partitions not fetched before the time given (a batch at their position failed its checks once).
    held: HashMap<TopicPartition, Instant>,
    /// Per broker: how many times its Fetches were halved (see [`Fetcher::response_too_large`]).
    shrink: HashMap<i32, u32>,
    refreshing: bool,
    tasks: JoinSet<FetchDone>,
    /// How many Fetches were sent to each broker's lane: where its next one's partition list starts.
    turns: HashMap<(i32, Lane), usize>,
}

impl Fetcher {
    fn new(cluster: Cluster, config: FetchConfig, shared: Arc<FetchShared>) -> Self {
        Fetcher {
            cluster,
            config: Arc::new(config),
            shared,
            connections: HashMap::new(),
            busy: HashSet::new(),
            in_flight: PartitionSet::default(),
            resetting: PartitionSet::default(),
            backoff: HashMap::new(),
            held: HashMap::new(),
            shrink: HashMap::new(),
            refreshing: false,
            tasks: JoinSet::new(),
            turns: HashMap::new(),
        }
    }

    fn connection(&mut self, broker: i32, lane: Lane) -> Option<Arc<BrokerConnection>> {
        let address = self.cluster.metadata().brokers.get(&broker)?.address();
        let conn = self.connections.entry((broker, lane)).or_insert_with(|| {
            Arc::new(BrokerConnection::new(
                address.clone(),
                Arc::new(self.cluster.config().clone()),
            ))
        });
        if conn.address() != address {
            *conn = Arc::new(BrokerConnection::new(
                address,
                Arc::new(self.cluster.config().clone()),
            ));
        }
        Some(Arc::clone(conn))
    }

    fn refresh_metadata(&mut self) {
        if self.refreshing {
            return;
        }
        self.refreshing = true;
        let topics: Vec<String> = {
            let state = self.shared.lock();
            let mut topics: Vec<String> = state
                .subscriptions
                .assigned()
                .map(|tp| tp.topic.clone())
                .collect();
            topics.dedup();
            topics
        };
        let cluster = self.cluster.clone();
        let backoff = self.config.retry_backoff;
        self.tasks.spawn(async move {
            tokio::time::sleep(backoff).await;
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            if let Err(e) = cluster.refresh_topics(&names).await {
                tracing::debug!(error = %e, "metadata refresh for the fetcher failed");
            }
            FetchDone::Metadata
        });
    }

    fn plan(&mut self, now: Instant) {
        self.backoff.retain(|_, until| *until > now);
        self.held.retain(|_, until| *until > now);
        let read_committed = self.config.isolation_level == IsolationLevel::ReadCommitted;
        let metadata = self.cluster.metadata();
        let mut plan = plan::Plan::default();
        let mut resets = Vec::new();
        {
            let state = self.shared.lock();
            let subscriptions = &state.subscriptions;
            // One pass over the assignment; the in-flight and resetting sets and the leaders are
            // looked up once per topic, and no name is copied or hashed per partition.
            for (topic, partitions) in subscriptions.by_topic() {
                let in_flight = self.in_flight.topic(topic);
                let resetting = self.resetting.topic(topic);
                let leaders = metadata.topics.get(topic);
                for (tp, p) in partitions {
                    if let Some(reset) = p.reset.filter(|_| !p.revoking) {
                        if !resetting.is_some_and(|partitions| partitions.contains(&tp.partition))
                            && (self.held.is_empty() || !self.held.contains_key(&**tp))
                        {
                            resets.push((Arc::clone(tp), reset, p.epoch));
                        }
                        continue;
                    }
                    let Some(offset) = p.position.filter(|_| subscriptions.is_fetchable(p)) else {
                        continue;
                    };
                    if in_flight.is_some_and(|partitions| partitions.contains(&tp.partition))
                        || (!self.held.is_empty() && self.held.contains_key(&**tp))
                    {
                        continue;
                    }
                    let leader = leaders
                        .and_then(|t| t.partition(tp.partition))
                        .and_then(|p| p.leader);
                    let target = FetchTarget {
                        tp: Arc::clone(tp),
                        offset,
                        epoch: p.epoch,
                    };
                    plan.add(target, p.records_to_fetch(read_committed), leader);
                }
            }
        }
        self.start_resets(resets, &metadata);
        if plan.leaderless > 0 {
            self.refresh_metadata();
        }
        for ((broker, lane), plan::PlannedFetch { mut targets, look }) in plan.fetches {
            if self.busy.contains(&(broker, lane)) || self.backoff.contains_key(&broker) {
                continue;
            }
            let turn = self.turns.entry((broker, lane)).or_default();
            plan::rotate(&mut targets, *turn);
            *turn = turn.wrapping_add(1);
            let Some(conn) = self.connection(broker, lane) else {
                self.refresh_metadata();
                continue;
            };
            self.busy.insert((broker, lane));
            for t in &targets {
                self.in_flight.insert(&t.tp);
            }
            let config = if look {
                Arc::new(FetchConfig {
                    fetch_max_wait: self.config.fetch_max_wait.min(plan::LOOK_MAX_WAIT),
                    ..FetchConfig::clone(&self.config)
                })
            } else {
                Arc::clone(&self.config)
            };
            // Halved once per response the connection refused as too large: some brokers (Tansu) send
            // more than the Fetch's max_bytes.
            let halvings = self.shrink.get(&broker).copied().unwrap_or(0);
            let max_response_size = self.cluster.config().max_response_size >> halvings;
            // A long poll is held up to fetch_max_wait by the broker, then has the request timeout.
            let timeout = config.fetch_max_wait + self.cluster.config().request_timeout;
            self.tasks.spawn(async move {
                let result = async {
                    let messenger = conn.messenger().await?;
                    let version = messenger.version_for::<kafka_protocol::messages::FetchRequest>()?;
                    let request = plan::fetch_request(version, &config, max_response_size, &targets);
                    messenger.request_with_timeout(&request, timeout).await
                }
                .await;
                FetchDone::Fetch {
                    broker,
                    lane,
                    targets,
                    result,
                }
            });
        }
    }

    /// Starts the resets of the partitions `waiting` for one: those waiting for earliest with a known
    /// leader one task per [`reset::ResetBatch`] (one ListOffsets per leader), the others one task per
    /// partition (see [`reset`] for why latest is not batched).
    fn start_resets(
        &mut self,
        waiting: Vec<(Arc<TopicPartition>, OffsetReset, u64)>,
        metadata: &crate::client::cluster::ClusterMetadata,
    ) {
        if waiting.is_empty() {
            return;
        }
        let leader_of = |tp: &TopicPartition| {
            metadata
                .topics
                .get(&tp.topic)
                .and_then(|t| t.partition(tp.partition))
                .and_then(|p| p.leader)
        };
        let (batched, alone): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|(tp, reset, _)| *reset != OffsetReset::Latest && leader_of(tp).is_some());
        for batch in reset::batches(batched, leader_of, reset::MAX_BATCH_PARTITIONS) {
            for (tp, _) in &batch.partitions {
                self.resetting.insert(tp);
            }
            let cluster = self.cluster.clone();
            let config = Arc::clone(&self.config);
            self.tasks.spawn(async move {
                let results = reset::resolve_batch(&cluster, &batch, &config).await;
                FetchDone::Resets {
                    partitions: batch.partitions,
                    results,
                }
            });
        }
        for (tp, reset, epoch) in alone {
            self.resetting.insert(&tp);
            let cluster = self.cluster.clone();
            let config = Arc::clone(&self.config);
            self.tasks.spawn(async move {
                let result = reset::resolve(&cluster, &tp, reset, &config).await;
                FetchDone::Resets {
                    partitions: vec![(tp, epoch)],
                    results: vec![result],
                }
            });
        }
    }

    fn complete(&mut self, done: FetchDone) {
        match done {
            FetchDone::Metadata => self.refreshing = false,
            FetchDone::Resets { partitions, results } => {
                let answered = results.len();
                let mut retry = false;
                {
                    let mut state = self.shared.lock();
                    for ((tp, epoch), result) in partitions.iter().zip(results) {
                        self.resetting.remove(tp);
                        match result {
                            Ok(position) => {
                                tracing::debug!(%tp, position, "offset reset");
                                state.subscriptions.reset_to(tp, *epoch, position);
                            }
                            Err(e) => {
                                // A result for an older assignment of the partition holds nothing:
                                // the partition's current assignment resets on its own schedule.
                                let current = state
                                    .subscriptions
                                    .get(tp)
                                    .is_some_and(|p| p.epoch == *epoch && p.reset.is_some());
                                if current {
                                    tracing::warn!(%tp, error = %e, "offset reset failed; retrying");
                                    self.held.insert(
                                        TopicPartition::clone(tp),
                                        Instant::now() + self.config.retry_backoff,
                                    );
                                    retry = true;
                                }
                            }
                        }
                    }
                }
                // A batch answered short (cannot happen with `resolve_batch`): the rest is asked again.
                for (tp, _) in partitions.iter().skip(answered) {
                    self.resetting.remove(tp);
                }
                if retry {
                    self.refresh_metadata();
                }
            }
            FetchDone::Fetch {
                broker,
                lane,
                targets,
                result,
            } => {
                if result.as_ref().is_err_and(is_too_large) {
                    self.response_too_large(broker);
                }
                self.busy.remove(&(broker, lane));
                for t in &targets {
                    self.in_flight.remove(&t.tp);
                }
                match result {
                    Ok(response) => self.deliver(broker, targets, response),
                    Err(e) => {
                        tracing::debug!(broker, error = %e, "fetch failed; backing off");
                        self.failed(&targets);
                        self.backoff
                            .insert(broker, Instant::now() + self.config.retry_backoff);
                        self.refresh_metadata();
                    }
                }
            }
        }
    }

    /// A Fetch response from `broker` was larger than `max_response_size`: its next Fetches ask for
    /// half as much (up to [`MAX_HALVINGS`] times; past that a single record batch is likely larger than
    /// `max_response_size`, which only a larger `max_response_size` fixes).
    fn response_too_large(&mut self, broker: i32) {
        let halvings = self.shrink.entry(broker).or_default();
        if *halvings < MAX_HALVINGS {
            *halvings += 1;
            tracing::warn!(
                broker,
                halvings = *halvings,
                "fetch response larger than max_response_size; asking for less"
            );
        } else {
            tracing::error!(
                broker,
                max_response_size = self.cluster.config().max_response_size,
                "fetch responses stay larger than max_response_size: is a record batch larger than it? Raise max_response_size"
            );
        }
    }

    /// The Fetch of `targets` failed: their ends are looked at again once fetched (see
    /// [`SubscriptionState::fetch_failed`](crate::client::subscription::SubscriptionState::fetch_failed)).
    fn failed(&self, targets: &[FetchTarget]) {
        let mut state = self.shared.lock();
        for t in targets {
            state.subscriptions.fetch_failed(&t.tp, t.epoch);
        }
    }

    /// The batch at `target`'s position failed its checks. The first time, it is fetched again after
    /// `retry_backoff` (bytes damaged on the way may arrive intact); the second, the partition stops at
    /// it: its stream gets the error and nothing is fetched until the application passes it.
    fn bad_batch_at_position(
        &mut self,
        topic: &Arc<str>,
        target: &FetchTarget,
        watermarks: (i64, i64),
        bad: plan::BadBatch,
    ) {
        let mut state = self.shared.lock();
        let subscriptions = &mut state.subscriptions;
        if !subscriptions.note_bad_batch(&target.tp, target.epoch, bad.base_offset) {
            tracing::warn!(tp = %target.tp, offset = bad.base_offset, error = %bad.error, "record batch failed its checks; fetching it again");
            subscriptions.fetch_failed(&target.tp, target.epoch);
            self.held.insert(
                TopicPartition::clone(&target.tp),
                Instant::now() + self.config.retry_backoff,
            );
            return;
        }
        let past = bad.past;
        if subscriptions.stop_at_batch(&target.tp, target.epoch, target.offset, watermarks, past) {
            tracing::error!(tp = %target.tp, offset = bad.base_offset, error = %bad.error, "record batch failed its checks twice; the partition stops at it");
            let chunk = CompletedFetch::failed(topic, target.tp.partition, target.offset, bad);
            send(&mut state, target, Box::new(chunk));
        }
    }

    fn deliver(
        &mut self,
        broker: i32,
        targets: Vec<FetchTarget>,
        response: kafka_protocol::messages::FetchResponse,
    ) {
        if let Some(e) = crate::protocol::ServerError::from_code(response.error_code, None) {
            tracing::debug!(broker, error = %e, "fetch rejected; backing off");
            self.backoff
                .insert(broker, Instant::now() + self.config.retry_backoff);
            self.failed(&targets);
            return;
        }
        // By topic, then partition number: one name lookup per topic of the answer, no name copied or
        // hashed per partition.
        let mut by_tp: BTreeMap<String, BTreeMap<i32, FetchTarget>> = BTreeMap::new();
        for t in targets {
            match by_tp.get_mut(t.tp.topic.as_str()) {
                Some(partitions) => {
                    partitions.insert(t.tp.partition, t);
                }
                None => {
                    by_tp.insert(t.tp.topic.clone(), BTreeMap::from([(t.tp.partition, t)]));
                }
            }
        }
        let mut needs_metadata = false;
        for topic in response.responses {
            let Some(asked) = by_tp.get_mut(topic.topic.0.as_str()) else {
                continue;
            };
            let name: Arc<str> = Arc::from(topic.topic.0.as_str());
            for data in topic.partitions {
                let Some(target) = asked.remove(&data.partition_index) else {
                    continue;
                };
                let outcome = plan::scan_partition(&name, target.offset, data, &self.config);
                match outcome {
                    PartitionOutcome::Data {
                        chunk,
                        next_offset,
                        high_watermark,
                        last_stable_offset,
                        bad,
                    } => {
                        let watermarks = (high_watermark, last_stable_offset);
                        match (chunk, bad) {
                            (None, Some(bad)) => {
                                self.bad_batch_at_position(&name, &target, watermarks, *bad);
                            }
                            (chunk, bad) => {
                                let mut state = self.shared.lock();
                                let delivered = chunk.is_some();
                                let current = state.subscriptions.advance(
                                    &target.tp,
                                    target.epoch,
                                    target.offset,
                                    next_offset,
                                    watermarks,
                                    delivered,
                                );
                                if current {
                                    if let Some(bad) = bad {
                                        // Stopped before it: the next Fetch starts at it, and is its second.
                                        tracing::warn!(tp = %target.tp, offset = bad.base_offset, error = %bad.error, "record batch failed its checks; fetching it again");
                                        state.subscriptions.note_bad_batch(
                                            &target.tp,
                                            target.epoch,
                                            bad.base_offset,
                                        );
                                    }
                                    if let Some(chunk) = chunk {
                                        send(&mut state, &target, chunk);
                                    }
                                }
                            }
                        }
                    }
                    PartitionOutcome::Error(e) => match e.code {
                        ResponseError::OffsetOutOfRange => {
                            let mut state = self.shared.lock();
                            let at_position = state
                                .subscriptions
                                .get(&target.tp)
                                .is_some_and(|p| p.position == Some(target.offset));
                            if at_position {
                                tracing::info!(tp = %target.tp, offset = target.offset, "offset out of range; resetting");
                                state.subscriptions.request_reset(
                                    &target.tp,
                                    target.epoch,
                                    self.config.auto_offset_reset,
                                );
                            }
                        }
                        _ => {
                            tracing::debug!(tp = %target.tp, error = %e, "partition fetch error");
                            self.failed(std::slice::from_ref(&target));
                            needs_metadata = true;
                        }
                    },
                }
            }
        }
        // Partitions the broker left out of its answer.
        let mut unanswered = by_tp.values().flat_map(BTreeMap::values).peekable();
        if unanswered.peek().is_some() {
            let mut state = self.shared.lock();
            for target in unanswered {
                state
                    .subscriptions
                    .unanswered(&target.tp, target.epoch, target.offset);
            }
        }
        if needs_metadata {
            self.backoff
                .insert(broker, Instant::now() + self.config.retry_backoff);
            self.refresh_metadata();
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    /// Whether the fetch task would wake (takes the stored wake-up).
    fn woken(shared: &FetchShared) -> bool {
        shared.wake.notified().now_or_never().is_some()
    }

    #[test]
    fn a_consumed_chunk_wakes_the_fetch_task_only_when_its_partition_is_fetchable_again() {
        let shared = FetchShared::new(2);
        let tp = TopicPartition::new("t", 0);
        let (epoch, _rx) = shared.assign(&tp, Some(0), OffsetReset::Earliest);
        {
            let mut state = shared.lock();
            assert!(state.subscriptions.advance(&tp, epoch, 0, 5, (10, 10), true));
            assert!(state.subscriptions.advance(&tp, epoch, 5, 10, (10, 10), true));
            assert!(
                state.subscriptions.fetchable().is_empty(),
                "two chunks buffered: full"
            );
        }
        assert!(!woken(&shared));
        shared.chunk_consumed(&tp, epoch);
        assert!(woken(&shared), "fetchable again");
        shared.chunk_consumed(&tp, epoch);
        assert!(!woken(&shared), "it was fetchable already: nothing new to plan");
        shared.chunk_consumed(&tp, epoch + 1);
        assert!(!woken(&shared), "another assignment's chunk");
    }

    /// tokio's unbounded channel allocates a block of 32 slots of its item when it is made, before
    /// anything is sent: with the chunk itself as the item, every assigned partition held ~8 KiB
    /// (8 MiB at 1,000 partitions) from its assignment on.
    #[test]
    fn a_partitions_chunk_channel_holds_pointers_not_chunks() {
        fn slot<T>(_: &mpsc::UnboundedReceiver<T>) -> usize {
            size_of::<T>()
        }
        let shared = FetchShared::new(2);
        let (_, rx) = shared.assign(&TopicPartition::new("t", 0), Some(0), OffsetReset::Earliest);
        assert!(
            slot(&rx) <= size_of::<usize>(),
            "a slot of {} bytes: 32 of them per partition",
            slot(&rx)
        );
    }

    #[test]
    fn chunks_go_to_the_stream_of_the_assignment_they_were_fetched_under() {
        let shared = FetchShared::new(2);
        let tp = TopicPartition::new("t", 0);
        let (old, mut old_rx) = shared.assign(&tp, Some(0), OffsetReset::Earliest);
        let (new, mut new_rx) = shared.assign(&tp, Some(0), OffsetReset::Earliest);
        let target = |epoch| FetchTarget {
            tp: Arc::new(tp.clone()),
            offset: 0,
            epoch,
        };
        let bad = || plan::BadBatch {
            base_offset: 0,
            past: 1,
            error: Error::BatchTooLarge {
                topic: "t".to_owned(),
                partition: 0,
                base_offset: 0,
                size: 9,
                received: 1,
                limit: 1,
            },
        };
        let chunk = || Box::new(CompletedFetch::failed(&Arc::from("t"), 0, 0, bad()));
        let mut state = shared.lock();
        send(&mut state, &target(old), chunk());
        assert!(old_rx.try_recv().is_err(), "the old assignment's stream is gone");
        send(&mut state, &target(new), chunk());
        assert_eq!(new_rx.try_recv().map(|c| c.epoch).ok(), Some(new));
        state.forget_sink(&tp);
        send(&mut state, &target(new), chunk());
        assert!(new_rx.try_recv().is_err(), "revoked");
        assert!(state.sinks.is_empty());
    }
}
