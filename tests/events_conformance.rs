//! The bus conformance suite (eventsource-py's nine `EventBusConformanceSuite` cases and `publish_with`'s)
//! on the in-memory bus.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use kafka_event_bus::bus::InMemoryEventBus;
use kafka_event_bus::testing::conformance::{self, BusFactory};

struct InMemory;

impl BusFactory for InMemory {
    type Bus = InMemoryEventBus;
    async fn create_bus(&self) -> InMemoryEventBus {
        InMemoryEventBus::new()
    }
    fn delivery_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(5)
    }
    fn orders_across_aggregates(&self) -> bool {
        true
    }
}

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            conformance::$name(&InMemory).await.unwrap();
        }
    )*};
}

conformance_tests![
    publish_and_subscribe_roundtrip,
    multiple_subscribers,
    unsubscribe_stops_delivery,
    subscribe_to_all_events,
    unsubscribe_from_all_events,
    handler_error_isolation,
    background_publish_delivers,
    per_aggregate_ordering,
    subscribe_all_registers_declared_types,
    publish_with_refuses_reserved_headers,
];

#[tokio::test]
async fn run_all_lists_the_ten_cases_and_they_pass() {
    let results = conformance::run_all(&InMemory).await;
    assert_eq!(results.len(), 10);
    for (name, result) in results {
        assert!(result.is_ok(), "{name}: {result:?}");
    }
}

/// A bus that drops every event must fail the suite: the cases really wait for and check delivery.
#[derive(Clone, Default)]
struct BlackHole(InMemoryEventBus);

impl kafka_event_bus::bus::EventBus for BlackHole {
    async fn publish(
        &self,
        _events: Vec<kafka_event_bus::event::AnyEvent>,
    ) -> Result<(), kafka_event_bus::bus::Error> {
        Ok(())
    }
    async fn publish_with(
        &self,
        _events: Vec<kafka_event_bus::event::AnyEvent>,
        options: kafka_event_bus::bus::PublishOptions,
    ) -> Result<(), kafka_event_bus::bus::Error> {
        // Checks the options as a real bus does (no event), then loses the events.
        self.0.publish_with(Vec::new(), options).await
    }
    async fn publish_background(
        &self,
        _events: Vec<kafka_event_bus::event::AnyEvent>,
    ) -> Result<(), kafka_event_bus::bus::Error> {
        Ok(())
    }
    fn add_handler(
        &self,
        target: kafka_event_bus::bus::Target,
        handler: kafka_event_bus::bus::ErasedHandler,
    ) -> Result<kafka_event_bus::bus::SubscriptionId, kafka_event_bus::bus::Error> {
        self.0.add_handler(target, handler)
    }
    fn unsubscribe(&self, id: kafka_event_bus::bus::SubscriptionId) -> bool {
        self.0.unsubscribe(id)
    }
    async fn shutdown(&self, timeout: std::time::Duration) -> Result<(), kafka_event_bus::bus::Error> {
        self.0.shutdown(timeout).await
    }
}

struct Broken;

impl BusFactory for Broken {
    type Bus = BlackHole;
    async fn create_bus(&self) -> BlackHole {
        BlackHole::default()
    }
    fn delivery_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(50)
    }
}

#[tokio::test]
async fn a_bus_that_loses_events_fails_every_case() {
    for (name, result) in conformance::run_all(&Broken).await {
        let failure = result.expect_err(name);
        assert!(failure.message.contains("waited"), "{name}: {failure}");
    }
}

/// A bus whose `unsubscribe` claims success but keeps delivering must fail the two unsubscribe cases.
#[derive(Clone, Default)]
struct Sticky(InMemoryEventBus);

impl kafka_event_bus::bus::EventBus for Sticky {
    async fn publish(
        &self,
        events: Vec<kafka_event_bus::event::AnyEvent>,
    ) -> Result<(), kafka_event_bus::bus::Error> {
        self.0.publish(events).await
    }
    async fn publish_with(
        &self,
        events: Vec<kafka_event_bus::event::AnyEvent>,
        options: kafka_event_bus::bus::PublishOptions,
    ) -> Result<(), kafka_event_bus::bus::Error> {
        self.0.publish_with(events, options).await
    }
    async fn publish_background(
        &self,
        events: Vec<kafka_event_bus::event::AnyEvent>,
    ) -> Result<(), kafka_event_bus::bus::Error> {
        self.0.publish_background(events).await
    }
    fn add_handler(
        &self,
        target: kafka_event_bus::bus::Target,
        handler: kafka_event_bus::bus::ErasedHandler,
    ) -> Result<kafka_event_bus::bus::SubscriptionId, kafka_event_bus::bus::Error> {
        self.0.add_handler(target, handler)
    }
    fn unsubscribe(&self, _id: kafka_event_bus::bus::SubscriptionId) -> bool {
        true
    }
    async fn shutdown(&self, timeout: std::time::Duration) -> Result<(), kafka_event_bus::bus::Error> {
        self.0.shutdown(timeout).await
    }
}

struct StickyFactory;

impl BusFactory for StickyFactory {
    type Bus = Sticky;
    async fn create_bus(&self) -> Sticky {
        Sticky::default()
    }
}

#[tokio::test]
async fn a_bus_that_ignores_unsubscribe_fails_the_unsubscribe_cases() {
    let results = conformance::run_all(&StickyFactory).await;
    for (name, result) in results {
        let should_fail = name.starts_with("unsubscribe");
        assert_eq!(result.is_err(), should_fail, "{name}: {result:?}");
    }
}
