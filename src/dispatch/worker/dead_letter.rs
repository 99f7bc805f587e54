//! The DLQ hand-off: what a failed record becomes there, and sending it until the broker acknowledges.

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::{
    Settled,
    dlq_send::{Letter, send_until_acked},
    invoke::HANDLER_ERROR,
};
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
    /// What failed handlers make of a record: `permanent` when one said retrying cannot help.
    pub(super) fn from_handlers(
        failures: &[(ErasedHandler, HandlerError)],
        retries: u32,
        permanent: bool,
    ) -> Self {
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
            reason: if permanent {
                DlqReason::PermanentError
            } else {
                DlqReason::MaxRetriesExceeded
            },
            error_type,
            message,
            retries,
        }
    }
}

/// Sends the record to the DLQ and waits for the broker's acknowledgement.
///
/// - Acknowledged: [`Settled::Yes`].
/// - A retriable failure (a timeout, a leader change, a broker restart) is retried with backoff (100 ms
///   doubling to 10 s) until it is acknowledged or `halt` is cancelled ([`Settled::Interrupted`]).
/// - A failure retrying cannot fix (the DLQ topic is missing or forbidden, the DLQ record is larger than
///   the producer's `max_request_size`, for instance a ~1 MiB record with its nine `dlq_*` headers):
///   logged at ERROR, counted in `dead_letter_failures` and in the `publish.errors` metric of the DLQ
///   topic, and [`Settled::Stuck`]: the record stays uncommitted and its partition pauses.
pub(super) async fn dead_letter(
    dispatcher: &Dispatcher,
    record: &ConsumerRecord,
    failure: Failure,
    halt: &CancellationToken,
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
    let event_type = record
        .headers
        .get_str(crate::event::header::EVENT_TYPE)
        .unwrap_or("unknown");
    let sending = Letter {
        key: record.key.clone(),
        value: record.value.clone(),
        headers: &record.headers,
        dead: &letter,
        event_type,
    };
    // Only an acknowledged DLQ record settles the original: until then it stays uncommitted.
    match send_until_acked(dispatcher, sending, halt).await {
        Ok(meta) => {
            info!(
                topic = %record.topic, partition = record.partition, offset = record.offset,
                reason = %letter.reason, dlq_partition = meta.partition, dlq_offset = meta.offset,
                "sent to the DLQ"
            );
            Settled::Yes
        }
        Err(settled) => settled,
    }
}
