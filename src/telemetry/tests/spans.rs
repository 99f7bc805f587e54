//! The producer, consumer and handler spans: parentage through record headers, attributes, status.

use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

use super::{attrs, s};
use crate::protocol::Headers;
use crate::telemetry::*;

struct TraceHarness {
    provider: SdkTracerProvider,
    exporter: InMemorySpanExporter,
}

impl TraceHarness {
    fn new() -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        Self { provider, exporter }
    }

    fn telemetry(&self) -> Telemetry {
        self.telemetry_in(SemconvStability::Reference)
    }

    fn telemetry_in(&self, mode: SemconvStability) -> Telemetry {
        Telemetry::builder()
            .metrics(false)
            .tracer_provider(&self.provider)
            .semconv(mode)
            .build()
    }

    fn span(&self, name: &str) -> SpanData {
        let spans = self.exporter.get_finished_spans().unwrap();
        let mut found: Vec<_> = spans.into_iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "spans named {name}");
        found.remove(0)
    }
}

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

const EVENT_ID: &str = "6f1c1b2e-8f3a-4d5e-9b7c-0123456789ab";
const AGGREGATE_ID: &str = "0b5e9f62-1c0a-4c8e-a6a1-3d2f1e0c9b8a";

fn order_created() -> EventInfo<'static> {
    EventInfo {
        event_type: "OrderCreated",
        event_id: &EVENT_ID,
        aggregate_id: &AGGREGATE_ID,
        aggregate_type: "Order",
    }
}

fn record<'a>(key: Option<&'a [u8]>) -> RecordInfo<'a> {
    RecordInfo {
        topic: "orders.stream",
        partition: 2,
        offset: 41,
        consumer_group: "billing",
        key,
        event_type: "OrderCreated",
    }
}

/// Publishes one event (acked at 2/41), returning the record headers the bus would send.
fn publish(t: &Telemetry) -> Headers {
    let mut headers = Headers::new();
    headers.insert("event_id", EVENT_ID);
    headers.insert("event_type", "OrderCreated");
    let span = t.publish_span("orders.stream", &order_created());
    span.inject(&mut headers);
    span.acked(2, 41);
    headers
}

/// Consumes `headers` through one handler, all succeeding.
fn consume(t: &Telemetry, headers: &Headers) {
    let span = t.consume_span(&record(Some(AGGREGATE_ID.as_bytes())), headers);
    span.decoded(&EVENT_ID, &AGGREGATE_ID, "Order");
    let handler = span.handler_span("send_invoice", &EVENT_ID);
    handler.succeeded();
    span.succeeded();
}

#[derive(Debug)]
struct Boom;
impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("handler exploded")
    }
}
impl std::error::Error for Boom {}

#[test]
fn publish_then_consume_makes_the_consumer_span_a_child_of_the_producer_span() {
    let h = TraceHarness::new();
    let t = h.telemetry();
    let headers = publish(&t);
    // The trace headers come after the event's own headers.
    let names: Vec<_> = headers.iter().map(|x| x.key).collect();
    assert_eq!(names, ["event_id", "event_type", "traceparent"]);
    consume(&t, &headers);

    let producer = h.span("eventsource.event_bus.publish OrderCreated");
    let consumer = h.span("eventsource.event_bus.consume OrderCreated");
    let handler = h.span("eventsource.event_bus.dispatch send_invoice");

    // The injected context is the producer span's own.
    let expected = format!(
        "00-{}-{}-01",
        producer.span_context.trace_id(),
        producer.span_context.span_id()
    );
    assert_eq!(headers.get_str("traceparent"), Some(expected.as_str()));

    assert_eq!(producer.span_kind, SpanKind::Producer);
    assert_eq!(consumer.span_kind, SpanKind::Consumer);
    assert_eq!(handler.span_kind, SpanKind::Internal);
    assert_eq!(consumer.span_context.trace_id(), producer.span_context.trace_id());
    assert_eq!(consumer.parent_span_id, producer.span_context.span_id());
    assert!(consumer.parent_span_is_remote);
    assert_eq!(handler.span_context.trace_id(), producer.span_context.trace_id());
    assert_eq!(handler.parent_span_id, consumer.span_context.span_id());
    assert!(!handler.parent_span_is_remote);
    for span in [&producer, &consumer, &handler] {
        assert_eq!(span.status, Status::Ok, "{}", span.name);
        assert_eq!(span.instrumentation_scope.name(), TRACER_NAME);
    }
}

/// Expected attributes of the (producer, consumer) spans.
type SpanAttributes = (Vec<(&'static str, Value)>, Vec<(&'static str, Value)>);

/// eventsource-py's span attributes: (producer, consumer).
#[rustfmt::skip]
fn reference_attributes() -> SpanAttributes {
    (
        vec![
            ("messaging.system", s("kafka")), ("messaging.destination_kind", s("topic")),
            ("messaging.destination", s("orders.stream")), ("messaging.operation", s("publish")),
            ("messaging.kafka.partition", Value::I64(2)), ("messaging.kafka.offset", Value::I64(41)),
        ],
        vec![
            ("messaging.system", s("kafka")), ("messaging.source", s("orders.stream")),
            ("messaging.source_kind", s("topic")), ("messaging.kafka.partition", Value::I64(2)),
            ("messaging.operation", s("receive")), ("messaging.kafka.offset", Value::I64(41)),
            ("messaging.kafka.consumer_group", s("billing")),
        ],
    )
}

/// The messaging conventions' span attributes: (producer, consumer).
#[rustfmt::skip]
fn messaging_attributes() -> SpanAttributes {
    (
        vec![
            ("messaging.system", s("kafka")), ("messaging.destination.name", s("orders.stream")),
            ("messaging.operation.type", s("send")), ("messaging.operation.name", s("send")),
            ("messaging.kafka.message.key", s(AGGREGATE_ID)),
            ("messaging.destination.partition.id", s("2")), ("messaging.kafka.offset", Value::I64(41)),
        ],
        vec![
            ("messaging.system", s("kafka")), ("messaging.destination.name", s("orders.stream")),
            ("messaging.destination.partition.id", s("2")), ("messaging.operation.type", s("process")),
            ("messaging.operation.name", s("process")), ("messaging.kafka.offset", Value::I64(41)),
            ("messaging.consumer.group.name", s("billing")), ("messaging.kafka.message.key", s(AGGREGATE_ID)),
        ],
    )
}

/// The bus's own attributes, in every mode: (producer, consumer).
#[rustfmt::skip]
fn own_attributes() -> SpanAttributes {
    let event = vec![
        ("eventsource.event.type", s("OrderCreated")), ("eventsource.event.id", s(EVENT_ID)),
        ("eventsource.aggregate.id", s(AGGREGATE_ID)), ("eventsource.aggregate.type", s("Order")),
    ];
    (event.clone(), event)
}

/// Publishes and consumes one event in `mode`; asserts the span names and that each span has exactly
/// the attributes `want` lists (producer, consumer), and the handler span its own three.
fn assert_spans(mode: SemconvStability, names: [&str; 2], want: &[fn() -> SpanAttributes]) {
    let h = TraceHarness::new();
    let t = h.telemetry_in(mode);
    let headers = publish(&t);
    consume(&t, &headers);
    let (mut producer_want, mut consumer_want) = own_attributes();
    for set in want {
        let (p, c) = set();
        producer_want.extend(p);
        consumer_want.extend(c);
    }
    for (span, want) in [
        (h.span(names[0]), producer_want),
        (h.span(names[1]), consumer_want),
    ] {
        let want: std::collections::BTreeMap<String, Value> =
            want.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(attrs(span.attributes.iter()), want, "{}", span.name);
    }
    let handler = h.span("eventsource.event_bus.dispatch send_invoice");
    assert_eq!(
        attrs(handler.attributes.iter()),
        attrs(
            [
                KeyValue::new("eventsource.handler.name", "send_invoice"),
                KeyValue::new("eventsource.event.type", "OrderCreated"),
                KeyValue::new("eventsource.event.id", EVENT_ID),
            ]
            .iter()
        )
    );
}

#[test]
fn by_default_spans_carry_only_eventsource_py_names_and_attributes() {
    assert_spans(
        SemconvStability::Reference,
        [
            "eventsource.event_bus.publish OrderCreated",
            "eventsource.event_bus.consume OrderCreated",
        ],
        &[reference_attributes],
    );
}

#[test]
fn messaging_mode_spans_carry_only_the_conventions_names_and_attributes() {
    assert_spans(
        SemconvStability::Messaging,
        ["send orders.stream", "process orders.stream"],
        &[messaging_attributes],
    );
}

#[test]
fn dup_mode_spans_have_the_conventions_names_and_both_attribute_sets() {
    assert_spans(
        SemconvStability::MessagingDup,
        ["send orders.stream", "process orders.stream"],
        &[reference_attributes, messaging_attributes],
    );
}

#[test]
fn the_producer_span_is_the_callers_child_but_injects_itself() {
    let h = TraceHarness::new();
    let t = h.telemetry();
    let caller = h.provider.tracer("app").start("http request");
    let caller_cx = Context::new().with_span(caller);
    let caller_id = caller_cx.span().span_context().span_id();
    let _guard = caller_cx.clone().attach();

    let headers = publish(&t);
    drop(_guard);
    caller_cx.span().end();

    let producer = h.span("eventsource.event_bus.publish OrderCreated");
    assert_eq!(producer.parent_span_id, caller_id);
    assert_eq!(
        producer.span_context.trace_id(),
        caller_cx.span().span_context().trace_id()
    );
    let injected = headers.get_str("traceparent").unwrap();
    assert!(injected.contains(&producer.span_context.span_id().to_string()));
    assert!(
        !injected.contains(&caller_id.to_string()),
        "eventsource-py's bug: the caller's context"
    );
}

#[test]
fn a_traceparent_written_by_eventsource_py_is_continued() {
    let h = TraceHarness::new();
    let t = h.telemetry();
    // As Python's TraceContextTextMapPropagator and W3CBaggagePropagator write them.
    let mut headers = Headers::new();
    headers.insert("event_type", "OrderCreated");
    headers.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    headers.insert("tracestate", "rojo=00f067aa0ba902b7");
    headers.insert("baggage", "tenant=acme%20corp");

    let span = t.consume_span(&record(None), &headers);
    // The baggage rode along in the consume span's context.
    let cx = span.context().unwrap().clone();
    assert_eq!(
        opentelemetry::baggage::BaggageExt::baggage(&cx).get("tenant"),
        Some(&opentelemetry::StringValue::from("acme corp"))
    );
    span.succeeded();

    let consumer = h.span("eventsource.event_bus.consume OrderCreated");
    assert_eq!(
        consumer.span_context.trace_id(),
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(
        consumer.parent_span_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap()
    );
    assert_eq!(
        consumer.span_context.trace_state().get("rojo"),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(attr(&consumer, "messaging.kafka.message.key"), None);
}

#[test]
fn a_poison_or_missing_traceparent_starts_a_new_trace() {
    let h = TraceHarness::new();
    let t = h.telemetry();
    let mut headers = Headers::new();
    headers.insert("traceparent", &b"\xff\xfe not utf-8"[..]);
    t.consume_span(&record(None), &headers).succeeded();
    let consumer = h.span("eventsource.event_bus.consume OrderCreated");
    assert_eq!(consumer.parent_span_id, SpanId::INVALID);
    assert!(consumer.span_context.is_valid());
}

#[test]
fn failures_end_spans_with_error_status_and_the_exception() {
    for (mode, publish, consume) in [
        (
            SemconvStability::Reference,
            "eventsource.event_bus.publish OrderCreated",
            "eventsource.event_bus.consume OrderCreated",
        ),
        (
            SemconvStability::Messaging,
            "send orders.stream",
            "process orders.stream",
        ),
    ] {
        failures_in(mode, publish, consume);
    }
}

fn failures_in(mode: SemconvStability, publish: &str, consume: &str) {
    let h = TraceHarness::new();
    let t = h.telemetry_in(mode);
    t.publish_span("orders.stream", &order_created())
        .failed("KafkaTimeoutError", &Boom);
    let span = t.consume_span(&record(None), &Headers::new());
    span.handler_span("send_invoice", &EVENT_ID)
        .failed("ValueError", &Boom);
    span.failed("ValueError", &Boom);

    for (name, error_type) in [
        (publish, "KafkaTimeoutError"),
        (consume, "ValueError"),
        ("eventsource.event_bus.dispatch send_invoice", "ValueError"),
    ] {
        let span = h.span(name);
        assert_eq!(span.status, Status::error("handler exploded"), "{name}");
        // `error.type` is the conventions'; eventsource-py records only the exception.
        let want = mode.messaging().then(|| s(error_type));
        assert_eq!(attr(&span, "error.type"), want, "{name}");
        let events: Vec<_> = span.events.iter().collect();
        assert_eq!(events.len(), 1, "{name}");
        assert_eq!(events[0].name, "exception");
        let ev = attrs(events[0].attributes.iter());
        assert_eq!(ev.get("exception.type"), Some(&s(error_type)));
        assert_eq!(ev.get("exception.message"), Some(&s("handler exploded")));
    }
    // No ack: no partition or offset on the failed publish.
    let producer = h.span(publish);
    assert_eq!(attr(&producer, "messaging.kafka.offset"), None);
}

#[test]
fn disabled_tracing_writes_no_headers_and_no_spans() {
    let h = TraceHarness::new();
    let t = Telemetry::builder()
        .metrics(false)
        .tracing(false)
        .tracer_provider(&h.provider)
        .build();
    assert!(!t.is_tracing());
    let headers = publish(&t);
    assert_eq!(headers.len(), 2);
    let mut with_parent = headers.clone();
    with_parent.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    let span = t.consume_span(&record(None), &with_parent);
    assert!(span.context().is_none());
    assert!(!t.extract(&with_parent).has_active_span());
    consume(&t, &with_parent);
    assert!(h.exporter.get_finished_spans().unwrap().is_empty());
}

#[test]
fn retry_and_dlq_records_keep_the_original_trace_headers() {
    // crate::dlq's header functions keep every original header; this pins that for the trace headers and
    // checks the retried and dead-lettered records still continue the producer's trace.
    let h = TraceHarness::new();
    let t = h.telemetry();
    let baggage_cx = Context::new().with_baggage([KeyValue::new("tenant", "acme")]);
    let mut original = Headers::new();
    original.insert("event_type", "OrderCreated");
    let span = t.publish_span_in(&baggage_cx, "orders.stream", &order_created());
    span.inject(&mut original);
    span.acked(2, 41);
    let trace: Vec<_> = TRACE_HEADERS
        .iter()
        .map(|k| original.text(k).map(str::to_owned))
        .collect();
    assert!(trace[0].is_some() && trace[2].as_deref() == Some("tenant=acme"));

    let retry = crate::dlq::retry_headers(&original, 1, 1_714_979_291.5);
    let mut dead = original.clone();
    crate::dlq::DeadLetter {
        reason: crate::dlq::DlqReason::MaxRetriesExceeded,
        error_type: "ValueError".into(),
        error_message: "boom".into(),
        retry_count: 3,
        timestamp: time::OffsetDateTime::UNIX_EPOCH,
        original_topic: "orders.stream".into(),
        original_partition: 2,
        original_offset: 41,
        consumer_group: "billing".into(),
    }
    .append_headers(&mut dead);
    let replay = crate::dlq::replay_headers(&dead);
    let mut rebuilt = Headers::new();
    copy_trace_headers(&original, &mut rebuilt);

    let producer = h.span("eventsource.event_bus.publish OrderCreated");
    for (what, headers) in [
        ("retry", &retry),
        ("dlq", &dead),
        ("replay", &replay),
        ("copy", &rebuilt),
    ] {
        let now: Vec<_> = TRACE_HEADERS
            .iter()
            .map(|k| headers.text(k).map(str::to_owned))
            .collect();
        assert_eq!(now, trace, "{what}");
        let cx = t.extract(headers);
        assert_eq!(
            cx.span().span_context().span_id(),
            producer.span_context.span_id(),
            "{what}"
        );
    }
}

#[test]
fn header_carrier_replaces_and_reads_only_utf8() {
    let mut headers = Headers::new();
    headers.insert("traceparent", "old");
    headers.insert("event_type", "OrderCreated");
    headers.insert("traceparent", "older");
    headers.set_text("traceparent", "new".to_owned());
    let pairs: Vec<_> = headers.iter().map(|x| (x.key, x.value.unwrap())).collect();
    assert_eq!(
        pairs,
        [("event_type", &b"OrderCreated"[..]), ("traceparent", b"new")]
    );
    assert_eq!(HeaderCarrier::keys(&headers), ["event_type", "traceparent"]);
    headers.insert_null("baggage");
    headers.insert("tracestate", &b"\xff"[..]);
    assert_eq!(headers.text("baggage"), None);
    assert_eq!(headers.text("tracestate"), None);
}

#[test]
fn handles_and_spans_cross_tasks() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Telemetry>();
    send_sync::<BusMetrics>();
    send_sync::<PublishSpan>();
    send_sync::<ConsumeSpan>();
    send_sync::<HandlerSpan>();
}

#[test]
fn a_sampled_out_publish_span_still_propagates_but_records_nothing() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff)
        .with_simple_exporter(exporter.clone())
        .build();
    let t = Telemetry::builder()
        .metrics(false)
        .tracer_provider(&provider)
        .build();
    let headers = publish(&t);
    // W3C: an unsampled span's context still travels, with the sampled flag off.
    assert!(headers.get_str("traceparent").unwrap().ends_with("-00"));
    assert!(exporter.get_finished_spans().unwrap().is_empty());
}

#[test]
fn without_an_sdk_no_trace_starts_but_an_incoming_one_passes_through() {
    // The global tracer provider is OpenTelemetry's no-op one (nothing in the crate installs another).
    let t = Telemetry::global(true, true, "billing");
    assert!(t.is_tracing());
    let headers = publish(&t);
    assert_eq!(headers.get("traceparent"), None);

    let mut incoming = Headers::new();
    incoming.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    let parent = t.extract(&incoming);
    let span = t.publish_span_in(&parent, "orders.stream", &order_created());
    let mut out = Headers::new();
    span.inject(&mut out);
    span.acked(0, 1);
    assert_eq!(out.get_str("traceparent"), incoming.get_str("traceparent"));
}

#[test]
fn the_noop_tracer_is_recognised_and_a_real_one_is_not() {
    use opentelemetry::global::BoxedTracer;
    // No SDK installed in unit tests: the global tracer is the no-op one.
    assert!(crate::telemetry::spans::Tracing::is_noop(
        &opentelemetry::global::tracer("probe-test")
    ));
    let h = TraceHarness::new();
    let real = BoxedTracer::new(Box::new(h.provider.tracer("probe-test")));
    assert!(!crate::telemetry::spans::Tracing::is_noop(&real));
    // The probe's parent is not sampled: the SDK exported nothing.
    assert!(h.exporter.get_finished_spans().unwrap().is_empty());
}

#[test]
fn with_the_noop_tracer_a_record_still_carries_its_trace_context_to_the_handlers() {
    let telemetry = Telemetry::builder().metrics(false).build();
    let parent = SpanContext::new(
        TraceId::from(7u128),
        SpanId::from(9u64),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let mut headers = Headers::new();
    W3cPropagator::new().inject_context(
        &Context::new().with_remote_span_context(parent.clone()),
        &mut HeaderInjector(&mut headers),
    );
    let span = telemetry.consume_span(&record(None), &headers);
    let cx = span.context().expect("the headers' context");
    assert_eq!(cx.span().span_context(), &parent);
    assert!(span.handler_span("h", &EVENT_ID).context().is_none());
    span.succeeded();
    // No trace headers: nothing to carry.
    assert!(
        telemetry
            .consume_span(&record(None), &Headers::new())
            .context()
            .is_none()
    );
    // Baggage without a traceparent: no parent span either.
    let mut baggage_only = Headers::new();
    baggage_only.insert(BAGGAGE, "tenant=t1");
    assert!(
        telemetry
            .consume_span(&record(None), &baggage_only)
            .context()
            .is_none()
    );
}

/// A propagator that reads its parent from a header of its own (`x-parent: <span id>`).
#[derive(Debug)]
struct OwnHeaderPropagator;

impl opentelemetry::propagation::TextMapPropagator for OwnHeaderPropagator {
    fn inject_context(&self, _cx: &Context, _injector: &mut dyn opentelemetry::propagation::Injector) {}

    fn extract_with_context(
        &self,
        cx: &Context,
        extractor: &dyn opentelemetry::propagation::Extractor,
    ) -> Context {
        match extractor.get("x-parent").and_then(|v| v.parse::<u64>().ok()) {
            Some(span) => cx.with_remote_span_context(SpanContext::new(
                TraceId::from(1u128),
                SpanId::from(span),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            )),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        opentelemetry::propagation::text_map_propagator::FieldIter::new(&[])
    }
}

#[test]
fn with_the_noop_tracer_a_custom_propagator_still_reads_its_own_headers() {
    let telemetry = Telemetry::builder()
        .metrics(false)
        .propagator(OwnHeaderPropagator)
        .build();
    let mut headers = Headers::new();
    headers.insert("x-parent", "42");
    let span = telemetry.consume_span(&record(None), &headers);
    let cx = span.context().expect("the propagator's context");
    assert_eq!(cx.span().span_context().span_id(), SpanId::from(42u64));
    span.succeeded();
}
