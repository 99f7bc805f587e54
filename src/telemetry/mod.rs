//! OpenTelemetry for the bus: the fifteen metrics, the three span kinds, and W3C trace-context
//! propagation through record headers.
//!
//! Owns: [`Telemetry`] (the handle the bus holds), [`BusMetrics`], the span types
//! ([`PublishSpan`], [`ConsumeSpan`], [`HandlerSpan`]), [`HeaderCarrier`] with [`W3cPropagator`], and
//! [`SemconvStability`]: eventsource-py's names by default, the current messaging semantic conventions'
//! with `OTEL_SEMCONV_STABILITY_OPT_IN=messaging`, both with `messaging/dup`.
//!
//! May use: nothing else in the crate (it is a leaf). Record headers reach it through the
//! [`HeaderCarrier`] trait, which `crate::protocol::Headers` implements.
//!
//! Invariants: with metrics or tracing disabled the corresponding half is a `None` and every call on it
//! is a single branch, with no allocation. Trace headers of a consumed record are only read (never
//! trusted to be valid); the producer span's own context, not the caller's, is what gets injected.
//!
//! How the bus uses it, per call site:
//!
//! ```text
//! publish(events)   span = t.publish_span(topic, &info); span.inject(&mut headers); send
//!   on ack          span.acked(partition, offset); t.metrics().published(topic, event_type)
//!   on error        span.failed(kind, &err); t.metrics().publish_error(topic, event_type, kind)
//!   call succeeded  t.metrics().publish_duration(topic, elapsed); t.metrics().batch_size(n)
//! consume(record)   span = t.consume_span(&record_info, &headers)   (no event_type header: no span)
//!   decoded         span.decoded(&event_id, &aggregate_id, aggregate_type)
//!                   t.metrics().consumed(topic, partition, event_type)
//!   per handler     h = span.handler_span(name, &event_id); run; h.succeeded() / h.failed(kind, &err)
//!                   t.metrics().handler_invocation / handler_error, then handler_duration
//!   done            span.succeeded() / span.failed(kind, &err); t.metrics().consume_duration(topic, d)
//! retry / DLQ       keep the original headers (crate::dlq's header functions do), so the trace goes on;
//!                   after a DLQ send: t.metrics().dlq(reason, error_type)
//! connect           t.metrics().set_connected(true); failure: connection_error(kind)
//! reconnect         t.metrics().reconnection(); consume-loop error: connection_error(kind)
//! rebalance         t.metrics().rebalance(group); revoked partitions: remove_lag(topic, p)
//! after each fetch  t.metrics().set_lag(topic, partition, high_watermark, position)
//! stop / close      t.metrics().clear_lag(); t.metrics().set_connected(false)
//! ```

mod carrier;
mod metrics;
mod semconv;
mod spans;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use opentelemetry::Context;
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::Meter;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Tracer, TracerProvider};

pub use carrier::{
    BAGGAGE, HeaderCarrier, HeaderExtractor, HeaderInjector, TRACE_HEADERS, TRACEPARENT, TRACESTATE,
    W3cPropagator, copy_trace_headers,
};
pub use metrics::{BusMetrics, METER_NAME, attr as metric_attr, names};
pub use semconv::{SEMCONV_STABILITY_OPT_IN, SemconvStability};
pub use spans::{
    ConsumeSpan, EventInfo, HandlerSpan, PublishSpan, RecordInfo, TRACER_NAME, attr as span_attr,
};

use spans::Tracing;

/// The bus's telemetry: its metrics and its tracer, each on or off.
///
/// Cloning is cheap. Build it once per bus from the config's `enable_metrics` and `enable_tracing`.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::Headers;
/// use kafka_event_bus::telemetry::{EventInfo, Telemetry};
///
/// // The global meter and tracer, W3C propagation.
/// let telemetry = Telemetry::builder().consumer_group("billing").build();
/// let id = uuid::Uuid::new_v4();
/// let info = EventInfo { event_type: "OrderCreated", event_id: &id, aggregate_id: &id, aggregate_type: "Order" };
/// let span = telemetry.publish_span("orders.stream", &info);
/// let mut headers = Headers::new();
/// span.inject(&mut headers);
/// span.acked(0, 42);
/// telemetry.metrics().published("orders.stream", "OrderCreated");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    metrics: BusMetrics,
    tracing: Option<Arc<Tracing>>,
    semconv: SemconvStability,
}

impl Telemetry {
    /// Telemetry that records nothing and writes no trace headers.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// The global meter ([`METER_NAME`]) and tracer ([`TRACER_NAME`]), each only if enabled.
    pub fn global(enable_metrics: bool, enable_tracing: bool, consumer_group: &str) -> Self {
        Self::builder()
            .metrics(enable_metrics)
            .tracing(enable_tracing)
            .consumer_group(consumer_group)
            .build()
    }

    /// A builder, with metrics and tracing on and the global meter, tracer and W3C propagation, and the
    /// names `OTEL_SEMCONV_STABILITY_OPT_IN` asks for (see [`SemconvStability`]).
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder {
            metrics: true,
            tracing: true,
            meter: None,
            tracer: None,
            propagator: None,
            consumer_group: String::new(),
            semconv: None,
        }
    }

    /// Which span and metric names this telemetry emits.
    pub fn semconv(&self) -> SemconvStability {
        self.semconv
    }

    /// The metrics (disabled ones when metrics are off).
    pub fn metrics(&self) -> &BusMetrics {
        &self.metrics
    }

    /// Whether spans are created and trace headers written.
    pub fn is_tracing(&self) -> bool {
        self.tracing.is_some()
    }

    /// Starts the PRODUCER span of one event about to be published to `topic`, as a child of the
    /// caller's current context.
    pub fn publish_span(&self, topic: &str, event: &EventInfo<'_>) -> PublishSpan {
        match &self.tracing {
            Some(t) => PublishSpan::start(t, &Context::current(), topic, event),
            None => PublishSpan::default(),
        }
    }

    /// Starts the PRODUCER span of one event as a child of `parent` (for callers that pass contexts
    /// explicitly rather than attaching them).
    pub fn publish_span_in(&self, parent: &Context, topic: &str, event: &EventInfo<'_>) -> PublishSpan {
        match &self.tracing {
            Some(t) => PublishSpan::start(t, parent, topic, event),
            None => PublishSpan::default(),
        }
    }

    /// Starts the CONSUMER span of one record whose `event_type` header is known, as a child of the trace
    /// context in its `headers` (a new trace if they have none or it is malformed).
    pub fn consume_span<C: HeaderCarrier + ?Sized>(
        &self,
        record: &RecordInfo<'_>,
        headers: &C,
    ) -> ConsumeSpan {
        match &self.tracing {
            // With the no-op tracer only a parent span context is carried to the handlers, and with
            // the default propagator only a `traceparent` header makes one: without it, nothing to
            // extract.
            Some(t) if t.noop && t.w3c && headers.text(TRACEPARENT).is_none() => ConsumeSpan::default(),
            Some(t) => {
                let parent = ConsumeSpan::extract_parent(t, headers);
                ConsumeSpan::start(t, parent, record)
            }
            None => ConsumeSpan::default(),
        }
    }

    /// The context the trace headers in `headers` carry (with an empty context as the base), for callers
    /// that start their own spans. An empty context when tracing is off.
    pub fn extract<C: HeaderCarrier + ?Sized>(&self, headers: &C) -> Context {
        match &self.tracing {
            Some(t) => ConsumeSpan::extract_parent(t, headers),
            None => Context::new(),
        }
    }
}

/// Builds a [`Telemetry`]; see [`Telemetry::builder`].
///
/// # Example
///
/// ```
/// use kafka_event_bus::telemetry::Telemetry;
///
/// let meter = opentelemetry::global::meter("my-service");
/// let telemetry = Telemetry::builder().meter(meter).tracing(false).consumer_group("billing").build();
/// assert!(telemetry.metrics().is_enabled());
/// assert!(!telemetry.is_tracing());
/// ```
#[derive(Debug)]
#[must_use = "call build()"]
pub struct TelemetryBuilder {
    metrics: bool,
    tracing: bool,
    meter: Option<Meter>,
    tracer: Option<BoxedTracer>,
    propagator: Option<Box<dyn TextMapPropagator + Send + Sync>>,
    consumer_group: String,
    semconv: Option<SemconvStability>,
}

impl TelemetryBuilder {
    /// Whether to record metrics (`enable_metrics`, default on).
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics = enabled;
        self
    }

    /// Whether to create spans and write trace headers (`enable_tracing`, default on).
    pub fn tracing(mut self, enabled: bool) -> Self {
        self.tracing = enabled;
        self
    }

    /// The meter to create the instruments on (default: the global meter [`METER_NAME`]).
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// The tracer provider to get the tracer [`TRACER_NAME`] from (default: the global one).
    pub fn tracer_provider<P>(mut self, provider: &P) -> Self
    where
        P: TracerProvider,
        P::Tracer: Tracer + Send + Sync + 'static,
        <P::Tracer as Tracer>::Span: Send + Sync + 'static,
    {
        self.tracer = Some(BoxedTracer::new(Box::new(provider.tracer(TRACER_NAME))));
        self
    }

    /// The propagator for record headers (default: [`W3cPropagator`], what eventsource-py's default
    /// global propagator writes).
    pub fn propagator(mut self, propagator: impl TextMapPropagator + Send + Sync + 'static) -> Self {
        self.propagator = Some(Box::new(propagator));
        self
    }

    /// The consumer group, which labels the `connections.active` and `consumer.lag` gauges.
    pub fn consumer_group(mut self, group: impl Into<String>) -> Self {
        self.consumer_group = group.into();
        self
    }

    /// Which span and metric names to emit (default: what `OTEL_SEMCONV_STABILITY_OPT_IN` asks for,
    /// read once by [`build`](Self::build); see [`SemconvStability`]).
    pub fn semconv(mut self, stability: SemconvStability) -> Self {
        self.semconv = Some(stability);
        self
    }

    /// The telemetry.
    pub fn build(self) -> Telemetry {
        let semconv = self.semconv.unwrap_or_else(SemconvStability::from_env);
        let metrics = if self.metrics {
            let meter = self
                .meter
                .unwrap_or_else(|| opentelemetry::global::meter(METER_NAME));
            BusMetrics::with_semconv(&meter, self.consumer_group, semconv)
        } else {
            BusMetrics::disabled()
        };
        let tracing = self.tracing.then(|| {
            // Only the global tracer is probed: a tracer given explicitly is meant to record.
            let (tracer, noop) = match self.tracer {
                Some(tracer) => (tracer, false),
                None => {
                    let tracer = opentelemetry::global::tracer(TRACER_NAME);
                    let noop = Tracing::is_noop(&tracer);
                    (tracer, noop)
                }
            };
            let w3c = self.propagator.is_none();
            Arc::new(Tracing {
                tracer,
                propagator: self.propagator.unwrap_or_else(|| Box::new(W3cPropagator::new())),
                noop,
                w3c,
                semconv,
            })
        });
        Telemetry {
            metrics,
            tracing,
            semconv,
        }
    }
}
