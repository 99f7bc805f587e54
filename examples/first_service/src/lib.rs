//! Billing for an order service: two event types, one handler type for both, a transient failure that
//! a retry fixes, a permanent one that goes to the dead-letter queue and is replayed once its cause is
//! fixed. `main.rs` runs it; `tests/end_to_end.rs` runs it against a local broker.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use kafka_event_bus::bus::Error;
use kafka_event_bus::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An order was placed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub customer_id: String,
    pub total_cents: i64,
}

impl Event for OrderPlaced {
    const EVENT_TYPE: &'static str = "OrderPlaced";
    const AGGREGATE_TYPE: &'static str = "Order";
}

/// An order was cancelled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub reason: String,
}

impl Event for OrderCancelled {
    const EVENT_TYPE: &'static str = "OrderCancelled";
    const AGGREGATE_TYPE: &'static str = "Order";
}

/// Charges placed orders and refunds cancelled ones: one type, a `Handler` for each event.
#[derive(Debug, Default)]
pub struct Billing {
    /// Customers billing knows; an order of anyone else cannot be charged (a permanent failure).
    pub known_customers: Mutex<HashSet<String>>,
    pub charged_cents: AtomicU64,
    pub charges: AtomicU64,
    pub refunds: AtomicU64,
    /// Calls that failed once with a (simulated) timeout of the payment provider.
    pub timeouts: AtomicU64,
}

impl Billing {
    /// Billing with these customers known.
    pub fn knowing(customers: impl IntoIterator<Item = String>) -> Self {
        let billing = Self::default();
        billing.known_customers.lock().unwrap().extend(customers);
        billing
    }
}

impl Handler<OrderPlaced> for Billing {
    async fn handle(&self, event: Arc<DomainEvent<OrderPlaced>>) -> HandlerResult {
        let order = &event.payload;
        if !self.known_customers.lock().unwrap().contains(&order.customer_id) {
            // Retrying cannot help: straight to the DLQ, replayed once the customer exists.
            return Err(PermanentError::new(format!("unknown customer {}", order.customer_id)).into());
        }
        // Every 100th order, the payment provider times out on the first attempt: a transient failure,
        // retried in place by the bus (`RecordContext` says which attempt this is).
        let first_attempt = RecordContext::current().is_none_or(|at| at.retries == 0);
        if order.total_cents % 100 == 0 && first_attempt {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
            return Err("payment provider timed out".into());
        }
        self.charged_cents
            .fetch_add(order.total_cents.unsigned_abs(), Ordering::Relaxed);
        self.charges.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Handler<OrderCancelled> for Billing {
    async fn handle(&self, _event: Arc<DomainEvent<OrderCancelled>>) -> HandlerResult {
        self.refunds.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Subscribes billing to both events, on any bus. `Billing` implements `Handler` twice, so each
/// subscription names its event type with a turbofish.
pub fn wire(bus: &impl EventBus, billing: Arc<Billing>) -> Result<(), Error> {
    bus.subscribe_handler::<OrderPlaced, _>(billing.clone())?;
    bus.subscribe_handler::<OrderCancelled, _>(billing)?;
    Ok(())
}

/// The events of the demo: `orders` orders (one by an unknown customer), then one cancellation.
pub fn demo_events(orders: u64) -> Result<Vec<AnyEvent>, kafka_event_bus::event::Error> {
    let mut events = Vec::new();
    for n in 0..orders {
        let customer_id = if n == 42 {
            "c-new".to_owned()
        } else {
            format!("c-{}", n % 10)
        };
        let order = OrderPlaced {
            customer_id,
            total_cents: 1_000 + n as i64,
        };
        events.push(DomainEvent::new(Uuid::new_v4(), 1, order).into_any()?);
    }
    let cancelled = OrderCancelled {
        reason: "changed my mind".into(),
    };
    events.push(DomainEvent::new(Uuid::new_v4(), 2, cancelled).into_any()?);
    Ok(events)
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub stats: BusStats,
    pub dead_letters_before_replay: u64,
    pub replayed: usize,
    pub charges: u64,
    pub refunds: u64,
    pub timeouts: u64,
}

/// The settings of this service: the broker from `KAFKA_BOOTSTRAP_SERVERS` (or an argument), the rest
/// chosen here.
pub fn config(
    bootstrap: &str,
    prefix: &str,
    group: &str,
) -> Result<KafkaEventBusConfig, kafka_event_bus::bus::ConfigError> {
    KafkaEventBusConfig::builder()
        .bootstrap_servers(bootstrap)
        .topic_prefix(prefix)
        .consumer_group(group)
        // A quick first join on a local broker; keep the defaults in production.
        .session_timeout_ms(6_000)
        .heartbeat_interval_ms(1_000)
        // Two retries, 100 ms then 200 ms, before the DLQ.
        .max_retries(2)
        .retry_base_delay(Duration::from_millis(100))
        .build()
}

/// Publishes `orders` orders and a cancellation, lets the group handle them, lists, counts and
/// replays the DLQ once the unknown customer is known, then shuts down gracefully.
///
/// It replays every letter the DLQ holds (the first 100): on a broker that keeps its topics between
/// runs, give each run its own topic prefix, or a second run replays the first run's letters again.
pub async fn run(config: KafkaEventBusConfig, orders: u64) -> Result<Report, Box<dyn std::error::Error>> {
    let bus = KafkaEventBus::new(config)?;
    bus.connect().await?;
    bus.ensure_topics(TopicOptions::new().partitions(6).replication_factor(1))
        .await?;

    let billing = Arc::new(Billing::knowing((0..10).map(|n| format!("c-{n}"))));
    wire(&bus, billing.clone())?;
    let consuming = bus.start_consuming_in_background()?;
    let partitions = bus.wait_for_assignment(Duration::from_secs(60)).await?;
    tracing::info!(?partitions, "assigned");

    // One call, one acknowledgement for all 1,001 events.
    bus.publish(demo_events(orders)?).await?;
    bus.wait_caught_up(Duration::from_secs(120)).await?;
    tracing::info!(stats = %bus.stats(), "caught up");

    // The DLQ: count, list, then replay once the cause is fixed.
    let dead_letters_before_replay = bus.get_dlq_message_count().await?;
    let entries = bus.get_dlq_messages(100, Duration::from_secs(10)).await?;
    for entry in &entries {
        let letter = entry.dead_letter()?;
        tracing::warn!(
            partition = entry.partition,
            offset = entry.offset,
            reason = %letter.reason,
            error = %letter.error_message,
            "dead letter"
        );
    }
    billing.known_customers.lock().unwrap().insert("c-new".into());
    for entry in &entries {
        bus.replay_dlq_message(entry.partition, entry.offset, false)
            .await?;
    }
    bus.wait_caught_up(Duration::from_secs(60)).await?;

    // Graceful shutdown: finish in-flight handlers, commit, leave the group, flush the producer.
    bus.shutdown(Duration::from_secs(30)).await?;
    consuming.wait().await?;
    Ok(Report {
        stats: bus.stats(),
        dead_letters_before_replay,
        replayed: entries.len(),
        charges: billing.charges.load(Ordering::Relaxed),
        refunds: billing.refunds.load(Ordering::Relaxed),
        timeouts: billing.timeouts.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handler on the in-memory bus: no broker, handlers run inside `publish`.
    #[tokio::test]
    async fn billing_charges_known_customers_and_refunds_cancellations() {
        let bus = InMemoryEventBus::new();
        let billing = Arc::new(Billing::knowing(["c-1".to_owned()]));
        wire(&bus, billing.clone()).unwrap();
        let placed = |customer: &str, total_cents| {
            let order = OrderPlaced {
                customer_id: customer.into(),
                total_cents,
            };
            DomainEvent::new(Uuid::new_v4(), 1, order).into_any().unwrap()
        };
        let cancelled = DomainEvent::new(Uuid::new_v4(), 2, OrderCancelled { reason: "r".into() });
        bus.publish(vec![
            placed("c-1", 1_250),
            placed("c-unknown", 999), // fails for good: the in-memory bus logs and counts it
            cancelled.into_any().unwrap(),
        ])
        .await
        .unwrap();
        assert_eq!(billing.charged_cents.load(Ordering::Relaxed), 1_250);
        assert_eq!(billing.charges.load(Ordering::Relaxed), 1);
        assert_eq!(billing.refunds.load(Ordering::Relaxed), 1);
    }
}
