//! One pass over a record's handlers, each in its own span, with its duration and outcome counted.

use opentelemetry::context::FutureExt as _;
use tracing::warn;

use crate::{
    dispatch::{Dispatcher, ErasedHandler, HandlerError, isolate::run_isolated, stats::Counter},
    event::AnyEvent,
    telemetry::ConsumeSpan,
};

/// The error type named in `dlq_error_type` and metrics when one handler failed (Rust errors have no
/// class name).
pub(super) const HANDLER_ERROR: &str = "HandlerError";

/// Runs `handlers` one after the other; returns the ones that failed and when the last one ended (one
/// clock read per handler: each one's end is the next one's start). Without metrics nothing reads
/// these times, and no clock is read: the end returned is then `began`, the record's start.
pub(super) async fn run_handlers(
    dispatcher: &Dispatcher,
    handlers: &[ErasedHandler],
    event: &AnyEvent,
    span: Option<&ConsumeSpan>,
    began: std::time::Instant,
) -> (Vec<(ErasedHandler, HandlerError)>, std::time::Instant) {
    let metrics = dispatcher.telemetry.metrics();
    let timed = metrics.is_enabled();
    let now = || if timed { std::time::Instant::now() } else { began };
    let mut failures = Vec::new();
    let mut started = now();
    for handler in handlers {
        let handler_span = span.map(|s| s.handler_span(handler.name(), &event.meta().event_id));
        let run = run_isolated(handler, event.clone());
        // The handler runs inside its INTERNAL span's context, so spans it starts are children.
        let cx = handler_span
            .as_ref()
            .and_then(|s| s.context())
            .or_else(|| span.and_then(ConsumeSpan::context));
        let result = match cx {
            Some(cx) => run.with_context(cx.clone()).await,
            None => run.await,
        };
        let ended = now();
        metrics.handler_duration(handler.label(), event.type_label(), ended.duration_since(started));
        started = ended;
        match result {
            Ok(()) => {
                metrics.handler_invocation(handler.label(), event.type_label());
                if let Some(s) = handler_span {
                    s.succeeded();
                }
            }
            Err(e) => {
                dispatcher.stats.add(Counter::HandlerErrors, 1);
                metrics.handler_error(handler.label(), event.type_label(), HANDLER_ERROR);
                if let Some(s) = handler_span {
                    s.failed(HANDLER_ERROR, e.as_ref());
                }
                warn!(handler = handler.name(), event_id = %event.meta().event_id, error = %e, "handler failed");
                failures.push((handler.clone(), e));
            }
        }
    }
    (failures, started)
}
