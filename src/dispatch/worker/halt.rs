//! When a worker must stop (the bus stops consuming, or its partition is revoked), and how long the
//! record it holds may still take then.

use std::{future::Future, pin::Pin};

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Settled;
use crate::dispatch::Dispatcher;

/// Runs `settling` to its end; once `halt` is cancelled it may go on for the dispatcher's grace period
/// only (cut short by a shutdown that begins meanwhile), then it is dropped (with the handler it runs) and the record counts as interrupted.
pub(super) async fn bounded(
    dispatcher: &Dispatcher,
    mut settling: Pin<&mut impl Future<Output = Settled>>,
    halt: &CancellationToken,
    offset: i64,
) -> Settled {
    tokio::select! {
        biased;
        settled = &mut settling => settled,
        () = halt.cancelled() => {
            let grace = dispatcher.grace();
            tokio::select! {
                biased;
                settled = settling => settled,
                () = grace_over(dispatcher) => {
                    warn!(offset, ?grace, "handler still running after the partition was revoked or the bus stopped; abandoned, its record stays uncommitted");
                    Settled::Interrupted
                }
            }
        }
    }
}

/// Resolves once `halt` was cancelled and the dispatcher's grace period has passed since.
pub(super) async fn cancelled_after_grace(dispatcher: &Dispatcher, halt: &CancellationToken) {
    halt.cancelled().await;
    grace_over(dispatcher).await;
}

/// Resolves once the grace period begun now is over: the drain timeout, or sooner when a shutdown's
/// deadline is (or, while it runs, becomes) nearer.
async fn grace_over(dispatcher: &Dispatcher) {
    dispatcher.deadline.elapsed(dispatcher.config.drain_timeout).await;
}
