//! The bus's fifteen OpenTelemetry instruments (eventsource-py's names, kinds, units and attributes), the
//! four of the messaging semantic conventions that replace or join its publish and consume ones (see
//! [`SemconvStability`]), one small method per event the bus records, and the shared state its two
//! observable gauges read.
//!
//! Invariants: a disabled [`BusMetrics`] is a `None`, so every method is one branch and builds no
//! attributes; an instrument set that is not emitted is not even created; the gauges report `connections.active` = 1 only while the bus says it is connected, and a
//! lag point only per partition the bus has reported and only while connected.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableGauge};
use opentelemetry::{KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::{attribute as semconv_attr, metric as semconv_metric};

use super::semconv::SemconvStability;

/// The name of the global meter the bus uses by default, as in eventsource-py.
pub const METER_NAME: &str = "eventsource.bus.kafka";

/// The instrument names, exactly as eventsource-py registers them.
pub mod names {
    /// Counter, `messages`: per acknowledged record.
    pub const MESSAGES_PUBLISHED: &str = "kafka.eventbus.messages.published";
    /// Counter, `errors`: send or acknowledgement failure.
    pub const PUBLISH_ERRORS: &str = "kafka.eventbus.publish.errors";
    /// Histogram, `ms`: per successful `publish()` call.
    pub const PUBLISH_DURATION: &str = "kafka.eventbus.publish.duration";
    /// Histogram, `messages`: events per successful `publish()` call.
    pub const BATCH_SIZE: &str = "kafka.eventbus.batch.size";
    /// Counter, `messages`: per processed record that has an `event_type` header.
    pub const MESSAGES_CONSUMED: &str = "kafka.eventbus.messages.consumed";
    /// Histogram, `ms`: per processed record.
    pub const CONSUME_DURATION: &str = "kafka.eventbus.consume.duration";
    /// Counter, `invocations`: successful handler calls.
    pub const HANDLER_INVOCATIONS: &str = "kafka.eventbus.handler.invocations";
    /// Counter, `errors`: failed handler calls.
    pub const HANDLER_ERRORS: &str = "kafka.eventbus.handler.errors";
    /// Histogram, `ms`: every handler call.
    pub const HANDLER_DURATION: &str = "kafka.eventbus.handler.duration";
    /// Counter, `messages`: successful DLQ sends.
    pub const MESSAGES_DLQ: &str = "kafka.eventbus.messages.dlq";
    /// Counter, `errors`: connect failures and consume-loop errors.
    pub const CONNECTION_ERRORS: &str = "kafka.eventbus.connection.errors";
    /// Counter, `reconnections`: each reconnect attempt.
    pub const RECONNECTIONS: &str = "kafka.eventbus.reconnections";
    /// Counter, `rebalances`: each rebalance (never fires in eventsource-py; it does here).
    pub const REBALANCES: &str = "kafka.eventbus.rebalances";
    /// Counter, `batches`: record batches that could not be decoded (not eventsource-py's).
    pub const CORRUPT_BATCHES: &str = "kafka.eventbus.batches.corrupt";
    /// Observable gauge, `connections`: 1 connected, 0 not.
    pub const CONNECTIONS_ACTIVE: &str = "kafka.eventbus.connections.active";
    /// Observable gauge, `messages`: per assigned partition, `max(0, high watermark - position)`.
    pub const CONSUMER_LAG: &str = "kafka.eventbus.consumer.lag";
    /// Messaging conventions. Counter, `{message}`: per record sent, acknowledged or not (`error.type`
    /// then).
    pub const SEMCONV_SENT_MESSAGES: &str = super::semconv_metric::MESSAGING_CLIENT_SENT_MESSAGES;
    /// Messaging conventions. Counter, `{message}`: per record that decoded to an event and was handed
    /// to the handlers (counted once, before they run, whatever their outcome); undecodable records
    /// are not counted.
    pub const SEMCONV_CONSUMED_MESSAGES: &str = super::semconv_metric::MESSAGING_CLIENT_CONSUMED_MESSAGES;
    /// Messaging conventions. Histogram, `s`: per `publish()` call (operation `send`), a failed one
    /// with `error.type`.
    pub const SEMCONV_OPERATION_DURATION: &str = super::semconv_metric::MESSAGING_CLIENT_OPERATION_DURATION;
    /// Messaging conventions. Histogram, `s`: per processed record, a failed one (undecodable, or
    /// dead-lettered after its handlers failed) with `error.type`.
    pub const SEMCONV_PROCESS_DURATION: &str = super::semconv_metric::MESSAGING_PROCESS_DURATION;
}

/// The attribute keys of the instruments.
pub mod attr {
    /// Always `"kafka"`.
    pub const MESSAGING_SYSTEM: &str = "messaging.system";
    /// The topic.
    pub const MESSAGING_DESTINATION: &str = "messaging.destination";
    /// The partition (an integer).
    pub const MESSAGING_KAFKA_PARTITION: &str = "messaging.kafka.partition";
    /// The consumer group.
    pub const MESSAGING_KAFKA_CONSUMER_GROUP: &str = "messaging.kafka.consumer_group";
    /// The event type name.
    pub const EVENT_TYPE: &str = "event.type";
    /// The error's type name.
    pub const ERROR_TYPE: &str = "error.type";
    /// The handler's name.
    pub const HANDLER_NAME: &str = "handler.name";
    /// Why a record went to the DLQ.
    pub const DLQ_REASON: &str = "dlq.reason";
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// eventsource-py's publish and consume instruments.
struct ReferenceFlow {
    published: Counter<u64>,
    publish_errors: Counter<u64>,
    publish_duration: Histogram<f64>,
    batch_size: Histogram<u64>,
    consumed: Counter<u64>,
    consume_duration: Histogram<f64>,
}

/// The messaging conventions' publish and consume instruments.
struct MessagingFlow {
    sent: Counter<u64>,
    consumed: Counter<u64>,
    operation_duration: Histogram<f64>,
    process_duration: Histogram<f64>,
}

/// What the two observable gauges read; the bus writes it through [`BusMetrics`].
#[derive(Debug)]
struct GaugeState {
    /// The consumer group: the builder's, or else the bus config's (set once, before any record).
    group: OnceLock<StringValue>,
    connected: AtomicBool,
    /// topic -> partition -> lag.
    lag: Mutex<HashMap<String, HashMap<i32, i64>>>,
}

impl GaugeState {
    /// The consumer group label (empty until one is known).
    fn group(&self) -> StringValue {
        self.group.get().cloned().unwrap_or_else(|| StringValue::from(""))
    }

    fn lag(&self) -> MutexGuard<'_, HashMap<String, HashMap<i32, i64>>> {
        // A poisoned table is still a table of numbers: keep using it.
        self.lag.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Instruments {
    reference: Option<ReferenceFlow>,
    messaging: Option<MessagingFlow>,
    handler_invocations: Counter<u64>,
    handler_errors: Counter<u64>,
    handler_duration: Histogram<f64>,
    dlq: Counter<u64>,
    connection_errors: Counter<u64>,
    reconnections: Counter<u64>,
    rebalances: Counter<u64>,
    corrupt_batches: Counter<u64>,
    // Kept so the callbacks live as long as the bus's metrics.
    _connections_active: ObservableGauge<i64>,
    _consumer_lag: ObservableGauge<i64>,
    state: Arc<GaugeState>,
}

impl Instruments {
    /// Records one publish call in `messaging.client.operation.duration` (messaging mode only).
    fn operation_duration(&self, topic: &str, elapsed: Duration, error_type: Option<&str>) {
        if let Some(s) = &self.messaging {
            let mut attributes = vec![
                KeyValue::new(semconv_attr::MESSAGING_SYSTEM, "kafka"),
                KeyValue::new(semconv_attr::MESSAGING_DESTINATION_NAME, topic.to_owned()),
                KeyValue::new(semconv_attr::MESSAGING_OPERATION_NAME, "send"),
                KeyValue::new(semconv_attr::MESSAGING_OPERATION_TYPE, "send"),
            ];
            if let Some(error_type) = error_type {
                attributes.push(KeyValue::new(semconv_attr::ERROR_TYPE, error_type.to_owned()));
            }
            s.operation_duration.record(elapsed.as_secs_f64(), &attributes);
        }
    }
}

impl Drop for Instruments {
    fn drop(&mut self) {
        // The SDK may keep calling the callbacks after the bus is gone: report it disconnected.
        self.state.connected.store(false, Ordering::Relaxed);
        self.state.lag().clear();
    }
}

/// The bus's metrics: the fifteen instruments of eventsource-py and `batches.corrupt`, or nothing when
/// metrics are disabled.
///
/// Cloning is cheap (an `Arc`). Every method is a no-op on [`BusMetrics::disabled`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kafka_event_bus::telemetry::BusMetrics;
///
/// let metrics = BusMetrics::new(&opentelemetry::global::meter("eventsource.bus.kafka"), "orders");
/// metrics.published("orders.stream", "OrderCreated");
/// metrics.publish_duration("orders.stream", Duration::from_millis(3));
/// metrics.set_connected(true);
/// metrics.set_lag("orders.stream", 0, 120, 100); // lag 20
///
/// let off = BusMetrics::disabled();
/// off.published("orders.stream", "OrderCreated"); // costs one branch
/// assert!(!off.is_enabled());
/// ```
#[derive(Clone, Default)]
pub struct BusMetrics {
    inner: Option<Arc<Instruments>>,
}

impl fmt::Debug for BusMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusMetrics")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl BusMetrics {
    /// Metrics that record nothing.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// eventsource-py's instruments, created on `meter`. `consumer_group` labels the two gauges.
    pub fn new(meter: &Meter, consumer_group: impl Into<String>) -> Self {
        Self::with_semconv(meter, consumer_group, SemconvStability::Reference)
    }

    /// The instruments `stability` asks for, created on `meter`. `consumer_group` labels the two gauges
    /// (and, with the messaging conventions, the consume instruments).
    pub fn with_semconv(
        meter: &Meter,
        consumer_group: impl Into<String>,
        stability: SemconvStability,
    ) -> Self {
        let group: String = consumer_group.into();
        let state = Arc::new(GaugeState {
            group: if group.is_empty() {
                OnceLock::new()
            } else {
                OnceLock::from(StringValue::from(group))
            },
            connected: AtomicBool::new(false),
            lag: Mutex::new(HashMap::new()),
        });
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        let ms_histogram = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("ms")
                .with_description(description)
                .build()
        };
        let active_state = Arc::clone(&state);
        let connections_active = meter
            .i64_observable_gauge(names::CONNECTIONS_ACTIVE)
            .with_unit("connections")
            .with_description("Whether the bus is connected (1) or not (0)")
            .with_callback(move |observer| {
                let up = active_state.connected.load(Ordering::Relaxed);
                observer.observe(
                    i64::from(up),
                    &[KeyValue::new(
                        attr::MESSAGING_KAFKA_CONSUMER_GROUP,
                        active_state.group(),
                    )],
                );
            })
            .build();
        let lag_state = Arc::clone(&state);
        let consumer_lag = meter
            .i64_observable_gauge(names::CONSUMER_LAG)
            .with_unit("messages")
            .with_description("Records between the consumer's position and the high watermark, per partition")
            .with_callback(move |observer| {
                if !lag_state.connected.load(Ordering::Relaxed) {
                    return;
                }
                for (topic, partitions) in lag_state.lag().iter() {
                    for (partition, lag) in partitions {
                        observer.observe(
                            *lag,
                            &[
                                KeyValue::new(attr::MESSAGING_KAFKA_PARTITION, i64::from(*partition)),
                                KeyValue::new(attr::MESSAGING_KAFKA_CONSUMER_GROUP, lag_state.group()),
                                KeyValue::new(attr::MESSAGING_DESTINATION, topic.clone()),
                            ],
                        );
                    }
                }
            })
            .build();
        let reference = stability.reference().then(|| ReferenceFlow {
            published: counter(
                names::MESSAGES_PUBLISHED,
                "messages",
                "Records published and acknowledged",
            ),
            publish_errors: counter(names::PUBLISH_ERRORS, "errors", "Publish failures"),
            publish_duration: ms_histogram(names::PUBLISH_DURATION, "Duration of successful publish calls"),
            batch_size: meter
                .u64_histogram(names::BATCH_SIZE)
                .with_unit("messages")
                .with_description("Events per successful publish call")
                .build(),
            consumed: counter(names::MESSAGES_CONSUMED, "messages", "Records consumed"),
            consume_duration: ms_histogram(names::CONSUME_DURATION, "Duration of processing one record"),
        });
        let s_histogram = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .build()
        };
        let messaging = stability.messaging().then(|| MessagingFlow {
            sent: counter(
                names::SEMCONV_SENT_MESSAGES,
                "{message}",
                "Records the producer sent",
            ),
            consumed: counter(
                names::SEMCONV_CONSUMED_MESSAGES,
                "{message}",
                "Records the consumer delivered to the bus",
            ),
            operation_duration: s_histogram(
                names::SEMCONV_OPERATION_DURATION,
                "Duration of publish calls (failed ones with error.type)",
            ),
            process_duration: s_histogram(
                names::SEMCONV_PROCESS_DURATION,
                "Duration of processing one record",
            ),
        });
        let instruments = Instruments {
            reference,
            messaging,
            handler_invocations: counter(
                names::HANDLER_INVOCATIONS,
                "invocations",
                "Successful handler calls",
            ),
            handler_errors: counter(names::HANDLER_ERRORS, "errors", "Failed handler calls"),
            handler_duration: ms_histogram(names::HANDLER_DURATION, "Duration of handler calls"),
            dlq: counter(
                names::MESSAGES_DLQ,
                "messages",
                "Records sent to the dead-letter topic",
            ),
            connection_errors: counter(
                names::CONNECTION_ERRORS,
                "errors",
                "Connection and consume-loop errors",
            ),
            reconnections: counter(names::RECONNECTIONS, "reconnections", "Reconnect attempts"),
            rebalances: counter(names::REBALANCES, "rebalances", "Consumer group rebalances"),
            corrupt_batches: counter(
                names::CORRUPT_BATCHES,
                "batches",
                "Record batches that could not be decoded",
            ),
            _connections_active: connections_active,
            _consumer_lag: consumer_lag,
            state,
        };
        Self {
            inner: Some(Arc::new(instruments)),
        }
    }

    /// The instruments on the global meter [`METER_NAME`] when `enabled`, else [`BusMetrics::disabled`].
    pub fn global(enabled: bool, consumer_group: impl Into<String>) -> Self {
        if enabled {
            Self::new(&opentelemetry::global::meter(METER_NAME), consumer_group)
        } else {
            Self::disabled()
        }
    }

    /// Whether anything is recorded.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// One record was published and acknowledged.
    pub fn published(&self, topic: &str, event_type: &str) {
        if let Some(m) = &self.inner {
            if let Some(r) = &m.reference {
                r.published
                    .add(1, &event_attrs(topic.to_owned(), event_type.to_owned()));
            }
            if let Some(s) = &m.messaging {
                s.sent.add(1, &send_attrs(topic, event_type));
            }
        }
    }

    /// One record failed to send or was not acknowledged.
    pub fn publish_error(&self, topic: &str, event_type: &str, error_type: &str) {
        if let Some(m) = &self.inner {
            if let Some(r) = &m.reference {
                let [a, b, c] = event_attrs(topic.to_owned(), event_type.to_owned());
                r.publish_errors.add(
                    1,
                    &[a, b, c, KeyValue::new(attr::ERROR_TYPE, error_type.to_owned())],
                );
            }
            if let Some(s) = &m.messaging {
                let [a, b, c, d] = send_attrs(topic, event_type);
                let error = KeyValue::new(semconv_attr::ERROR_TYPE, error_type.to_owned());
                s.sent.add(1, &[a, b, c, d, error]);
            }
        }
    }

    /// Names the consumer group `group` when these metrics were built without one (a Kafka bus built
    /// with user-made telemetry gives its config's group); a group given at build time is kept.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn default_consumer_group(&self, group: &str) {
        if let Some(m) = &self.inner
            && !group.is_empty()
        {
            let _ = m.state.group.set(StringValue::from(group.to_owned()));
        }
    }

    /// A `publish()` call succeeded after `elapsed`.
    pub fn publish_duration(&self, topic: &str, elapsed: Duration) {
        if let Some(m) = &self.inner {
            if let Some(r) = &m.reference {
                r.publish_duration.record(
                    ms(elapsed),
                    &[KeyValue::new(attr::MESSAGING_DESTINATION, topic.to_owned())],
                );
            }
            m.operation_duration(topic, elapsed, None);
        }
    }

    /// A `publish()` call failed after `elapsed` (an event's error of type `error_type`): recorded in
    /// `messaging.client.operation.duration` with `error.type`, as the messaging conventions ask;
    /// eventsource-py's `publish.duration` counts successful calls only.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn publish_failed_duration(&self, topic: &str, elapsed: Duration, error_type: &str) {
        if let Some(m) = &self.inner {
            m.operation_duration(topic, elapsed, Some(error_type));
        }
    }

    /// A record was dead-lettered to `dlq_topic`: one message sent, counted in
    /// `messaging.client.sent.messages` as a DLQ send that failed is (eventsource-py's
    /// `messages.published` counts only the bus's own publishes; its DLQ count is [`Self::dlq`]).
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn dlq_sent(&self, dlq_topic: &str, event_type: &str) {
        if let Some(s) = self.inner.as_ref().and_then(|m| m.messaging.as_ref()) {
            s.sent.add(1, &send_attrs(dlq_topic, event_type));
        }
    }

    /// A successful `publish()` call carried `events` events (eventsource-py's instrument only).
    pub fn batch_size(&self, events: usize) {
        if let Some(r) = self.inner.as_ref().and_then(|m| m.reference.as_ref()) {
            r.batch_size
                .record(u64::try_from(events).unwrap_or(u64::MAX), &[]);
        }
    }

    /// One record with an `event_type` header was processed.
    ///
    /// A record that does not decode is not counted here (in either mode: it has no event type to
    /// label it with); its processing time is in `consume.duration` / `messaging.process.duration`,
    /// the latter with `error.type`, and the dead-letter counters count it.
    ///
    /// Labels on the consume path take anything that becomes a [`StringValue`]: a `&'static str`, a
    /// `String`, or an `Arc<str>` (shared, not copied: what the bus passes, once per record).
    pub fn consumed(
        &self,
        topic: impl Into<StringValue>,
        partition: i32,
        event_type: impl Into<StringValue>,
    ) {
        if let Some(m) = &self.inner {
            let topic = topic.into();
            let event_type = event_type.into();
            if let Some(s) = &m.messaging {
                s.consumed.add(
                    1,
                    &[
                        KeyValue::new(semconv_attr::MESSAGING_SYSTEM, "kafka"),
                        KeyValue::new(
                            semconv_attr::MESSAGING_DESTINATION_NAME,
                            Value::String(topic.clone()),
                        ),
                        KeyValue::new(
                            semconv_attr::MESSAGING_DESTINATION_PARTITION_ID,
                            partition_id(partition),
                        ),
                        KeyValue::new(semconv_attr::MESSAGING_CONSUMER_GROUP_NAME, m.state.group()),
                        KeyValue::new(semconv_attr::MESSAGING_OPERATION_NAME, "process"),
                        KeyValue::new(super::spans::attr::EVENT_TYPE, Value::String(event_type.clone())),
                    ],
                );
            }
            if let Some(r) = &m.reference {
                let [a, b, c] = event_attrs(topic, event_type);
                r.consumed.add(
                    1,
                    &[
                        a,
                        b,
                        KeyValue::new(attr::MESSAGING_KAFKA_PARTITION, i64::from(partition)),
                        c,
                    ],
                );
            }
        }
    }

    /// Processing one record (success, decode error or failure) took `elapsed`.
    pub fn consume_duration(&self, topic: impl Into<StringValue>, elapsed: Duration) {
        self.process_duration(topic.into(), elapsed, None);
    }

    /// Processing one record failed (decode error, or handlers that failed for good) after `elapsed`:
    /// as [`consume_duration`](Self::consume_duration), with `error.type` on
    /// `messaging.process.duration`.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn consume_failed_duration(
        &self,
        topic: impl Into<StringValue>,
        elapsed: Duration,
        error_type: &str,
    ) {
        self.process_duration(topic.into(), elapsed, Some(error_type));
    }

    fn process_duration(&self, topic: StringValue, elapsed: Duration, error_type: Option<&str>) {
        if let Some(m) = &self.inner {
            if let Some(s) = &m.messaging {
                let attributes = [
                    KeyValue::new(semconv_attr::MESSAGING_SYSTEM, "kafka"),
                    KeyValue::new(
                        semconv_attr::MESSAGING_DESTINATION_NAME,
                        Value::String(topic.clone()),
                    ),
                    KeyValue::new(semconv_attr::MESSAGING_CONSUMER_GROUP_NAME, m.state.group()),
                    KeyValue::new(semconv_attr::MESSAGING_OPERATION_NAME, "process"),
                ];
                // On the stack: with these conventions on, this runs for every consumed record.
                match error_type {
                    None => s.process_duration.record(elapsed.as_secs_f64(), &attributes),
                    Some(error_type) => {
                        let [a, b, c, d] = attributes;
                        let error = KeyValue::new(semconv_attr::ERROR_TYPE, error_type.to_owned());
                        s.process_duration
                            .record(elapsed.as_secs_f64(), &[a, b, c, d, error]);
                    }
                }
            }
            if let Some(r) = &m.reference {
                r.consume_duration.record(
                    ms(elapsed),
                    &[KeyValue::new(attr::MESSAGING_DESTINATION, Value::String(topic))],
                );
            }
        }
    }

    /// A handler succeeded.
    pub fn handler_invocation(&self, handler: impl Into<StringValue>, event_type: impl Into<StringValue>) {
        if let Some(m) = &self.inner {
            m.handler_invocations.add(1, &handler_attrs(handler, event_type));
        }
    }

    /// A handler failed with an error of type `error_type`.
    pub fn handler_error(
        &self,
        handler: impl Into<StringValue>,
        event_type: impl Into<StringValue>,
        error_type: &str,
    ) {
        if let Some(m) = &self.inner {
            let [a, b] = handler_attrs(handler, event_type);
            m.handler_errors
                .add(1, &[a, b, KeyValue::new(attr::ERROR_TYPE, error_type.to_owned())]);
        }
    }

    /// A handler call (either outcome) took `elapsed`.
    pub fn handler_duration(
        &self,
        handler: impl Into<StringValue>,
        event_type: impl Into<StringValue>,
        elapsed: Duration,
    ) {
        if let Some(m) = &self.inner {
            m.handler_duration
                .record(ms(elapsed), &handler_attrs(handler, event_type));
        }
    }

    /// A record was sent to the DLQ (after the send succeeded). `reason` is the `dlq_reason` header.
    pub fn dlq(&self, reason: &str, error_type: &str) {
        if let Some(m) = &self.inner {
            m.dlq.add(
                1,
                &[
                    KeyValue::new(attr::DLQ_REASON, reason.to_owned()),
                    KeyValue::new(attr::ERROR_TYPE, error_type.to_owned()),
                ],
            );
        }
    }

    /// Connecting failed, or the consume loop hit an error.
    pub fn connection_error(&self, error_type: &str) {
        if let Some(m) = &self.inner {
            m.connection_errors
                .add(1, &[KeyValue::new(attr::ERROR_TYPE, error_type.to_owned())]);
        }
    }

    /// The bus is about to try to reconnect.
    pub fn reconnection(&self) {
        if let Some(m) = &self.inner {
            m.reconnections.add(1, &[]);
        }
    }

    /// A record batch of `topic`/`partition` could not be decoded; `error_type` names why
    /// (`CrcMismatch`, `Decompress`, ...).
    pub fn corrupt_batch(&self, topic: &str, partition: i32, error_type: &str) {
        if let Some(m) = &self.inner {
            m.corrupt_batches.add(
                1,
                &[
                    KeyValue::new(attr::MESSAGING_DESTINATION, topic.to_owned()),
                    KeyValue::new(attr::MESSAGING_KAFKA_PARTITION, i64::from(partition)),
                    KeyValue::new(attr::ERROR_TYPE, error_type.to_owned()),
                ],
            );
        }
    }

    /// The consumer group `group` rebalanced (count each new assignment once).
    pub fn rebalance(&self, group: &str) {
        if let Some(m) = &self.inner {
            m.rebalances.add(
                1,
                &[KeyValue::new(
                    attr::MESSAGING_KAFKA_CONSUMER_GROUP,
                    group.to_owned(),
                )],
            );
        }
    }

    /// The bus connected (`true`) or disconnected (`false`); `connections.active` reports it, and no lag is
    /// reported while disconnected.
    pub fn set_connected(&self, connected: bool) {
        if let Some(m) = &self.inner {
            m.state.connected.store(connected, Ordering::Relaxed);
        }
    }

    /// The consumer's `position` on `topic`/`partition` and that partition's `high_watermark` from the last
    /// fetch; the gauge reports `max(0, high_watermark - position)`.
    pub fn set_lag(&self, topic: &str, partition: i32, high_watermark: i64, position: i64) {
        if let Some(m) = &self.inner {
            let lag = high_watermark.saturating_sub(position).max(0);
            let mut table = m.state.lag();
            match table.get_mut(topic) {
                Some(partitions) => {
                    partitions.insert(partition, lag);
                }
                None => {
                    table.insert(topic.to_owned(), HashMap::from([(partition, lag)]));
                }
            }
        }
    }

    /// `topic`/`partition` is no longer assigned: stop reporting its lag.
    pub fn remove_lag(&self, topic: &str, partition: i32) {
        if let Some(m) = &self.inner {
            let mut table = m.state.lag();
            if let Some(partitions) = table.get_mut(topic) {
                partitions.remove(&partition);
                if partitions.is_empty() {
                    table.remove(topic);
                }
            }
        }
    }

    /// Consuming stopped: report no lag at all.
    pub fn clear_lag(&self) {
        if let Some(m) = &self.inner {
            m.state.lag().clear();
        }
    }
}

fn event_attrs(topic: impl Into<StringValue>, event_type: impl Into<StringValue>) -> [KeyValue; 3] {
    [
        KeyValue::new(attr::MESSAGING_SYSTEM, "kafka"),
        KeyValue::new(attr::MESSAGING_DESTINATION, Value::String(topic.into())),
        KeyValue::new(attr::EVENT_TYPE, Value::String(event_type.into())),
    ]
}

/// The messaging conventions' attributes of one sent record; the event type is the bus's own, prefixed.
fn send_attrs(topic: &str, event_type: &str) -> [KeyValue; 4] {
    [
        KeyValue::new(semconv_attr::MESSAGING_SYSTEM, "kafka"),
        KeyValue::new(semconv_attr::MESSAGING_DESTINATION_NAME, topic.to_owned()),
        KeyValue::new(semconv_attr::MESSAGING_OPERATION_NAME, "send"),
        KeyValue::new(super::spans::attr::EVENT_TYPE, event_type.to_owned()),
    ]
}

/// Two decimal digits of each number below 100, in order: the text of small partition ids.
const TWO_DIGITS: &str = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/// A partition id as the `messaging.destination.partition.id` attribute's text: without an allocation
/// for partitions below 100 (with the stable messaging conventions on, this runs for every consumed
/// record).
fn partition_id(partition: i32) -> StringValue {
    match usize::try_from(partition) {
        Ok(p @ 0..10) => StringValue::from(&TWO_DIGITS[2 * p + 1..2 * p + 2]),
        Ok(p @ 10..100) => StringValue::from(&TWO_DIGITS[2 * p..2 * p + 2]),
        _ => StringValue::from(partition.to_string()),
    }
}

fn handler_attrs(handler: impl Into<StringValue>, event_type: impl Into<StringValue>) -> [KeyValue; 2] {
    [
        KeyValue::new(attr::HANDLER_NAME, Value::String(handler.into())),
        KeyValue::new(attr::EVENT_TYPE, Value::String(event_type.into())),
    ]
}

#[cfg(test)]
mod partition_id_tests {
    use super::partition_id;

    #[test]
    fn partition_ids_are_their_decimal_text() {
        for partition in [0, 1, 9, 10, 99, 100, 101, 1000, 65_535, i32::MAX, -1, i32::MIN] {
            assert_eq!(
                partition_id(partition).as_str(),
                partition.to_string(),
                "{partition}"
            );
        }
        for partition in 0..1000 {
            assert_eq!(partition_id(partition).as_str(), partition.to_string());
        }
    }
}
