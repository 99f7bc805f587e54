//! OpenTelemetry with the bus: an SDK with stdout exporters, then a publish and a consume, whose spans
//! (producer → consumer → handler, one trace) and metrics are printed.
//!
//! ```text
//! cargo run --example telemetry
//! ```
//!
//! In production, swap the stdout exporters for OTLP ones (`opentelemetry-otlp`); the bus only uses the
//! OpenTelemetry API and records on the global tracer and meter providers (or on the ones given to
//! `KafkaEventBus::with_telemetry`).

mod common;

use std::{error::Error, sync::Arc, time::Duration};

use common::{OrderCreated, config};
use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus},
    event::DomainEvent,
    testing::TestBroker,
};
use opentelemetry_sdk::{
    metrics::{PeriodicReader, SdkMeterProvider},
    trace::SdkTracerProvider,
};
use tokio::sync::mpsc;
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // The SDK: spans and metrics to stdout.
    let tracer_provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(opentelemetry_stdout::MetricExporter::default()).build())
        .build();
    opentelemetry::global::set_meter_provider(meter_provider.clone());

    // The bus, as anywhere else: enable_tracing and enable_metrics are on by default.
    let broker = TestBroker::start().await?;
    let prefix = format!("telemetry-{}", Uuid::new_v4().simple());
    let bus = KafkaEventBus::new(config(&broker, Some(&prefix), Some(&prefix))?)?;
    bus.connect().await?;
    bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(1))
        .await?;
    let (done, mut handled) = mpsc::unbounded_channel();
    bus.subscribe(move |event: Arc<DomainEvent<OrderCreated>>| {
        let _ = done.send(event.meta.event_id);
        std::future::ready(Ok(()))
    })?;
    let consuming = bus.start_consuming_in_background()?;
    let event = DomainEvent::new(
        Uuid::new_v4(),
        1,
        OrderCreated {
            customer_id: "customer-123".into(),
        },
    );
    bus.publish_event(event).await?;
    tokio::time::timeout(Duration::from_secs(60), handled.recv()).await?;
    bus.shutdown(Duration::from_secs(30)).await?;
    consuming.wait().await?;

    // Flush what is buffered before exiting.
    tracer_provider.shutdown()?;
    meter_provider.shutdown()?;
    Ok(())
}
