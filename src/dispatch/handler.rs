//! What a handler is to the dispatcher: the erased handler a bus stores, the errors it returns (a
//! [`PermanentError`] skips the retries), and how a subscription is named and targeted.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::event::{AnyEvent, DomainEvent, Event, EventType};

/// What a handler returns on failure: any error.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler returns.
pub type HandlerResult = Result<(), HandlerError>;

/// Wrap a handler's error in this to say that retrying cannot help (invalid data, a business rule): the
/// Kafka bus then sends the event to the DLQ at once instead of retrying it `max_retries` times.
///
/// # Example
///
/// ```
/// use kafka_event_bus::bus::{HandlerResult, PermanentError};
///
/// fn check(amount: i64) -> HandlerResult {
///     if amount < 0 {
///         return Err(PermanentError::new(format!("negative amount {amount}")).into());
///     }
///     Ok(())
/// }
/// let err = check(-1).unwrap_err();
/// assert!(err.downcast_ref::<PermanentError>().is_some());
/// assert_eq!(err.to_string(), "negative amount -1");
/// ```
#[derive(Debug)]
pub struct PermanentError(HandlerError);

impl PermanentError {
    /// Marks `error` as permanent.
    pub fn new(error: impl Into<HandlerError>) -> Self {
        Self(error.into())
    }

    /// The error inside.
    pub fn into_inner(self) -> HandlerError {
        self.0
    }
}

impl fmt::Display for PermanentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for PermanentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

pub use crate::future::BoxFuture;

/// Identifies one subscription, for [`EventBus::unsubscribe`](crate::bus::EventBus::unsubscribe).
///
/// # Example
///
/// ```
/// use kafka_event_bus::bus::{EventBus, InMemoryEventBus};
///
/// let bus = InMemoryEventBus::new();
/// let id = bus.subscribe_to_all_events(|_event| async { Ok(()) })?;
/// assert!(bus.unsubscribe(id));
/// assert!(!bus.unsubscribe(id));
/// # Ok::<(), kafka_event_bus::bus::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub(crate) u64);

/// What a subscription listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Events of exactly this type.
    Type(EventType),
    /// Every event (a wildcard subscription).
    All,
}

/// A handler with its payload type erased: what a bus stores. Built by the `subscribe*` methods.
#[derive(Clone)]
pub struct ErasedHandler {
    name: Arc<str>,
    call: Arc<dyn Fn(AnyEvent) -> BoxFuture<HandlerResult> + Send + Sync>,
}

impl ErasedHandler {
    /// Wraps a wildcard closure.
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::bus::ErasedHandler;
    ///
    /// let handler = ErasedHandler::new("audit", |_event| async { Ok(()) });
    /// assert_eq!(handler.name(), "audit");
    /// ```
    pub fn new<F, Fut>(name: impl Into<Arc<str>>, f: F) -> Self
    where
        F: Fn(AnyEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        Self {
            name: name.into(),
            call: Arc::new(move |event| Box::pin(f(event))),
        }
    }

    /// Wraps a typed closure: the event is downcast to `E` first (an error if it is another type).
    pub fn typed<E, F, Fut>(name: impl Into<Arc<str>>, f: F) -> Self
    where
        E: Event,
        F: Fn(Arc<DomainEvent<E>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        Self {
            name: name.into(),
            call: Arc::new(move |event: AnyEvent| -> BoxFuture<HandlerResult> {
                match event.downcast::<E>() {
                    Ok(typed) => Box::pin(f(typed)),
                    Err(err) => Box::pin(std::future::ready(Err(HandlerError::from(err)))),
                }
            }),
        }
    }

    /// The handler's name, for logs and DLQ messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as a metric label (shared, not copied).
    #[cfg(feature = "client")]
    pub(crate) fn label(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    /// The same handler with its own copy of the name, for a consumer that labels every call with it
    /// (so the name's reference count is not shared with other consumers).
    #[cfg(feature = "client")]
    pub(crate) fn with_own_name(&self) -> Self {
        Self {
            name: Arc::from(&*self.name),
            call: Arc::clone(&self.call),
        }
    }

    /// Runs the handler on one event.
    pub fn call(&self, event: AnyEvent) -> BoxFuture<HandlerResult> {
        (self.call)(event)
    }
}

impl fmt::Debug for ErasedHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErasedHandler")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
