//! Every instrument's name, kind, unit, attributes and value, and the gauges' shared state.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::Value;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

use super::{attrs, s};
use crate::telemetry::*;

struct MetricsHarness {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl MetricsHarness {
    fn new() -> Self {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Self { provider, exporter }
    }

    fn telemetry(&self, metrics: bool) -> Telemetry {
        self.telemetry_in(metrics, SemconvStability::Reference)
    }

    fn telemetry_in(&self, metrics: bool, mode: SemconvStability) -> Telemetry {
        Telemetry::builder()
            .meter(self.provider.meter(METER_NAME))
            .metrics(metrics)
            .tracing(false)
            .consumer_group("billing")
            .semconv(mode)
            .build()
    }

    /// The latest export, by instrument name.
    fn collect(&self) -> BTreeMap<String, Seen> {
        self.exporter.reset();
        self.provider.force_flush().unwrap();
        let mut out = BTreeMap::new();
        for rm in self.exporter.get_finished_metrics().unwrap() {
            for sm in rm.scope_metrics() {
                assert_eq!(sm.scope().name(), METER_NAME);
                for m in sm.metrics() {
                    let (kind, number, points, sums) = read(m);
                    let seen = Seen {
                        unit: m.unit().to_owned(),
                        kind,
                        number,
                        points,
                        sums,
                    };
                    out.insert(m.name().to_owned(), seen);
                }
            }
        }
        out
    }
}

/// One exported instrument, flattened.
#[derive(Debug)]
struct Seen {
    unit: String,
    kind: Kind,
    number: &'static str,
    points: Vec<Point>,
    sums: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    Histogram,
    Gauge,
}

/// One data point flattened: its attributes (sorted) and its value (sum, count for histograms, gauge
/// value), as f64.
type Point = (BTreeMap<String, Value>, f64);

fn flatten<T: Copy>(data: &MetricData<T>, f: fn(T) -> f64) -> (Kind, Vec<Point>, Vec<f64>) {
    match data {
        MetricData::Sum(s) => {
            assert!(s.is_monotonic());
            let pts = s
                .data_points()
                .map(|p| (attrs(p.attributes()), f(p.value())))
                .collect();
            (Kind::Counter, pts, vec![])
        }
        MetricData::Histogram(h) => {
            let pts = h
                .data_points()
                .map(|p| (attrs(p.attributes()), p.count() as f64))
                .collect();
            let sums = h.data_points().map(|p| f(p.sum())).collect();
            (Kind::Histogram, pts, sums)
        }
        MetricData::Gauge(g) => {
            let pts = g
                .data_points()
                .map(|p| (attrs(p.attributes()), f(p.value())))
                .collect();
            (Kind::Gauge, pts, vec![])
        }
        MetricData::ExponentialHistogram(_) => panic!("unexpected exponential histogram"),
    }
}

/// (kind, number type, points, histogram sums) of a metric.
fn read(m: &Metric) -> (Kind, &'static str, Vec<Point>, Vec<f64>) {
    let ((k, p, s), ty) = match m.data() {
        AggregatedMetrics::F64(d) => (flatten(d, |v| v), "f64"),
        AggregatedMetrics::U64(d) => (flatten(d, |v| v as f64), "u64"),
        AggregatedMetrics::I64(d) => (flatten(d, |v| v as f64), "i64"),
    };
    (k, ty, p, s)
}

/// (name, kind, unit, number type, attributes, value or histogram count, histogram sum).
type Expected = (
    &'static str,
    Kind,
    &'static str,
    &'static str,
    BTreeMap<String, Value>,
    f64,
    Option<f64>,
);

fn expect(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

#[test]
fn every_instrument_has_its_name_kind_unit_attributes_and_value() {
    let h = MetricsHarness::new();
    let t = h.telemetry(true);
    let m = t.metrics();
    m.published("orders.stream", "OrderCreated");
    m.published("orders.stream", "OrderCreated");
    m.publish_error("orders.stream", "OrderCreated", "KafkaTimeoutError");
    m.publish_duration("orders.stream", Duration::from_millis(12));
    m.batch_size(3);
    m.consumed("orders.stream", 2, "OrderCreated");
    m.consume_duration("orders.stream", Duration::from_micros(5500));
    m.handler_invocation("send_invoice", "OrderCreated");
    m.handler_error("send_invoice", "OrderCreated", "ValueError");
    m.handler_duration("send_invoice", "OrderCreated", Duration::from_millis(7));
    m.dlq("max_retries_exceeded", "ValueError");
    m.connection_error("ConnectionError");
    m.reconnection();
    m.reconnection();
    m.rebalance("billing");
    m.corrupt_batch("orders.stream", 2, "CrcMismatch");
    m.set_connected(true);
    m.set_lag("orders.stream", 2, 120, 100);

    let topic = || ("messaging.destination", s("orders.stream"));
    let kafka = || ("messaging.system", s("kafka"));
    let ty = || ("event.type", s("OrderCreated"));
    let handler = || ("handler.name", s("send_invoice"));
    let group = || ("messaging.kafka.consumer_group", s("billing"));
    let partition = || ("messaging.kafka.partition", Value::I64(2));
    #[rustfmt::skip]
    let table: Vec<Expected> = vec![
        (names::MESSAGES_PUBLISHED, Kind::Counter, "messages", "u64", expect(&[kafka(), topic(), ty()]), 2.0, None),
        (names::PUBLISH_ERRORS, Kind::Counter, "errors", "u64",
            expect(&[kafka(), topic(), ty(), ("error.type", s("KafkaTimeoutError"))]), 1.0, None),
        (names::PUBLISH_DURATION, Kind::Histogram, "ms", "f64", expect(&[topic()]), 1.0, Some(12.0)),
        (names::BATCH_SIZE, Kind::Histogram, "messages", "u64", expect(&[]), 1.0, Some(3.0)),
        (names::MESSAGES_CONSUMED, Kind::Counter, "messages", "u64",
            expect(&[kafka(), topic(), partition(), ty()]), 1.0, None),
        (names::CONSUME_DURATION, Kind::Histogram, "ms", "f64", expect(&[topic()]), 1.0, Some(5.5)),
        (names::HANDLER_INVOCATIONS, Kind::Counter, "invocations", "u64", expect(&[handler(), ty()]), 1.0, None),
        (names::HANDLER_ERRORS, Kind::Counter, "errors", "u64",
            expect(&[handler(), ty(), ("error.type", s("ValueError"))]), 1.0, None),
        (names::HANDLER_DURATION, Kind::Histogram, "ms", "f64", expect(&[handler(), ty()]), 1.0, Some(7.0)),
        (names::MESSAGES_DLQ, Kind::Counter, "messages", "u64",
            expect(&[("dlq.reason", s("max_retries_exceeded")), ("error.type", s("ValueError"))]), 1.0, None),
        (names::CONNECTION_ERRORS, Kind::Counter, "errors", "u64",
            expect(&[("error.type", s("ConnectionError"))]), 1.0, None),
        (names::RECONNECTIONS, Kind::Counter, "reconnections", "u64", expect(&[]), 2.0, None),
        (names::REBALANCES, Kind::Counter, "rebalances", "u64", expect(&[group()]), 1.0, None),
        (names::CORRUPT_BATCHES, Kind::Counter, "batches", "u64",
            expect(&[topic(), partition(), ("error.type", s("CrcMismatch"))]), 1.0, None),
        (names::CONNECTIONS_ACTIVE, Kind::Gauge, "connections", "i64", expect(&[group()]), 1.0, None),
        (names::CONSUMER_LAG, Kind::Gauge, "messages", "i64", expect(&[partition(), group(), topic()]), 20.0, None),
    ];
    assert_eq!(table.len(), 16);

    let got = h.collect();
    assert_eq!(got.len(), 16, "instruments: {:?}", got.keys().collect::<Vec<_>>());
    for (name, kind, unit, number, attributes, value, sum) in table {
        let metric = got.get(name).unwrap_or_else(|| panic!("{name} not exported"));
        assert_eq!(metric.unit, unit, "{name}");
        assert_eq!(metric.kind, kind, "{name}");
        assert_eq!(metric.number, number, "{name}");
        assert_eq!(metric.points, vec![(attributes, value)], "{name}");
        if let Some(sum) = sum {
            assert_eq!(metric.sums.len(), 1, "{name}");
            assert!(
                (metric.sums[0] - sum).abs() < 1e-9,
                "{name}: sum {:?} != {sum}",
                metric.sums
            );
        }
    }
}

fn gauge(got: &BTreeMap<String, Seen>, name: &str) -> Vec<Point> {
    got.get(name).map(|m| m.points.clone()).unwrap_or_default()
}

fn lag_by_partition(got: &BTreeMap<String, Seen>) -> BTreeMap<i64, f64> {
    gauge(got, names::CONSUMER_LAG)
        .into_iter()
        .map(|(a, v)| match a.get("messaging.kafka.partition") {
            Some(Value::I64(p)) => (*p, v),
            other => panic!("partition attribute {other:?}"),
        })
        .collect()
}

#[test]
fn gauges_follow_the_connection_and_the_lag_table() {
    let h = MetricsHarness::new();
    let t = h.telemetry(true);
    let m = t.metrics();

    // Not connected: active 0, no lag even for reported partitions.
    m.set_lag("orders.stream", 0, 50, 10);
    let got = h.collect();
    assert_eq!(
        gauge(&got, names::CONNECTIONS_ACTIVE)
            .iter()
            .map(|p| p.1)
            .collect::<Vec<_>>(),
        [0.0]
    );
    assert!(lag_by_partition(&got).is_empty());

    m.set_connected(true);
    m.set_lag("orders.stream", 0, 120, 100);
    m.set_lag("orders.stream", 1, 5, 9); // position past the watermark: 0, not negative
    let got = h.collect();
    assert_eq!(
        gauge(&got, names::CONNECTIONS_ACTIVE)
            .iter()
            .map(|p| p.1)
            .collect::<Vec<_>>(),
        [1.0]
    );
    assert_eq!(lag_by_partition(&got), BTreeMap::from([(0, 20.0), (1, 0.0)]));

    m.remove_lag("orders.stream", 1);
    assert_eq!(lag_by_partition(&h.collect()), BTreeMap::from([(0, 20.0)]));

    m.clear_lag();
    assert!(lag_by_partition(&h.collect()).is_empty());

    m.set_lag("orders.stream", 3, 7, 2);
    m.set_connected(false);
    let got = h.collect();
    assert_eq!(
        gauge(&got, names::CONNECTIONS_ACTIVE)
            .iter()
            .map(|p| p.1)
            .collect::<Vec<_>>(),
        [0.0]
    );
    assert!(lag_by_partition(&got).is_empty());
}

#[test]
fn dropped_metrics_report_disconnected() {
    let h = MetricsHarness::new();
    let t = h.telemetry(true);
    t.metrics().set_connected(true);
    t.metrics().set_lag("orders.stream", 0, 9, 1);
    drop(t);
    let got = h.collect();
    assert_eq!(
        gauge(&got, names::CONNECTIONS_ACTIVE)
            .iter()
            .map(|p| p.1)
            .collect::<Vec<_>>(),
        [0.0]
    );
    assert!(lag_by_partition(&got).is_empty());
}

#[test]
fn disabled_metrics_create_and_record_nothing() {
    let h = MetricsHarness::new();
    let t = h.telemetry(false);
    let m = t.metrics();
    assert!(!m.is_enabled());
    m.published("orders.stream", "OrderCreated");
    m.batch_size(3);
    m.set_connected(true);
    m.set_lag("orders.stream", 0, 10, 1);
    m.rebalance("billing");
    assert!(h.collect().is_empty());
}

/// Records one of each publish and consume measurement, as the bus does per record and per call.
fn record_flow(m: &BusMetrics) {
    m.published("orders.stream", "OrderCreated");
    m.published("orders.stream", "OrderCreated");
    m.publish_error("orders.stream", "OrderCreated", "KafkaTimeoutError");
    m.publish_duration("orders.stream", Duration::from_millis(12));
    m.batch_size(3);
    m.consumed("orders.stream", 2, "OrderCreated");
    m.consume_duration("orders.stream", Duration::from_micros(5500));
    m.handler_invocation("send_invoice", "OrderCreated");
}

const REFERENCE_FLOW: [&str; 6] = [
    names::MESSAGES_PUBLISHED,
    names::PUBLISH_ERRORS,
    names::PUBLISH_DURATION,
    names::BATCH_SIZE,
    names::MESSAGES_CONSUMED,
    names::CONSUME_DURATION,
];

const MESSAGING_FLOW: [&str; 4] = [
    "messaging.client.sent.messages",
    "messaging.client.consumed.messages",
    "messaging.client.operation.duration",
    "messaging.process.duration",
];

/// The messaging conventions' instruments: names, units (seconds) and attributes.
fn assert_messaging_flow(got: &BTreeMap<String, Seen>) {
    let kafka = || ("messaging.system", s("kafka"));
    let topic = || ("messaging.destination.name", s("orders.stream"));
    let ty = || ("eventsource.event.type", s("OrderCreated"));
    let group = || ("messaging.consumer.group.name", s("billing"));
    let send = || ("messaging.operation.name", s("send"));
    let process = || ("messaging.operation.name", s("process"));

    let sent = &got["messaging.client.sent.messages"];
    assert_eq!((sent.kind, sent.unit.as_str()), (Kind::Counter, "{message}"));
    let mut points = sent.points.clone();
    points.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(
        points,
        vec![
            (
                expect(&[
                    kafka(),
                    topic(),
                    send(),
                    ty(),
                    ("error.type", s("KafkaTimeoutError"))
                ]),
                1.0
            ),
            (expect(&[kafka(), topic(), send(), ty()]), 2.0),
        ]
    );

    let consumed = &got["messaging.client.consumed.messages"];
    assert_eq!(
        (consumed.kind, consumed.unit.as_str()),
        (Kind::Counter, "{message}")
    );
    assert_eq!(
        consumed.points,
        vec![(
            expect(&[
                kafka(),
                topic(),
                ("messaging.destination.partition.id", s("2")),
                group(),
                process(),
                ty()
            ]),
            1.0
        )]
    );

    let operation = &got["messaging.client.operation.duration"];
    assert_eq!((operation.kind, operation.unit.as_str()), (Kind::Histogram, "s"));
    assert_eq!(
        operation.points,
        vec![(
            expect(&[kafka(), topic(), send(), ("messaging.operation.type", s("send"))]),
            1.0
        )]
    );
    assert!((operation.sums[0] - 0.012).abs() < 1e-9, "{:?}", operation.sums);

    let process_duration = &got["messaging.process.duration"];
    assert_eq!(
        (process_duration.kind, process_duration.unit.as_str()),
        (Kind::Histogram, "s")
    );
    assert_eq!(
        process_duration.points,
        vec![(expect(&[kafka(), topic(), group(), process()]), 1.0)]
    );
    assert!(
        (process_duration.sums[0] - 0.0055).abs() < 1e-9,
        "{:?}",
        process_duration.sums
    );
}

#[test]
fn by_default_only_eventsource_py_instruments_exist() {
    let h = MetricsHarness::new();
    record_flow(h.telemetry_in(true, SemconvStability::Reference).metrics());
    let got = h.collect();
    for name in REFERENCE_FLOW.iter().chain([&names::HANDLER_INVOCATIONS]) {
        assert!(got.contains_key(*name), "{name} missing");
    }
    for name in MESSAGING_FLOW {
        assert!(!got.contains_key(name), "{name} emitted by default");
    }
}

#[test]
fn messaging_mode_has_only_the_conventions_publish_and_consume_instruments() {
    let h = MetricsHarness::new();
    let t = h.telemetry_in(true, SemconvStability::Messaging);
    record_flow(t.metrics());
    let got = h.collect();
    for name in REFERENCE_FLOW {
        assert!(!got.contains_key(name), "{name} emitted in messaging mode");
    }
    assert_messaging_flow(&got);
    // Instruments the conventions have no counterpart for keep their name.
    assert!(got.contains_key(names::HANDLER_INVOCATIONS));
    assert_eq!(got.len(), 6, "{:?}", got.keys().collect::<Vec<_>>());
}

#[test]
fn dup_mode_has_both_instrument_sets() {
    let h = MetricsHarness::new();
    let t = h.telemetry_in(true, SemconvStability::MessagingDup);
    record_flow(t.metrics());
    let got = h.collect();
    assert_messaging_flow(&got);
    let published = &got[names::MESSAGES_PUBLISHED];
    assert_eq!(published.unit, "messages");
    assert_eq!(published.points.len(), 1);
    assert_eq!(published.points[0].1, 2.0);
    assert_eq!(got[names::CONSUME_DURATION].unit, "ms");
    assert!((got[names::CONSUME_DURATION].sums[0] - 5.5).abs() < 1e-9);
    assert_eq!(got.len(), 6 + 4 + 2, "{:?}", got.keys().collect::<Vec<_>>());
}

#[test]
fn messaging_failures_carry_error_type_and_dlq_sends_are_sent_messages() {
    let h = MetricsHarness::new();
    let t = h.telemetry_in(true, SemconvStability::Messaging);
    let m = t.metrics();
    m.publish_failed_duration("orders.stream", Duration::from_millis(40), "KafkaTimeoutError");
    m.consume_failed_duration("orders.stream", Duration::from_millis(7), "ValueError");
    m.dlq_sent("orders.dlq", "OrderCreated");
    let got = h.collect();
    let error = |t: &str| ("error.type", s(t));
    let kafka = || ("messaging.system", s("kafka"));
    let send = || ("messaging.operation.name", s("send"));
    assert_eq!(
        got["messaging.client.operation.duration"].points,
        vec![(
            expect(&[
                kafka(),
                ("messaging.destination.name", s("orders.stream")),
                send(),
                ("messaging.operation.type", s("send")),
                error("KafkaTimeoutError"),
            ]),
            1.0
        )]
    );
    assert_eq!(
        got["messaging.process.duration"].points,
        vec![(
            expect(&[
                kafka(),
                ("messaging.destination.name", s("orders.stream")),
                ("messaging.consumer.group.name", s("billing")),
                ("messaging.operation.name", s("process")),
                error("ValueError"),
            ]),
            1.0
        )]
    );
    assert_eq!(
        got["messaging.client.sent.messages"].points,
        vec![(
            expect(&[
                kafka(),
                ("messaging.destination.name", s("orders.dlq")),
                send(),
                ("eventsource.event.type", s("OrderCreated")),
            ]),
            1.0
        )]
    );
}

#[test]
fn reference_mode_keeps_eventsource_py_counts_for_failures_and_dlq_sends() {
    let h = MetricsHarness::new();
    let t = h.telemetry_in(true, SemconvStability::Reference);
    let m = t.metrics();
    m.publish_failed_duration("orders.stream", Duration::from_millis(40), "KafkaTimeoutError");
    m.consume_failed_duration("orders.stream", Duration::from_millis(7), "ValueError");
    m.dlq_sent("orders.dlq", "OrderCreated");
    let got = h.collect();
    // Only consume.duration (which eventsource-py records for every outcome) is recorded, besides
    // the connection gauge, always observed.
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        [names::CONNECTIONS_ACTIVE, names::CONSUME_DURATION]
    );
}
