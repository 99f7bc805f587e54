//! What goes in (a record to send) and what comes back (where it was written).

use bytes::Bytes;

use crate::protocol::Headers;

/// A record to send.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::producer::ProducerRecord;
///
/// let record = ProducerRecord::new("orders.stream")
///     .with_key("order-1")
///     .with_value(r#"{"total": 3}"#)
///     .with_header("event_type", "OrderCreated");
/// assert_eq!(record.partition, None); // chosen by the partitioner
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// The partition; `None` lets the partitioner choose (by key hash, or sticky for unkeyed records).
    pub partition: Option<i32>,
    /// The key (null when `None`).
    pub key: Option<Bytes>,
    /// The value (null when `None`: a tombstone).
    pub value: Option<Bytes>,
    /// The headers.
    pub headers: Headers,
    /// The timestamp in ms since the epoch; `None` means "now".
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// An empty record for `topic`.
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            headers: Headers::new(),
            timestamp: None,
        }
    }
    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Sets the value.
    pub fn with_value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }
    /// Appends a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.insert(key, value);
        self
    }
    /// Replaces the headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
    /// Sets the partition explicitly.
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    /// Sets the timestamp (ms since the epoch).
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// The bytes this record takes in the producer's buffer (an upper bound of its encoded size).
    pub(crate) fn buffered_size(&self) -> usize {
        const OVERHEAD: usize = 21; // length, attributes, deltas, lengths: varints at their widest
        let field = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len) + 5;
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + 10 + h.value.map_or(0, <[u8]>::len))
            .sum();
        OVERHEAD + field(&self.key) + field(&self.value) + headers
    }
}

/// Where an acknowledged record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset; -1 when unknown (acks=0, or a retry the broker recognised as a duplicate).
    pub offset: i64,
    /// The record's timestamp (ms since the epoch).
    pub timestamp: i64,
}
