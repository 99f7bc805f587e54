//! InMemoryEventBus behaviour beyond the conformance suite.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use common::{OrderCreated, OrderShipped};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_event_bus::bus::{Error, EventBus, InMemoryEventBus};
use kafka_event_bus::event::{AnyEvent, DomainEvent, Event};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NotOrderCreated {
    other: u32,
}
impl Event for NotOrderCreated {
    const EVENT_TYPE: &'static str = "OrderCreated";
    const AGGREGATE_TYPE: &'static str = "Order";
}

type Log = Arc<Mutex<Vec<String>>>;

fn created(customer: &str) -> DomainEvent<OrderCreated> {
    DomainEvent::new(
        Uuid::new_v4(),
        1,
        OrderCreated {
            customer_id: customer.into(),
        },
    )
}

fn logger(
    log: &Log,
    tag: &'static str,
) -> impl Fn(Arc<DomainEvent<OrderCreated>>) -> std::future::Ready<kafka_event_bus::bus::HandlerResult>
+ Send
+ Sync
+ 'static {
    let log = log.clone();
    move |e| {
        log.lock()
            .unwrap()
            .push(format!("{tag}:{}", e.payload.customer_id));
        std::future::ready(Ok(()))
    }
}

#[tokio::test]
async fn two_types_under_one_name_are_refused_at_subscription() {
    let bus = InMemoryEventBus::new();
    bus.subscribe(|_: Arc<DomainEvent<OrderCreated>>| async { Ok(()) })
        .unwrap();
    bus.subscribe(|_: Arc<DomainEvent<OrderCreated>>| async { Ok(()) })
        .unwrap(); // same type: fine
    let err = bus
        .subscribe(|_: Arc<DomainEvent<NotOrderCreated>>| async { Ok(()) })
        .unwrap_err();
    assert!(matches!(err, Error::Subscribe { .. }), "{err}");
    assert!(err.to_string().contains("OrderCreated"), "{err}");
    assert_eq!(bus.subscription_count(), 2);
    assert_eq!(bus.registry().names().collect::<Vec<_>>(), ["OrderCreated"]);
}

#[tokio::test]
async fn errors_and_panics_are_isolated_and_typed_handlers_run_before_wildcards() {
    let bus = InMemoryEventBus::new();
    let log: Log = Arc::default();
    let l = log.clone();
    bus.subscribe_to_all_events(move |e: AnyEvent| {
        l.lock().unwrap().push(format!("all:{}", e.type_name()));
        std::future::ready(Ok(()))
    })
    .unwrap();
    bus.subscribe(|_: Arc<DomainEvent<OrderCreated>>| async { Err("boom".into()) })
        .unwrap();
    bus.subscribe(|_: Arc<DomainEvent<OrderCreated>>| async {
        if true {
            panic!("handler panics");
        }
        Ok(())
    })
    .unwrap();
    bus.subscribe(logger(&log, "typed")).unwrap();
    bus.publish(vec![created("c1").into_any().unwrap()])
        .await
        .unwrap();
    assert_eq!(*log.lock().unwrap(), ["typed:c1", "all:OrderCreated"]);
    let stats = bus.stats();
    assert_eq!(
        (
            stats.events_published,
            stats.handlers_invoked,
            stats.handler_errors
        ),
        (1, 4, 2)
    );
}

#[tokio::test]
async fn background_publishes_keep_their_order_and_shutdown_drains_them() {
    let bus = InMemoryEventBus::new();
    let log: Log = Arc::default();
    let l = log.clone();
    bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
        let l = l.clone();
        async move {
            // Yield so that a bus delivering batches concurrently would interleave them.
            tokio::task::yield_now().await;
            l.lock().unwrap().push(e.payload.customer_id.clone());
            Ok(())
        }
    })
    .unwrap();
    let agg = Uuid::new_v4();
    let mut expected = Vec::new();
    for batch in 0..10 {
        let events: Vec<AnyEvent> = (0..3)
            .map(|i| {
                let name = format!("{batch}-{i}");
                expected.push(name.clone());
                DomainEvent::new(agg, batch * 3 + i + 1, OrderCreated { customer_id: name })
                    .into_any()
                    .unwrap()
            })
            .collect();
        bus.publish_background(events).await.unwrap();
    }
    bus.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(*log.lock().unwrap(), expected);
    let stats = bus.stats();
    assert_eq!(
        (stats.background_tasks_created, stats.background_tasks_completed),
        (10, 10)
    );
    assert!(matches!(bus.publish(vec![]).await, Err(Error::ShutDown)));
    assert!(matches!(
        bus.publish_background(vec![]).await,
        Err(Error::ShutDown)
    ));
    bus.shutdown(Duration::from_secs(1)).await.unwrap(); // idempotent
}

#[tokio::test]
async fn shutdown_gives_up_after_its_timeout() {
    let bus = InMemoryEventBus::new();
    bus.subscribe(|_: Arc<DomainEvent<OrderCreated>>| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    })
    .unwrap();
    bus.publish_background(vec![created("slow").into_any().unwrap()])
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let err = bus.shutdown(Duration::from_millis(10)).await.unwrap_err();
    assert!(matches!(err, Error::ShutdownTimeout { .. }), "{err}");
}

#[test]
fn background_publish_outside_a_runtime_is_an_error_not_a_panic() {
    let bus = InMemoryEventBus::new();
    let mut fut = std::pin::pin!(bus.publish_background(vec![]));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(Error::NoRuntime)) => {}
        other => panic!("expected NoRuntime, got {other:?}"),
    }
}

#[tokio::test]
async fn an_untyped_event_of_a_subscribed_type_reaches_typed_handlers() {
    let bus = InMemoryEventBus::new();
    let log: Log = Arc::default();
    bus.subscribe(logger(&log, "typed")).unwrap();
    let record = created("from-the-wire").to_record().unwrap();
    let untyped = AnyEvent::decode_untyped(&record.headers, record.value.clone()).unwrap();
    assert_eq!(untyped.type_id(), None);
    bus.publish(vec![untyped]).await.unwrap();
    assert_eq!(*log.lock().unwrap(), ["typed:from-the-wire"]);
}

#[tokio::test]
async fn handlers_can_publish_follow_up_events() {
    let bus = InMemoryEventBus::new();
    let log: Log = Arc::default();
    let inner = bus.clone();
    bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
        let bus = inner.clone();
        async move {
            let shipped = DomainEvent::new(
                e.meta.aggregate_id,
                2,
                OrderShipped {
                    tracking_number: "T".into(),
                },
            )
            .caused_by(&e.meta);
            bus.publish_event(shipped).await?;
            Ok(())
        }
    })
    .unwrap();
    let l = log.clone();
    bus.subscribe(move |e: Arc<DomainEvent<OrderShipped>>| {
        l.lock()
            .unwrap()
            .push(format!("shipped:{}", e.meta.causation_id.is_some()));
        std::future::ready(Ok(()))
    })
    .unwrap();
    let first = created("c");
    let first_id = first.meta.event_id;
    bus.publish_event(first).await.unwrap();
    assert_eq!(*log.lock().unwrap(), ["shipped:true"]);
    let shipped = bus.published_of::<OrderShipped>();
    assert_eq!(shipped.len(), 1);
    assert_eq!(shipped[0].meta.causation_id, Some(first_id));
    assert_eq!(bus.published_events().len(), 2);
}

struct Counter(Arc<Mutex<u32>>);

impl kafka_event_bus::bus::Handler<OrderCreated> for Counter {
    async fn handle(&self, _event: Arc<DomainEvent<OrderCreated>>) -> kafka_event_bus::bus::HandlerResult {
        *self.0.lock().unwrap() += 1;
        Ok(())
    }
}

#[tokio::test]
async fn handler_objects_and_unsubscribe() {
    let bus = InMemoryEventBus::new();
    let count = Arc::new(Mutex::new(0));
    let id = bus.subscribe_handler(Arc::new(Counter(count.clone()))).unwrap();
    bus.publish_event(created("a")).await.unwrap();
    assert!(bus.unsubscribe(id));
    bus.publish_event(created("b")).await.unwrap();
    assert_eq!(*count.lock().unwrap(), 1);
}

#[tokio::test]
async fn publish_with_delivers_and_refuses_the_bus_own_header_names() {
    use kafka_event_bus::bus::PublishOptions;
    let bus = InMemoryEventBus::new();
    let seen = Arc::new(Mutex::new(0));
    let count = Arc::clone(&seen);
    bus.subscribe(move |_: Arc<DomainEvent<OrderCreated>>| {
        *count.lock().unwrap() += 1;
        async { Ok(()) }
    })
    .unwrap();
    let extra = PublishOptions::new().header("x-tenant", "acme");
    bus.publish_with(vec![created("c-1").into_any().unwrap()], extra)
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), 1);
    for name in [
        "event_type",
        "aggregate_id",
        "retry_count",
        "dlq_reason",
        "dlq_anything",
    ] {
        let options = PublishOptions::new().header("x-ok", "1").header(name, "forged");
        let err = bus
            .publish_with(vec![created("c-2").into_any().unwrap()], options)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::ReservedHeader { name: n } if n == name),
            "{name}: {err}"
        );
    }
    // Nothing of a refused call was delivered.
    assert_eq!(*seen.lock().unwrap(), 1);
}
