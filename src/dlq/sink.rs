//! Sending dead letters: a consumed record plus its nine `dlq_*` headers, written to the DLQ topic
//! through a [`Producer`] and acknowledged by the broker before the caller hears "done".
//!
//! Owns [`DlqSink`] and its error [`SinkError`]. May use [`crate::client::producer`] and the pure
//! [`DeadLetter`] of this module's parent.
//!
//! Invariants: the DLQ record has the original key and value bytes unchanged (null stays null) and the
//! original headers in their order, duplicates and nulls included, followed by the nine `dlq_*` headers;
//! [`DlqSink::send`] returns `Ok` only after the broker acknowledged that record, so the caller may then
//! commit the original offset. eventsource-py commits after a mere buffer hand-off (spec §8.2); this
//! does not.

use bytes::Bytes;
use snafu::{ResultExt, Snafu};

use super::DeadLetter;
use crate::client::consumer::ConsumerRecord;
use crate::client::producer::{self, Producer, ProducerRecord, RecordMetadata};
use crate::protocol::Headers;

/// Why a dead letter was not (or may not have been) written.
///
/// The caller must not commit the original record's offset after any of these: it retries the send
/// (with backoff) or lets the record be redelivered.
///
/// # Example
///
/// ```
/// use kafka_event_bus::dlq::SinkError;
///
/// fn commit_allowed(result: &Result<(), SinkError>) -> bool {
///     result.is_ok()
/// }
/// assert!(commit_allowed(&Ok(())));
/// ```
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum SinkError {
    /// The producer refused or failed to deliver the DLQ record.
    #[snafu(display(
        "cannot dead-letter {original_topic}/{original_partition}@{original_offset} to {topic}: {source}"
    ))]
    Send {
        /// The DLQ topic.
        topic: String,
        /// `dlq_original_topic`.
        original_topic: String,
        /// `dlq_original_partition`.
        original_partition: i32,
        /// `dlq_original_offset`.
        original_offset: i64,
        /// The producer's error.
        source: producer::Error,
    },
}

impl SinkError {
    /// Whether sending the same dead letter again later may succeed (a timeout, a leader change, a
    /// broker restart). A non-retriable error (the DLQ topic is missing, the record is too large, the
    /// producer is closed) needs an operator; the original offset must stay uncommitted either way.
    pub fn is_retriable(&self) -> bool {
        match self {
            SinkError::Send { source, .. } => source.is_retriable(),
        }
    }

    /// The producer error's kind (`"UnknownTopic"`, `"RecordTooLarge"`, ...), for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkError::Send { source, .. } => source.kind(),
        }
    }
}

/// Writes dead letters to the DLQ topic and waits for the broker's acknowledgement.
///
/// The producer should use `acks=all` (or at least `acks=1`): with `acks=0` "acknowledged" means only
/// "handed to the socket", and the at-least-once guarantee is gone. The DLQ record is placed by the
/// producer's partitioner from its key, as eventsource-py's is.
///
/// # Example
///
/// ```no_run
/// # async fn example(producer: kafka_event_bus::client::producer::Producer,
/// #                  record: kafka_event_bus::client::consumer::ConsumerRecord)
/// #     -> Result<(), kafka_event_bus::dlq::SinkError> {
/// use kafka_event_bus::dlq::{DeadLetter, DlqReason, DlqSink};
///
/// let sink = DlqSink::new(producer, "orders.stream.dlq");
/// let dead = DeadLetter {
///     reason: DlqReason::MaxRetriesExceeded,
///     error_type: "ValueError".into(),
///     error_message: "boom".into(),
///     retry_count: 3,
///     timestamp: time::OffsetDateTime::now_utc(),
///     original_topic: record.topic.to_string(),
///     original_partition: record.partition,
///     original_offset: record.offset,
///     consumer_group: "order-processor".into(),
/// };
/// let written = sink.send_record(&record, &dead).await?;
/// // Acknowledged: the original offset may now be committed.
/// println!("dead-lettered at {}/{}", written.partition, written.offset);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DlqSink {
    producer: Producer,
    topic: String,
}

impl DlqSink {
    /// A sink writing to `dlq_topic` (usually [`KafkaEventBusConfig::dlq_topic_name`]) with `producer`.
    ///
    /// [`KafkaEventBusConfig::dlq_topic_name`]: crate::bus::KafkaEventBusConfig::dlq_topic_name
    pub fn new(producer: Producer, dlq_topic: impl Into<String>) -> Self {
        Self {
            producer,
            topic: dlq_topic.into(),
        }
    }

    /// The DLQ topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Dead-letters a consumed record: its key, value and headers, plus `dead`'s nine headers.
    ///
    /// # Errors
    ///
    /// [`SinkError::Send`] when the broker did not acknowledge the record.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe in the sense that matters here: if the future is dropped after the record was
    /// handed to the producer, the record may still be written. Treat a cancelled send as failed (do not
    /// commit); the redelivery will dead-letter it again, which at-least-once allows.
    pub async fn send_record(
        &self,
        record: &ConsumerRecord,
        dead: &DeadLetter,
    ) -> Result<RecordMetadata, SinkError> {
        self.send(record.key.clone(), record.value.clone(), &record.headers, dead)
            .await
    }

    /// Dead-letters a record given by parts (`None` is a null key or value, kept null).
    ///
    /// # Errors
    ///
    /// As [`send_record`](Self::send_record).
    ///
    /// # Cancel safety
    ///
    /// As [`send_record`](Self::send_record).
    pub async fn send(
        &self,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: &Headers,
        dead: &DeadLetter,
    ) -> Result<RecordMetadata, SinkError> {
        let record = dlq_record(&self.topic, key, value, headers, dead);
        self.producer.send_and_wait(record).await.context(SendSnafu {
            topic: self.topic.clone(),
            original_topic: dead.original_topic.clone(),
            original_partition: dead.original_partition,
            original_offset: dead.original_offset,
        })
    }
}

/// The record the sink sends (pure, for the tests).
fn dlq_record(
    topic: &str,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: &Headers,
    dead: &DeadLetter,
) -> ProducerRecord {
    let mut headers = headers.clone();
    dead.append_headers(&mut headers);
    let mut record = ProducerRecord::new(topic).with_headers(headers);
    record.key = key;
    record.value = value;
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::DlqReason;

    fn dead() -> DeadLetter {
        DeadLetter {
            reason: DlqReason::DeserializationError,
            error_type: "DeserializationError".into(),
            error_message: "Unknown event type: X".into(),
            retry_count: 0,
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
            original_topic: "t.stream".into(),
            original_partition: 3,
            original_offset: 17,
            consumer_group: "g".into(),
        }
    }

    #[test]
    fn record_keeps_key_value_and_headers_then_appends_the_nine() {
        let mut headers = Headers::new();
        headers.insert("event_type", "X");
        headers.insert("dup", "1");
        headers.insert("dup", "2");
        headers.insert_null("null");
        let record = dlq_record(
            "t.stream.dlq",
            None,
            Some(Bytes::from_static(b"\xff\x00")),
            &headers,
            &dead(),
        );
        assert_eq!(record.topic, "t.stream.dlq");
        assert_eq!(record.key, None);
        assert_eq!(record.value.as_deref(), Some(&b"\xff\x00"[..]));
        assert_eq!(record.partition, None);
        let names: Vec<&str> = record.headers.iter().map(|h| h.key).collect();
        assert_eq!(
            names,
            [
                "event_type",
                "dup",
                "dup",
                "null",
                "dlq_reason",
                "dlq_error_type",
                "dlq_error_message",
                "dlq_retry_count",
                "dlq_timestamp",
                "dlq_original_topic",
                "dlq_original_partition",
                "dlq_original_offset",
                "dlq_consumer_group",
            ]
        );
        assert!(record.headers.contains_key("null") && record.headers.get("null").is_none());
        assert_eq!(DeadLetter::from_headers(&record.headers), Ok(dead()));
    }
}
