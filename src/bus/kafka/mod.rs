//! [`KafkaEventBus`]: the [`EventBus`] on Kafka.
//!
//! ```text
//!  publish ──encode──▶ Producer (batches, acks=all, idempotent) ──▶ {prefix}.stream
//!
//!  start_consuming ──▶ Consumer (group) ──Assigned(streams)──▶ one worker per partition
//!        worker: decode ─▶ handlers (all run; failures retried in place with backoff)
//!                        └▶ still failing / undecodable ─▶ DLQ (acknowledged) ─▶ mark done ─▶ commit
//! ```
//!
//! Invariants:
//! - `connect()` connects the producer only; a publish-only process never joins the group.
//! - An offset is committed only when its record and every earlier one of its partition was handled, or
//!   dead-lettered and acknowledged by the broker: each partition's worker handles records in order and
//!   marks one done only when it is settled. A crash redelivers at most what was in flight.
//! - Retries happen in place, inside the partition's worker: they neither reorder an aggregate nor leak
//!   copies to other consumer groups, and only the handlers that failed are run again.
//! - Shutdown order: stop taking records, let in-flight handlers finish (bounded), commit, leave the
//!   group, flush the producer.

mod bootstrap;
#[cfg(test)]
mod tests;
mod topics;
mod wait;

pub use topics::TopicOptions;

use std::{
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde::Serialize;
use snafu::ResultExt;
use tokio::task::JoinHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use super::{
    BusStats, ConfigSnafu, ErasedHandler, Error, EventBus, KafkaEventBusConfig, PublishOptions,
    SubscriptionId, Target,
};
use crate::{
    client::{
        Cluster,
        producer::{Producer, ProducerRecord, RecordMetadata},
    },
    dispatch::{
        Assignment, Dispatcher, HandlerTable, StopDeadline,
        stats::{Counter, Stamp, Stats},
    },
    dlq::{DlqAdmin, DlqEntry, DlqSink},
    event::AnyEvent,
    telemetry::{EventInfo, Telemetry},
};

mod publish_with;

/// The event bus on Kafka: typed events published in batches, consumed by a consumer group and
/// dispatched to subscribed handlers, with retries and a dead-letter queue.
///
/// Cloning gives another handle to the same bus.
///
/// # Example
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::{sync::Arc, time::Duration};
/// use kafka_event_bus::bus::{EventBus, KafkaEventBus, KafkaEventBusConfig};
/// use kafka_event_bus::event::{DomainEvent, Event};
///
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// struct OrderCreated { customer_id: String }
/// impl Event for OrderCreated {
///     const EVENT_TYPE: &'static str = "OrderCreated";
///     const AGGREGATE_TYPE: &'static str = "Order";
/// }
///
/// let bus = KafkaEventBus::new(KafkaEventBusConfig::from_env()?)?;
/// bus.connect().await?;
/// bus.subscribe(|event: Arc<DomainEvent<OrderCreated>>| async move {
///     println!("order for {}", event.payload.customer_id);
///     Ok(())
/// })?;
/// let consuming = bus.start_consuming_in_background()?;
/// bus.publish_event(DomainEvent::new(uuid::Uuid::new_v4(), 1, OrderCreated { customer_id: "c-1".into() }))
///     .await?;
/// bus.shutdown(Duration::from_secs(30)).await?;
/// consuming.wait().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct KafkaEventBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: KafkaEventBusConfig,
    pub(crate) handlers: Arc<HandlerTable>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) telemetry: Telemetry,
    /// Bounds background publishes in flight (eventsource-py's `max_background_tasks`).
    background: Arc<tokio::sync::Semaphore>,
    /// The background publishes in flight, which shutdown drains.
    background_tasks: TaskTracker,
    /// Set by shutdown: the consume loop and its workers must be done by then.
    deadline: Arc<StopDeadline>,
    connection: Mutex<Option<Connection>>,
    consuming: Mutex<Option<CancellationToken>>,
    /// The partitions the consume loop holds now.
    assignment: Arc<Assignment>,
    shut_down: CancellationToken,
}

#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) cluster: Cluster,
    pub(crate) producer: Producer,
}

/// What [`KafkaEventBus::topic_info`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TopicInfo {
    /// The main topic.
    pub topic: String,
    /// Its partitions (from the cached metadata; empty if unknown).
    pub partitions: Vec<i32>,
    /// The consumer group.
    pub consumer_group: String,
    /// Whether the bus is connected.
    pub connected: bool,
    /// Whether it is consuming.
    pub consuming: bool,
}

/// Clears the consuming flag when the consume loop ends in any way.
struct ConsumingGuard(Arc<Inner>);

impl Drop for ConsumingGuard {
    fn drop(&mut self) {
        *self.0.consuming.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The most background publishes in flight at once (eventsource-py's `max_background_tasks`).
pub const MAX_BACKGROUND_TASKS: usize = 1000;

/// The background consume loop started by [`KafkaEventBus::start_consuming_in_background`].
#[derive(Debug)]
pub struct ConsumeHandle {
    task: JoinHandle<Result<(), Error>>,
}

impl ConsumeHandle {
    /// Waits for the loop to end (after [`KafkaEventBus::shutdown`] or a fatal error) and returns why.
    ///
    /// # Errors
    ///
    /// The loop's error, or [`Error::Consume`] if its task panicked.
    pub async fn wait(self) -> Result<(), Error> {
        self.task.await.unwrap_or_else(|e| {
            Err(Error::Consume {
                source: crate::client::consumer::Error::Stopped {
                    reason: e.to_string(),
                },
            })
        })
    }

    /// Whether the loop has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl KafkaEventBus {
    /// A bus for `config` (validated here; nothing is connected yet).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the configuration does not validate.
    pub fn new(config: KafkaEventBusConfig) -> Result<Self, Error> {
        let telemetry = Telemetry::global(
            config.enable_metrics,
            config.enable_tracing,
            &config.consumer_group,
        );
        Self::with_telemetry(config, telemetry)
    }

    /// A bus that records its metrics and spans with `telemetry` (a meter or tracer provider of your
    /// own) instead of the global ones chosen by `enable_metrics` / `enable_tracing`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the configuration does not validate.
    pub fn with_telemetry(config: KafkaEventBusConfig, telemetry: Telemetry) -> Result<Self, Error> {
        config.validate().context(ConfigSnafu)?;
        config.log_warnings();
        // Telemetry built without a group labels its consume metrics with the config's.
        telemetry.metrics().default_consumer_group(&config.consumer_group);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                handlers: Arc::default(),
                stats: Arc::default(),
                telemetry,
                background: Arc::new(tokio::sync::Semaphore::new(MAX_BACKGROUND_TASKS)),
                background_tasks: TaskTracker::new(),
                deadline: Arc::default(),
                connection: Mutex::new(None),
                consuming: Mutex::new(None),
                assignment: Arc::default(),
                shut_down: CancellationToken::new(),
            }),
        })
    }

    /// Runs `body` with a connected bus and shuts the bus down afterwards (with the configured
    /// `shutdown_timeout`), whether `body` succeeded or not: the equivalent of eventsource-py's
    /// `async with KafkaEventBus(config) as bus:`.
    ///
    /// # Errors
    ///
    /// [`new`](Self::new)'s and [`connect`](Self::connect)'s errors, or the shutdown's; `body`'s own
    /// result is returned inside `Ok`.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn example(config: kafka_event_bus::bus::KafkaEventBusConfig) -> Result<(), kafka_event_bus::bus::Error> {
    /// use kafka_event_bus::bus::{KafkaEventBus, TopicOptions};
    ///
    /// let published = KafkaEventBus::scoped(config, |bus| async move {
    ///     bus.ensure_topics(TopicOptions::new().replication_factor(3)).await?;
    ///     Ok::<_, kafka_event_bus::bus::Error>(bus.stats().events_published)
    /// })
    /// .await??;
    /// # Ok(()) }
    /// ```
    pub async fn scoped<F, Fut, T>(config: KafkaEventBusConfig, body: F) -> Result<T, Error>
    where
        F: FnOnce(KafkaEventBus) -> Fut,
        Fut: Future<Output = T>,
    {
        let bus = Self::new(config)?;
        bus.connect().await?;
        let out = body(bus.clone()).await;
        bus.close().await?;
        Ok(out)
    }

    /// [`shutdown`](EventBus::shutdown) with the configured `shutdown_timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::ShutdownTimeout`].
    pub async fn close(&self) -> Result<(), Error> {
        self.shutdown(self.inner.config.shutdown_timeout).await
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaEventBusConfig {
        &self.inner.config
    }

    /// Connects to the cluster and starts the producer. Does not join the consumer group (see
    /// [`start_consuming`](Self::start_consuming)). Connecting again is a no-op.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for TLS/SASL files that cannot be loaded, [`Error::BootstrapTimeout`] when no
    /// bootstrap server answers within `bootstrap_timeout`, [`Error::Cluster`] for other failures.
    pub async fn connect(&self) -> Result<(), Error> {
        if self.connection().is_some() {
            return Ok(());
        }
        if self.inner.shut_down.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let config = &self.inner.config;
        let client_config = config.client_config().context(ConfigSnafu)?;
        let producer_config = config.producer_config().context(ConfigSnafu)?;
        let cluster = match bootstrap::connect_cluster(config, client_config).await {
            Ok(cluster) => cluster,
            Err(e) => {
                let kind = match &e {
                    Error::Cluster { source } => Some(source.kind()),
                    Error::BootstrapTimeout { source, .. } => Some(source.kind()),
                    _ => None,
                };
                if let Some(kind) = kind {
                    self.inner.telemetry.metrics().connection_error(kind);
                }
                return Err(e);
            }
        };
        let producer =
            Producer::new(cluster.clone(), producer_config).map_err(|source| Error::Producer { source })?;
        let mut slot = self
            .inner
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(Connection { cluster, producer });
            self.inner.stats.stamp(Stamp::Connected);
            self.inner.telemetry.metrics().set_connected(true);
            info!(bootstrap = %config.bootstrap_servers, topic = %config.topic_name(), "connected");
        }
        Ok(())
    }

    pub(crate) fn connection(&self) -> Option<Connection> {
        self.inner
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn connected(&self) -> Result<Connection, Error> {
        if self.inner.shut_down.is_cancelled() {
            return Err(Error::ShutDown);
        }
        self.connection().ok_or(Error::NotConnected)
    }

    /// Whether [`connect`](Self::connect) succeeded (and the bus is not shut down).
    pub fn is_connected(&self) -> bool {
        self.connection().is_some() && !self.inner.shut_down.is_cancelled()
    }

    /// Background publishes still in flight.
    pub fn background_task_count(&self) -> usize {
        MAX_BACKGROUND_TASKS - self.inner.background.available_permits()
    }

    /// Whether a consume loop is running.
    pub fn is_consuming(&self) -> bool {
        self.inner
            .consuming
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// The topic, its partitions, the group, and whether the bus is connected and consuming.
    ///
    /// # Errors
    ///
    /// [`Error::NotConnected`].
    pub fn topic_info(&self) -> Result<TopicInfo, Error> {
        let connection = self.connected()?;
        let topic = self.inner.config.topic_name();
        let partitions = connection
            .cluster
            .metadata()
            .topics
            .get(&topic)
            .map(|t| t.partitions.iter().map(|p| p.partition).collect())
            .unwrap_or_default();
        Ok(TopicInfo {
            topic,
            partitions,
            consumer_group: self.inner.config.consumer_group.clone(),
            connected: true,
            consuming: self.is_consuming(),
        })
    }

    /// The statistics so far (eventsource-py's `get_stats_dict()`).
    pub fn stats(&self) -> BusStats {
        self.inner.stats.snapshot()
    }

    fn dlq_admin(&self) -> Result<DlqAdmin, Error> {
        let connection = self.connected()?;
        Ok(DlqAdmin::new(
            connection.cluster,
            connection.producer,
            self.inner.config.dlq_admin_config(),
        ))
    }

    /// At most `limit` DLQ records, oldest first per partition, read up to the end the DLQ had when the
    /// call started; never waits for more, and gives up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::NotConnected`], [`Error::Dlq`] when the DLQ cannot be read.
    pub async fn get_dlq_messages(&self, limit: usize, timeout: Duration) -> Result<Vec<DlqEntry>, Error> {
        self.dlq_admin()?
            .messages(limit, timeout)
            .await
            .map_err(|e| Error::Dlq { source: Box::new(e) })
    }

    /// How many records the DLQ holds (0 when it is empty or missing); the end of each partition comes
    /// from a Fetch's high watermark.
    ///
    /// # Errors
    ///
    /// [`Error::NotConnected`], [`Error::Dlq`].
    pub async fn get_dlq_message_count(&self) -> Result<u64, Error> {
        self.dlq_admin()?
            .count()
            .await
            .map_err(|e| Error::Dlq { source: Box::new(e) })
    }

    /// Republishes the DLQ record at `partition`/`offset` to the main topic (without its `dlq_*`
    /// headers, `retry_count=0`, `dlq_replay_count` + 1) and returns once the broker acknowledged it.
    /// Refused past `dlq_max_replay_attempts` unless `force`. Only the consumer group that
    /// dead-lettered the event handles the replay; other groups skip it. A replay counts in
    /// `events_published`.
    ///
    /// # Errors
    ///
    /// [`Error::NotConnected`], [`Error::Dlq`] (not found, replay limit, send failure).
    pub async fn replay_dlq_message(
        &self,
        partition: i32,
        offset: i64,
        force: bool,
    ) -> Result<RecordMetadata, Error> {
        let written = self
            .dlq_admin()?
            .replay(partition, offset, force)
            .await
            .map_err(|e| Error::Dlq { source: Box::new(e) })?;
        // A replay is a publish to the main topic.
        self.inner.stats.add(Counter::EventsPublished, 1);
        self.inner.stats.stamp(Stamp::Publish);
        Ok(written)
    }

    /// Joins the consumer group and dispatches events to the subscribed handlers until
    /// [`shutdown`](Self::shutdown) (or a fatal error).
    ///
    /// # Errors
    ///
    /// [`Error::NotConnected`], [`Error::AlreadyConsuming`], [`Error::Consume`] when membership fails
    /// for good.
    pub async fn start_consuming(&self) -> Result<(), Error> {
        let connection = self.connected()?;
        let (stop, guard) = self.claim_consuming()?;
        self.consume_claimed(connection, stop, guard).await
    }

    /// Marks the bus as consuming and returns the loop's stop token, and the guard that clears the mark
    /// when dropped; [`Error::AlreadyConsuming`] when it already is.
    fn claim_consuming(&self) -> Result<(CancellationToken, ConsumingGuard), Error> {
        let mut consuming = self
            .inner
            .consuming
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if consuming.is_some() {
            return Err(Error::AlreadyConsuming);
        }
        let stop = self.inner.shut_down.child_token();
        *consuming = Some(stop.clone());
        Ok((stop, ConsumingGuard(Arc::clone(&self.inner))))
    }

    /// The consume loop, once [`claim_consuming`](Self::claim_consuming) marked the bus as consuming.
    async fn consume_claimed(
        &self,
        connection: Connection,
        stop: CancellationToken,
        guard: ConsumingGuard,
    ) -> Result<(), Error> {
        // Whatever ends this call (return, error, or the future being dropped), the bus is no longer
        // consuming afterwards.
        let _consuming = guard;
        // Errors while consuming are retried with backoff (1 s doubling to 60 s) and counted in
        // `reconnections`; only a configuration error, or shutdown, ends the loop.
        let mut backoff = Duration::from_secs(1);
        let result = loop {
            let result = self.consume_once(&connection, stop.clone()).await;
            match result {
                Err(Error::Consume { source }) if source.is_retriable() && !stop.is_cancelled() => {
                    warn!(error = %source, ?backoff, "consuming failed; rejoining after a backoff");
                    self.inner.telemetry.metrics().connection_error("Consume");
                    tokio::select! {
                        () = stop.cancelled() => break Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    self.inner.stats.add(Counter::Reconnections, 1);
                    self.inner.telemetry.metrics().reconnection();
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
                other => break other,
            }
        };
        if let Err(e) = &result {
            warn!(error = %e, "consuming stopped");
        }
        result
    }

    /// One run of the consume loop, with the dispatcher's settings built from the config.
    async fn consume_once(&self, connection: &Connection, stop: CancellationToken) -> Result<(), Error> {
        let config = &self.inner.config;
        let consumer = config.consumer_config().context(ConfigSnafu)?;
        let dispatcher = Dispatcher {
            config: config.dispatch_config().context(ConfigSnafu)?,
            handlers: Arc::clone(&self.inner.handlers),
            stats: Arc::clone(&self.inner.stats),
            telemetry: self.inner.telemetry.clone(),
            dlq: DlqSink::new(connection.producer.clone(), config.dlq_topic_name()),
            deadline: Arc::clone(&self.inner.deadline),
            assignment: Arc::clone(&self.inner.assignment),
        };
        crate::dispatch::consume(Arc::new(dispatcher), &connection.cluster, consumer, stop)
            .await
            .map_err(|source| Error::Consume { source })
    }

    /// [`start_consuming`](Self::start_consuming) on a background task.
    ///
    /// # Errors
    ///
    /// [`Error::NotConnected`] or [`Error::AlreadyConsuming`] at once.
    pub fn start_consuming_in_background(&self) -> Result<ConsumeHandle, Error> {
        let connection = self.connected()?;
        // Marked as consuming before this returns, so a wait called next sees a running loop.
        let (stop, guard) = self.claim_consuming()?;
        let bus = self.clone();
        Ok(ConsumeHandle {
            task: tokio::spawn(async move { bus.consume_claimed(connection, stop, guard).await }),
        })
    }

    /// Stops the consume loop (if any) the way shutdown does, but keeps the producer: the bus can still
    /// publish, and consume again later.
    pub fn stop_consuming(&self) {
        if let Some(stop) = self
            .inner
            .consuming
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            stop.cancel();
        }
    }

    async fn publish_records(&self, events: Vec<AnyEvent>) -> Result<(), Error> {
        let connection = self.connected()?;
        self.publish_on(&connection, events).await
    }

    /// Publishes `events` with `connection`'s producer (a background publish keeps the connection it
    /// was queued with, so a shutdown that began meanwhile still lets it finish), with `options`' extra
    /// headers after eventsource-py's and before the trace headers (which replace same-named extras).
    async fn publish_on_with(
        &self,
        connection: &Connection,
        events: Vec<AnyEvent>,
        options: &PublishOptions,
    ) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let telemetry = &self.inner.telemetry;
        let topic = self.inner.config.topic_name();
        let total = events.len();
        let mut pending = Vec::with_capacity(total);
        for event in &events {
            let meta = event.meta();
            let span = telemetry.publish_span(
                &topic,
                &EventInfo {
                    event_type: event.type_name(),
                    event_id: &meta.event_id,
                    aggregate_id: &meta.aggregate_id,
                    aggregate_type: &meta.aggregate_type,
                },
            );
            let mut record = event.to_record();
            // Extras, then the producer span's own context, so a consumer's span is its child.
            options.write_to(&mut record.headers, &span);
            let record = ProducerRecord::new(topic.clone())
                .with_key(record.key)
                .with_value(record.value)
                .with_headers(record.headers);
            pending.push((event, span, connection.producer.send(record).await));
        }
        let mut failed = Vec::new();
        let mut published = 0;
        for (event, span, sent) in pending {
            let delivered = match sent {
                Ok(delivery) => delivery.await,
                Err(e) => Err(e),
            };
            match delivered {
                Ok(meta) => {
                    span.acked(meta.partition, meta.offset);
                    telemetry.metrics().published(&topic, event.type_name());
                    published += 1;
                }
                Err(e) => {
                    let kind = e.kind();
                    span.failed(kind, &e);
                    telemetry.metrics().publish_error(&topic, event.type_name(), kind);
                    failed.push((event.meta().event_id, e));
                }
            }
        }
        self.inner.stats.add(Counter::EventsPublished, published);
        if published > 0 {
            self.inner.stats.stamp(Stamp::Publish);
        }
        if failed.is_empty() {
            telemetry.metrics().publish_duration(&topic, started.elapsed());
            telemetry.metrics().batch_size(total);
            Ok(())
        } else {
            if let Some((_, e)) = failed.first() {
                let elapsed = started.elapsed();
                telemetry
                    .metrics()
                    .publish_failed_duration(&topic, elapsed, e.kind());
            }
            self.inner.stats.stamp(Stamp::Error);
            Err(Error::Publish {
                total,
                failed: super::FailedEvents::new(failed),
            })
        }
    }
}

impl EventBus for KafkaEventBus {
    /// Publishes `events` to the main topic in order and returns once the broker acknowledged every one.
    /// Events of one aggregate go to one partition, in order.
    fn publish(&self, events: Vec<AnyEvent>) -> impl Future<Output = Result<(), Error>> + Send {
        let bus = self.clone();
        async move { bus.publish_records(events).await }
    }

    /// As [`publish`](EventBus::publish), with extra headers (see [`PublishOptions`]).
    fn publish_with(
        &self,
        events: Vec<AnyEvent>,
        options: PublishOptions,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let bus = self.clone();
        async move { bus.publish_records_with(events, options).await }
    }

    /// Hands `events` to a background task and returns at once; failures are logged and counted. A call
    /// first polled once [`shutdown`](EventBus::shutdown) has begun returns [`Error::ShutDown`]. At
    /// most [`MAX_BACKGROUND_TASKS`] background publishes run at once; beyond that the call publishes
    /// inline (and so waits), as eventsource-py does.
    fn publish_background(&self, events: Vec<AnyEvent>) -> impl Future<Output = Result<(), Error>> + Send {
        let bus = self.clone();
        let checked = self.connected();
        async move {
            let connection = checked?;
            // Held until the events are published: a shutdown that closed the tracker after this
            // point waits for them. One that closed it before (or began) is reported, not raced.
            let tracked = bus.inner.background_tasks.token();
            if bus.inner.background_tasks.is_closed() || bus.inner.shut_down.is_cancelled() {
                return Err(Error::ShutDown);
            }
            match Arc::clone(&bus.inner.background).try_acquire_owned() {
                Ok(permit) => {
                    let tasks = bus.inner.background_tasks.clone();
                    tasks.spawn(async move {
                        if let Err(e) = bus.publish_on(&connection, events).await {
                            warn!(error = %e, "background publish failed");
                        }
                        drop((permit, tracked));
                    });
                    Ok(())
                }
                Err(_) => {
                    let published = bus.publish_on(&connection, events).await;
                    drop(tracked);
                    published
                }
            }
        }
    }

    fn add_handler(&self, target: Target, handler: ErasedHandler) -> Result<SubscriptionId, Error> {
        self.inner
            .handlers
            .add(target, handler)
            .map_err(|source| Error::Subscribe { source })
    }

    fn unsubscribe(&self, id: SubscriptionId) -> bool {
        self.inner.handlers.remove(id)
    }

    /// Stops consuming, drains background publishes, flushes and closes the producer, all within one
    /// deadline, `timeout` from now: handlers still running may finish while time is left (their records
    /// stay uncommitted otherwise), what is done is committed and the group left, background publishes
    /// complete, and the producer sends what it holds. An idle bus shuts down at once.
    ///
    /// # Errors
    ///
    /// [`Error::ShutdownTimeout`] when the deadline passed first; the producer is closed anyway (what it
    /// had not sent by then is failed).
    fn shutdown(&self, timeout: Duration) -> impl Future<Output = Result<(), Error>> + Send {
        let inner = Arc::clone(&self.inner);
        async move {
            let deadline = tokio::time::Instant::now() + timeout;
            inner.deadline.set(deadline);
            inner.shut_down.cancel();
            let mut in_time = true;
            // The consume loop sees the cancellation, drains its workers and leaves the group, all
            // bounded by the deadline.
            while inner
                .consuming
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
            {
                if tokio::time::Instant::now() >= deadline {
                    in_time = false;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Background publishes queued before the shutdown still go out.
            inner.background_tasks.close();
            in_time &= tokio::time::timeout_at(deadline, inner.background_tasks.wait())
                .await
                .is_ok();
            let connection = inner
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            inner.telemetry.metrics().set_connected(false);
            if let Some(connection) = connection {
                let producer = connection.producer;
                let closing = tokio::spawn(async move { producer.close().await });
                // Past the deadline the close goes on in the background: new records are refused at
                // once, and what is buffered fails within its delivery timeout.
                in_time &= tokio::time::timeout_at(deadline, closing).await.is_ok();
            }
            let metrics = inner.telemetry.metrics();
            metrics.clear_lag();
            metrics.set_connected(false);
            if in_time {
                info!("event bus shut down");
                Ok(())
            } else {
                warn!(?timeout, "event bus shut down past its deadline");
                Err(Error::ShutdownTimeout { timeout })
            }
        }
    }
}
