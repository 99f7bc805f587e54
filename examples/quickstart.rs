//! The quick start of the user guide, end to end: declare an event, connect the bus, create its topics,
//! subscribe a handler, consume in the background, publish, wait until it was handled, and shut down.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Every setting comes from `KAFKA_*` environment variables (`KafkaEventBusConfig::from_env`). When
//! `KAFKA_BOOTSTRAP_SERVERS` is unset, a throwaway local broker is started and stopped on exit.

use std::{
    error::Error,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus, KafkaEventBusConfig, TopicOptions},
    event::{DomainEvent, Event},
    testing::TestBroker,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An order was placed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderCreated {
    customer_id: String,
}

impl Event for OrderCreated {
    const EVENT_TYPE: &'static str = "OrderCreated";
    const AGGREGATE_TYPE: &'static str = "Order";
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // A local broker unless KAFKA_BOOTSTRAP_SERVERS names one; stopped when `broker` is dropped.
    let broker = TestBroker::start().await?;
    tokio::select! {
        result = run(&broker) => result,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            Ok(())
        }
    }
}

async fn run(broker: &TestBroker) -> Result<(), Box<dyn Error>> {
    let mut config = KafkaEventBusConfig::from_env()?;
    config.bootstrap_servers = broker.bootstrap_servers().to_owned();
    if std::env::var_os("KAFKA_TOPIC_PREFIX").is_none() {
        config.topic_prefix = "orders".into();
    }
    if std::env::var_os("KAFKA_CONSUMER_GROUP").is_none() {
        config.consumer_group = "order-processor".into();
    }
    if broker.is_local() {
        // The local test broker holds a group's first join for half the session timeout.
        config.session_timeout_ms = 6_000;
        config.heartbeat_interval_ms = 1_000;
    }

    // Create and connect (the producer only: publishing never joins the group), then create the topics
    // (the bus never lets a broker create them on its own).
    let bus = KafkaEventBus::new(config)?;
    bus.connect().await?;
    bus.ensure_topics(TopicOptions::new().partitions(3).replication_factor(1))
        .await?;

    // Subscribe a handler.
    let handled = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&handled);
    bus.subscribe(move |event: Arc<DomainEvent<OrderCreated>>| {
        let count = Arc::clone(&count);
        async move {
            println!(
                "Order created: {} (customer {})",
                event.meta.aggregate_id, event.payload.customer_id
            );
            count.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    })?;

    // Start consuming in the background, and wait until the group assigned us partitions.
    let consuming = bus.start_consuming_in_background()?;
    bus.wait_for_assignment(Duration::from_secs(60)).await?;

    // Publish an event: returns once the broker has acknowledged it.
    let event = DomainEvent::new(
        Uuid::new_v4(),
        1,
        OrderCreated {
            customer_id: "customer-123".into(),
        },
    );
    let id = event.meta.event_id;
    bus.publish_event(event).await?;
    println!("published {id}");

    // Wait until everything published so far was handled (no sleeping, no polling).
    bus.wait_caught_up(Duration::from_secs(60)).await?;
    if handled.load(Ordering::Relaxed) == 0 {
        return Err("the handler did not see the event".into());
    }

    // Shut down: stop consuming, commit, leave the group, flush the producer.
    bus.shutdown(Duration::from_secs(30)).await?;
    consuming.wait().await?;
    println!("stats: {}", bus.stats());
    Ok(())
}
