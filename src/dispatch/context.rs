//! [`RecordContext`]: where the event a handler runs for came from, readable inside the handler.

use std::{future::Future, sync::Arc};

use bytes::Bytes;

use crate::protocol::Headers;

tokio::task_local! {
    static CURRENT: RecordContext;
}

/// Where the event a handler is running for came from: available to handlers of a
/// [`KafkaEventBus`](crate::bus::KafkaEventBus) through [`RecordContext::current`].
///
/// The record's key and headers are shared with the consumed record (reference-counted slices of the
/// fetched bytes), not copied per record.
///
/// # Example
///
/// ```no_run
/// # fn wire(bus: &kafka_event_bus::bus::KafkaEventBus) -> Result<(), kafka_event_bus::bus::Error> {
/// use kafka_event_bus::bus::{EventBus, RecordContext};
///
/// bus.subscribe_to_all_events(|event| async move {
///     if let Some(at) = RecordContext::current() {
///         println!("{} from {}/{} at {}", event.type_name(), at.topic, at.partition, at.offset);
///         println!("key {:?}, tenant header {:?}", at.key_str(), at.headers().get_str("x-tenant"));
///         for header in at.headers() {
///             println!("{} = {:?}", header.key, header.value);
///         }
///     }
///     Ok(())
/// })?;
/// # Ok(()) }
/// ```
///
/// Its `Debug` output names the headers and gives the lengths of their values and of the key, never
/// the bytes: keys and headers may carry personal data or credentials that do not belong in logs.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordContext {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The record's timestamp (ms since the epoch).
    pub timestamp: i64,
    /// How many times the handlers have been retried for this record (0 on the first attempt).
    pub retries: u32,
    /// The record's key; `None` for a null key.
    key: Option<Bytes>,
    /// The record's headers, in wire order.
    headers: Headers,
}

impl RecordContext {
    /// The record the calling handler runs for; `None` outside a Kafka bus handler (e.g. on the
    /// in-memory bus, or in a task the handler spawned).
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The context of a record; `key` and `headers` are the record's own (cheap clones of shared bytes).
    pub(crate) fn new(
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        timestamp: i64,
        key: Option<Bytes>,
        headers: Headers,
    ) -> Self {
        Self {
            topic,
            partition,
            offset,
            timestamp,
            retries: 0,
            key,
            headers,
        }
    }

    /// The record's key as bytes; `None` for a null key. eventsource-py keys a record by its aggregate id.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The record's key as text; `None` for a null key or one that is not UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        self.key().and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The record's headers, in wire order: eventsource-py's (`event_type`, `event_id`, ...), any the
    /// publisher added ([`PublishOptions`](crate::bus::PublishOptions)), then the trace headers the
    /// producer's bus wrote. Read them with [`Headers::get`], [`Headers::get_str`] or
    /// by iterating.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Runs `work` with `self` as the current context.
    pub(crate) async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }
}

impl std::fmt::Debug for RecordContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// A header as its name and the length of its value (`None` for a null value).
        struct Lengths<'a>(&'a Headers);
        impl std::fmt::Debug for Lengths<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|h| (h.key, h.value.map(<[u8]>::len))))
                    .finish()
            }
        }
        f.debug_struct("RecordContext")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("retries", &self.retries)
            .field("key_len", &self.key.as_ref().map(Bytes::len))
            .field("header_value_lens", &Lengths(&self.headers))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// One header in record format: zigzag varint lengths (all short here), key, value.
    fn wire_header(key: &str, value: &str) -> Vec<u8> {
        let mut out = vec![(key.len() as u8) << 1];
        out.extend_from_slice(key.as_bytes());
        out.push((value.len() as u8) << 1);
        out.extend_from_slice(value.as_bytes());
        out
    }

    #[test]
    fn key_and_headers_are_the_records_bytes_not_copies() {
        let mut raw = wire_header("event_type", "OrderCreated");
        raw.extend(wire_header("x-tenant", "acme"));
        let raw = Bytes::from(raw);
        let (headers, used) = Headers::decode(&raw, 0, 2).unwrap();
        assert_eq!(used, raw.len());
        let key = Bytes::from_static(b"0b5e9f62-1c0a-4c8e-a6a1-3d2f1e0c9b8a");
        let context = RecordContext::new(Arc::from("orders.stream"), 1, 7, 0, Some(key.clone()), headers);
        let retried = context.clone();

        assert_eq!(retried.key_str(), std::str::from_utf8(&key).ok());
        assert_eq!(retried.key().unwrap().as_ptr(), key.as_ptr());
        let tenant = retried.headers().get("x-tenant").unwrap();
        assert_eq!(tenant, b"acme");
        // Inside the fetched bytes: cloning a context shares them.
        let inside = raw.as_ptr_range();
        assert!(inside.contains(&tenant.as_ptr()));
        let names: Vec<_> = retried.headers().iter().map(|h| h.key).collect();
        assert_eq!(names, ["event_type", "x-tenant"]);
    }

    #[test]
    fn debug_shows_header_names_and_lengths_not_values() {
        let mut headers = Headers::new();
        headers.insert("authorization", "Bearer s3cr3t-token");
        headers.insert_null("x-null");
        let key = Bytes::from_static(b"customer-4711@example.com");
        let context = RecordContext::new(Arc::from("orders.stream"), 1, 7, 0, Some(key), headers);
        let shown = format!("{context:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("4711"), "{shown}");
        assert!(shown.contains("\"authorization\": Some(19)"), "{shown}");
        assert!(shown.contains("\"x-null\": None"), "{shown}");
        assert!(shown.contains("key_len: Some(25)"), "{shown}");
        assert!(shown.contains("orders.stream"), "{shown}");
    }

    #[test]
    fn a_key_that_is_not_utf8_has_bytes_but_no_text() {
        let context = RecordContext::new(
            Arc::from("t"),
            0,
            0,
            0,
            Some(Bytes::from_static(b"\xff\xfe")),
            Headers::new(),
        );
        assert_eq!(context.key(), Some(&b"\xff\xfe"[..]));
        assert_eq!(context.key_str(), None);
        let unkeyed = RecordContext::new(Arc::from("t"), 0, 0, 0, None, Headers::new());
        assert_eq!((unkeyed.key(), unkeyed.key_str()), (None, None));
    }
}
