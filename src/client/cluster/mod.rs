//! The cluster: bootstrap, cached metadata, one shared connection per broker, and admin operations.
//!
//! ```text
//!   bootstrap servers ──(first reachable)──▶ Metadata ──▶ ClusterMetadata (Arc, generation n)
//!                                                          │ broker id → host:port
//!                                                          ▼
//!   leader(topic, p) ─────────────────────▶ broker pool: id → BrokerConnection (one socket each)
//! ```
//!
//! Invariants:
//! - One `BrokerConnection` per broker id, shared by every user of the [`Cluster`]; it is replaced
//!   only when the broker's advertised address changes.
//! - Metadata snapshots are immutable; a refresh publishes a new one with a higher generation.
//!   Refreshes are serialized, so concurrent callers that all saw a stale leader cause one request.
//!
//! This layer uses [`crate::client::connection`] and [`crate::protocol`].

mod admin;
mod error;
mod metadata;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use backon::{BackoffBuilder, ExponentialBuilder};
use kafka_protocol::messages::{MetadataRequest, TopicName, metadata_request::MetadataRequestTopic};
use snafu::ResultExt;
use tracing::{debug, info};

pub use admin::{NewTopic, TopicCreation};
pub use error::Error;
use error::{ConnectionSnafu, InvalidConfigSnafu};
use metadata::MetadataUpdate;
pub use metadata::{BrokerMetadata, ClusterMetadata, PartitionMetadata, TopicMetadata};

use super::{
    ClientConfig,
    connection::{self, BrokerConnection},
};
use crate::protocol::{ApiRequest, StrBytes};

/// A handle to a Kafka cluster: cheap to clone, shared by the producer, consumers and admin calls.
///
/// # Example
///
/// ```no_run
/// # async fn example() -> Result<(), kafka_event_bus::client::cluster::Error> {
/// use kafka_event_bus::client::{ClientConfig, Cluster, NewTopic};
///
/// let cluster = Cluster::connect(ClientConfig::new("localhost:9092")).await?;
/// cluster.ensure_topics(&[NewTopic::new("orders.stream", 6, 1)]).await?;
/// let partitions = cluster.partitions("orders.stream").await?;
/// assert_eq!(partitions.len(), 6);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<ClientConfig>,
    bootstrap: Vec<Arc<BrokerConnection>>,
    brokers: Mutex<HashMap<i32, Arc<BrokerConnection>>>,
    metadata: RwLock<Arc<ClusterMetadata>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl Cluster {
    /// Connects to the first reachable bootstrap server and reads the cluster's brokers.
    ///
    /// Bootstrap servers are tried in order; an unreachable one is skipped at once (logged at INFO with
    /// its address and the cause). If none answers, the whole list is tried again with backoff until
    /// [`ClientConfig::bootstrap_timeout`] (by default [`ClientConfig::reconnect_deadline`]). Each
    /// attempt may take an equal share of the time left among the servers not yet tried in the round
    /// (at most a connect plus a request), so a server that accepts and never answers does not keep
    /// the others from being tried; the whole call never outlasts the bootstrap timeout.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an empty list or a malformed address, [`Error::NoBrokerReachable`]
    /// (with every server's last error) or [`Error::Timeout`] when the bootstrap timeout passes.
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        if config.bootstrap_servers().is_empty() {
            return InvalidConfigSnafu {
                reason: "bootstrap_servers is empty",
            }
            .fail();
        }
        for server in config.bootstrap_servers() {
            if let Err(e) = connection::split_host_port(server) {
                return InvalidConfigSnafu {
                    reason: e.to_string(),
                }
                .fail();
            }
        }
        let config = Arc::new(config);
        let bootstrap = config
            .bootstrap_servers()
            .iter()
            .map(|s| Arc::new(BrokerConnection::new(s.clone(), Arc::clone(&config))))
            .collect();
        let cluster = Self {
            inner: Arc::new(Inner {
                config,
                bootstrap,
                brokers: Mutex::new(HashMap::new()),
                metadata: RwLock::new(Arc::default()),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        };
        // The attempts stop at the same instant as the hard cut; at that instant the attempts are
        // polled first, so the error that names every server wins over the bare timeout.
        let timeout = cluster.bootstrap_timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let bootstrap = cluster.refresh_within(Some(&[]), Retry::Bootstrap(deadline));
        match tokio::time::timeout_at(deadline, bootstrap).await {
            Ok(refreshed) => refreshed.map(|_| cluster),
            Err(_) => Err(Error::Timeout {
                what: "a bootstrap server to answer".to_owned(),
                timeout,
            }),
        }
    }

    /// How long [`connect`](Self::connect) may take in all.
    fn bootstrap_timeout(&self) -> Duration {
        let config = &self.inner.config;
        config.bootstrap_timeout.unwrap_or(config.reconnect_deadline)
    }

    /// The configuration this cluster was connected with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The latest metadata snapshot (no I/O).
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.inner.metadata.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Fetches metadata for every topic, replacing the cached snapshot.
    ///
    /// # Errors
    ///
    /// [`Error::NoBrokerReachable`] when no broker answers before the reconnect deadline.
    pub async fn refresh_metadata(&self) -> Result<Arc<ClusterMetadata>, Error> {
        self.refresh(None).await
    }

    /// Fetches metadata for `topics` and merges it into the cached snapshot. Topics the broker does not
    /// know are dropped from the snapshot (they are not created).
    ///
    /// # Errors
    ///
    /// As [`refresh_metadata`](Self::refresh_metadata).
    pub async fn refresh_topics(&self, topics: &[&str]) -> Result<Arc<ClusterMetadata>, Error> {
        self.refresh(Some(topics)).await
    }

    async fn refresh(&self, topics: Option<&[&str]>) -> Result<Arc<ClusterMetadata>, Error> {
        self.refresh_within(topics, Retry::Request).await
    }

    async fn refresh_within(
        &self,
        topics: Option<&[&str]>,
        retry: Retry,
    ) -> Result<Arc<ClusterMetadata>, Error> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|topics| {
                topics
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let _refreshing = self.inner.refreshing.lock().await;
        let (broker, response) = self.request_any_within(|_| request.clone(), retry).await?;
        let update = MetadataUpdate::from_response(response);
        let mut slot = self.inner.metadata.write().unwrap_or_else(|p| p.into_inner());
        let next = Arc::new(slot.merged(update, topics.is_none()));
        debug!(%broker, generation = next.generation, brokers = next.brokers.len(), topics = next.topics.len(), "metadata");
        *slot = Arc::clone(&next);
        Ok(next)
    }

    unstable! {
        /// The shared connection to broker `id`.
        ///
        /// # Errors
        ///
        /// [`Error::UnknownBroker`] when the cached metadata has no such broker.
        pub fn broker(&self, id: i32) -> Result<Arc<BrokerConnection>, Error> {
            let address = self
                .metadata()
                .brokers
                .get(&id)
                .map(BrokerMetadata::address)
                .ok_or(Error::UnknownBroker { id })?;
            let mut pool = self.inner.brokers.lock().unwrap_or_else(|p| p.into_inner());
            match pool.get(&id) {
                Some(conn) if conn.address() == address => Ok(Arc::clone(conn)),
                _ => {
                    let conn = Arc::new(BrokerConnection::new(address, Arc::clone(&self.inner.config)));
                    pool.insert(id, Arc::clone(&conn));
                    Ok(conn)
                }
            }
    }
    }

    unstable! {
        /// The leader of `topic`/`partition` and the connection to it, refreshing the topic's metadata once
        /// if the cached snapshot does not know it.
        ///
        /// # Errors
        ///
        /// [`Error::UnknownTopic`], [`Error::NoLeader`] (retriable), or a refresh error.
        pub async fn leader(&self, topic: &str, partition: i32) -> Result<(i32, Arc<BrokerConnection>), Error> {
            let known = |metadata: &ClusterMetadata| {
                metadata
                    .topics
                    .get(topic)
                    .and_then(|t| t.partition(partition))
                    .and_then(|p| p.leader)
            };
            let leader = match known(&self.metadata()) {
                Some(leader) => leader,
                None => {
                    let metadata = self.refresh_topics(&[topic]).await?;
                    if !metadata.topics.contains_key(topic) {
                        return Err(Error::UnknownTopic {
                            topic: topic.to_owned(),
                        });
                    }
                    known(&metadata).ok_or_else(|| Error::NoLeader {
                        topic: topic.to_owned(),
                        partition,
                    })?
                }
            };
            Ok((leader, self.broker(leader)?))
    }
    }

    /// Sends `request` to any broker that answers: those with a live connection first, then the other
    /// known brokers, then the bootstrap servers. A broker that cannot be reached is skipped at once;
    /// when none answers, the round is repeated with backoff until the reconnect deadline.
    pub(crate) async fn request_any<R: ApiRequest + Clone>(
        &self,
        request: &R,
    ) -> Result<(String, R::Response), Error> {
        self.request_any_with(|_| request.clone()).await
    }

    /// [`request_any`](Self::request_any) for requests whose fields depend on the version negotiated with
    /// the broker that ends up answering: `build` gets that version.
    pub(crate) async fn request_any_with<R: ApiRequest>(
        &self,
        build: impl Fn(i16) -> R + Sync,
    ) -> Result<(String, R::Response), Error> {
        self.request_any_within(build, Retry::Request).await
    }

    async fn request_any_within<R: ApiRequest>(
        &self,
        build: impl Fn(i16) -> R + Sync,
        retry: Retry,
    ) -> Result<(String, R::Response), Error> {
        let config = &self.inner.config;
        let deadline = match retry {
            Retry::Bootstrap(deadline) => deadline,
            Retry::Request => tokio::time::Instant::now() + config.reconnect_deadline,
        };
        let mut delays = ExponentialBuilder::new()
            .with_min_delay(config.reconnect_backoff)
            .with_max_delay(config.reconnect_backoff_max)
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            let mut candidates: Vec<Arc<BrokerConnection>> = {
                let ids: Vec<i32> = self.metadata().brokers.keys().copied().collect();
                ids.into_iter().filter_map(|id| self.broker(id).ok()).collect()
            };
            candidates.extend(self.inner.bootstrap.iter().cloned());
            // A broker with a live connection first: one that became unreachable is tried last.
            candidates.sort_by_key(|conn| !conn.is_connected());
            let mut attempts = Vec::new();
            for (tried, conn) in candidates.iter().enumerate() {
                let attempt = async {
                    let messenger = conn.connect_once().await?;
                    let version = messenger.version_for::<R>()?;
                    messenger.request(&build(version)).await
                };
                let result = match retry {
                    Retry::Bootstrap(_) => {
                        let share = attempt_share(config, deadline, candidates.len() - tried);
                        tokio::time::timeout(share, attempt).await.unwrap_or_else(|_| {
                            Err(connection::Error::ConnectTimeout {
                                broker: conn.address().to_owned(),
                                timeout: share,
                            })
                        })
                    }
                    Retry::Request => attempt.await,
                };
                match result {
                    Ok(response) => return Ok((conn.address().to_owned(), response)),
                    Err(e) if e.is_retriable() => {
                        match retry {
                            Retry::Bootstrap(_) => {
                                info!(broker = conn.address(), error = %e, "bootstrap server unreachable, retrying");
                            }
                            Retry::Request => {
                                debug!(broker = conn.address(), error = %e, "broker unavailable, trying the next");
                            }
                        }
                        attempts.push(e);
                    }
                    Err(e) => return Err(e).context(ConnectionSnafu { api: R::KEY }),
                }
            }
            let delay = delays.next().unwrap_or(config.reconnect_backoff_max);
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(Error::NoBrokerReachable {
                    servers: candidates.iter().map(|c| c.address().to_owned()).collect(),
                    attempts,
                });
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// Which deadline a request to any broker retries against, and how loudly it reports a failed attempt.
#[derive(Debug, Clone, Copy)]
enum Retry {
    /// The first metadata request of [`Cluster::connect`], until the instant its
    /// [`ClientConfig::bootstrap_timeout`] (else the reconnect deadline) ends; each attempt gets a
    /// share of the time left; INFO.
    Bootstrap(tokio::time::Instant),
    /// Any later request: [`ClientConfig::reconnect_deadline`], DEBUG.
    Request,
}

/// How long one bootstrap attempt may take: an equal share of the time left among the servers not yet
/// tried in this round, so a server that accepts and never answers cannot use up the whole
/// `bootstrap_timeout` before the others are tried; never more than a connect plus a request.
fn attempt_share(config: &ClientConfig, deadline: tokio::time::Instant, untried: usize) -> Duration {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let share = left / u32::try_from(untried.max(1)).unwrap_or(u32::MAX);
    share.min(config.connect_timeout.saturating_add(config.request_timeout))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// How long to wait between polls while the cluster converges (a new topic getting leaders).
const CONVERGE_POLL: Duration = Duration::from_millis(50);

#[cfg(test)]
mod request_any_tests;
