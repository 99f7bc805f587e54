//! The consume loop and one worker per assigned partition.
//!
//! A worker takes its partition's records in order and settles each before the next: handled, or
//! dead-lettered with the broker's acknowledgement (or, with the DLQ disabled, logged and counted as
//! dropped). Only then is the record marked done, so the consumer commits nothing that is unsettled.

use std::{
    borrow::Cow,
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, RandomState},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;

use opentelemetry::context::FutureExt as _;
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, error, info, warn};

use super::{
    Connection, Inner,
    stats::{Counter, Stamp},
};
use crate::{
    bus::{
        ErasedHandler, Error, HandlerError, PermanentError,
        handlers::{Snapshot, run_isolated},
    },
    client::{
        consumer::{Consumer, ConsumerConfig, ConsumerEvent, ConsumerRecord, PartitionStream, Progress},
        fetcher::FetchConfig,
        group::assignor::{Assignor, RangeAssignor, RoundRobinAssignor},
        subscription::OffsetReset,
    },
    dispatch::{PartitionProgress, RetryPolicy},
    dlq::{DeadLetter, DlqReason, DlqSink, HANDLER_DISPATCH_ERROR, dispatch_failure_message, replay_is_for},
    event::AnyEvent,
    telemetry::{ConsumeSpan, RecordInfo},
};

/// The error type named in `dlq_error_type` when one handler failed (Rust errors have no class name).
const HANDLER_ERROR: &str = "HandlerError";

/// Whether a record was settled (and may be marked done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Yes,
    /// Shutdown interrupted a retry or a DLQ send: the record stays uncommitted and will be redelivered.
    Interrupted,
}

pub(super) async fn consume(
    inner: Arc<Inner>,
    connection: Connection,
    stop: CancellationToken,
) -> Result<(), Error> {
    let config = consumer_config(&inner)?;
    let mut consumer = Consumer::subscribe(&connection.cluster, config).map_err(|e| Error::Consume {
        reason: e.to_string(),
    })?;
    info!(group = %inner.config.consumer_group, topic = %inner.config.topic_name(), "consuming");
    let workers = TaskTracker::new();
    let stop_workers = CancellationToken::new();
    let result = loop {
        tokio::select! {
            () = stop.cancelled() => break Ok(()),
            event = consumer.next_event() => match event {
                Some(ConsumerEvent::Assigned(streams)) => {
                    for stream in streams {
                        let tp = stream.topic_partition().clone();
                        debug!(?tp, "partition assigned");
                        workers.spawn(partition_worker(Arc::clone(&inner), connection.clone(), stream, stop_workers.clone()));
                    }
                }
                Some(ConsumerEvent::Revoked { partitions, lost }) => {
                    inner.stats.add(Counter::RebalanceCount, 1);
                    let metrics = inner.telemetry.metrics();
                    metrics.rebalance(&inner.config.consumer_group);
                    for tp in &partitions {
                        metrics.remove_lag(&tp.topic, tp.partition);
                    }
                    info!(?partitions, lost, "partitions revoked");
                }
                Some(ConsumerEvent::Left(reason)) => warn!(?reason, "left the group"),
                Some(ConsumerEvent::Fatal(reason)) => {
                    inner.telemetry.metrics().connection_error("Fatal");
                    break Err(Error::Consume { reason });
                }
                None => break Err(Error::Consume { reason: "the consumer stopped".into() }),
            }
        }
    };
    // Workers finish the record they hold, then stop; the consumer then commits what is done and leaves.
    stop_workers.cancel();
    workers.close();
    if tokio::time::timeout(inner.config.shutdown_timeout, workers.wait())
        .await
        .is_err()
    {
        warn!("handlers still running at shutdown; their records stay uncommitted");
    }
    consumer.close().await;
    info!(group = %inner.config.consumer_group, "stopped consuming");
    result
}

fn consumer_config(inner: &Inner) -> Result<ConsumerConfig, Error> {
    let config = &inner.config;
    let reset = match config.offset_reset() {
        Ok(crate::bus::OffsetReset::Latest) => OffsetReset::Latest,
        Ok(_) => OffsetReset::Earliest,
        Err(source) => return Err(Error::Config { source }),
    };
    let fetch = FetchConfig {
        fetch_max_wait: config.fetch_max_wait,
        fetch_max_bytes: i32::try_from(config.fetch_max_bytes).unwrap_or(i32::MAX),
        max_partition_fetch_bytes: i32::try_from(config.max_partition_fetch_bytes).unwrap_or(i32::MAX),
        auto_offset_reset: reset,
        ..FetchConfig::default()
    };
    // Range first (the Java default), round-robin too: aiokafka (eventsource-py) members only speak
    // round-robin, so a mixed Rust/Python group agrees on it.
    let assignors: Vec<Arc<dyn Assignor>> = vec![Arc::new(RangeAssignor), Arc::new(RoundRobinAssignor)];
    let mut consumer = ConsumerConfig::new(config.consumer_group.clone(), [config.topic_name()])
        .with_assignors(assignors)
        .with_session_timeout(config.session_timeout())
        .with_heartbeat_interval(config.heartbeat_interval())
        .with_max_poll_interval(config.max_poll_interval())
        .with_fetch(fetch)
        .with_auto_offset_reset(reset);
    consumer.revoke_timeout = config.shutdown_timeout;
    if let Some(id) = &config.group_instance_id {
        consumer = consumer.with_group_instance_id(id.clone());
    }
    Ok(consumer)
}

async fn partition_worker(
    inner: Arc<Inner>,
    connection: Connection,
    stream: PartitionStream,
    stop: CancellationToken,
) {
    if inner.config.max_in_flight_per_partition > 1 {
        keyed_worker(inner, connection, stream, stop).await;
    } else {
        sequential_worker(inner, connection, stream, stop).await;
    }
}

/// One record at a time, in offset order.
async fn sequential_worker(
    inner: Arc<Inner>,
    connection: Connection,
    mut stream: PartitionStream,
    stop: CancellationToken,
) {
    let progress = stream.progress();
    let mut handlers = inner.handlers.view();
    let mut rng = Jitter::new();
    let mut lag = LagProbe::default();
    loop {
        // A record already fetched is taken without waiting (and without registering for `stop`).
        let ready = if stop.is_cancelled() {
            break;
        } else {
            stream.next_ready()
        };
        let record = match ready {
            Some(record) => record,
            None => tokio::select! {
                biased;
                () = stop.cancelled() => break,
                record = stream.next() => match record {
                    Some(record) => record,
                    None => break, // revoked
                },
            },
        };
        let handlers = handlers.current(&inner.handlers);
        match settle(&inner, handlers, &connection, &record, &stop, &mut rng).await {
            Settled::Yes => progress.mark_done(record.offset),
            Settled::Interrupted => break,
        }
        lag.record(&inner, &stream, &record);
    }
}

/// Records of different keys concurrently (up to `max_in_flight_per_partition`), records of one key in
/// offset order. The committed offset only passes records that are all settled ([`PartitionProgress`]).
async fn keyed_worker(
    inner: Arc<Inner>,
    connection: Connection,
    mut stream: PartitionStream,
    stop: CancellationToken,
) {
    let limit = inner.config.max_in_flight_per_partition;
    let progress = stream.progress();
    let mut tracked: Option<PartitionProgress> = None;
    let mut lag = LagProbe::default();
    // Keys with a record running; each with the records of that key waiting behind it.
    let mut busy: HashMap<Option<Bytes>, VecDeque<ConsumerRecord>> = HashMap::new();
    let mut waiting = 0usize;
    let mut running: JoinSet<(ConsumerRecord, Settled)> = JoinSet::new();
    let mut view = inner.handlers.view();
    let mut spawn = |running: &mut JoinSet<(ConsumerRecord, Settled)>, record: ConsumerRecord| {
        let (inner, connection, stop) = (Arc::clone(&inner), connection.clone(), stop.clone());
        let handlers = Arc::clone(view.current(&inner.handlers));
        running.spawn(async move {
            let settled = settle(&inner, &handlers, &connection, &record, &stop, &mut Jitter::new()).await;
            (record, settled)
        });
    };
    let mut interrupted = false;
    loop {
        let room = running.len() + waiting < limit;
        tokio::select! {
            biased;
            () = stop.cancelled(), if !interrupted => interrupted = true,
            Some(done) = running.join_next(), if !running.is_empty() => {
                let Ok((record, settled)) = done else { interrupted = true; continue };
                if settled == Settled::Interrupted {
                    interrupted = true;
                    continue;
                }
                mark_settled(&mut tracked, &progress, record.offset);
                lag.record(&inner, &stream, &record);
                // The key's next record, if one waits; else the key is free.
                let next = busy.get_mut(&record.key).and_then(VecDeque::pop_front);
                match next {
                    Some(next) if !interrupted => {
                        waiting -= 1;
                        spawn(&mut running, next);
                    }
                    Some(_) => waiting -= 1,
                    None => {
                        busy.remove(&record.key);
                    }
                }
            }
            record = stream.next(), if room && !interrupted => {
                let Some(record) = record else { break }; // revoked
                tracked.get_or_insert_with(|| PartitionProgress::new(record.offset)).track(record.offset);
                match busy.get_mut(&record.key) {
                    Some(queue) => {
                        queue.push_back(record);
                        waiting += 1;
                    }
                    None => {
                        busy.insert(record.key.clone(), VecDeque::new());
                        spawn(&mut running, record);
                    }
                }
            }
            else => break,
        }
        if interrupted && running.is_empty() {
            break;
        }
    }
    // Revoked: let the records already running settle (their offsets may still be committed).
    while let Some(Ok((record, Settled::Yes))) = running.join_next().await {
        mark_settled(&mut tracked, &progress, record.offset);
    }
}

/// Records that `offset` (tracked when it was taken from the stream) is settled, and hands the consumer
/// the new committable position when it moved.
fn mark_settled(tracked: &mut Option<PartitionProgress>, progress: &Progress, offset: i64) {
    if let Some(tracked) = tracked.as_mut() {
        tracked.complete(offset);
        if let Some(next) = tracked.committable() {
            progress.mark_done(next - 1);
        }
    }
}

/// Feeds the consumer-lag gauge every 64 settled records.
#[derive(Default)]
struct LagProbe(u32);

impl LagProbe {
    fn record(&mut self, inner: &Inner, stream: &PartitionStream, record: &ConsumerRecord) {
        let metrics = inner.telemetry.metrics();
        self.0 += 1;
        if metrics.is_enabled() && self.0 >= 64 {
            self.0 = 0;
            if let Some(high_watermark) = stream.high_watermark() {
                metrics.set_lag(&record.topic, record.partition, high_watermark, record.offset + 1);
            }
        }
    }
}

async fn settle(
    inner: &Inner,
    handlers: &Snapshot,
    connection: &Connection,
    record: &ConsumerRecord,
    stop: &CancellationToken,
    rng: &mut Jitter,
) -> Settled {
    let started = std::time::Instant::now();
    let telemetry = &inner.telemetry;
    let stats = &inner.stats;
    if !replay_is_for(&record.headers, &inner.config.consumer_group) {
        // A DLQ replay for the group that dead-lettered it: this group handled the event already.
        debug!(
            offset = record.offset,
            "skipping a replay meant for another consumer group"
        );
        return Settled::Yes;
    }
    stats.add(Counter::EventsConsumed, 1);
    stats.stamp(Stamp::Consume);
    // A CONSUMER span for every record with an event_type header, child of the publisher's span.
    let span = record
        .headers
        .get_str(crate::event::header::EVENT_TYPE)
        .map(|event_type| {
            let info = RecordInfo {
                topic: &record.topic,
                partition: record.partition,
                offset: record.offset,
                consumer_group: &inner.config.consumer_group,
                key: record.key.as_deref(),
                event_type,
            };
            telemetry.consume_span(&info, &record.headers)
        });
    let decoded = match &record.value {
        Some(value) => handlers.decode(&record.headers, value.clone()),
        None => Err(crate::event::Error::MissingEventType),
    };
    // `dead_letter_unknown_types`: an event of a type with no typed subscription that no wildcard
    // takes either is, for this group, an unknown type (eventsource-py's policy).
    let decoded = decoded.and_then(|event| {
        let unknown = event.type_id().is_none() && handlers.handlers_for(&event).is_empty();
        if unknown && inner.config.dead_letter_unknown_types {
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
            let settled = dead_letter(inner, connection, record, failure, stop).await;
            telemetry
                .metrics()
                .consume_duration(Arc::clone(&record.topic), started.elapsed());
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
    let context = RecordContext {
        topic: Arc::clone(&record.topic),
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp,
        retries: 0,
    };
    let settled = loop {
        let context = RecordContext {
            retries,
            ..context.clone()
        };
        let (failures, ended) = CURRENT
            .scope(context, run_handlers(inner, &pending, &event, span.as_ref()))
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
        // Built only when something failed (the config was validated when the bus was built).
        let policy = retry_policy(inner);
        if permanent || !policy.should_retry(retries) {
            stats.add(Counter::EventsProcessedFailed, 1);
            stats.stamp(Stamp::Error);
            let failure = Failure::from_handlers(&failures, retries);
            if let Some(span) = span {
                span.failed(&failure.error_type, failures[0].1.as_ref());
            }
            break dead_letter(inner, connection, record, failure, stop).await;
        }
        let delay = policy.delay(retries, rng.unit());
        warn!(
            event_id = %meta.event_id, event_type = event.type_name(), attempt = retries + 1,
            failed = failures.len(), ?delay, "handlers failed; retrying in place"
        );
        tokio::select! {
            () = stop.cancelled() => break Settled::Interrupted,
            () = tokio::time::sleep(delay) => {}
        }
        retries += 1;
        // Only the handlers that failed run again.
        pending = Cow::Owned(failures.into_iter().map(|(handler, _)| handler).collect());
    };
    telemetry
        .metrics()
        .consume_duration(Arc::clone(&record.topic), started.elapsed());
    settled
}

fn retry_policy(inner: &Inner) -> RetryPolicy {
    let c = &inner.config;
    // The config was validated with the same rules; fall back to the defaults if it somehow is not.
    RetryPolicy::new(
        c.max_retries,
        c.retry_base_delay,
        c.retry_max_delay,
        c.retry_jitter,
    )
    .unwrap_or_else(|_| {
        RetryPolicy::new(
            c.max_retries,
            Duration::from_secs(1),
            Duration::from_secs(60),
            0.1,
        )
        .unwrap_or_else(|_| unreachable!("the default policy is valid"))
    })
}

/// Runs `handlers` one after the other; returns the ones that failed and when the last one ended (one
/// clock read per handler: each one's end is the next one's start).
async fn run_handlers(
    inner: &Inner,
    handlers: &[ErasedHandler],
    event: &AnyEvent,
    span: Option<&ConsumeSpan>,
) -> (Vec<(ErasedHandler, HandlerError)>, std::time::Instant) {
    let metrics = inner.telemetry.metrics();
    let mut failures = Vec::new();
    let mut started = std::time::Instant::now();
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
        let ended = std::time::Instant::now();
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
                inner.stats.add(Counter::HandlerErrors, 1);
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

tokio::task_local! {
    static CURRENT: RecordContext;
}

/// Where the event a handler is running for came from: available to handlers of a
/// [`KafkaEventBus`](super::KafkaEventBus) through [`RecordContext::current`].
///
/// # Example
///
/// ```no_run
/// # fn wire(bus: &kafka_event_bus::bus::KafkaEventBus) -> Result<(), kafka_event_bus::bus::Error> {
/// use kafka_event_bus::bus::{EventBus, RecordContext};
///
/// bus.subscribe_to_all_events(|event| async move {
///     if let Some(at) = RecordContext::current() {
///         println!("{} from {}/{} at {}", event.type_name(), at.topic, at.partition, at.offset);
///     }
///     Ok(())
/// })?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordContext {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The record's timestamp (ms since the epoch).
    pub timestamp: i64,
    /// How many times the handlers have been retried for this record (0 on the first attempt).
    pub retries: u32,
}

impl RecordContext {
    /// The record the calling handler runs for; `None` outside a Kafka bus handler (e.g. on the
    /// in-memory bus, or in a task the handler spawned).
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }
}

/// Why a record goes to the DLQ.
struct Failure {
    reason: DlqReason,
    error_type: String,
    message: String,
    retries: u32,
}

impl Failure {
    fn from_handlers(failures: &[(ErasedHandler, HandlerError)], retries: u32) -> Self {
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
async fn dead_letter(
    inner: &Inner,
    connection: &Connection,
    record: &ConsumerRecord,
    failure: Failure,
    stop: &CancellationToken,
) -> Settled {
    let config = &inner.config;
    if !config.enable_dlq {
        error!(
            topic = %record.topic, partition = record.partition, offset = record.offset,
            reason = %failure.reason, error = %failure.message,
            "enable_dlq is off: the record is skipped (counted in events_dropped)"
        );
        inner.stats.add(Counter::EventsDropped, 1);
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
    let sink = DlqSink::new(connection.producer.clone(), config.dlq_topic_name());
    let mut backoff = Duration::from_millis(100);
    loop {
        // Only an acknowledged DLQ record settles the original: until then it stays uncommitted.
        match sink.send_record(record, &letter).await {
            Ok(meta) => {
                inner.stats.add(Counter::MessagesSentToDlq, 1);
                inner
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

/// Cheap uniform numbers for retry jitter (SplitMix64 seeded from the process's random hasher keys).
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        Self(RandomState::new().hash_one(std::time::Instant::now()))
    }

    /// A number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}
