//! The event bus as handler code sees it: the [`EventBus`] trait, handlers, and the in-memory bus.
//!
//! Owns the publish/subscribe contract shared by [`InMemoryEventBus`] and the Kafka bus, so handler code
//! written against `impl EventBus` runs unchanged on either, and the handler shapes: async closures over
//! a typed event ([`EventBus::subscribe`]), objects implementing [`Handler`], wildcard closures over an
//! [`AnyEvent`], and multi-type [`Subscriber`]s. May use [`crate::event`] and Tokio's `rt`, `sync` and
//! `time` (no sockets: this module builds for `wasm32-wasip1`).
//!
//! Invariants: a bus refuses a second Rust type under an event type name at subscription time; typed
//! handlers of an event run before wildcard handlers, each group in subscription order; one handler's
//! error never stops the others.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use kafka_event_bus::bus::{EventBus, InMemoryEventBus};
//! use kafka_event_bus::event::{DomainEvent, Event};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! struct OrderCreated { customer_id: String }
//! impl Event for OrderCreated {
//!     const EVENT_TYPE: &'static str = "OrderCreated";
//!     const AGGREGATE_TYPE: &'static str = "Order";
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let bus = InMemoryEventBus::new();
//! let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
//! let sink = seen.clone();
//! bus.subscribe(move |event: Arc<DomainEvent<OrderCreated>>| {
//!     let sink = sink.clone();
//!     async move {
//!         sink.lock().unwrap().push(event.payload.customer_id.clone());
//!         Ok(())
//!     }
//! })?;
//! let event = DomainEvent::new(uuid::Uuid::new_v4(), 1, OrderCreated { customer_id: "c-1".into() });
//! bus.publish_event(event).await?;
//! assert_eq!(*seen.lock().unwrap(), ["c-1"]);
//! # Ok::<(), kafka_event_bus::bus::Error>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use snafu::Snafu;

use crate::event::{self, AnyEvent, DomainEvent, Event, EventType};

mod config;
#[cfg(feature = "client")]
mod failed_events;
#[cfg(feature = "client")]
mod kafka;
#[cfg(test)]
pub(crate) mod log_capture;
mod memory;
mod naming;
mod publish_options;

pub use config::{
    AssignmentStrategy, ConfigError, CorruptBatchPolicy, KafkaEventBusConfig, KafkaEventBusConfigBuilder,
    OffsetReset, SecurityProtocol,
};
#[cfg(feature = "client")]
pub use failed_events::FailedEvents;
#[cfg(feature = "client")]
pub use kafka::{ConsumeHandle, KafkaEventBus, MAX_BACKGROUND_TASKS, TopicInfo, TopicOptions};
pub use memory::{InMemoryEventBus, InMemoryStats};
pub use naming::handler_name;
use naming::subscription_name;
pub use publish_options::{PublishOptions, is_reserved_header};

#[doc(inline)]
pub use crate::dispatch::{
    BoxFuture, ErasedHandler, HandlerError, HandlerResult, PermanentError, RetryPolicy, RetryPolicyError,
    SubscriptionId, Target,
};
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
#[doc(inline)]
pub use crate::dispatch::{BusStats, RecordContext};

/// An error of a bus operation.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The bus was shut down.
    #[snafu(display("the event bus is shut down"))]
    ShutDown,
    /// A subscription was refused (another Rust type has that event type name).
    #[snafu(display("cannot subscribe: {source}"))]
    Subscribe {
        /// The registry's refusal.
        source: event::Error,
    },
    /// An event could not be encoded for publishing.
    #[snafu(display("cannot publish: {source}"))]
    Encode {
        /// The encoder's error.
        source: event::Error,
    },
    /// An extra publish header has a name the bus writes itself (see [`is_reserved_header`]).
    #[snafu(display("cannot publish: the header {name:?} is the bus's own"))]
    ReservedHeader {
        /// The refused header name.
        name: String,
    },
    /// An extra `traceparent`, `tracestate` or `baggage` header is not printable ASCII (W3C trace
    /// headers are; eventsource-py's consumers fail on one that is not UTF-8).
    #[snafu(display("cannot publish: the trace header {name:?} is not printable ASCII"))]
    InvalidTraceHeader {
        /// The refused header name.
        name: String,
    },
    /// Background publishing was asked for outside a Tokio runtime.
    #[snafu(display("background publishing needs a Tokio runtime"))]
    NoRuntime,
    /// Shutdown gave up waiting for in-flight work.
    #[snafu(display("shutdown did not finish within {timeout:?}"))]
    ShutdownTimeout {
        /// The time allowed.
        timeout: Duration,
    },
    /// The configuration is invalid.
    #[snafu(display("invalid configuration: {source}"))]
    Config {
        /// What is wrong.
        source: ConfigError,
    },
    /// The Kafka bus is not connected: call `connect()` first.
    #[snafu(display("Not connected to Kafka. Call connect() first."))]
    NotConnected,
    /// The Kafka bus is already consuming.
    #[snafu(display("the bus is already consuming"))]
    AlreadyConsuming,
    /// Connecting to (or talking to) the cluster failed.
    #[cfg(feature = "client")]
    #[snafu(display("{source}"))]
    Cluster {
        /// The cluster's error.
        source: crate::client::cluster::Error,
    },
    /// `connect()` reached no bootstrap server within `bootstrap_timeout`; `source` holds each
    /// server's last error (or the timeout, when an attempt was still pending).
    #[cfg(feature = "client")]
    #[snafu(display("no bootstrap server of {bootstrap_servers:?} answered within {timeout:?}: {source}"))]
    BootstrapTimeout {
        /// The configured `bootstrap_servers`.
        bootstrap_servers: String,
        /// The configured `bootstrap_timeout`.
        timeout: Duration,
        /// The last failure.
        source: Box<crate::client::cluster::Error>,
    },
    /// Some events of a publish call were not acknowledged; the others were.
    #[cfg(feature = "client")]
    #[snafu(display("{} of {total} events were not published: {failed}", failed.len()))]
    Publish {
        /// How many events the call had.
        total: usize,
        /// Each failed event's id and why it failed (shown as a summary).
        failed: FailedEvents,
    },
    /// Reading or replaying the DLQ failed.
    #[cfg(feature = "client")]
    #[snafu(display("{source}"))]
    Dlq {
        /// The DLQ admin's error.
        source: Box<crate::dlq::AdminError>,
    },
    /// A wait on the consumer ([`KafkaEventBus::wait_for_assignment`],
    /// [`KafkaEventBus::wait_caught_up`]) ran out of time.
    #[cfg(feature = "client")]
    #[snafu(display("gave up waiting for {waiting_for} after {timeout:?}: {state}"))]
    WaitTimeout {
        /// What was awaited.
        waiting_for: &'static str,
        /// The time allowed.
        timeout: Duration,
        /// Where things stood (the partitions still behind, or why the log ends could not be read).
        state: String,
    },
    /// The log ends a wait needs could not be read: the cluster refused (unknown topic, not
    /// authorized, ...). Retriable as the cluster's error is.
    #[cfg(feature = "client")]
    #[snafu(display("cannot read the log ends: {source}"))]
    LogEnds {
        /// The cluster's answer, as the DLQ admin reads it.
        source: Box<crate::dlq::AdminError>,
    },
    /// A wait on the consumer was asked while the consume loop is not running (never started, or
    /// stopped): nothing would ever change.
    #[cfg(feature = "client")]
    #[snafu(display("the bus is not consuming: call start_consuming_in_background() first"))]
    NotConsuming,
    /// Joining the group or consuming failed.
    #[cfg(feature = "client")]
    #[snafu(display("consuming stopped: {source}"))]
    Consume {
        /// The consumer's error.
        source: crate::client::consumer::Error,
    },
    /// The producer could not be started.
    #[cfg(feature = "client")]
    #[snafu(display("cannot start the producer: {source}"))]
    Producer {
        /// The producer's error.
        source: crate::client::producer::Error,
    },
}

impl Error {
    /// Whether the same call may succeed later. None of the in-memory bus's errors is.
    pub fn is_retriable(&self) -> bool {
        match self {
            #[cfg(feature = "client")]
            Error::Cluster { source } => source.is_retriable(),
            #[cfg(feature = "client")]
            Error::BootstrapTimeout { .. } => true,
            #[cfg(feature = "client")]
            Error::Publish { failed, .. } => failed.iter().all(|(_, e)| e.is_retriable()),
            #[cfg(feature = "client")]
            Error::Dlq { source } => source.is_retriable(),
            #[cfg(feature = "client")]
            Error::WaitTimeout { .. } => true,
            #[cfg(feature = "client")]
            Error::LogEnds { source } => source.is_retriable(),
            _ => false,
        }
    }
}

/// A handler object for one event type (the closure form is [`EventBus::subscribe`]).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use kafka_event_bus::bus::{EventBus, Handler, HandlerResult, InMemoryEventBus};
/// use kafka_event_bus::event::{DomainEvent, Event};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct OrderCreated { customer_id: String }
/// # impl Event for OrderCreated { const EVENT_TYPE: &'static str = "OrderCreated";
/// #     const AGGREGATE_TYPE: &'static str = "Order"; }
///
/// struct Welcome;
/// impl Handler<OrderCreated> for Welcome {
///     async fn handle(&self, event: Arc<DomainEvent<OrderCreated>>) -> HandlerResult {
///         println!("welcome {}", event.payload.customer_id);
///         Ok(())
///     }
/// }
///
/// let bus = InMemoryEventBus::new();
/// bus.subscribe_handler(Arc::new(Welcome))?;
/// # Ok::<(), kafka_event_bus::bus::Error>(())
/// ```
pub trait Handler<E: Event>: Send + Sync + 'static {
    /// Handles one event.
    fn handle(&self, event: Arc<DomainEvent<E>>) -> impl Future<Output = HandlerResult> + Send;
}

/// A handler of several event types, registered for each with [`EventBus::subscribe_all`]
/// (eventsource-py's `EventSubscriber`).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use kafka_event_bus::bus::{EventBus, HandlerResult, InMemoryEventBus, Subscriber};
/// use kafka_event_bus::event::{AnyEvent, Event, EventType};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct OrderCreated { customer_id: String }
/// # impl Event for OrderCreated { const EVENT_TYPE: &'static str = "OrderCreated";
/// #     const AGGREGATE_TYPE: &'static str = "Order"; }
///
/// struct Projection;
/// impl Subscriber for Projection {
///     fn subscribed_to(&self) -> Vec<EventType> {
///         vec![EventType::of::<OrderCreated>()]
///     }
///     async fn handle(&self, event: AnyEvent) -> HandlerResult {
///         if let Ok(created) = event.downcast::<OrderCreated>() {
///             println!("{}", created.payload.customer_id);
///         }
///         Ok(())
///     }
/// }
///
/// let bus = InMemoryEventBus::new();
/// let ids = bus.subscribe_all(Arc::new(Projection))?;
/// assert_eq!(ids.len(), 1);
/// # Ok::<(), kafka_event_bus::bus::Error>(())
/// ```
pub trait Subscriber: Send + Sync + 'static {
    /// The event types to receive.
    fn subscribed_to(&self) -> Vec<EventType>;
    /// Handles one event of any of those types.
    fn handle(&self, event: AnyEvent) -> impl Future<Output = HandlerResult> + Send;
}

/// An event bus: publish events, subscribe handlers. Implemented by [`InMemoryEventBus`] (for tests and
/// single-process use) and by the Kafka bus; handler code should depend on this trait only.
///
/// Implementors provide the five required methods; the `subscribe*` conveniences build on
/// [`add_handler`](Self::add_handler).
///
/// # Example: handler wiring that works on any bus
///
/// ```
/// use std::sync::Arc;
/// use kafka_event_bus::bus::{Error, EventBus, InMemoryEventBus};
/// use kafka_event_bus::event::{DomainEvent, Event};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct OrderCreated { customer_id: String }
/// # impl Event for OrderCreated { const EVENT_TYPE: &'static str = "OrderCreated";
/// #     const AGGREGATE_TYPE: &'static str = "Order"; }
///
/// fn wire(bus: &impl EventBus) -> Result<(), Error> {
///     bus.subscribe(|event: Arc<DomainEvent<OrderCreated>>| async move {
///         if event.payload.customer_id.is_empty() {
///             return Err("no customer".into());
///         }
///         Ok(())
///     })?;
///     Ok(())
/// }
///
/// wire(&InMemoryEventBus::new())?; // in tests; the Kafka bus in production
/// # Ok::<(), Error>(())
/// ```
pub trait EventBus: Send + Sync + 'static {
    /// Publishes events, in order. The in-memory bus delivers them before returning; the Kafka bus
    /// returns once the broker acknowledged them (delivery happens in consumers).
    ///
    /// # Errors
    ///
    /// [`Error::ShutDown`], or the bus's transport errors. Handler errors are never returned here.
    fn publish(&self, events: Vec<AnyEvent>) -> impl Future<Output = Result<(), Error>> + Send;

    /// Publishes events as [`publish`](Self::publish) does, with `options`: extra headers on every
    /// record, after eventsource-py's (see [`PublishOptions`]). With no option, the records are the
    /// same bytes `publish` sends.
    ///
    /// # Errors
    ///
    /// [`Error::ReservedHeader`] (before anything is sent), else as [`publish`](Self::publish).
    fn publish_with(
        &self,
        events: Vec<AnyEvent>,
        options: PublishOptions,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Publishes events without waiting for them: returns once they are queued. Order is kept among
    /// background publishes.
    ///
    /// # Errors
    ///
    /// [`Error::ShutDown`]; [`Error::NoRuntime`] outside a Tokio runtime.
    fn publish_background(&self, events: Vec<AnyEvent>) -> impl Future<Output = Result<(), Error>> + Send;

    /// Registers a handler for a target; registers the target's event type with the bus's registry.
    ///
    /// # Errors
    ///
    /// [`Error::Subscribe`] if another Rust type is registered under the same event type name.
    fn add_handler(&self, target: Target, handler: ErasedHandler) -> Result<SubscriptionId, Error>;

    /// Removes a subscription; returns whether it existed.
    fn unsubscribe(&self, id: SubscriptionId) -> bool;

    /// Stops the bus: no more publishing, in-flight background work is drained for up to `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::ShutdownTimeout`] if the work did not finish in time (it is then cancelled).
    fn shutdown(&self, timeout: Duration) -> impl Future<Output = Result<(), Error>> + Send;

    /// Subscribes an async closure to events of type `E`.
    ///
    /// # Errors
    ///
    /// As [`add_handler`](Self::add_handler).
    fn subscribe<E, F, Fut>(&self, handler: F) -> Result<SubscriptionId, Error>
    where
        E: Event,
        F: Fn(Arc<DomainEvent<E>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let erased = ErasedHandler::typed(subscription_name::<F>(E::EVENT_TYPE), handler);
        self.add_handler(Target::Type(EventType::of::<E>()), erased)
    }

    /// Subscribes a [`Handler`] object to events of type `E`.
    ///
    /// # Errors
    ///
    /// As [`add_handler`](Self::add_handler).
    fn subscribe_handler<E: Event, H: Handler<E>>(&self, handler: Arc<H>) -> Result<SubscriptionId, Error> {
        let name = subscription_name::<H>(E::EVENT_TYPE);
        let erased = ErasedHandler::typed(name, move |event: Arc<DomainEvent<E>>| {
            let handler = handler.clone();
            async move { handler.handle(event).await }
        });
        self.add_handler(Target::Type(EventType::of::<E>()), erased)
    }

    /// Subscribes an async closure to every event (typed handlers of an event run first).
    ///
    /// # Errors
    ///
    /// As [`add_handler`](Self::add_handler) (the in-memory bus never refuses a wildcard).
    fn subscribe_to_all_events<F, Fut>(&self, handler: F) -> Result<SubscriptionId, Error>
    where
        F: Fn(AnyEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.add_handler(Target::All, ErasedHandler::new(handler_name::<F>(), handler))
    }

    /// Subscribes a [`Subscriber`] to each type it declares. All or nothing: on a refusal, the
    /// subscriptions already made by this call are removed.
    ///
    /// # Errors
    ///
    /// As [`add_handler`](Self::add_handler).
    fn subscribe_all<S: Subscriber>(&self, subscriber: Arc<S>) -> Result<Vec<SubscriptionId>, Error> {
        let mut ids = Vec::new();
        for ty in subscriber.subscribed_to() {
            let s = subscriber.clone();
            let erased = ErasedHandler::new(subscription_name::<S>(ty.name()), move |event| {
                let s = s.clone();
                async move { s.handle(event).await }
            });
            match self.add_handler(Target::Type(ty), erased) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    for id in ids {
                        self.unsubscribe(id);
                    }
                    return Err(e);
                }
            }
        }
        Ok(ids)
    }

    /// Publishes one typed event (see [`publish`](Self::publish)).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the event cannot be encoded, else as [`publish`](Self::publish).
    fn publish_event<E: Event>(
        &self,
        event: DomainEvent<E>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let any = event.into_any().map_err(|source| Error::Encode { source });
        async move { self.publish(vec![any?]).await }
    }
}
