//! Errors of DLQ administration.

use snafu::Snafu;

use crate::client::{cluster, connection, producer};
use crate::protocol::{ServerError, records};

/// Why a DLQ administration call failed.
///
/// # Example
///
/// ```
/// use kafka_event_bus::dlq::AdminError;
///
/// fn explain(e: &AdminError) -> String {
///     match e {
///         AdminError::NotFound { offset, .. } => format!("nothing at {offset}"),
///         AdminError::ReplayLimit { .. } => format!("{e} (pass force)"),
///         other => other.to_string(),
///     }
/// }
/// let e = AdminError::NotFound { topic: "t.dlq".into(), partition: 0, offset: 9 };
/// assert_eq!(e.to_string(), "Message not found at offset 9");
/// assert_eq!(explain(&e), "nothing at 9");
/// ```
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum AdminError {
    /// The topic's partitions could not be read from the cluster's metadata.
    #[snafu(display("cannot read the metadata of {topic}: {source}"))]
    Metadata {
        /// The topic.
        topic: String,
        /// The cluster's error.
        source: cluster::Error,
    },
    /// Metadata or the partition leader could not be obtained.
    #[snafu(display("cannot reach the leader of {topic}/{partition}: {source}"))]
    Cluster {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The cluster's error.
        source: cluster::Error,
    },
    /// A Fetch or ListOffsets request failed on the connection.
    #[snafu(display("request for {topic}/{partition} failed: {source}"))]
    Connection {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The connection's error.
        source: connection::Error,
    },
    /// The broker answered with an error for the partition.
    #[snafu(display("broker error for {topic}/{partition}: {source}"))]
    Broker {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The broker's error.
        source: ServerError,
    },
    /// The broker's answer did not mention the partition asked about.
    #[snafu(display("the broker's answer has no {topic}/{partition}"))]
    MissingPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// The fetched records could not be decoded.
    #[snafu(display("cannot decode {topic}/{partition} at offset {offset}: {source}"))]
    Decode {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The fetch offset.
        offset: i64,
        /// The decoder's error.
        source: records::Error,
    },
    /// No record at that offset: below the log start, at or past the end, removed by compaction, or the
    /// topic or partition does not exist (eventsource-py's "Message not found at offset O").
    #[snafu(display("Message not found at offset {offset}"))]
    NotFound {
        /// The DLQ topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset asked for.
        offset: i64,
    },
    /// The record could not be read within the read timeout (eventsource-py's "Timeout reading message
    /// at partition P, offset O").
    #[snafu(display("Timeout reading message at partition {partition}, offset {offset}{}",
        last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()))]
    ReadTimeout {
        /// The partition.
        partition: i32,
        /// The offset.
        offset: i64,
        /// Why the last attempt failed, if one did.
        last_error: Option<String>,
    },
    /// The call did not finish within its timeout and has nothing to show for it (a listing that read
    /// some entries returns those instead).
    #[snafu(display("reading {topic} did not finish within {timeout:?}"))]
    Timeout {
        /// The DLQ topic.
        topic: String,
        /// The timeout.
        timeout: std::time::Duration,
    },
    /// The record was replayed too often already; replay with `force` to override.
    #[snafu(display(
        "Message at partition {partition}, offset {offset} has been replayed {replay_count} times, \
         exceeding max of {max}. Use force=True to override."
    ))]
    ReplayLimit {
        /// The partition.
        partition: i32,
        /// The offset.
        offset: i64,
        /// Its `dlq_replay_count`.
        replay_count: i64,
        /// `dlq_max_replay_attempts`.
        max: u32,
    },
    /// The replay could not be published to the main topic (or was not acknowledged).
    #[snafu(display("cannot replay {partition}@{offset} to {topic}: {source}"))]
    Replay {
        /// The main topic.
        topic: String,
        /// The DLQ partition.
        partition: i32,
        /// The DLQ offset.
        offset: i64,
        /// The producer's error.
        source: producer::Error,
    },
}

impl AdminError {
    /// Whether the same call may succeed later without anyone changing anything.
    pub fn is_retriable(&self) -> bool {
        match self {
            AdminError::Metadata { source, .. } | AdminError::Cluster { source, .. } => source.is_retriable(),
            AdminError::Connection { source, .. } => source.is_retriable(),
            AdminError::Broker { source, .. } => source.is_retriable(),
            AdminError::Replay { source, .. } => source.is_retriable(),
            AdminError::ReadTimeout { .. }
            | AdminError::Timeout { .. }
            | AdminError::MissingPartition { .. } => true,
            AdminError::Decode { .. } | AdminError::NotFound { .. } | AdminError::ReplayLimit { .. } => false,
        }
    }
}
