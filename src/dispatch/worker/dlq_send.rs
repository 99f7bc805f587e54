//! Sending one DLQ record until the broker acknowledges it, bounded by the worker's halt: what both a
//! failed record and a record batch that cannot be decoded go through.

use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::error;

use super::{Settled, halt::cancelled_after_grace};
use crate::{
    client::producer::RecordMetadata,
    dispatch::{Dispatcher, stats::Counter},
    dlq::DeadLetter,
    protocol::Headers,
};

/// One DLQ record: the original's key, value and headers, and why it is dead-lettered.
pub(super) struct Letter<'a> {
    pub(super) key: Option<Bytes>,
    pub(super) value: Option<Bytes>,
    pub(super) headers: &'a Headers,
    pub(super) dead: &'a DeadLetter,
    /// The `event.type` of the `publish.errors` metric when the DLQ refuses the record for good.
    pub(super) event_type: &'a str,
}

/// Sends `letter` to the DLQ and waits for the broker's acknowledgement.
///
/// - Acknowledged: counted in `messages_sent_to_dlq` and the `dlq` metric, `Ok` with its metadata.
/// - A retriable failure (a timeout, a leader change, a broker restart) is retried with backoff (100 ms
///   doubling to 10 s) until it is acknowledged or `halt` is cancelled (`Err(Settled::Interrupted)`; a
///   send in flight may go on for the dispatcher's grace period).
/// - A failure retrying cannot fix (the DLQ topic is missing or forbidden, the DLQ record is larger than
///   the producer's `max_request_size`): logged at ERROR, counted in `dead_letter_failures` and in the
///   `publish.errors` metric of the DLQ topic, `Err(Settled::Stuck)`: the original stays uncommitted
///   and its partition pauses.
pub(super) async fn send_until_acked(
    dispatcher: &Dispatcher,
    letter: Letter<'_>,
    halt: &CancellationToken,
) -> Result<RecordMetadata, Settled> {
    let dead = letter.dead;
    let (topic, partition, offset) = (
        &dead.original_topic,
        dead.original_partition,
        dead.original_offset,
    );
    let mut backoff = Duration::from_millis(100);
    loop {
        let send = dispatcher
            .dlq
            .send(letter.key.clone(), letter.value.clone(), letter.headers, dead);
        let sent = tokio::select! {
            biased;
            sent = send => sent,
            // A send that outlives the halt is abandoned: the original stays uncommitted.
            () = cancelled_after_grace(dispatcher, halt) => return Err(Settled::Interrupted),
        };
        match sent {
            Ok(meta) => {
                dispatcher.stats.add(Counter::MessagesSentToDlq, 1);
                dispatcher
                    .telemetry
                    .metrics()
                    .dlq(dead.reason.as_str(), &dead.error_type);
                let dlq_topic = &dispatcher.config.dlq_topic;
                dispatcher.telemetry.metrics().dlq_sent(dlq_topic, letter.event_type);
                return Ok(meta);
            }
            Err(_) if halt.is_cancelled() => return Err(Settled::Interrupted),
            Err(e) if e.is_retriable() => {
                error!(
                    topic = %topic, partition, offset, reason = %dead.reason, error = %e, ?backoff,
                    "cannot send to the DLQ; retrying (the original stays uncommitted)"
                );
                tokio::select! {
                    () = halt.cancelled() => return Err(Settled::Interrupted),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                let dlq_topic = &dispatcher.config.dlq_topic;
                dispatcher.stats.add(Counter::DeadLetterFailures, 1);
                dispatcher
                    .telemetry
                    .metrics()
                    .publish_error(dlq_topic, letter.event_type, e.kind());
                error!(
                    topic = %topic, partition, offset, reason = %dead.reason, dlq_topic = %dlq_topic,
                    error = %e,
                    "the DLQ refused the dead letter for good; the original stays uncommitted and its \
                     partition pauses (counted in dead_letter_failures)"
                );
                return Err(Settled::Stuck);
            }
        }
    }
}
