//! [`InMemoryEventBus`]: delivery inside the process, for tests and single-process services.
//!
//! Delivery is sequential: the events of one publish call one after another, the handlers of one event
//! one after another (typed, then wildcard), so per-aggregate order is publish order. Handler errors and
//! panics are caught, counted and logged; they never reach the publisher. Background publishes go through
//! one queue drained by one task, so they keep their order too.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{ErasedHandler, Error, EventBus, PublishOptions, SubscriptionId, Target};
use crate::dispatch::{HandlerTable, run_isolated};
use crate::event::{AnyEvent, DomainEvent, Event, EventRegistry};

/// How many published events [`InMemoryEventBus::published_events`] keeps (the oldest are dropped).
const PUBLISHED_CAPACITY: usize = 10_000;

/// Counters of an [`InMemoryEventBus`] (eventsource-py's `get_stats()` keys).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InMemoryStats {
    /// Events delivered (inline or background).
    pub events_published: u64,
    /// Handler calls.
    pub handlers_invoked: u64,
    /// Handler calls that failed (error or panic).
    pub handler_errors: u64,
    /// Background publish calls queued.
    pub background_tasks_created: u64,
    /// Background publish calls delivered.
    pub background_tasks_completed: u64,
}

#[derive(Default)]
struct Counters {
    events_published: AtomicU64,
    handlers_invoked: AtomicU64,
    handler_errors: AtomicU64,
    background_tasks_created: AtomicU64,
    background_tasks_completed: AtomicU64,
}

struct Background {
    tx: mpsc::UnboundedSender<Vec<AnyEvent>>,
    worker: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    handlers: HandlerTable,
    counters: Counters,
    published: Mutex<VecDeque<AnyEvent>>,
    background: Mutex<Option<Background>>,
    closed: AtomicBool,
}

/// An [`EventBus`] that delivers inside the process.
///
/// Cloning gives another handle to the same bus (handlers may hold one to publish follow-up events).
///
/// # Example
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use kafka_event_bus::bus::{EventBus, InMemoryEventBus};
/// use kafka_event_bus::event::{DomainEvent, Event};
/// # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// # struct OrderCreated { customer_id: String }
/// # impl Event for OrderCreated { const EVENT_TYPE: &'static str = "OrderCreated";
/// #     const AGGREGATE_TYPE: &'static str = "Order"; }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let bus = InMemoryEventBus::new();
/// let all = Arc::new(Mutex::new(Vec::new()));
/// let sink = all.clone();
/// bus.subscribe_to_all_events(move |event| {
///     let sink = sink.clone();
///     async move { sink.lock().unwrap().push(event.type_name().to_owned()); Ok(()) }
/// })?;
/// bus.subscribe(|_: Arc<DomainEvent<OrderCreated>>| async { Err("handler failed".into()) })?;
///
/// let event = DomainEvent::new(uuid::Uuid::new_v4(), 1, OrderCreated { customer_id: "c".into() });
/// bus.publish_background(vec![event.into_any()?]).await?;
/// bus.shutdown(std::time::Duration::from_secs(5)).await?; // drains the background queue
/// assert_eq!(*all.lock().unwrap(), ["OrderCreated"]);
/// assert_eq!(bus.stats().handler_errors, 1);
/// assert_eq!(bus.published_of::<OrderCreated>().len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct InMemoryEventBus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for InMemoryEventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryEventBus")
            .field("subscriptions", &self.shared.handlers.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Shared {
    async fn deliver(&self, event: AnyEvent) {
        {
            let mut published = lock(&self.published);
            if published.len() >= PUBLISHED_CAPACITY {
                published.pop_front();
            }
            published.push_back(event.clone());
        }
        bump(&self.counters.events_published);
        let event = self.handlers.resolve(event);
        let handlers = self.handlers.handlers_for(&event);
        for handler in handlers {
            bump(&self.counters.handlers_invoked);
            if let Err(error) = run_isolated(&handler, event.clone()).await {
                bump(&self.counters.handler_errors);
                tracing::error!(
                    handler = handler.name(),
                    event_type = event.type_name(),
                    event_id = %event.meta().event_id,
                    %error,
                    "handler error"
                );
            }
        }
    }
}

impl InMemoryEventBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> InMemoryStats {
        let c = &self.shared.counters;
        InMemoryStats {
            events_published: c.events_published.load(Ordering::Relaxed),
            handlers_invoked: c.handlers_invoked.load(Ordering::Relaxed),
            handler_errors: c.handler_errors.load(Ordering::Relaxed),
            background_tasks_created: c.background_tasks_created.load(Ordering::Relaxed),
            background_tasks_completed: c.background_tasks_completed.load(Ordering::Relaxed),
        }
    }

    /// The delivered events, oldest first (the last 10,000).
    pub fn published_events(&self) -> Vec<AnyEvent> {
        lock(&self.shared.published).iter().cloned().collect()
    }

    /// The delivered events of type `E`, oldest first.
    pub fn published_of<E: Event>(&self) -> Vec<Arc<DomainEvent<E>>> {
        lock(&self.shared.published)
            .iter()
            .filter_map(|e| e.downcast::<E>().ok())
            .collect()
    }

    /// Forgets the delivered events.
    pub fn clear_published(&self) {
        lock(&self.shared.published).clear();
    }

    /// A copy of the registry (the types subscribed to so far).
    pub fn registry(&self) -> EventRegistry {
        self.shared.handlers.registry()
    }

    /// How many subscriptions there are (typed and wildcard).
    pub fn subscription_count(&self) -> usize {
        self.shared.handlers.len()
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.shared.closed.load(Ordering::Acquire) {
            Err(Error::ShutDown)
        } else {
            Ok(())
        }
    }
}

impl EventBus for InMemoryEventBus {
    fn publish(&self, events: Vec<AnyEvent>) -> impl Future<Output = Result<(), Error>> + Send {
        let open = self.check_open();
        let shared = self.shared.clone();
        async move {
            open?;
            for event in events {
                shared.deliver(event).await;
            }
            Ok(())
        }
    }

    /// Checks `options` (a reserved header name is refused), then delivers as [`publish`](Self::publish):
    /// in-process delivery has no records, so the extra headers go nowhere.
    fn publish_with(
        &self,
        events: Vec<AnyEvent>,
        options: PublishOptions,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let checked = options.check();
        let published = self.publish(events);
        async move {
            checked?;
            published.await
        }
    }

    fn publish_background(&self, events: Vec<AnyEvent>) -> impl Future<Output = Result<(), Error>> + Send {
        let queued = (|| {
            self.check_open()?;
            let mut background = lock(&self.shared.background);
            if background.is_none() {
                let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
                let (tx, mut rx) = mpsc::unbounded_channel::<Vec<AnyEvent>>();
                let shared = self.shared.clone();
                let worker = runtime.spawn(async move {
                    while let Some(batch) = rx.recv().await {
                        for event in batch {
                            shared.deliver(event).await;
                        }
                        bump(&shared.counters.background_tasks_completed);
                    }
                });
                *background = Some(Background { tx, worker });
            }
            let bg = background.as_ref().ok_or(Error::ShutDown)?;
            bg.tx.send(events).map_err(|_| Error::ShutDown)?;
            bump(&self.shared.counters.background_tasks_created);
            Ok(())
        })();
        std::future::ready(queued)
    }

    fn add_handler(&self, target: Target, handler: ErasedHandler) -> Result<SubscriptionId, Error> {
        self.shared
            .handlers
            .add(target, handler)
            .map_err(|source| Error::Subscribe { source })
    }

    fn unsubscribe(&self, id: SubscriptionId) -> bool {
        self.shared.handlers.remove(id)
    }

    fn shutdown(&self, timeout: Duration) -> impl Future<Output = Result<(), Error>> + Send {
        self.shared.closed.store(true, Ordering::Release);
        let background = lock(&self.shared.background).take();
        async move {
            let Some(Background { tx, mut worker }) = background else {
                return Ok(());
            };
            drop(tx);
            match tokio::time::timeout(timeout, &mut worker).await {
                Ok(_) => Ok(()),
                Err(_) => {
                    worker.abort();
                    Err(Error::ShutdownTimeout { timeout })
                }
            }
        }
    }
}
