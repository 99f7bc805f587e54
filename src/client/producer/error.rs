//! Errors of the producer.

use std::{sync::Arc, time::Duration};

use snafu::Snafu;

use crate::{
    client::{cluster, connection},
    protocol::{ServerError, records},
};

/// Why a record was not (or may not have been) delivered.
///
/// `Clone`: one failure of a batch is reported to every record in it.
#[derive(Debug, Clone, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The settings cannot work together.
    #[snafu(display("invalid producer configuration: {reason}"))]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The topic does not exist (the producer does not create topics; see `Cluster::ensure_topics`).
    #[snafu(display("unknown topic {topic:?}"))]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The record names a partition the topic does not have.
    #[snafu(display("topic {topic:?} has no partition {partition}"))]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
    },
    /// The record is larger than `max_request_size` (or the whole buffer).
    #[snafu(display("record of {size} bytes exceeds the limit of {max} bytes"))]
    RecordTooLarge {
        /// The record's encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The broker rejected the batch with a non-retriable error.
    #[snafu(display("broker {broker} rejected the batch for {topic}/{partition}: {source}"))]
    Rejected {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The broker.
        broker: String,
        /// Its error.
        source: ServerError,
    },
    /// The record was not acknowledged within `delivery_timeout` (retries included); `last_error` is why
    /// the last attempt failed, if one was made. The record may or may not have been written.
    #[snafu(display("{topic}/{partition}: not acknowledged within {timeout:?}{}",
        last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()))]
    DeliveryTimeout {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The delivery timeout.
        timeout: Duration,
        /// The last attempt's error.
        last_error: Option<String>,
    },
    /// The broker lost or refused this producer's sequence state (OUT_OF_ORDER_SEQUENCE_NUMBER,
    /// UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH, PRODUCER_FENCED) while an earlier attempt of the
    /// batch had no answer (a timeout, a lost connection). The batch may or may not have been written;
    /// the producer does not send it again under its new producer id, where the broker could not
    /// recognise a copy, so its retries never write a batch twice. Sending the records again yourself
    /// may duplicate them.
    #[snafu(display("{topic}/{partition}: delivery uncertain, not retried to avoid a duplicate: {reason}"))]
    DeliveryUncertain {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Why the producer's state was reset, and the unanswered attempt.
        reason: String,
    },
    /// A non-retriable connection error (a protocol mismatch, TLS refusal...).
    #[snafu(display("cannot send to {topic}/{partition}: {source}"))]
    Connection {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The connection's error.
        source: connection::Error,
    },
    /// Metadata or the producer id could not be obtained.
    #[snafu(display("{source}"))]
    Cluster {
        /// The cluster's error.
        source: Arc<cluster::Error>,
    },
    /// The record could not be encoded (a field too large for the wire format, a codec failure).
    #[snafu(display("cannot encode the record batch: {source}"))]
    Encode {
        /// The codec's error.
        source: Arc<records::Error>,
    },
    /// The producer was closed before the record was sent.
    #[snafu(display("the producer is closed"))]
    Closed,
}

impl Error {
    /// The variant's name, for `error.type` attributes and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidConfig { .. } => "InvalidConfig",
            Error::UnknownTopic { .. } => "UnknownTopic",
            Error::UnknownPartition { .. } => "UnknownPartition",
            Error::RecordTooLarge { .. } => "RecordTooLarge",
            Error::Rejected { .. } => "Rejected",
            Error::DeliveryTimeout { .. } => "DeliveryTimeout",
            Error::DeliveryUncertain { .. } => "DeliveryUncertain",
            Error::Connection { .. } => "Connection",
            Error::Cluster { .. } => "Cluster",
            Error::Encode { .. } => "Encode",
            Error::Closed => "Closed",
        }
    }

    /// Whether sending the record again later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::DeliveryTimeout { .. } | Error::DeliveryUncertain { .. } => true,
            Error::Cluster { source } => source.is_retriable(),
            Error::Connection { source, .. } => source.is_retriable(),
            Error::Rejected { source, .. } => source.is_retriable(),
            Error::InvalidConfig { .. }
            | Error::UnknownTopic { .. }
            | Error::UnknownPartition { .. }
            | Error::RecordTooLarge { .. }
            | Error::Encode { .. }
            | Error::Closed => false,
        }
    }
}

impl From<cluster::Error> for Error {
    fn from(source: cluster::Error) -> Self {
        Error::Cluster {
            source: Arc::new(source),
        }
    }
}
