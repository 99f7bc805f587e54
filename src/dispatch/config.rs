//! The dispatcher's own settings, built once from the bus configuration.

use std::time::Duration;

use super::RetryPolicy;

/// What the partition workers need to know: retries, the DLQ, the unknown-type policy and the
/// per-partition concurrency.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DispatchConfig {
    /// The consumer group (the `dlq_consumer_group` header; replays for other groups are skipped).
    pub(crate) consumer_group: String,
    /// The main topic (for logs).
    pub(crate) topic: String,
    /// Retries in place of failed handlers.
    pub(crate) retry: RetryPolicy,
    /// Whether failed and undecodable records go to the DLQ (else they are logged and dropped).
    pub(crate) enable_dlq: bool,
    /// The DLQ topic.
    pub(crate) dlq_topic: String,
    /// Whether an event no handler takes is dead-lettered as an unknown type.
    pub(crate) dead_letter_unknown_types: bool,
    /// What a record batch that cannot be decoded becomes.
    pub(crate) corrupt_batches: CorruptBatches,
    /// How many records of one partition may be handled at once (1: in order).
    pub(crate) max_in_flight_per_partition: usize,
    /// How long stopping may wait for the handlers still running.
    pub(crate) drain_timeout: Duration,
}

/// What the workers do with a record batch that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CorruptBatches {
    /// Dead-letter it (its bytes), then go on after it.
    DeadLetter,
    /// Stop the partition at it.
    Stop,
}
