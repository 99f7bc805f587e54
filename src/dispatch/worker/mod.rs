//! One worker per assigned partition.
//!
//! A worker takes its partition's records in order and settles each before the next: handled, or
//! dead-lettered with the broker's acknowledgement (or, with the DLQ disabled, logged and counted as
//! dropped). Only then is the record marked done, so the consumer commits nothing that is unsettled.
//!
//! - `sequential`: one record at a time (`max_in_flight_per_partition = 1`).
//! - `keyed`: records of different keys concurrently, of one key in order.
//! - `settle`: decode, run the handlers, retry in place, dead-letter.
//! - `invoke`: one pass over a record's handlers, with spans and metrics.
//! - `dead_letter`: the DLQ hand-off and what a record that fails becomes there.
//! - `corrupt`: a record batch that cannot be decoded (`corrupt_batch_policy`).
//! - `lag`: the consumer-lag gauge.

mod corrupt;
mod dead_letter;
mod invoke;
mod keyed;
mod lag;
mod sequential;
mod settle;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Dispatcher;
use crate::client::consumer::PartitionStream;

/// Whether a record was settled (and may be marked done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    Yes,
    /// Shutdown interrupted a retry or a DLQ send: the record stays uncommitted and will be redelivered.
    Interrupted,
}

/// Runs the worker of one partition until it is revoked or `stop` is cancelled.
pub(crate) async fn partition_worker(
    dispatcher: Arc<Dispatcher>,
    stream: PartitionStream,
    stop: CancellationToken,
) {
    if dispatcher.config.max_in_flight_per_partition > 1 {
        keyed::run(dispatcher, stream, stop).await;
    } else {
        sequential::run(dispatcher, stream, stop).await;
    }
}
