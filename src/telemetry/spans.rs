//! The bus's three span kinds: PRODUCER per published event, CONSUMER per consumed event, INTERNAL per
//! handler call, with eventsource-py's names and attributes, the current OpenTelemetry messaging
//! semantic conventions', or both, as [`SemconvStability`] says.
//!
//! Invariants: a span from a disabled [`crate::telemetry::Telemetry`] is a `None`: no span, no attribute,
//! no allocation. A publish span injects *its own* context into the record headers (eventsource-py
//! injects the caller's), so the consumer span is the producer span's child. Each span is ended once,
//! with its final status, by the method that consumes it; one dropped unended is ended by the SDK
//! with status unset.

use std::borrow::Cow;
use std::error::Error;
use std::fmt::{self, Display};
use std::sync::Arc;

use opentelemetry::global::BoxedTracer;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

use super::carrier::{HeaderCarrier, HeaderExtractor, HeaderInjector};
use super::semconv::SemconvStability;

/// The name of the tracer the bus uses by default, as in eventsource-py.
pub const TRACER_NAME: &str = "eventsource.adapters.kafka.bus";

/// Span attribute keys: eventsource-py's, the bus's own (`eventsource.` prefix), then the current
/// semantic-convention names (from `opentelemetry-semantic-conventions`).
pub mod attr {
    use opentelemetry_semantic_conventions::attribute as semconv;

    /// Always `"kafka"`.
    pub const MESSAGING_SYSTEM: &str = semconv::MESSAGING_SYSTEM;
    /// eventsource-py: always `"topic"` on publish.
    pub const MESSAGING_DESTINATION_KIND: &str = "messaging.destination_kind";
    /// eventsource-py: the topic on publish.
    pub const MESSAGING_DESTINATION: &str = "messaging.destination";
    /// eventsource-py: `"publish"` or `"receive"`.
    pub const MESSAGING_OPERATION: &str = "messaging.operation";
    /// eventsource-py: the topic on consume.
    pub const MESSAGING_SOURCE: &str = "messaging.source";
    /// eventsource-py: always `"topic"` on consume.
    pub const MESSAGING_SOURCE_KIND: &str = "messaging.source_kind";
    /// The partition (an integer).
    pub const MESSAGING_KAFKA_PARTITION: &str = "messaging.kafka.partition";
    /// The offset (an integer); also the current semantic-convention name.
    pub const MESSAGING_KAFKA_OFFSET: &str = semconv::MESSAGING_KAFKA_OFFSET;
    /// eventsource-py: the consumer group.
    pub const MESSAGING_KAFKA_CONSUMER_GROUP: &str = "messaging.kafka.consumer_group";
    /// The event's type name.
    pub const EVENT_TYPE: &str = "eventsource.event.type";
    /// The event's id.
    pub const EVENT_ID: &str = "eventsource.event.id";
    /// The aggregate's id (also the record key).
    pub const AGGREGATE_ID: &str = "eventsource.aggregate.id";
    /// The aggregate's type.
    pub const AGGREGATE_TYPE: &str = "eventsource.aggregate.type";
    /// The handler's name.
    pub const HANDLER_NAME: &str = "eventsource.handler.name";
    /// Semantic conventions: the topic.
    pub const SEMCONV_DESTINATION_NAME: &str = semconv::MESSAGING_DESTINATION_NAME;
    /// Semantic conventions: `"send"` (publish) or `"process"` (consume).
    pub const SEMCONV_OPERATION_TYPE: &str = semconv::MESSAGING_OPERATION_TYPE;
    /// Semantic conventions: the system's own operation name (`"send"`, `"poll"`).
    pub const SEMCONV_OPERATION_NAME: &str = semconv::MESSAGING_OPERATION_NAME;
    /// Semantic conventions: the partition, as a string.
    pub const SEMCONV_PARTITION_ID: &str = semconv::MESSAGING_DESTINATION_PARTITION_ID;
    /// Semantic conventions: the record key, when it is UTF-8.
    pub const SEMCONV_MESSAGE_KEY: &str = semconv::MESSAGING_KAFKA_MESSAGE_KEY;
    /// Semantic conventions: the consumer group.
    pub const SEMCONV_CONSUMER_GROUP: &str = semconv::MESSAGING_CONSUMER_GROUP_NAME;
    /// Semantic conventions: the error's type, on failure (messaging modes only).
    pub const ERROR_TYPE: &str = semconv::ERROR_TYPE;
}

/// The tracer and propagator of an enabled [`crate::telemetry::Telemetry`].
pub(crate) struct Tracing {
    pub(crate) tracer: BoxedTracer,
    pub(crate) propagator: Box<dyn TextMapPropagator + Send + Sync>,
    /// The tracer is OpenTelemetry's no-op one (no SDK was installed when the telemetry was built): a
    /// consumed record then only carries its trace context through to the handlers, without the cost of
    /// building spans that record nothing.
    pub(crate) noop: bool,
    /// The propagator is the default [`W3cPropagator`](super::W3cPropagator): only a `traceparent`
    /// header makes a parent span context.
    pub(crate) w3c: bool,
    /// Which names the spans get.
    pub(crate) semconv: SemconvStability,
}

impl Tracing {
    /// Whether `tracer` is the no-op tracer: it answers a span start with its parent's own span context,
    /// where a real tracer makes a new span id. The probe's parent is not sampled, so an SDK with the
    /// default (parent-based) sampler neither records nor exports the probe.
    pub(crate) fn is_noop(tracer: &BoxedTracer) -> bool {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        let parent = SpanContext::new(
            TraceId::from(0x0e7e_0b05_u128),
            SpanId::from(0x0e7e_0b05_u64),
            TraceFlags::default(),
            true,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(parent.clone());
        let probe = tracer.start_with_context("eventsource.telemetry.probe", &cx);
        opentelemetry::trace::Span::span_context(&probe) == &parent
    }
}

impl fmt::Debug for Tracing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracing")
            .field("propagator", &self.propagator)
            .finish_non_exhaustive()
    }
}

/// The event a publish span describes. Ids are taken as [`Display`] so nothing is formatted when tracing
/// is off.
///
/// # Example
///
/// ```
/// use kafka_event_bus::telemetry::EventInfo;
///
/// let id = uuid::Uuid::nil();
/// let info = EventInfo { event_type: "OrderCreated", event_id: &id, aggregate_id: &id, aggregate_type: "Order" };
/// assert_eq!(info.event_type, "OrderCreated");
/// ```
#[derive(Clone, Copy)]
pub struct EventInfo<'a> {
    /// The registry name (`event_type` header).
    pub event_type: &'a str,
    /// The event's id.
    pub event_id: &'a dyn Display,
    /// The aggregate's id, which is also the record key.
    pub aggregate_id: &'a dyn Display,
    /// The aggregate's type.
    pub aggregate_type: &'a str,
}

impl fmt::Debug for EventInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventInfo")
            .field("event_type", &self.event_type)
            .field("event_id", &self.event_id.to_string())
            .field("aggregate_id", &self.aggregate_id.to_string())
            .field("aggregate_type", &self.aggregate_type)
            .finish()
    }
}

/// Where a consumed record came from, for its consume span.
///
/// # Example
///
/// ```
/// use kafka_event_bus::telemetry::RecordInfo;
///
/// let info = RecordInfo { topic: "orders.stream", partition: 2, offset: 41, consumer_group: "billing",
///                         key: Some(b"k1"), event_type: "OrderCreated" };
/// assert_eq!(info.partition, 2);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RecordInfo<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The consumer group.
    pub consumer_group: &'a str,
    /// The record key, if any (recorded when UTF-8).
    pub key: Option<&'a [u8]>,
    /// The `event_type` header.
    pub event_type: &'a str,
}

fn kv(key: &'static str, value: &dyn Display) -> KeyValue {
    KeyValue::new(key, value.to_string())
}

/// A live span: the context that holds it (and the parent's baggage) and the propagator to inject it with.
#[derive(Debug)]
struct Live {
    cx: Context,
    tracing: Arc<Tracing>,
}

impl Live {
    /// Starts a span with the attributes a sampler may look at (`sampling`), then adds the `rest` only if
    /// the span records: a no-op tracer or a sampled-out span costs no attribute formatting.
    fn start(
        tracing: &Arc<Tracing>,
        parent: &Context,
        name: String,
        kind: SpanKind,
        sampling: Vec<KeyValue>,
        rest: impl FnOnce() -> Vec<KeyValue>,
    ) -> Self {
        let span = tracing
            .tracer
            .span_builder(Cow::Owned(name))
            .with_kind(kind)
            .with_attributes(sampling)
            .start_with_context(&tracing.tracer, parent);
        let live = Self {
            cx: parent.with_span(span),
            tracing: Arc::clone(tracing),
        };
        live.set_attributes(rest);
        live
    }

    fn is_recording(&self) -> bool {
        self.cx.span().is_recording()
    }

    fn set_attributes(&self, attributes: impl FnOnce() -> Vec<KeyValue>) {
        let span = self.cx.span();
        if span.is_recording() {
            span.set_attributes(attributes());
        }
    }

    fn end_ok(&self) {
        let span = self.cx.span();
        span.set_status(Status::Ok);
        span.end();
    }

    fn end_err(&self, error_type: &str, error: &dyn Error) {
        let span = self.cx.span();
        let message = error.to_string();
        if self.tracing.semconv.messaging() {
            span.set_attribute(KeyValue::new(attr::ERROR_TYPE, error_type.to_owned()));
        }
        span.add_event(
            "exception",
            vec![
                KeyValue::new("exception.type", error_type.to_owned()),
                KeyValue::new("exception.message", message.clone()),
            ],
        );
        span.set_status(Status::error(message));
        span.end();
    }
}

/// The PRODUCER span of one published event: `eventsource.event_bus.publish {event_type}`, or
/// `send {topic}` with the messaging conventions ([`SemconvStability`]).
///
/// Call [`PublishSpan::inject`] on the record's headers before sending, then [`PublishSpan::acked`] or
/// [`PublishSpan::failed`] when the broker answers.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::Headers;
/// use kafka_event_bus::telemetry::{EventInfo, Telemetry};
///
/// let telemetry = Telemetry::disabled();
/// let id = uuid::Uuid::nil();
/// let info = EventInfo { event_type: "OrderCreated", event_id: &id, aggregate_id: &id, aggregate_type: "Order" };
/// let span = telemetry.publish_span("orders.stream", &info);
/// let mut headers = Headers::new();
/// span.inject(&mut headers); // writes nothing: tracing is off
/// span.acked(0, 42);
/// assert!(headers.is_empty());
/// ```
#[derive(Debug, Default)]
#[must_use = "end the span with `acked` or `failed`"]
pub struct PublishSpan(Option<Live>);

impl PublishSpan {
    pub(crate) fn start(
        tracing: &Arc<Tracing>,
        parent: &Context,
        topic: &str,
        event: &EventInfo<'_>,
    ) -> Self {
        let mode = tracing.semconv;
        let mut sampling = vec![KeyValue::new(attr::MESSAGING_SYSTEM, "kafka")];
        if mode.messaging() {
            sampling.push(KeyValue::new(attr::SEMCONV_DESTINATION_NAME, topic.to_owned()));
            sampling.push(KeyValue::new(attr::SEMCONV_OPERATION_TYPE, "send"));
        }
        let rest = || {
            let mut attributes = Vec::with_capacity(9);
            if mode.reference() {
                attributes.extend([
                    KeyValue::new(attr::MESSAGING_DESTINATION_KIND, "topic"),
                    KeyValue::new(attr::MESSAGING_DESTINATION, topic.to_owned()),
                    KeyValue::new(attr::MESSAGING_OPERATION, "publish"),
                ]);
            }
            attributes.extend([
                KeyValue::new(attr::EVENT_TYPE, event.event_type.to_owned()),
                kv(attr::EVENT_ID, event.event_id),
                kv(attr::AGGREGATE_ID, event.aggregate_id),
                KeyValue::new(attr::AGGREGATE_TYPE, event.aggregate_type.to_owned()),
            ]);
            if mode.messaging() {
                attributes.extend([
                    KeyValue::new(attr::SEMCONV_OPERATION_NAME, "send"),
                    kv(attr::SEMCONV_MESSAGE_KEY, event.aggregate_id),
                ]);
            }
            attributes
        };
        let name = if mode.messaging() {
            format!("send {topic}")
        } else {
            format!("eventsource.event_bus.publish {}", event.event_type)
        };
        Self(Some(Live::start(
            tracing,
            parent,
            name,
            SpanKind::Producer,
            sampling,
            rest,
        )))
    }

    /// Writes this span's context (`traceparent`, `tracestate`) and the caller's baggage into `headers`,
    /// so the consumer's span becomes this span's child. A no-op when tracing is off.
    pub fn inject<C: HeaderCarrier + ?Sized>(&self, headers: &mut C) {
        if let Some(live) = &self.0 {
            live.tracing
                .propagator
                .inject_context(&live.cx, &mut HeaderInjector(headers));
        }
    }

    /// The context with this span active, to parent further work; `None` when tracing is off.
    pub fn context(&self) -> Option<&Context> {
        self.0.as_ref().map(|l| &l.cx)
    }

    /// The broker acknowledged the record at `partition`/`offset`: records them, status OK, ends the span.
    pub fn acked(self, partition: i32, offset: i64) {
        if let Some(live) = &self.0 {
            let mode = live.tracing.semconv;
            live.set_attributes(|| {
                let mut attributes = Vec::with_capacity(3);
                if mode.reference() {
                    attributes.push(KeyValue::new(
                        attr::MESSAGING_KAFKA_PARTITION,
                        i64::from(partition),
                    ));
                }
                if mode.messaging() {
                    attributes.push(KeyValue::new(attr::SEMCONV_PARTITION_ID, partition.to_string()));
                }
                // The same name in both.
                attributes.push(KeyValue::new(attr::MESSAGING_KAFKA_OFFSET, offset));
                attributes
            });
            live.end_ok();
        }
    }

    /// Sending failed: records the error (`error_type` names its kind), status ERROR, ends the span.
    pub fn failed(self, error_type: &str, error: &dyn Error) {
        if let Some(live) = &self.0 {
            live.end_err(error_type, error);
        }
    }
}

/// The CONSUMER span of one consumed record, `eventsource.event_bus.consume {event_type}` (or
/// `process {topic}` with the messaging conventions, see [`SemconvStability`]), whose parent is the
/// trace context in the record's headers.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::Headers;
/// use kafka_event_bus::telemetry::{RecordInfo, Telemetry};
///
/// let telemetry = Telemetry::disabled();
/// let record = RecordInfo { topic: "orders.stream", partition: 0, offset: 7, consumer_group: "billing",
///                           key: None, event_type: "OrderCreated" };
/// let span = telemetry.consume_span(&record, &Headers::new());
/// let id = uuid::Uuid::nil();
/// span.decoded(&id, &id, "Order");
/// let handler = span.handler_span("send_invoice", &id);
/// handler.succeeded();
/// span.succeeded();
/// ```
#[derive(Debug, Default)]
#[must_use = "end the span with `succeeded` or `failed`"]
pub struct ConsumeSpan {
    live: Option<Live>,
    event_type: String,
    /// With the no-op tracer: the trace context of the record's headers, for the handlers.
    carried: Option<Context>,
}

impl ConsumeSpan {
    pub(crate) fn start(tracing: &Arc<Tracing>, parent: Context, record: &RecordInfo<'_>) -> Self {
        if tracing.noop {
            return Self {
                live: None,
                event_type: String::new(),
                carried: parent.has_active_span().then_some(parent),
            };
        }
        let parent = &parent;
        let mode = tracing.semconv;
        let mut sampling = vec![KeyValue::new(attr::MESSAGING_SYSTEM, "kafka")];
        if mode.messaging() {
            sampling.push(KeyValue::new(
                attr::SEMCONV_DESTINATION_NAME,
                record.topic.to_owned(),
            ));
            sampling.push(KeyValue::new(attr::SEMCONV_OPERATION_TYPE, "process"));
        }
        let rest = || {
            let group = record.consumer_group.to_owned();
            let mut attributes = Vec::with_capacity(12);
            if mode.reference() {
                attributes.extend([
                    KeyValue::new(attr::MESSAGING_SOURCE, record.topic.to_owned()),
                    KeyValue::new(attr::MESSAGING_SOURCE_KIND, "topic"),
                    KeyValue::new(attr::MESSAGING_KAFKA_PARTITION, i64::from(record.partition)),
                    KeyValue::new(attr::MESSAGING_OPERATION, "receive"),
                    KeyValue::new(attr::MESSAGING_KAFKA_CONSUMER_GROUP, group.clone()),
                ]);
            }
            // The same name in both.
            attributes.push(KeyValue::new(attr::MESSAGING_KAFKA_OFFSET, record.offset));
            attributes.push(KeyValue::new(attr::EVENT_TYPE, record.event_type.to_owned()));
            if mode.messaging() {
                attributes.extend([
                    KeyValue::new(attr::SEMCONV_PARTITION_ID, record.partition.to_string()),
                    KeyValue::new(attr::SEMCONV_OPERATION_NAME, "process"),
                    KeyValue::new(attr::SEMCONV_CONSUMER_GROUP, group),
                ]);
                if let Some(key) = record.key.and_then(|k| std::str::from_utf8(k).ok()) {
                    attributes.push(KeyValue::new(attr::SEMCONV_MESSAGE_KEY, key.to_owned()));
                }
            }
            attributes
        };
        let name = if mode.messaging() {
            format!("process {}", record.topic)
        } else {
            format!("eventsource.event_bus.consume {}", record.event_type)
        };
        let live = Live::start(tracing, parent, name, SpanKind::Consumer, sampling, rest);
        // Only a recording span labels its handler spans with the event type.
        let event_type = if live.is_recording() {
            record.event_type.to_owned()
        } else {
            String::new()
        };
        Self {
            live: Some(live),
            event_type,
            carried: None,
        }
    }

    pub(crate) fn extract_parent<C: HeaderCarrier + ?Sized>(tracing: &Tracing, headers: &C) -> Context {
        // Only the headers: not whatever context the consume loop happens to run in.
        tracing
            .propagator
            .extract_with_context(&Context::new(), &HeaderExtractor(headers))
    }

    /// The record decoded: adds the event's id and its aggregate's id and type.
    pub fn decoded(&self, event_id: &dyn Display, aggregate_id: &dyn Display, aggregate_type: &str) {
        if let Some(live) = &self.live {
            live.set_attributes(|| {
                vec![
                    kv(attr::EVENT_ID, event_id),
                    kv(attr::AGGREGATE_ID, aggregate_id),
                    KeyValue::new(attr::AGGREGATE_TYPE, aggregate_type.to_owned()),
                ]
            });
        }
    }

    /// The context with this span active: make it current around the handlers, or parent other work.
    /// `None` when tracing is off. (With OpenTelemetry's no-op tracer, no span is made: this is the trace
    /// context the record's headers carry, if any.)
    pub fn context(&self) -> Option<&Context> {
        self.live.as_ref().map(|l| &l.cx).or(self.carried.as_ref())
    }

    /// The INTERNAL span of one handler call on this record, `eventsource.event_bus.dispatch {handler}`,
    /// a child of this span.
    pub fn handler_span(&self, handler_name: &str, event_id: &dyn Display) -> HandlerSpan {
        let Some(live) = &self.live else {
            return HandlerSpan(None);
        };
        let rest = || {
            vec![
                KeyValue::new(attr::HANDLER_NAME, handler_name.to_owned()),
                KeyValue::new(attr::EVENT_TYPE, self.event_type.clone()),
                kv(attr::EVENT_ID, event_id),
            ]
        };
        let name = format!("eventsource.event_bus.dispatch {handler_name}");
        HandlerSpan(Some(Live::start(
            &live.tracing,
            &live.cx,
            name,
            SpanKind::Internal,
            Vec::new(),
            rest,
        )))
    }

    /// Processing succeeded: status OK, ends the span.
    pub fn succeeded(self) {
        if let Some(live) = &self.live {
            live.end_ok();
        }
    }

    /// Processing failed (decode, handlers, retry or DLQ send): records the error, status ERROR, ends the
    /// span.
    pub fn failed(self, error_type: &str, error: &dyn Error) {
        if let Some(live) = &self.live {
            live.end_err(error_type, error);
        }
    }
}

/// The INTERNAL span of one handler call, from [`ConsumeSpan::handler_span`].
///
/// # Example
///
/// ```
/// use kafka_event_bus::telemetry::HandlerSpan;
///
/// let span = HandlerSpan::default(); // what a disabled bus hands out
/// span.failed("ValueError", &std::fmt::Error);
/// ```
#[derive(Debug, Default)]
#[must_use = "end the span with `succeeded` or `failed`"]
pub struct HandlerSpan(Option<Live>);

impl HandlerSpan {
    /// The context with this span active, to make current while the handler runs; `None` when off.
    pub fn context(&self) -> Option<&Context> {
        self.0.as_ref().map(|l| &l.cx)
    }

    /// The handler returned `Ok`: status OK, ends the span.
    pub fn succeeded(self) {
        if let Some(live) = &self.0 {
            live.end_ok();
        }
    }

    /// The handler failed: records the error, status ERROR, ends the span.
    pub fn failed(self, error_type: &str, error: &dyn Error) {
        if let Some(live) = &self.0 {
            live.end_err(error_type, error);
        }
    }
}
