//! The Kafka side of an event: topic names, the record key, the header names and the publish headers.
//!
//! Owns what eventsource-py puts around the JSON payload. Uses [`crate::protocol::Headers`] and
//! [`super::timefmt`]. Invariants: headers come out in eventsource-py's order with its text forms, and
//! optional headers only when set; reading a header never panics on any bytes.

use bytes::Bytes;
use uuid::Uuid;

use super::{Error, EventMeta, timefmt};
use crate::protocol::Headers;

/// Header names, as eventsource-py writes them.
pub mod header {
    /// Event id (UUID).
    pub const EVENT_ID: &str = "event_id";
    /// Registry name; the only header a consumer reads to pick the type.
    pub const EVENT_TYPE: &str = "event_type";
    /// Aggregate id (UUID).
    pub const AGGREGATE_ID: &str = "aggregate_id";
    /// Aggregate type.
    pub const AGGREGATE_TYPE: &str = "aggregate_type";
    /// Aggregate version (decimal).
    pub const AGGREGATE_VERSION: &str = "aggregate_version";
    /// When it happened, Python `isoformat()` (`+00:00`, never `Z`).
    pub const OCCURRED_AT: &str = "occurred_at";
    /// Correlation id (UUID), always present.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// Tenant id (UUID), only when set.
    pub const TENANT_ID: &str = "tenant_id";
    /// Causation id (UUID), only when set.
    pub const CAUSATION_ID: &str = "causation_id";
    /// Actor, only when set and not empty.
    pub const ACTOR_ID: &str = "actor_id";
    /// Delivery attempt of a retry re-publish (decimal).
    pub const RETRY_COUNT: &str = "retry_count";
    /// Earliest time to process a retry: Unix seconds as a Python float string.
    pub const RETRY_AFTER: &str = "retry_after";
    /// Why the record was dead-lettered.
    pub const DLQ_REASON: &str = "dlq_reason";
    /// The failure's exception class name.
    pub const DLQ_ERROR_TYPE: &str = "dlq_error_type";
    /// The failure's message, at most 1000 characters.
    pub const DLQ_ERROR_MESSAGE: &str = "dlq_error_message";
    /// The retry count when dead-lettered (decimal).
    pub const DLQ_RETRY_COUNT: &str = "dlq_retry_count";
    /// When it was dead-lettered, Python `isoformat()`.
    pub const DLQ_TIMESTAMP: &str = "dlq_timestamp";
    /// The topic it was consumed from.
    pub const DLQ_ORIGINAL_TOPIC: &str = "dlq_original_topic";
    /// The partition it was consumed from (decimal).
    pub const DLQ_ORIGINAL_PARTITION: &str = "dlq_original_partition";
    /// The offset it was consumed at (decimal).
    pub const DLQ_ORIGINAL_OFFSET: &str = "dlq_original_offset";
    /// The consumer group that gave up on it.
    pub const DLQ_CONSUMER_GROUP: &str = "dlq_consumer_group";
    /// How many times it was replayed from the DLQ (decimal).
    pub const DLQ_REPLAY_COUNT: &str = "dlq_replay_count";
    /// The prefix shared by every DLQ header.
    pub const DLQ_PREFIX: &str = "dlq_";
}

/// eventsource-py's default topic prefix.
pub const DEFAULT_TOPIC_PREFIX: &str = "events";
/// eventsource-py's default DLQ topic suffix.
pub const DEFAULT_DLQ_SUFFIX: &str = ".dlq";

/// The main topic for a prefix: `{prefix}.stream`. All event types share it; retries go back to it.
///
/// # Example
///
/// ```
/// use kafka_event_bus::event::{dlq_topic_name, topic_name};
///
/// assert_eq!(topic_name("orders"), "orders.stream");
/// assert_eq!(dlq_topic_name("orders", ".dlq"), "orders.stream.dlq");
/// ```
pub fn topic_name(prefix: &str) -> String {
    format!("{prefix}.stream")
}

/// The DLQ topic for a prefix and suffix: `{prefix}.stream{suffix}`.
///
/// # Example
///
/// ```
/// assert_eq!(kafka_event_bus::event::dlq_topic_name("events", "-dead"), "events.stream-dead");
/// ```
pub fn dlq_topic_name(prefix: &str, suffix: &str) -> String {
    format!("{prefix}.stream{suffix}")
}

/// A record as the producer sends it and the consumer receives it: key, value and headers.
///
/// Retries, DLQ records and replays reuse `key` and `value` unchanged and only rewrite `headers` (see
/// [`crate::dlq`]).
///
/// # Example
///
/// ```
/// use kafka_event_bus::event::EventRecord;
/// use kafka_event_bus::protocol::Headers;
///
/// let record = EventRecord { key: "k".into(), value: "{}".into(), headers: Headers::new() };
/// assert_eq!(&record.key[..], b"k");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The partition key: the aggregate id as a lowercase hyphenated UUID.
    pub key: Bytes,
    /// The JSON payload.
    pub value: Bytes,
    /// The headers, in order.
    pub headers: Headers,
}

/// The record key for an aggregate: `str(aggregate_id)` in UTF-8 (lowercase, hyphenated, 36 bytes).
///
/// # Example
///
/// ```
/// let id = uuid::Uuid::from_u128(0xABCD);
/// let key = kafka_event_bus::event::record_key(&id);
/// assert_eq!(&key[..], b"00000000-0000-0000-0000-00000000abcd");
/// ```
pub fn record_key(aggregate_id: &Uuid) -> Bytes {
    Bytes::from(aggregate_id.hyphenated().to_string())
}

/// The headers eventsource-py writes on publish, in its order: `event_id`, `event_type`, `aggregate_id`,
/// `aggregate_type`, `aggregate_version`, `occurred_at`, `correlation_id`, then `tenant_id` and
/// `causation_id` if set and `actor_id` if set and not empty. (Trace headers, when a tracer injects them,
/// come after these.)
///
/// # Example
///
/// ```
/// use kafka_event_bus::event::{EventMeta, publish_headers};
///
/// let meta = EventMeta::new("OrderCreated", "Order", uuid::Uuid::new_v4(), 3);
/// let headers = publish_headers(&meta);
/// let names: Vec<&str> = headers.iter().map(|h| h.key).collect();
/// assert_eq!(names, ["event_id", "event_type", "aggregate_id", "aggregate_type", "aggregate_version",
///                    "occurred_at", "correlation_id"]);
/// assert_eq!(headers.get_str("aggregate_version"), Some("3"));
/// assert!(headers.get_str("occurred_at").unwrap().ends_with("+00:00"));
/// ```
pub fn publish_headers(meta: &EventMeta) -> Headers {
    let mut h = Headers::with_capacity(10);
    h.insert(header::EVENT_ID, meta.event_id.hyphenated().to_string());
    h.insert(header::EVENT_TYPE, meta.event_type.clone());
    h.insert(header::AGGREGATE_ID, meta.aggregate_id.hyphenated().to_string());
    h.insert(header::AGGREGATE_TYPE, meta.aggregate_type.clone());
    h.insert(header::AGGREGATE_VERSION, meta.aggregate_version.to_string());
    h.insert(header::OCCURRED_AT, timefmt::format_isoformat(meta.occurred_at));
    h.insert(
        header::CORRELATION_ID,
        meta.correlation_id.hyphenated().to_string(),
    );
    if let Some(tenant) = meta.tenant_id {
        h.insert(header::TENANT_ID, tenant.hyphenated().to_string());
    }
    if let Some(causation) = meta.causation_id {
        h.insert(header::CAUSATION_ID, causation.hyphenated().to_string());
    }
    if let Some(actor) = meta.actor_id.as_ref().filter(|a| !a.is_empty()) {
        h.insert(header::ACTOR_ID, actor.clone());
    }
    h
}

/// The type name a consumer routes by: the first `event_type` header, which must be non-empty UTF-8.
///
/// # Errors
///
/// [`Error::MissingEventType`] if there is none, its value is null or empty; [`Error::EventTypeNotUtf8`].
///
/// # Example
///
/// ```
/// use kafka_event_bus::event::{Error, event_type_header};
/// use kafka_event_bus::protocol::Headers;
///
/// let mut headers = Headers::new();
/// assert!(matches!(event_type_header(&headers), Err(Error::MissingEventType)));
/// headers.insert("event_type", "OrderCreated");
/// assert_eq!(event_type_header(&headers).unwrap(), "OrderCreated");
/// ```
pub fn event_type_header(headers: &Headers) -> Result<&str, Error> {
    let value = headers.get(header::EVENT_TYPE).ok_or(Error::MissingEventType)?;
    let name = std::str::from_utf8(value).map_err(|_| Error::EventTypeNotUtf8)?;
    if name.is_empty() {
        return Err(Error::MissingEventType);
    }
    Ok(name)
}
