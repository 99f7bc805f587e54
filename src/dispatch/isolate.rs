//! Running one handler with its errors and panics contained.

use std::{panic::AssertUnwindSafe, task::Poll};

use super::{BoxFuture, ErasedHandler, HandlerError, HandlerResult};
use crate::event::AnyEvent;

/// Runs a handler, turning a panic (where panics unwind) into an error.
pub(crate) async fn run_isolated(handler: &ErasedHandler, event: AnyEvent) -> HandlerResult {
    let panicked = |_| -> HandlerError { format!("handler {} panicked", handler.name()).into() };
    let mut fut: BoxFuture<HandlerResult> =
        match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(event))) {
            Ok(fut) => fut,
            Err(payload) => return Err(panicked(payload)),
        };
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => Poll::Ready(Err(panicked(payload))),
        }
    })
    .await
}
