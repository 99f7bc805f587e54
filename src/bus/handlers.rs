//! The subscriptions of a bus: which handlers an event goes to, shared by every [`EventBus`](super::EventBus)
//! implementation, and running one handler with its errors and panics contained.

use std::{
    any::TypeId,
    panic::AssertUnwindSafe,
    sync::{
        PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    task::Poll,
};

use super::{BoxFuture, ErasedHandler, Error, HandlerError, HandlerResult, SubscriptionId, Target};
use crate::{
    event::{self, AnyEvent, EventRegistry},
    protocol::Headers,
};

struct Sub {
    id: SubscriptionId,
    /// `None` for a wildcard.
    type_id: Option<TypeId>,
    handler: ErasedHandler,
}

/// Subscriptions and the registry they fill: typed handlers run before wildcards, each group in
/// subscription order.
#[derive(Default)]
pub(crate) struct HandlerTable {
    registry: RwLock<EventRegistry>,
    subs: RwLock<Vec<Sub>>,
    next_id: AtomicU64,
}

impl HandlerTable {
    /// Registers `handler` for `target` (and the target's type with the registry).
    pub(crate) fn add(&self, target: Target, handler: ErasedHandler) -> Result<SubscriptionId, Error> {
        let type_id = match target {
            Target::Type(ty) => {
                self.registry
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .register_type(ty)
                    .map_err(|source| Error::Subscribe { source })?;
                Some(ty.type_id())
            }
            Target::All => None,
        };
        let id = SubscriptionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.subs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Sub { id, type_id, handler });
        Ok(id)
    }

    /// Removes one subscription; `false` if it was not there.
    pub(crate) fn remove(&self, id: SubscriptionId) -> bool {
        let mut subs = self.subs.write().unwrap_or_else(PoisonError::into_inner);
        let before = subs.len();
        subs.retain(|s| s.id != id);
        subs.len() != before
    }

    /// How many subscriptions there are.
    pub(crate) fn len(&self) -> usize {
        self.subs.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// A copy of the registry.
    pub(crate) fn registry(&self) -> EventRegistry {
        self.registry
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The handlers of `event`: its type's, then the wildcards.
    pub(crate) fn handlers_for(&self, event: &AnyEvent) -> Vec<ErasedHandler> {
        let subs = self.subs.read().unwrap_or_else(PoisonError::into_inner);
        let typed = subs
            .iter()
            .filter(|s| s.type_id.is_some() && s.type_id == event.type_id());
        let wildcard = subs.iter().filter(|s| s.type_id.is_none());
        typed.chain(wildcard).map(|s| s.handler.clone()).collect()
    }

    /// Decodes a consumed record: a registered type becomes its typed event; an event of a type this bus
    /// does not know (no typed subscription) becomes an untyped [`AnyEvent`] that wildcard handlers
    /// receive, as long as its envelope is valid. Bad headers, bad JSON and bad envelopes are errors.
    pub(crate) fn decode(&self, headers: &Headers, value: bytes::Bytes) -> Result<AnyEvent, event::Error> {
        let decoded = self
            .registry
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .decode(headers, value.clone());
        match decoded {
            Err(event::Error::UnknownEventType { .. }) => AnyEvent::decode_untyped(headers, value),
            other => other,
        }
    }

    /// An untyped event (decoded from bytes elsewhere) of a registered type becomes typed, so typed
    /// handlers see it; one that does not validate stays untyped (wildcards still get it).
    pub(crate) fn resolve(&self, event: AnyEvent) -> AnyEvent {
        if event.type_id().is_some() {
            return event;
        }
        let ty = self
            .registry
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(event.type_name())
            .copied();
        match ty.map(|ty| ty.decode_json(event.json().clone())) {
            Some(Ok(typed)) => typed,
            Some(Err(error)) => {
                tracing::warn!(event_type = event.type_name(), %error, "event does not decode as its type");
                event
            }
            None => event,
        }
    }
}

/// Runs a handler, turning a panic (where panics unwind) into an error.
pub(crate) async fn run_isolated(handler: &ErasedHandler, event: AnyEvent) -> HandlerResult {
    let panicked = |_| -> HandlerError { format!("handler {} panicked", handler.name()).into() };
    let mut fut: BoxFuture<HandlerResult> =
        match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(event))) {
            Ok(fut) => fut,
            Err(payload) => return Err(panicked(payload)),
        };
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => Poll::Ready(Err(panicked(payload))),
        }
    })
    .await
}
