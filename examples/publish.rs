//! Publishes `OrderCreated` events and prints one JSON line with the count and the rate.
//!
//! ```text
//! cargo run --example publish -- --prefix orders --count 1000 [--aggregates 100] [--rate 500]
//! ```
//!
//! Settings come from `KAFKA_*` variables; without `KAFKA_BOOTSTRAP_SERVERS`, a throwaway local broker
//! is used (and the events are lost with it).

mod common;

use std::{error::Error, time::Instant};

use common::{OrderCreated, arg, args, config};
use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus},
    event::DomainEvent,
    testing::TestBroker,
};
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = args();
    let count: usize = arg(&args, "count", 1000)?;
    let aggregates: usize = arg(&args, "aggregates", 100)?.max(1);
    let rate: f64 = arg(&args, "rate", 0.0)?;
    let broker = TestBroker::start().await?;
    let bus = KafkaEventBus::new(config(&broker, args.get("prefix"), None)?)?;
    bus.connect().await?;
    bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(6))
        .await?;

    let ids: Vec<Uuid> = (0..aggregates).map(|_| Uuid::new_v4()).collect();
    let started = Instant::now();
    // Batches of up to 500 events per publish call; with --rate, paced to that many events per second.
    let batch = if rate > 0.0 {
        (rate / 20.0).ceil().max(1.0) as usize
    } else {
        500
    };
    let mut sent = 0;
    while sent < count {
        let n = batch.min(count - sent);
        let events = (sent..sent + n)
            .map(|i| {
                let event = OrderCreated {
                    customer_id: format!("customer-{i}"),
                };
                DomainEvent::new(ids[i % aggregates], (i / aggregates + 1) as u64, event).into_any()
            })
            .collect::<Result<Vec<_>, _>>()?;
        bus.publish(events).await?;
        sent += n;
        if rate > 0.0 {
            let due = started + std::time::Duration::from_secs_f64(sent as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({ "count": count, "seconds": seconds, "events_per_s": count as f64 / seconds })
    );
    bus.shutdown(std::time::Duration::from_secs(30)).await?;
    Ok(())
}
