//! Record key and headers through the bus on a real broker: a handler reads, through `RecordContext`,
//! the key and every header that was published (eventsource-py's, the extra ones of `publish_with`,
//! and the bus's own trace context in place of a caller's trace headers); a reserved header name or a
//! trace header that is not printable ASCII is refused before anything is sent.

use std::{sync::Arc, time::Duration};

use kafka_event_bus::{
    bus::{Error, EventBus, KafkaEventBus, PublishOptions, RecordContext},
    event::DomainEvent,
    telemetry::{SemconvStability, Telemetry},
};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{bus::config, support::OrderCreated, support::unique, trial};

/// A caller's trace context, which the bus's producer span must replace.
const FORGED_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "handler_sees_key_and_published_headers",
        |ctx| async move {
            let spans = InMemorySpanExporter::default();
            let tracer_provider = SdkTracerProvider::builder()
                .with_simple_exporter(spans.clone())
                .build();
            let prefix = unique("hdrs");
            let telemetry = Telemetry::builder()
                .metrics(false)
                .tracer_provider(&tracer_provider)
                .consumer_group(prefix.clone())
                .semconv(SemconvStability::Reference)
                .build();
            let bus = KafkaEventBus::with_telemetry(config(ctx, &prefix, &prefix), telemetry).unwrap();
            bus.connect().await.unwrap();
            bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(1))
                .await
                .unwrap();

            let event = || {
                DomainEvent::new(
                    Uuid::new_v4(),
                    1,
                    OrderCreated {
                        customer_id: "c".into(),
                    },
                )
            };
            let refused = PublishOptions::new().header("correlation_id", "forged");
            let err = bus
                .publish_with(vec![event().into_any().unwrap()], refused)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::ReservedHeader { .. }), "{err}");
            let not_text = PublishOptions::new().header("baggage", &b"user=\xff"[..]);
            let err = bus
                .publish_with(vec![event().into_any().unwrap()], not_text)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::InvalidTraceHeader { .. }), "{err}");
            assert_eq!(
                bus.stats().events_published,
                0,
                "nothing of a refused call is sent"
            );

            let (tx, mut rx) = mpsc::unbounded_channel();
            bus.subscribe(move |_: Arc<DomainEvent<OrderCreated>>| {
                let context = RecordContext::current().expect("a Kafka handler has a record context");
                let _ = tx.send(context);
                std::future::ready(Ok(()))
            })
            .unwrap();
            bus.start_consuming_in_background().unwrap();
            let event = event();
            let aggregate_id = event.meta.aggregate_id.to_string();
            let options = PublishOptions::new()
                .header("x-tenant", "acme")
                .header("x-raw", &b"\xff\x00"[..])
                .header("traceparent", FORGED_TRACEPARENT)
                .header("tracestate", "vendor=forged")
                .header("baggage", "user=forged");
            bus.publish_with(vec![event.into_any().unwrap()], options)
                .await
                .unwrap();
            let context = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap()
                .unwrap();
            bus.shutdown(Duration::from_secs(10)).await.unwrap();

            assert_eq!(context.key_str(), Some(aggregate_id.as_str()));
            assert_eq!(context.key(), Some(aggregate_id.as_bytes()));
            let names: Vec<&str> = context.headers().iter().map(|h| h.key).collect();
            assert_eq!(
                names,
                [
                    "event_id",
                    "event_type",
                    "aggregate_id",
                    "aggregate_type",
                    "aggregate_version",
                    "occurred_at",
                    "correlation_id",
                    "x-tenant",
                    "x-raw",
                    "traceparent",
                ]
            );
            let headers = context.headers();
            assert_eq!(headers.get_str("event_type"), Some("OrderCreated"));
            assert_eq!(headers.get_str("aggregate_id"), Some(aggregate_id.as_str()));
            assert_eq!(headers.get_str("x-tenant"), Some("acme"));
            assert_eq!(headers.get("x-raw"), Some(&b"\xff\x00"[..]));
            // Tracing is on: the producer span's context replaced the caller's, tracestate and baggage
            // included (the names above hold no tracestate or baggage).
            let traceparent = headers.get_str("traceparent").unwrap();
            assert_ne!(traceparent, FORGED_TRACEPARENT);
            let producer = spans
                .get_finished_spans()
                .unwrap()
                .into_iter()
                .find(|s| s.span_kind == opentelemetry::trace::SpanKind::Producer)
                .expect("a producer span");
            assert!(traceparent.contains(&producer.span_context.span_id().to_string()));
        },
    ));
}
