//! One worker per assigned partition.
//!
//! A worker takes its partition's records in order and settles each before the next: handled, or
//! dead-lettered with the broker's acknowledgement (or, with the DLQ disabled, logged and counted as
//! dropped). Only then is the record marked done, so the consumer commits nothing that is unsettled.
//!
//! A worker halts when the bus stops consuming or the partition is revoked: retry sleeps and DLQ
//! retries end at once, and a handler still running may go on for the grace period (the consumer's
//! revoke timeout, or less when a shutdown's deadline is nearer); then it is dropped and its record stays
//! uncommitted, so the partition's next owner gets it again.
//!
//! A record that cannot be settled (its dead letter is refused for good), a record batch the stream
//! stopped at (`corrupt_batch_policy = stop`, or its dead letter refused), or a worker that dies outside a
//! handler pauses the partition: ERROR log, counted, the record uncommitted, no more records taken
//! from the partition until it is revoked or the bus stops; the other partitions go on.
//!
//! - `sequential`: one record at a time (`max_in_flight_per_partition = 1`).
//! - `keyed`: records of different keys concurrently, of one key in order.
//! - `settle`: decode, run the handlers, retry in place, dead-letter.
//! - `invoke`: one pass over a record's handlers, with spans and metrics.
//! - `dead_letter`: the DLQ hand-off and what a record that fails becomes there.
//! - `dlq_send`: sending a DLQ record until acknowledged, bounded by the halt; refusals for good.
//! - `halt`: when a worker must stop, and how long a running handler may go on.
//! - `corrupt`: a record batch that cannot be decoded (`corrupt_batch_policy`).
//! - `lag`: the consumer-lag gauge.

mod corrupt;
mod dead_letter;
mod dlq_send;
mod halt;
mod invoke;
mod keyed;
mod lag;
mod sequential;
mod settle;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::error;

use super::{Dispatcher, isolate::catch_panic, stats::Counter};
use crate::client::consumer::PartitionStream;

/// How a record ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Handled, or dead-lettered and acknowledged (or dropped with the DLQ off): it may be committed.
    Yes,
    /// The worker halted (stop or revocation) before the record was settled: it stays uncommitted and
    /// will be redelivered.
    Interrupted,
    /// The record (or record batch) cannot be settled (its dead letter was refused for good, or the
    /// stream stops at it): it stays uncommitted and the partition pauses.
    Stuck,
}

/// How a worker's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Revoked or stopped.
    Halted,
    /// A record could not be settled: the partition must pause.
    Stuck,
}

/// Runs the worker of one partition until `halt` is cancelled (the partition is revoked or the bus
/// stops consuming: a child of the stream's revocation, which the consume loop also cancels when it
/// stops). A worker that dies (a panic outside a handler) or a record that cannot be settled pauses the
/// partition until then.
pub(crate) async fn partition_worker(
    dispatcher: Arc<Dispatcher>,
    mut stream: PartitionStream,
    halt: CancellationToken,
) {
    let tp = stream.topic_partition().clone();
    match catch_panic(Box::pin(run(&dispatcher, &mut stream, &halt))).await {
        Ok(Ended::Halted) => {}
        Ok(Ended::Stuck) => {
            error!(
                topic = %tp.topic, partition = tp.partition,
                "partition paused: a record or record batch cannot be settled; it stays uncommitted until \
                 the partition is revoked or the bus restarts"
            );
            pause_until_halted(&stream, &halt).await;
        }
        Err(panic) => {
            dispatcher.stats.add(Counter::WorkerFailures, 1);
            dispatcher.telemetry.metrics().connection_error("WorkerPanic");
            error!(
                topic = %tp.topic, partition = tp.partition, %panic,
                "partition worker died outside a handler; partition paused, its record uncommitted \
                 until the partition is revoked or the bus restarts"
            );
            pause_until_halted(&stream, &halt).await;
        }
    }
    // No lag is reported for a partition this worker no longer consumes.
    dispatcher.telemetry.metrics().remove_lag(&tp.topic, tp.partition);
}

/// The worker of the configured kind; boxed by [`partition_worker`], so its size is what every
/// partition holds while it waits for a record.
async fn run(dispatcher: &Arc<Dispatcher>, stream: &mut PartitionStream, halt: &CancellationToken) -> Ended {
    if dispatcher.config.max_in_flight_per_partition > 1 {
        keyed::run(dispatcher, stream, halt).await
    } else {
        sequential::run(dispatcher, stream, halt).await
    }
}

/// Stops fetching the partition (a paused partition does not count for `max.poll.interval`, so the
/// member stays in the group) and waits for the revocation or the stop; the stream is then dropped.
async fn pause_until_halted(stream: &PartitionStream, halt: &CancellationToken) {
    stream.pause();
    halt.cancelled().await;
}

#[cfg(feature = "testing")]
fn injected_fault(topic: &str) {
    crate::dispatch::fault::check(topic);
}

#[cfg(not(feature = "testing"))]
fn injected_fault(_topic: &str) {}
