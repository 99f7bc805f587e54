//! Settling one record: decode it, run its handlers, retry the failed ones in place, and dead-letter
//! what still fails (or does not decode).

use std::{borrow::Cow, sync::Arc};

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{
    Settled,
    dead_letter::{Failure, dead_letter},
    invoke::run_handlers,
};
use crate::{
    client::{consumer::ConsumerRecord, producer::SplitMix64},
    dispatch::{
        Dispatcher, PermanentError, RecordContext,
        stats::{Counter, Stamp},
        table::Snapshot,
    },
    dlq::{DlqReason, replay_is_for},
    telemetry::RecordInfo,
};

/// Settles `record`: handled, dead-lettered, interrupted by `halt` during a retry sleep or DLQ retry,
/// or stuck (its dead letter refused for good).
pub(super) async fn settle(
    dispatcher: &Dispatcher,
    handlers: &Snapshot,
    record: &ConsumerRecord,
    halt: &CancellationToken,
    rng: &mut SplitMix64,
) -> Settled {
    let started = std::time::Instant::now();
    let config = &dispatcher.config;
    let telemetry = &dispatcher.telemetry;
    let stats = &dispatcher.stats;
    if !replay_is_for(&record.headers, &config.consumer_group) {
        // A DLQ replay for the group that dead-lettered it: this group handled the event already.
        debug!(
            offset = record.offset,
            "skipping a replay meant for another consumer group"
        );
        return Settled::Yes;
    }
    stats.add(Counter::EventsConsumed, 1);
    // `last_consume_at` from the instant just read: no wall-clock read per record.
    stats.stamp_at(Stamp::Consume, started);
    // The event_type header, read once: it names the span and picks the decoder.
    let event_type = record.headers.get_str(crate::event::header::EVENT_TYPE);
    // A CONSUMER span for every record with an event_type header, child of the publisher's span.
    let span = event_type
        .map(|event_type| {
            let info = RecordInfo {
                topic: &record.topic,
                partition: record.partition,
                offset: record.offset,
                consumer_group: &config.consumer_group,
                key: record.key.as_deref(),
                event_type,
            };
            telemetry.consume_span(&info, &record.headers)
        });
    let decoded = match (&record.value, event_type) {
        (Some(value), Some(name)) if !name.is_empty() => handlers.decode(name, value.clone()),
        // Missing, empty or not UTF-8: the header's own error says which.
        (Some(_), _) => Err(crate::event::event_type_header(&record.headers)
            .err()
            .unwrap_or(crate::event::Error::MissingEventType)),
        (None, _) => Err(crate::event::Error::MissingEventType),
    };
    // `dead_letter_unknown_types`: an event of a type with no typed subscription that no wildcard
    // takes either is, for this group, an unknown type (eventsource-py's policy).
    let decoded = decoded.and_then(|event| {
        let unknown = event.type_id().is_none() && handlers.handlers_for(&event).is_empty();
        if unknown && config.dead_letter_unknown_types {
            Err(crate::event::Error::UnknownEventType {
                event_type: event.type_name().to_owned(),
            })
        } else {
            Ok(event)
        }
    });
    let event = match decoded {
        Ok(event) => event,
        Err(e) => {
            // Unlike eventsource-py, a record without an event_type header is dead-lettered too: no
            // record is ever dropped silently.
            warn!(topic = %record.topic, partition = record.partition, offset = record.offset, error = %e, "undecodable record");
            stats.add(Counter::EventsProcessedFailed, 1);
            stats.stamp(Stamp::Error);
            if let Some(span) = span {
                span.failed(e.reference_error_type(), &e);
            }
            let failure = Failure {
                reason: DlqReason::DeserializationError,
                error_type: e.reference_error_type().to_owned(),
                message: e.to_string(),
                retries: 0,
            };
            let error_type = failure.error_type.clone();
            // Boxed: the DLQ hand-off is the cold path, and inline it would size every worker's future.
            let settled = Box::pin(dead_letter(dispatcher, record, failure, halt)).await;
            telemetry.metrics().consume_failed_duration(
                Arc::clone(&record.topic),
                started.elapsed(),
                &error_type,
            );
            return settled;
        }
    };
    let meta = event.meta();
    if let Some(span) = &span {
        span.decoded(&meta.event_id, &meta.aggregate_id, &meta.aggregate_type);
    }
    telemetry
        .metrics()
        .consumed(Arc::clone(&record.topic), record.partition, event.type_label());
    let mut pending = Cow::Borrowed(handlers.handlers_for(&event));
    let mut retries = 0u32;
    // Each attempt's context is built from the record (shared bytes, no copies).
    let context = || {
        RecordContext::new(
            Arc::clone(&record.topic),
            record.partition,
            record.offset,
            record.timestamp,
            record.key.clone(),
            record.headers.clone(),
        )
    };
    let policy = &config.retry;
    let mut failed_with = None;
    let settled = loop {
        let mut attempt = context();
        attempt.retries = retries;
        let (failures, ended) = attempt
            .scope(run_handlers(dispatcher, &pending, &event, span.as_ref(), started))
            .await;
        if failures.is_empty() {
            stats.add(Counter::EventsProcessedSuccess, 1);
            if let Some(span) = span {
                span.succeeded();
            }
            telemetry
                .metrics()
                .consume_duration(Arc::clone(&record.topic), ended.duration_since(started));
            return Settled::Yes;
        }
        // A permanent failure (see `PermanentError`) is not retried: it goes to the DLQ at once.
        let permanent = failures
            .iter()
            .any(|(_, e)| e.downcast_ref::<PermanentError>().is_some());
        if permanent || !policy.should_retry(retries) {
            stats.add(Counter::EventsProcessedFailed, 1);
            stats.stamp(Stamp::Error);
            if permanent {
                warn!(
                    event_id = %meta.event_id, event_type = event.type_name(), attempt = retries + 1,
                    "a handler failed with a PermanentError: dead-lettered without retrying"
                );
            }
            let failure = Failure::from_handlers(&failures, retries, permanent);
            if let Some(span) = span {
                span.failed(&failure.error_type, failures[0].1.as_ref());
            }
            failed_with = Some(failure.error_type.clone());
            break Box::pin(dead_letter(dispatcher, record, failure, halt)).await;
        }
        let delay = policy.delay(retries, rng.unit());
        warn!(
            event_id = %meta.event_id, event_type = event.type_name(), attempt = retries + 1,
            failed = failures.len(), ?delay, "handlers failed; retrying in place"
        );
        // A halt (stop or revocation) ends the wait at once: the record stays uncommitted.
        tokio::select! {
            () = halt.cancelled() => break Settled::Interrupted,
            () = tokio::time::sleep(delay) => {}
        }
        retries += 1;
        // Only the handlers that failed run again.
        pending = Cow::Owned(failures.into_iter().map(|(handler, _)| handler).collect());
    };
    let elapsed = started.elapsed();
    match failed_with {
        Some(error_type) => {
            telemetry
                .metrics()
                .consume_failed_duration(Arc::clone(&record.topic), elapsed, &error_type)
        }
        None => telemetry
            .metrics()
            .consume_duration(Arc::clone(&record.topic), elapsed),
    }
    settled
}
