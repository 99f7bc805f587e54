//! Running one handler (or one worker) with its panics contained.

use std::{future::Future, panic::AssertUnwindSafe, pin::pin, task::Poll};

use super::{BoxFuture, ErasedHandler, HandlerError, HandlerResult};
use crate::event::AnyEvent;

/// Runs a handler, turning a panic (where panics unwind) into an error.
pub(crate) async fn run_isolated(handler: &ErasedHandler, event: AnyEvent) -> HandlerResult {
    let panicked = || -> HandlerError { format!("handler {} panicked", handler.name()).into() };
    let fut: BoxFuture<HandlerResult> =
        match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(event))) {
            Ok(fut) => fut,
            Err(_) => return Err(panicked()),
        };
    catch_panic(fut).await.unwrap_or_else(|_| Err(panicked()))
}

/// Polls `work` to completion; a panic while polling (where panics unwind) ends it with the panic's
/// message instead of unwinding through the caller.
pub(crate) async fn catch_panic<F: Future>(work: F) -> Result<F::Output, String> {
    let mut work = pin!(work);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    })
    .await
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
