//! Dead-letter records: the nine `dlq_*` provenance headers eventsource-py appends, built and parsed.

use std::fmt;

use snafu::Snafu;
use time::OffsetDateTime;

use crate::event::{EventRecord, header, python_int, timefmt};
use crate::protocol::Headers;

/// The most characters of an error message a `dlq_error_message` header keeps (Python `str(e)[:1000]`).
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1000;

/// The `dlq_error_type` eventsource-py reports when two or more handlers failed one delivery.
pub const HANDLER_DISPATCH_ERROR: &str = "HandlerDispatchError";

/// Why a record went to the DLQ (the `dlq_reason` header).
///
/// # Example
///
/// ```
/// use kafka_event_bus::dlq::DlqReason;
///
/// assert_eq!(DlqReason::MaxRetriesExceeded.as_str(), "max_retries_exceeded");
/// assert_eq!("deserialization_error".parse(), Ok(DlqReason::DeserializationError));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DlqReason {
    /// The handlers failed on the last allowed attempt.
    MaxRetriesExceeded,
    /// The record could not be decoded (unknown type, bad JSON); never retried.
    DeserializationError,
    /// A retry could not be re-published.
    RepublishFailed,
    /// A record batch could not be decoded: the DLQ record's value is the batch's bytes (not an
    /// event), and [`DLQ_ORIGINAL_LAST_OFFSET`] names the batch's last offset.
    CorruptBatch,
    /// A handler said retrying cannot help (`PermanentError`): dead-lettered on the first failure.
    /// Not one of eventsource-py's three reasons; it reads the other three as before.
    PermanentError,
}

/// The header a `corrupt_batch` DLQ record adds: the batch's last offset (`dlq_original_offset` is its
/// first), as the batch's header claims it.
pub const DLQ_ORIGINAL_LAST_OFFSET: &str = "dlq_original_last_offset";

impl DlqReason {
    /// The header text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxRetriesExceeded => "max_retries_exceeded",
            Self::DeserializationError => "deserialization_error",
            Self::RepublishFailed => "republish_failed",
            Self::CorruptBatch => "corrupt_batch",
            Self::PermanentError => "permanent_error",
        }
    }
}

impl fmt::Display for DlqReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DlqReason {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "max_retries_exceeded" => Ok(Self::MaxRetriesExceeded),
            "deserialization_error" => Ok(Self::DeserializationError),
            "republish_failed" => Ok(Self::RepublishFailed),
            "corrupt_batch" => Ok(Self::CorruptBatch),
            "permanent_error" => Ok(Self::PermanentError),
            other => Err(Error::InvalidHeader {
                name: header::DLQ_REASON,
                value: other.to_owned(),
            }),
        }
    }
}

/// An error reading the `dlq_*` headers of a DLQ record.
#[derive(Debug, Snafu, PartialEq, Eq)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// A required header is absent, null or not UTF-8.
    #[snafu(display("DLQ header {name} is missing or not UTF-8"))]
    MissingHeader {
        /// The header.
        name: &'static str,
    },
    /// A header's value does not parse.
    #[snafu(display("DLQ header {name} has an invalid value {value:?}"))]
    InvalidHeader {
        /// The header.
        name: &'static str,
        /// Its text.
        value: String,
    },
}

/// The provenance of a dead-lettered record: what the nine `dlq_*` headers say.
///
/// # Example
///
/// ```
/// use kafka_event_bus::dlq::{DeadLetter, DlqReason};
/// use kafka_event_bus::event::EventRecord;
/// use kafka_event_bus::protocol::Headers;
///
/// let mut original = Headers::new();
/// original.insert("event_type", "OrderCreated");
/// let record = EventRecord { key: "k".into(), value: "{}".into(), headers: original };
///
/// let dead = DeadLetter {
///     reason: DlqReason::MaxRetriesExceeded,
///     error_type: "ValueError".into(),
///     error_message: "boom".into(),
///     retry_count: 3,
///     timestamp: time::OffsetDateTime::UNIX_EPOCH,
///     original_topic: "orders.stream".into(),
///     original_partition: 2,
///     original_offset: 41,
///     consumer_group: "order-processor".into(),
/// };
/// let dlq = dead.record(&record);
/// assert_eq!(dlq.key, record.key);
/// assert_eq!(dlq.headers.len(), 10);
/// assert_eq!(dlq.headers.get_str("dlq_timestamp"), Some("1970-01-01T00:00:00+00:00"));
/// assert_eq!(DeadLetter::from_headers(&dlq.headers)?, dead);
/// # Ok::<(), kafka_event_bus::dlq::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// `dlq_reason`.
    pub reason: DlqReason,
    /// `dlq_error_type`: the error's class name (`ValueError`, `DeserializationError`,
    /// [`HANDLER_DISPATCH_ERROR`]...).
    pub error_type: String,
    /// `dlq_error_message` (truncated to [`MAX_ERROR_MESSAGE_CHARS`] when written).
    pub error_message: String,
    /// `dlq_retry_count`: the retry count of the failed delivery.
    pub retry_count: i64,
    /// `dlq_timestamp`: when it was dead-lettered (written as Python `isoformat()`).
    pub timestamp: OffsetDateTime,
    /// `dlq_original_topic`.
    pub original_topic: String,
    /// `dlq_original_partition`.
    pub original_partition: i32,
    /// `dlq_original_offset`.
    pub original_offset: i64,
    /// `dlq_consumer_group`.
    pub consumer_group: String,
}

/// The first [`MAX_ERROR_MESSAGE_CHARS`] characters of a message.
///
/// # Example
///
/// ```
/// let long = "é".repeat(1200);
/// assert_eq!(kafka_event_bus::dlq::truncate_error_message(&long).chars().count(), 1000);
/// ```
pub fn truncate_error_message(message: &str) -> &str {
    match message.char_indices().nth(MAX_ERROR_MESSAGE_CHARS) {
        Some((end, _)) => &message[..end],
        None => message,
    }
}

/// The message eventsource-py reports when several handlers failed one delivery:
/// `"2 handler(s) failed during dispatch: h1, h2"` (with [`HANDLER_DISPATCH_ERROR`] as the type).
///
/// # Example
///
/// ```
/// let msg = kafka_event_bus::dlq::dispatch_failure_message(&["H1", "H2"]);
/// assert_eq!(msg, "2 handler(s) failed during dispatch: H1, H2");
/// ```
pub fn dispatch_failure_message(handler_names: &[&str]) -> String {
    format!(
        "{} handler(s) failed during dispatch: {}",
        handler_names.len(),
        handler_names.join(", ")
    )
}

impl DeadLetter {
    /// Appends the nine `dlq_*` headers, in eventsource-py's order.
    pub fn append_headers(&self, headers: &mut Headers) {
        headers.insert(header::DLQ_REASON, self.reason.as_str());
        headers.insert(header::DLQ_ERROR_TYPE, self.error_type.clone());
        headers.insert(
            header::DLQ_ERROR_MESSAGE,
            truncate_error_message(&self.error_message).to_owned(),
        );
        headers.insert(header::DLQ_RETRY_COUNT, self.retry_count.to_string());
        headers.insert(header::DLQ_TIMESTAMP, timefmt::format_isoformat(self.timestamp));
        headers.insert(header::DLQ_ORIGINAL_TOPIC, self.original_topic.clone());
        headers.insert(
            header::DLQ_ORIGINAL_PARTITION,
            self.original_partition.to_string(),
        );
        headers.insert(header::DLQ_ORIGINAL_OFFSET, self.original_offset.to_string());
        headers.insert(header::DLQ_CONSUMER_GROUP, self.consumer_group.clone());
    }

    /// The DLQ record for a consumed record: the same key and value, all its headers, then the nine.
    pub fn record(&self, original: &EventRecord) -> EventRecord {
        let mut headers = original.headers.clone();
        self.append_headers(&mut headers);
        EventRecord {
            key: original.key.clone(),
            value: original.value.clone(),
            headers,
        }
    }

    /// Reads the `dlq_*` headers of a DLQ record. Repeated headers: the last wins, as in eventsource-py's
    /// `get_dlq_messages`.
    ///
    /// # Errors
    ///
    /// [`Error::MissingHeader`] or [`Error::InvalidHeader`].
    pub fn from_headers(headers: &Headers) -> Result<Self, Error> {
        let text = |name: &'static str| -> Result<&str, Error> {
            headers
                .get_last(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .ok_or(Error::MissingHeader { name })
        };
        let int = |name: &'static str| -> Result<i128, Error> {
            let value = text(name)?;
            python_int(value).ok_or_else(|| Error::InvalidHeader {
                name,
                value: value.to_owned(),
            })
        };
        let narrow = |name: &'static str, v: i128| Error::InvalidHeader {
            name,
            value: v.to_string(),
        };
        let timestamp_text = text(header::DLQ_TIMESTAMP)?;
        let timestamp = timefmt::parse_datetime(timestamp_text)
            .map(|p| p.at)
            .map_err(|_| Error::InvalidHeader {
                name: header::DLQ_TIMESTAMP,
                value: timestamp_text.to_owned(),
            })?;
        let retry_count = int(header::DLQ_RETRY_COUNT)?;
        let partition = int(header::DLQ_ORIGINAL_PARTITION)?;
        let offset = int(header::DLQ_ORIGINAL_OFFSET)?;
        Ok(Self {
            reason: text(header::DLQ_REASON)?.parse()?,
            error_type: text(header::DLQ_ERROR_TYPE)?.to_owned(),
            error_message: text(header::DLQ_ERROR_MESSAGE)?.to_owned(),
            retry_count: i64::try_from(retry_count)
                .map_err(|_| narrow(header::DLQ_RETRY_COUNT, retry_count))?,
            timestamp,
            original_topic: text(header::DLQ_ORIGINAL_TOPIC)?.to_owned(),
            original_partition: i32::try_from(partition)
                .map_err(|_| narrow(header::DLQ_ORIGINAL_PARTITION, partition))?,
            original_offset: i64::try_from(offset)
                .map_err(|_| narrow(header::DLQ_ORIGINAL_OFFSET, offset))?,
            consumer_group: text(header::DLQ_CONSUMER_GROUP)?.to_owned(),
        })
    }
}
