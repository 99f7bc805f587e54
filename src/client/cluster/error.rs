//! Errors of the cluster layer.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use snafu::Snafu;

use crate::{client::connection, protocol::ServerError};

/// A cluster-level failure: no broker reachable, a broker's error code for a topic or partition, or a
/// topic that does not exist. [`is_retriable`](Self::is_retriable) says whether trying again later may
/// help.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work (e.g. no bootstrap server).
    #[snafu(display("invalid client configuration: {reason}"))]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// None of the bootstrap servers could be reached; `attempts` holds each one's last error.
    #[snafu(display("no bootstrap server reachable (tried {}): {}", servers.join(", "),
        attempts.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))]
    NoBrokerReachable {
        /// The servers tried.
        servers: Vec<String>,
        /// The last error of each attempt.
        attempts: Vec<connection::Error>,
    },
    /// A request failed on the connection to a broker (the error names the broker).
    #[snafu(display("{api:?} failed: {source}"))]
    Connection {
        /// The API of the request.
        api: ApiKey,
        /// The connection's error.
        source: connection::Error,
    },
    /// A broker answered with an error code.
    #[snafu(display("{api:?} to broker {broker}{} failed: {source}", where_(topic.as_deref(), *partition)))]
    Server {
        /// The API of the request.
        api: ApiKey,
        /// The broker that answered.
        broker: String,
        /// The topic the error is about, if any.
        topic: Option<String>,
        /// The partition the error is about, if any.
        partition: Option<i32>,
        /// The code and message.
        source: ServerError,
    },
    /// The topic does not exist.
    #[snafu(display("unknown topic {topic:?}"))]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The partition has no leader right now.
    #[snafu(display("no leader for {topic}/{partition}"))]
    NoLeader {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// The metadata names a broker id with no address.
    #[snafu(display("broker {id} is not in the cluster metadata"))]
    UnknownBroker {
        /// The node id.
        id: i32,
    },
    /// Something the cluster should converge to (e.g. a new topic getting leaders) did not happen in time.
    #[snafu(display("timed out after {timeout:?} waiting for {what}"))]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        timeout: Duration,
    },
}

fn where_(topic: Option<&str>, partition: Option<i32>) -> String {
    match (topic, partition) {
        (Some(t), Some(p)) => format!(" for {t}/{p}"),
        (Some(t), None) => format!(" for topic {t}"),
        _ => String::new(),
    }
}

impl Error {
    /// Whether trying again (after a backoff, maybe a metadata refresh) may succeed.
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::client::cluster::Error;
    ///
    /// let err = Error::UnknownTopic { topic: "nope".into() };
    /// assert!(!err.is_retriable());
    /// ```
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::NoBrokerReachable { .. } | Error::NoLeader { .. } | Error::UnknownBroker { .. } => true,
            Error::Timeout { .. } => true,
            Error::Connection { source, .. } => source.is_retriable(),
            Error::Server { source, .. } => source.is_retriable(),
            Error::InvalidConfig { .. } | Error::UnknownTopic { .. } => false,
        }
    }

    /// The variant's name, for `error.type` attributes and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidConfig { .. } => "InvalidConfig",
            Error::NoBrokerReachable { .. } => "NoBrokerReachable",
            Error::Connection { .. } => "Connection",
            Error::Server { .. } => "Server",
            Error::UnknownTopic { .. } => "UnknownTopic",
            Error::NoLeader { .. } => "NoLeader",
            Error::UnknownBroker { .. } => "UnknownBroker",
            Error::Timeout { .. } => "Timeout",
        }
    }

    /// The broker's error code, when this error is one.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::Server { source, .. } => Some(source),
            _ => None,
        }
    }
}
