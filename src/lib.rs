//! # kafka-event-bus
//!
//! A Kafka event bus for event-sourced Rust services, written in pure Rust: typed domain events,
//! published to Kafka in batches and consumed by consumer groups that dispatch each event to subscribed
//! handlers. It is wire-compatible with eventsource-py's `KafkaEventBus`, so Python and Rust services can
//! share a topic.
//!
//! # Layout
//!
//! The module tree reads as the data path, from the wire up; each layer uses only the layers before it
//! in this list (`tests/module_layers.rs` checks it from the source).
//!
//! - [`protocol`]: bytes and versions. Request framing, API-version negotiation, record headers, the
//!   record-batch v2 codec with gzip, snappy, lz4 and zstd (all pure Rust), and the error kinds of the
//!   wire. No I/O.
//! - `client` (feature `client`, on by default): everything that opens a socket.
//!   - `client::connection`: one broker socket. TCP connect with a timeout, TLS (rustls) and SASL, the
//!     ApiVersions handshake, and a multiplexed messenger that pipelines many requests on one
//!     connection, matched by correlation id.
//!   - `client::cluster`: bootstrap, the metadata cache, one shared connection per broker, and the
//!     admin operations (create, delete and describe topics).
//!   - `client::producer`: partitioner (Java's murmur2), accumulator (per-partition batches, linger,
//!     a bounded buffer), sender (acks, retries, idempotence).
//!   - `client::group`, `client::fetcher`, `client::consumer`: the consumer group protocol (range,
//!     round-robin and cooperative-sticky assignors), fetching, and the consumer that ties them.
//! - [`event`]: typed domain events ([`event::Event`], [`event::DomainEvent`], [`event::AnyEvent`]), the
//!   [`event::EventRegistry`], and eventsource-py's wire format: topic names, record key, publish headers
//!   and the JSON payload, byte for byte. No I/O.
//! - [`dlq`]: dead-letter, retry and replay headers as pure functions (eventsource-py's `dlq_*`,
//!   `retry_count`, `retry_after`, `dlq_replay_count`) and, with `client`, the DLQ sink and admin.
//! - `dispatch`: handlers and subscriptions, retries, commit progress and (with `client`) the consume
//!   loop with one ordered worker per partition, settling each record (handled, or dead-lettered and
//!   acknowledged) before its offset may be committed.
//! - [`bus`]: the [`bus::EventBus`] trait handler code depends on, [`bus::InMemoryEventBus`], the Kafka
//!   bus and its config.
//! - `testing` (feature `testing`): a throwaway local broker for integration tests and examples, the
//!   conformance suite any bus can run (`testing::conformance`), and test-only faults.
//!
//! [`telemetry`] is a leaf any layer above `protocol` may use: OpenTelemetry metrics (eventsource-py's
//! fifteen `kafka.eventbus.*` instruments), the producer, consumer and handler spans, and W3C
//! trace-context propagation through record headers.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `client` | yes | sockets: connections (TLS), cluster metadata and admin, the producer, consumer groups |
//! | `testing` | no | [`testing`](crate) helpers that install and run a local Tansu broker, and the bus conformance suite |
//! | `tls-graviola` | yes | the graviola TLS crypto provider (x86_64 and aarch64) |
//! | `tls-rustcrypto` | yes | the RustCrypto TLS crypto provider (every target) |
//! | `unstable` | no | internals for the crate's own tests, benches and fuzz targets (request framing, version negotiation, the broker connection): **no semver promise**, they change in any release |
//!
//! Without `client` the crate is its core only and builds for `wasm32-wasip1`.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod unstable;

pub mod telemetry;

pub mod protocol;

pub mod event;

pub mod dlq;

pub mod bus;

unstable! { pub mod dispatch; }

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

mod future;

pub mod prelude;

#[cfg(test)]
mod capped_child;

// What handler code and services name most, at the root. Everything else stays in its module.
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use bus::{BusStats, KafkaEventBus, RecordContext};
pub use bus::{
    EventBus, Handler, HandlerError, HandlerResult, InMemoryEventBus, KafkaEventBusConfig, PermanentError,
    Subscriber,
};
pub use event::{AnyEvent, DomainEvent, Event, EventMeta};

// The user guide (`docs/guide.md`), rendered as this module's page; its Rust snippets run as doc tests.
// Only in documentation and doc-test builds: it has no items. The snippets use the Kafka bus, hence
// `client`.
#[cfg(all(any(doc, doctest), feature = "client"))]
#[doc = include_str!("../docs/guide.md")]
pub mod guide {}
