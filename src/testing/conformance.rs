//! A conformance suite for any [`EventBus`]: the nine cases of eventsource-py's
//! `EventBusConformanceSuite` and one for [`publish_with`](EventBus::publish_with), written so every case waits for delivery (so it runs unchanged against a
//! distributed bus such as the Kafka one).
//!
//! Waiting is done two ways: for what should arrive, by polling the recorder until it has enough or the
//! factory's [`delivery_timeout`](BusFactory::delivery_timeout) passes; for what should *not* arrive, by
//! publishing a probe event for the same aggregate afterwards and waiting for the probe (per-aggregate
//! order plus sequential dispatch mean that, once the probe is handled, everything published before it
//! was). Cases return a [`Failure`] rather than panicking, so a custom harness can report them.
//!
//! # Example
//!
//! ```
//! use kafka_event_bus::bus::InMemoryEventBus;
//! use kafka_event_bus::testing::conformance::{self, BusFactory};
//!
//! struct InMemory;
//! impl BusFactory for InMemory {
//!     type Bus = InMemoryEventBus;
//!     async fn create_bus(&self) -> InMemoryEventBus {
//!         InMemoryEventBus::new()
//!     }
//!     fn orders_across_aggregates(&self) -> bool {
//!         true
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! for (name, result) in conformance::run_all(&InMemory).await {
//!     assert!(result.is_ok(), "{name}: {result:?}");
//! }
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::bus::{Error, EventBus, HandlerResult, PublishOptions, Subscriber};
use crate::event::{AnyEvent, DomainEvent, Event, EventType};

/// Makes fresh buses for the suite.
pub trait BusFactory: Send + Sync {
    /// The bus under test.
    type Bus: EventBus;

    /// A fresh, empty bus, ready to deliver (a Kafka factory waits for its consumer's assignment here,
    /// and configures no retries so a failing handler runs once).
    fn create_bus(&self) -> impl Future<Output = Self::Bus> + Send;

    /// How long to wait for a delivery.
    fn delivery_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// Whether events of different aggregates arrive in publish order (true in memory; not promised by
    /// Kafka across partitions).
    fn orders_across_aggregates(&self) -> bool {
        false
    }
}

/// The suite's event type (eventsource-py's `ConformanceEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConformanceEvent {
    /// Free text.
    pub payload: String,
}

impl Event for ConformanceEvent {
    const EVENT_TYPE: &'static str = "ConformanceEvent";
    const AGGREGATE_TYPE: &'static str = "Conformance";
}

/// The probe event used to wait for earlier deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConformanceProbe {
    /// Which probe.
    pub nonce: Uuid,
}

impl Event for ConformanceProbe {
    const EVENT_TYPE: &'static str = "ConformanceProbe";
    const AGGREGATE_TYPE: &'static str = "Conformance";
}

/// A `ConformanceEvent` for an aggregate.
pub fn make_event(aggregate_id: Uuid, payload: &str) -> DomainEvent<ConformanceEvent> {
    DomainEvent::new(
        aggregate_id,
        1,
        ConformanceEvent {
            payload: payload.to_owned(),
        },
    )
}

/// A failed case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Self {
            message: e.to_string(),
        }
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        message: message.into(),
    })
}

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), Failure> {
    if ok { Ok(()) } else { fail(message()) }
}

/// Records the event ids a handler sees.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Uuid>>>);

impl Recorder {
    fn push(&self, id: Uuid) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(id);
    }
    fn ids(&self) -> Vec<Uuid> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
    fn typed_handler(
        &self,
    ) -> impl Fn(Arc<DomainEvent<ConformanceEvent>>) -> std::future::Ready<HandlerResult> + Send + Sync + 'static
    {
        let me = self.clone();
        move |e| {
            me.push(e.meta.event_id);
            std::future::ready(Ok(()))
        }
    }
    /// A wildcard handler that records `ConformanceEvent`s only (not probes).
    fn wildcard_handler(
        &self,
    ) -> impl Fn(AnyEvent) -> std::future::Ready<HandlerResult> + Send + Sync + 'static {
        let me = self.clone();
        move |e| {
            if e.is::<ConformanceEvent>() {
                me.push(e.meta().event_id);
            }
            std::future::ready(Ok(()))
        }
    }
    async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<Uuid>, Failure> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ids = self.ids();
            if ids.len() >= n {
                return Ok(ids);
            }
            if tokio::time::Instant::now() >= deadline {
                return fail(format!(
                    "waited {timeout:?} for {n} deliveries, got {}",
                    ids.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A bus with a probe handler subscribed.
struct Harness<B> {
    bus: B,
    probes: Recorder,
    timeout: Duration,
}

impl<B: EventBus> Harness<B> {
    async fn new<F: BusFactory<Bus = B>>(factory: &F) -> Result<Self, Failure> {
        let bus = factory.create_bus().await;
        let probes = Recorder::default();
        let p = probes.clone();
        bus.subscribe(move |e: Arc<DomainEvent<ConformanceProbe>>| {
            p.push(e.meta.event_id);
            std::future::ready(Ok(()))
        })?;
        Ok(Self {
            bus,
            probes,
            timeout: factory.delivery_timeout(),
        })
    }

    async fn publish(&self, events: Vec<DomainEvent<ConformanceEvent>>) -> Result<(), Failure> {
        let any = events
            .into_iter()
            .map(DomainEvent::into_any)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.bus.publish(any).await?)
    }

    /// Publishes a probe for `aggregate_id` and waits until it is handled.
    async fn barrier(&self, aggregate_id: Uuid) -> Result<(), Failure> {
        let n = self.probes.ids().len();
        let probe = DomainEvent::new(
            aggregate_id,
            1,
            ConformanceProbe {
                nonce: Uuid::new_v4(),
            },
        );
        self.bus.publish(vec![probe.into_any()?]).await?;
        self.probes.wait_for(n + 1, self.timeout).await.map(drop)
    }

    async fn finish(self) -> Result<(), Failure> {
        Ok(self.bus.shutdown(self.timeout).await?)
    }

    /// Waits until `recorder` saw as many events as `expected`, then for a barrier on `aggregate_id`,
    /// and checks that it saw exactly `expected`, in that order.
    async fn expect_exactly(
        &self,
        recorder: &Recorder,
        expected: &[Uuid],
        aggregate_id: Uuid,
    ) -> Result<(), Failure> {
        recorder.wait_for(expected.len(), self.timeout).await?;
        self.barrier(aggregate_id).await?;
        check(recorder.ids() == expected, || {
            format!("received {:?}, expected {expected:?}", recorder.ids())
        })
    }

    /// Publishes an event, waits until `recorder` saw it, calls `unsubscribe`, publishes a second
    /// event of the same aggregate and checks that `recorder` saw only the first.
    async fn unsubscribe_between(
        &self,
        recorder: &Recorder,
        unsubscribe: impl FnOnce(&B) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let agg = Uuid::new_v4();
        self.publish(vec![make_event(agg, "first")]).await?;
        recorder.wait_for(1, self.timeout).await?;
        unsubscribe(&self.bus)?;
        self.publish(vec![make_event(agg, "second")]).await?;
        self.barrier(agg).await?;
        check(recorder.ids().len() == 1, || {
            format!("{} deliveries after unsubscribe", recorder.ids().len())
        })
    }
}

/// 1. A typed handler receives a published event exactly once.
pub async fn publish_and_subscribe_roundtrip<F: BusFactory>(factory: &F) -> Result<(), Failure> {
    let h = Harness::new(factory).await?;
    let received = Recorder::default();
    h.bus.subscribe(received.typed_handler())?;
    let e = make_event(Uuid::new_v4(), "conformance");
    let (id, agg) = (e.meta.event_id, e.meta.aggregate_id);
    h.publish(vec![e]).await?;
    h.expect_exactly(&received, &[id], agg).await?;
    h.finish().await
}

/// 2. Two handlers of one type each receive the event once.
pub async fn multiple_subscribers<F: BusFactory>(factory: &F) -> Result<(), Failure> {
    let h = Harness::new(factory).await?;
    let (a, b) = (Recorder::default(), Recorder::default());
    h.bus.subscribe(a.typed_handler())?;
    h.bus.subscribe(b.typed_handler())?;
    let e = make_event(Uuid::new_v4(), "conformance");
    let (id, agg) = (e.meta.event_id, e.meta.aggregate_id);
    h.publish(vec![e]).await?;
    a.wait_for(1, h.timeout).await?;
    b.wait_for(1, h.timeout).await?;
    h.barrier(agg).await?;
    check(a.ids() == [id] && b.ids() == [id], || {
        format!("received {:?} and {:?}", a.ids(), b.ids())
    })?;
    h.finish().await
}

/// 3. After `unsubscribe` (which returns true once), a later event is not delivered.
pub async fn unsubscribe_stops_delivery<F: BusFactory>(factory: &F) -> Result<(), Failure> {
    let h = Harness::new(factory).await?;
    let received = Recorder::default();
    let sub = h.bus.subscribe(received.typed_handler())?;
    h.unsubscribe_between(&received, |bus| {
        check(bus.unsubscribe(sub), || "unsubscribe returned false".into())?;
        check(!bus.unsubscribe(sub), || {
            "a second unsubscribe returned true".into()
        })
    })
    .await?;
    h.finish().await
}

/// 4. A wildcard handler receives every event of one publish call.
pub async fn subscribe_to_all_events<F: BusFactory>(factory: &F) -> Result<(), Failure> {
    let h = Harness::new(factory).await?;
    let received = Recorder::default();
    h.bus.subscribe_to_all_events(received.wildcard_handler())?;
    let (e1, e2) = (
        make_event(Uuid::new_v4(), "one"),
        make_event(Uuid::new_v4(), "two"),
    );
    let expected = vec![e1.meta.event_id, e2.meta.event_id];
    let aggs = [e1.meta.aggregate_id, e2.meta.aggregate_id];
    h.publish(vec![e1, e2]).await?;
    let mut got = received.wait_for(2, h.timeout).await?;
    for agg in aggs {
        h.barrier(agg).await?;
    }
    got = if factory.orders_across_aggregates() {
        got
    } else {
        sorted(got)
    };
    let want = if factory.orders_across_aggregates() {
        expected
    } else {
        sorted(expected)
    };
    check(got == want && received.ids().len() == 2, || {
        format!("received {:?}, expected {want:?}", received.ids())
    })?;
    h.finish().await
}

fn sorted(mut v: Vec<Uuid>) -> Vec<Uuid> {
    v.sort();
    v
}

/// 5. After `unsubscribe` of a wildcard handler, a later event is not delivered to it.
pub async fn unsubscribe_from_all_events<F: BusFactory>(factory: &F) -> Result<(), Failure> {
    let h = Harness::new(factory).await?;
    let received = Recorder::default();
    let sub = h.bus.subscribe_to_all_events(received.wildcard_handler())?;
    h.unsubscribe_between(&received, |bus| {
        check(bus.unsubscribe(sub), || "unsubscribe returned false".into())
    })
    .await?;
    h.finish().await
}

/// 6. A failing handler subscribed first does not stop the next one, and publish does not fail.
pub async fn handler_error_isolation<F: BusFactory>(factory: &F) -> Result<(), Failure> {
    let h = Harness::new(factory).await?;
    let failures = Recorder::default();
    let f = failures.clone();
    h.bus.subscribe(move |e: Arc<DomainEvent<ConformanceEvent>>| {
        f.push(e.meta.event_id);
        std::future::ready(Err("conformance: deliberate failure".into()))
    })?;
    let good = Recorder::default();
    h.bus.subscribe(good.typed_handler())?;
    let e = make_event(Uuid::new_v4(), "conformance");
    let agg = e.meta.aggregate_id;
    h.publish(vec![e]).await?;
    good.wait_for(1, h.timeout).await?;
    h.barrier(agg).await?;
    check(failures.ids().len() == 1, || {
        format!("failing handler ran {} times", failures.ids().len())
    })?;
    check(good.ids().len() == 1, || {
        format!("good handler ran {} times", good.ids().len())
    })?;
    h.finish().await
}

/// 7. A background publish is delivered.
pub async fn background_publish_delivers<F: BusFactory>(factory: &F) -> Result<(), Failure> {
    let h = Harness::new(factory).await?;
    let received = Recorder::default();
    h.bus.subscribe(received.typed_handler())?;
    let e = make_event(Uuid::new_v4(), "background");
    let (id, agg) = (e.meta.event_id, e.meta.aggregate_id);
    h.bus.publish_background(vec![e.into_any()?]).await?;
    h.expect_exactly(&received, &[id], agg).await?;
    h.finish().await
}

/// 8. Five events of one aggregate arrive in publish order.
pub async fn per_aggregate_ordering<F: BusFactory>(factory: &F) -> Result<(), Failure> {
    let h = Harness::new(factory).await?;
    let received = Recorder::default();
    h.bus.subscribe(received.typed_handler())?;
    let agg = Uuid::new_v4();
    let events: Vec<_> = (1..=5)
        .map(|v| {
            DomainEvent::new(
                agg,
                v,
                ConformanceEvent {
                    payload: format!("e{v}"),
                },
            )
        })
        .collect();
    let expected: Vec<Uuid> = events.iter().map(|e| e.meta.event_id).collect();
    h.publish(events).await?;
    h.expect_exactly(&received, &expected, agg).await?;
    h.finish().await
}

struct RecordingSubscriber(Recorder);

impl Subscriber for RecordingSubscriber {
    fn subscribed_to(&self) -> Vec<EventType> {
        vec![EventType::of::<ConformanceEvent>()]
    }
    async fn handle(&self, event: AnyEvent) -> HandlerResult {
        let typed = event.downcast::<ConformanceEvent>()?;
        self.0.push(typed.meta.event_id);
        Ok(())
    }
}

/// 9. `subscribe_all` registers a subscriber for the types it declares.
pub async fn subscribe_all_registers_declared_types<F: BusFactory>(factory: &F) -> Result<(), Failure> {
    let h = Harness::new(factory).await?;
    let received = Recorder::default();
    let ids = h
        .bus
        .subscribe_all(Arc::new(RecordingSubscriber(received.clone())))?;
    check(ids.len() == 1, || {
        format!("{} subscriptions for one declared type", ids.len())
    })?;
    let e = make_event(Uuid::new_v4(), "conformance");
    let (id, agg) = (e.meta.event_id, e.meta.aggregate_id);
    h.publish(vec![e]).await?;
    h.expect_exactly(&received, &[id], agg).await?;
    h.finish().await
}

/// 10. `publish_with` refuses a header the bus writes itself before sending anything, and delivers
///     with an extra header otherwise.
pub async fn publish_with_refuses_reserved_headers<F: BusFactory>(factory: &F) -> Result<(), Failure> {
    let h = Harness::new(factory).await?;
    let received = Recorder::default();
    h.bus.subscribe(received.typed_handler())?;
    let agg = Uuid::new_v4();
    let forged = make_event(agg, "forged");
    let forged_id = forged.meta.event_id;
    let refused = PublishOptions::new().header("event_type", "Forged");
    match h.bus.publish_with(vec![forged.into_any()?], refused).await {
        Err(Error::ReservedHeader { name }) if name == "event_type" => {}
        other => {
            return fail(format!(
                "a reserved header gave {other:?}, expected ReservedHeader"
            ));
        }
    }
    let e = make_event(agg, "with an extra header");
    let id = e.meta.event_id;
    let extra = PublishOptions::new().header("x-conformance", "1");
    h.bus.publish_with(vec![e.into_any()?], extra).await?;
    received.wait_for(1, h.timeout).await?;
    h.barrier(agg).await?;
    check(received.ids() == [id], || {
        format!(
            "received {:?}, expected [{id}] (refused event {forged_id})",
            received.ids()
        )
    })?;
    h.finish().await
}

/// A case of the suite.
pub type Case<F> = for<'a> fn(&'a F) -> Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>>;

/// Pins down a closure's higher-ranked signature so it coerces to [`Case`].
fn case<F, C>(c: C) -> C
where
    C: for<'a> Fn(&'a F) -> Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>>,
{
    c
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), case::<F, _>(|f| Box::pin($name(f))) as Case<F>)),*]
    };
}

/// The ten cases, by name: eventsource-py's nine in its order, then `publish_with`'s (for a custom
/// test harness).
pub fn cases<F: BusFactory>() -> Vec<(&'static str, Case<F>)> {
    cases![
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
    ]
}

/// Runs every case, each on a fresh bus, and returns the results by name.
pub async fn run_all<F: BusFactory>(factory: &F) -> Vec<(&'static str, Result<(), Failure>)> {
    let mut results = Vec::new();
    for (name, case) in cases::<F>() {
        results.push((name, case(factory).await));
    }
    results
}
