//! The DLQ hand-off: what a failed record becomes there, and sending it until the broker acknowledges.

use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::{Settled, invoke::HANDLER_ERROR};
use crate::{
    client::consumer::ConsumerRecord,
    dispatch::{Dispatcher, ErasedHandler, HandlerError, stats::Counter},
    dlq::{DeadLetter, DlqReason, HANDLER_DISPATCH_ERROR, dispatch_failure_message},
};

/// Why a record goes to the DLQ.
pub(super) struct Failure {
    pub(super) reason: DlqReason,
    pub(super) error_type: String,
    pub(super) message: String,
    pub(super) retries: u32,
}

impl Failure {
    pub(super) fn from_handlers(failures: &[(ErasedHandler, HandlerError)], retries: u32) -> Self {
        let (error_type, message) = match failures {
            [(_, e)] => (HANDLER_ERROR.to_owned(), e.to_string()),
            many => {
                let names: Vec<&str> = many.iter().map(|(h, _)| h.name()).collect();
                (
                    HANDLER_DISPATCH_ERROR.to_owned(),
                    dispatch_failure_message(&names),
                )
            }
        };
        Self {
            reason: DlqReason::MaxRetriesExceeded,
            error_type,
            message,
            retries,
        }
    }
}

/// Sends the record to the DLQ and waits for the broker's acknowledgement, retrying until it comes (or
/// shutdown interrupts, leaving the record uncommitted).
pub(super) async fn dead_letter(
    dispatcher: &Dispatcher,
    record: &ConsumerRecord,
    failure: Failure,
    stop: &CancellationToken,
) -> Settled {
    let config = &dispatcher.config;
    if !config.enable_dlq {
        error!(
            topic = %record.topic, partition = record.partition, offset = record.offset,
            reason = %failure.reason, error = %failure.message,
            "enable_dlq is off: the record is skipped (counted in events_dropped)"
        );
        dispatcher.stats.add(Counter::EventsDropped, 1);
        return Settled::Yes;
    }
    let letter = DeadLetter {
        reason: failure.reason,
        error_type: failure.error_type,
        error_message: failure.message,
        retry_count: i64::from(failure.retries),
        timestamp: OffsetDateTime::now_utc(),
        original_topic: record.topic.to_string(),
        original_partition: record.partition,
        original_offset: record.offset,
        consumer_group: config.consumer_group.clone(),
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        // Only an acknowledged DLQ record settles the original: until then it stays uncommitted.
        match dispatcher.dlq.send_record(record, &letter).await {
            Ok(meta) => {
                dispatcher.stats.add(Counter::MessagesSentToDlq, 1);
                dispatcher
                    .telemetry
                    .metrics()
                    .dlq(letter.reason.as_str(), &letter.error_type);
                info!(
                    topic = %record.topic, partition = record.partition, offset = record.offset,
                    reason = %letter.reason, dlq_partition = meta.partition, dlq_offset = meta.offset,
                    "sent to the DLQ"
                );
                return Settled::Yes;
            }
            Err(e) => {
                error!(offset = record.offset, error = %e, ?backoff, "cannot send to the DLQ; retrying (the record stays uncommitted)");
                tokio::select! {
                    () = stop.cancelled() => return Settled::Interrupted,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}
