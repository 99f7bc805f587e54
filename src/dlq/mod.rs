//! Dead-letter and retry records, as pure functions: what eventsource-py's consumer writes when a
//! delivery fails, and what its DLQ admin writes on replay.
//!
//! Owns the nine `dlq_*` provenance headers ([`DeadLetter`]), the `retry_count`/`retry_after` headers of a
//! retry re-publish ([`retry_headers`]) and the replay rewrite ([`replay_headers`]). May use
//! [`crate::event`] and [`crate::protocol`]; performs no I/O (sending is the producer's job), so it builds
//! for `wasm32-wasip1`.
//!
//! Invariants: a retry, DLQ or replay record reuses the original key and value bytes unchanged; headers
//! are only appended or filtered, never reordered; reading headers never panics on any bytes.

mod admin;
mod record;
mod retry;
#[cfg(feature = "client")]
mod sink;

#[cfg(feature = "client")]
pub use admin::{AdminError, DEFAULT_READ_TIMEOUT, DlqAdmin, DlqAdminConfig};
pub use admin::{DlqEntry, DlqPayload, REPLAY_CONSUMER_GROUP, replay_is_for, targeted_replay_headers};

pub use record::{
    DLQ_ORIGINAL_LAST_OFFSET, DeadLetter, DlqReason, Error, HANDLER_DISPATCH_ERROR, MAX_ERROR_MESSAGE_CHARS,
    dispatch_failure_message, truncate_error_message,
};
pub use retry::{
    format_retry_after, replay_count, replay_headers, retry_after, retry_count, retry_due, retry_headers,
};
#[cfg(feature = "client")]
pub use sink::{DlqSink, SinkError};
