//! Typed domain events and their wire format, byte-compatible with eventsource-py's Kafka event bus.
//!
//! Owns: the [`Event`] trait users implement for their payload structs, the envelope ([`EventMeta`],
//! [`DomainEvent`]), the type-erased [`AnyEvent`], the [`EventRegistry`], the JSON payload, the publish
//! headers and their names ([`header`]), topic names and the record key. May use: [`crate::protocol`]
//! ([`Headers`](crate::protocol::Headers)) and pure-Rust data crates; no I/O, so it builds for
//! `wasm32-wasip1`.
//!
//! Invariants:
//! - Encoding reproduces eventsource-py's bytes: headers in its order and text forms (`occurred_at` as
//!   `…+00:00`), optional headers only when set, the JSON payload in its field order with `null`s, `Z`
//!   for UTC, microsecond precision and pydantic's float text.
//! - Decoding accepts what pydantic accepts for the envelope fields in practice (UUIDs without hyphens,
//!   any case, braced or URN; datetimes with any number of fractional digits, `Z` or offsets, a space
//!   separator, a bare date, Unix seconds; versions as integral floats or decimal strings) and rejects
//!   the rest with a typed [`Error`]. No input panics.
//! - The `event_type` header alone chooses the type; the payload's own `event_type` is kept as written.
//!
//! # Example: declare, build, encode, decode
//!
//! ```
//! use kafka_event_bus::event::{DomainEvent, Event, EventRegistry};
//! use serde::{Deserialize, Serialize};
//! use uuid::Uuid;
//!
//! // Declare: a serde struct and two names.
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! struct OrderCreated {
//!     customer_id: String,
//! }
//! impl Event for OrderCreated {
//!     const EVENT_TYPE: &'static str = "OrderCreated";
//!     const AGGREGATE_TYPE: &'static str = "Order";
//! }
//!
//! // Build: aggregate id, version and payload; the rest has defaults.
//! let order_id = Uuid::new_v4();
//! let event = DomainEvent::new(order_id, 1, OrderCreated { customer_id: "customer-123".into() });
//! assert_eq!(event.meta.correlation_id, event.meta.event_id);
//!
//! // Encode: the Kafka record eventsource-py would have produced.
//! let record = event.to_record()?;
//! assert_eq!(record.key, order_id.to_string().as_bytes());
//! assert_eq!(record.headers.get_str("event_type"), Some("OrderCreated"));
//! let json = std::str::from_utf8(&record.value).unwrap();
//! assert!(json.starts_with(r#"{"event_id":""#));
//! assert!(json.ends_with(r#""metadata":{},"customer_id":"customer-123"}"#));
//!
//! // Decode, knowing the type...
//! let back = DomainEvent::<OrderCreated>::from_record(&record.headers, &record.value)?;
//! assert_eq!(back, event);
//!
//! // ...or through a registry, as a consumer does.
//! let mut registry = EventRegistry::new();
//! registry.register::<OrderCreated>()?;
//! let any = registry.decode(&record.headers, record.value.clone())?;
//! assert_eq!(*any.downcast::<OrderCreated>()?, event);
//! # Ok::<(), kafka_event_bus::event::Error>(())
//! ```

mod any;
mod codec;
mod envelope;
mod error;
mod json;
mod metadata;
mod registry;
pub(crate) mod timefmt;
mod trace_context;

pub use any::AnyEvent;
pub use codec::{
    DEFAULT_DLQ_SUFFIX, DEFAULT_TOPIC_PREFIX, EventRecord, dlq_topic_name, event_type_header, header,
    publish_headers, record_key, topic_name,
};
pub use envelope::{DomainEvent, Event, EventMeta};
pub use error::Error;
pub use json::ENVELOPE_FIELDS;
pub(crate) use json::python_int;
pub use metadata::Metadata;
pub use registry::{EventRegistry, EventType};
