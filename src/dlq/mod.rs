//! The dead-letter queue: what eventsource-py's consumer writes when a delivery fails, what its DLQ admin
//! writes on replay, and (feature `client`) the I/O that sends and reads those records.
//!
//! - Pure functions, built for `wasm32-wasip1` too: the nine `dlq_*` provenance headers ([`DeadLetter`]),
//!   the `retry_count`/`retry_after` headers of a retry re-publish ([`retry_headers`]) and the replay
//!   rewrite ([`replay_headers`]).
//! - With `client`: the bus sends dead letters through the producer (`DlqSink`, public with the `unstable`
//!   feature), and [`DlqAdmin`] lists, counts and replays them (it reads the DLQ topic with the client
//!   layer).
//!
//! May use [`crate::event`], [`crate::protocol`] and, for its I/O, `crate::client`; never the bus above
//! it (the bus builds a [`DlqAdminConfig`] from its own config).
//!
//! Invariants: a retry, DLQ or replay record reuses the original key and value bytes unchanged; headers
//! are only appended or filtered, never reordered; reading headers never panics on any bytes.

mod admin;
#[cfg_attr(not(feature = "unstable"), allow(unreachable_pub, dead_code))]
mod record;
mod retry;
#[cfg(feature = "client")]
#[cfg_attr(not(feature = "unstable"), allow(unreachable_pub, dead_code))]
mod sink;

#[cfg(feature = "client")]
pub use admin::{AdminError, DEFAULT_READ_TIMEOUT, DlqAdmin, DlqAdminConfig};
pub use admin::{DlqEntry, DlqPayload, REPLAY_CONSUMER_GROUP, replay_is_for, targeted_replay_headers};
#[cfg(feature = "client")]
pub(crate) use admin::{LogBounds, log_bounds};

pub use record::{
    DLQ_ORIGINAL_LAST_OFFSET, DeadLetter, DlqReason, Error, HANDLER_DISPATCH_ERROR, MAX_ERROR_MESSAGE_CHARS,
};
unstable! { pub use record::{dispatch_failure_message, truncate_error_message}; }
pub use retry::{
    format_retry_after, replay_count, replay_headers, retry_after, retry_count, retry_due, retry_headers,
};
#[cfg(feature = "client")]
unstable! { pub use sink::{DlqSink, SinkError}; }
