//! Telemetry through the bus on a real broker, with the OpenTelemetry SDK's in-memory exporters: a
//! publish → consume round trip gives a consumer span whose parent is the producer span, handler spans
//! under it, and the bus's metrics with their attributes.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus},
    event::DomainEvent,
    telemetry::{SemconvStability, Telemetry},
};
use opentelemetry::{
    KeyValue,
    metrics::MeterProvider as _,
    trace::{SpanKind, Status},
};
use opentelemetry_sdk::{
    metrics::{
        InMemoryMetricExporter, PeriodicReader, SdkMeterProvider,
        data::{AggregatedMetrics, MetricData},
    },
    trace::{InMemorySpanExporter, SdkTracerProvider},
};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{bus::config, support::OrderCreated, support::unique, trial};

fn has(attributes: &[KeyValue], key: &str, value: &str) -> bool {
    attributes
        .iter()
        .any(|kv| kv.key.as_str() == key && kv.value.as_str() == value)
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "round_trip_spans_and_metrics",
        |ctx| async move {
            let spans = InMemorySpanExporter::default();
            let tracer_provider = SdkTracerProvider::builder()
                .with_simple_exporter(spans.clone())
                .build();
            let metrics = InMemoryMetricExporter::default();
            let meter_provider = SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(metrics.clone()).build())
                .build();
            let prefix = unique("otel");
            let telemetry = Telemetry::builder()
                .meter(meter_provider.meter("eventsource.bus.kafka"))
                .tracer_provider(&tracer_provider)
                .consumer_group(prefix.clone())
                // eventsource-py's names are asserted: whatever OTEL_SEMCONV_STABILITY_OPT_IN says.
                .semconv(SemconvStability::Reference)
                .build();
            let bus = KafkaEventBus::with_telemetry(config(ctx, &prefix, &prefix), telemetry).unwrap();
            bus.connect().await.unwrap();
            bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(1))
                .await
                .unwrap();
            let (tx, mut rx) = mpsc::unbounded_channel();
            let attempts = Arc::new(AtomicU32::new(0));
            let a = Arc::clone(&attempts);
            bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
                let first = a.fetch_add(1, Ordering::SeqCst) == 0;
                if !first {
                    let _ = tx.send(e.meta.event_id);
                }
                std::future::ready(if first {
                    Err("first attempt fails".into())
                } else {
                    Ok(())
                })
            })
            .unwrap();
            bus.start_consuming_in_background().unwrap();
            let event = DomainEvent::new(
                Uuid::new_v4(),
                1,
                OrderCreated {
                    customer_id: "c".into(),
                },
            );
            let id = event.meta.event_id;
            bus.publish_event(event).await.unwrap();
            assert_eq!(
                tokio::time::timeout(Duration::from_secs(30), rx.recv())
                    .await
                    .unwrap(),
                Some(id)
            );
            bus.shutdown(Duration::from_secs(10)).await.unwrap();

            // Spans: producer → consumer (child, through the record headers) → handler attempts.
            let finished = spans.get_finished_spans().unwrap();
            let producer = finished
                .iter()
                .find(|s| s.span_kind == SpanKind::Producer)
                .expect("a producer span");
            let consumer = finished
                .iter()
                .find(|s| s.span_kind == SpanKind::Consumer)
                .expect("a consumer span");
            assert_eq!(consumer.span_context.trace_id(), producer.span_context.trace_id());
            assert_eq!(consumer.parent_span_id, producer.span_context.span_id());
            assert!(has(
                &producer.attributes,
                "messaging.destination",
                &format!("{prefix}.stream")
            ));
            assert!(has(
                &consumer.attributes,
                "messaging.kafka.consumer_group",
                &prefix
            ));
            assert_eq!(consumer.status, Status::Ok);
            let handlers: Vec<_> = finished
                .iter()
                .filter(|s| s.span_kind == SpanKind::Internal)
                .collect();
            assert_eq!(handlers.len(), 2, "one span per handler attempt");
            assert!(
                handlers
                    .iter()
                    .all(|h| h.parent_span_id == consumer.span_context.span_id())
            );
            assert!(handlers.iter().any(|h| matches!(h.status, Status::Error { .. })));

            // Metrics: what the round trip must have recorded.
            meter_provider.force_flush().unwrap();
            let mut names = BTreeSet::new();
            for rm in metrics.get_finished_metrics().unwrap() {
                for sm in rm.scope_metrics() {
                    for m in sm.metrics() {
                        names.insert(m.name().to_owned());
                    }
                }
            }
            for name in [
                "kafka.eventbus.messages.published",
                "kafka.eventbus.publish.duration",
                "kafka.eventbus.batch.size",
                "kafka.eventbus.messages.consumed",
                "kafka.eventbus.consume.duration",
                "kafka.eventbus.handler.invocations",
                "kafka.eventbus.handler.errors",
                "kafka.eventbus.handler.duration",
                "kafka.eventbus.connections.active",
            ] {
                assert!(names.contains(name), "{name} missing from {names:?}");
            }
        },
    ));

    trials.push(trial(
        "connections_active_is_cleared_on_close",
        |ctx| async move {
            let metrics = InMemoryMetricExporter::default();
            let meter_provider = SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(metrics.clone()).build())
                .build();
            let prefix = unique("otel-active");
            let telemetry = Telemetry::builder()
                .meter(meter_provider.meter("eventsource.bus.kafka"))
                .tracing(false)
                .consumer_group(prefix.clone())
                .semconv(SemconvStability::Reference)
                .build();
            let active = || {
                metrics.reset();
                meter_provider.force_flush().unwrap();
                let mut values = Vec::new();
                for rm in metrics.get_finished_metrics().unwrap() {
                    for sm in rm.scope_metrics() {
                        for m in sm.metrics() {
                            if m.name() == "kafka.eventbus.connections.active"
                                && let AggregatedMetrics::I64(MetricData::Gauge(gauge)) = m.data()
                            {
                                values.extend(gauge.data_points().map(|p| p.value()));
                            }
                        }
                    }
                }
                values
            };
            let bus = KafkaEventBus::with_telemetry(config(ctx, &prefix, &prefix), telemetry).unwrap();
            assert_eq!(active(), [0], "before connect");
            bus.connect().await.unwrap();
            assert_eq!(active(), [1], "connected");
            bus.close().await.unwrap();
            // The bus is closed but still alive (not dropped): the gauge must say so.
            assert!(!bus.is_connected());
            assert_eq!(active(), [0], "closed");
            drop(bus);
            assert_eq!(active(), [0], "dropped");
        },
    ));

    trials.push(trial(
        "messaging_semconv_round_trip",
        |ctx| async move {
            let spans = InMemorySpanExporter::default();
            let tracer_provider = SdkTracerProvider::builder()
                .with_simple_exporter(spans.clone())
                .build();
            let metrics = InMemoryMetricExporter::default();
            let meter_provider = SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(metrics.clone()).build())
                .build();
            let prefix = unique("otel-semconv");
            let topic = format!("{prefix}.stream");
            let telemetry = Telemetry::builder()
                .meter(meter_provider.meter("eventsource.bus.kafka"))
                .tracer_provider(&tracer_provider)
                // No consumer_group: the bus's config names the group for spans and metrics alike.
                .semconv(SemconvStability::Messaging)
                .build();
            let bus = KafkaEventBus::with_telemetry(config(ctx, &prefix, &prefix), telemetry).unwrap();
            bus.connect().await.unwrap();
            bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(1))
                .await
                .unwrap();
            let (tx, mut rx) = mpsc::unbounded_channel();
            bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
                let _ = tx.send(e.meta.event_id);
                std::future::ready(Ok(()))
            })
            .unwrap();
            bus.start_consuming_in_background().unwrap();
            let event = DomainEvent::new(
                Uuid::new_v4(),
                1,
                OrderCreated {
                    customer_id: "c".into(),
                },
            );
            let id = event.meta.event_id;
            bus.publish_event(event).await.unwrap();
            assert_eq!(
                tokio::time::timeout(Duration::from_secs(30), rx.recv())
                    .await
                    .unwrap(),
                Some(id)
            );
            bus.shutdown(Duration::from_secs(10)).await.unwrap();

            let finished = spans.get_finished_spans().unwrap();
            let producer = finished
                .iter()
                .find(|s| s.span_kind == SpanKind::Producer)
                .expect("a producer span");
            let consumer = finished
                .iter()
                .find(|s| s.span_kind == SpanKind::Consumer)
                .expect("a consumer span");
            assert_eq!(producer.name, format!("send {topic}"));
            assert_eq!(consumer.name, format!("process {topic}"));
            assert_eq!(consumer.parent_span_id, producer.span_context.span_id());
            assert!(has(&consumer.attributes, "messaging.destination.name", &topic));
            assert!(has(
                &consumer.attributes,
                "messaging.consumer.group.name",
                &prefix
            ));
            assert!(
                !consumer
                    .attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "messaging.source")
            );

            meter_provider.force_flush().unwrap();
            let mut names = BTreeSet::new();
            let mut consume_groups = BTreeSet::new();
            for rm in metrics.get_finished_metrics().unwrap() {
                for sm in rm.scope_metrics() {
                    for m in sm.metrics() {
                        names.insert(m.name().to_owned());
                        let attributes: Vec<Vec<KeyValue>> = match m.data() {
                            AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                                .data_points()
                                .map(|p| p.attributes().cloned().collect())
                                .collect(),
                            AggregatedMetrics::F64(MetricData::Histogram(h)) => h
                                .data_points()
                                .map(|p| p.attributes().cloned().collect())
                                .collect(),
                            _ => Vec::new(),
                        };
                        if matches!(
                            m.name(),
                            "messaging.client.consumed.messages" | "messaging.process.duration"
                        ) {
                            for point in attributes {
                                for kv in point {
                                    if kv.key.as_str() == "messaging.consumer.group.name" {
                                        consume_groups.insert((m.name().to_owned(), kv.value.to_string()));
                                    }
                                }
                            }
                        }
                    }
                }
            }
            assert_eq!(
                consume_groups,
                BTreeSet::from([
                    ("messaging.client.consumed.messages".to_owned(), prefix.clone()),
                    ("messaging.process.duration".to_owned(), prefix.clone()),
                ]),
                "the consume metrics' group is the config's"
            );
            for name in [
                "messaging.client.sent.messages",
                "messaging.client.consumed.messages",
                "messaging.client.operation.duration",
                "messaging.process.duration",
            ] {
                assert!(names.contains(name), "{name} missing from {names:?}");
            }
            assert!(
                !names.iter().any(|n| n.starts_with("kafka.eventbus.messages.")),
                "eventsource-py's publish/consume instruments in messaging mode: {names:?}"
            );
        },
    ));

    trials.push(trial(
        "messaging_failure_metrics_carry_error_type",
        |ctx| async move {
            let metrics = InMemoryMetricExporter::default();
            let meter_provider = SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(metrics.clone()).build())
                .build();
            let prefix = unique("otel-fail");
            let telemetry = Telemetry::builder()
                .meter(meter_provider.meter("eventsource.bus.kafka"))
                .tracing(false)
                .consumer_group(prefix.clone())
                .semconv(SemconvStability::Messaging)
                .build();
            let bus = KafkaEventBus::with_telemetry(config(ctx, &prefix, &prefix), telemetry).unwrap();
            bus.connect().await.unwrap();
            bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(1))
                .await
                .unwrap();
            bus.subscribe(|_: Arc<DomainEvent<OrderCreated>>| {
                std::future::ready(Err(
                    kafka_event_bus::bus::PermanentError::new("invalid order").into()
                ))
            })
            .unwrap();
            bus.start_consuming_in_background().unwrap();
            let event = DomainEvent::new(
                Uuid::new_v4(),
                1,
                OrderCreated {
                    customer_id: "c".into(),
                },
            );
            bus.publish_event(event).await.unwrap();
            crate::group_support::eventually("the DLQ record", Duration::from_secs(30), || {
                bus.stats().messages_sent_to_dlq == 1
            })
            .await;
            let dlq_topic = bus.config().dlq_topic_name();
            bus.shutdown(Duration::from_secs(10)).await.unwrap();

            meter_provider.force_flush().unwrap();
            let mut process_errors = Vec::new();
            let mut sent_to = BTreeSet::new();
            for rm in metrics.get_finished_metrics().unwrap() {
                for sm in rm.scope_metrics() {
                    for m in sm.metrics() {
                        match (m.name(), m.data()) {
                            (
                                "messaging.process.duration",
                                AggregatedMetrics::F64(MetricData::Histogram(h)),
                            ) => {
                                for p in h.data_points() {
                                    let attributes: Vec<KeyValue> = p.attributes().cloned().collect();
                                    if let Some(kv) =
                                        attributes.iter().find(|kv| kv.key.as_str() == "error.type")
                                    {
                                        process_errors.push(kv.value.to_string());
                                    }
                                }
                            }
                            (
                                "messaging.client.sent.messages",
                                AggregatedMetrics::U64(MetricData::Sum(sum)),
                            ) => {
                                for p in sum.data_points() {
                                    let attributes: Vec<KeyValue> = p.attributes().cloned().collect();
                                    if let Some(kv) = attributes
                                        .iter()
                                        .find(|kv| kv.key.as_str() == "messaging.destination.name")
                                    {
                                        sent_to.insert(kv.value.to_string());
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            assert_eq!(
                process_errors.len(),
                1,
                "a failed record's process.duration has error.type"
            );
            assert!(
                sent_to.contains(&dlq_topic),
                "the DLQ send is a sent message: {sent_to:?}"
            );
        },
    ));
}
