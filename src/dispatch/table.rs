//! The subscriptions of a bus: which handlers an event goes to, shared by every
//! [`EventBus`](crate::bus::EventBus) implementation and read by the partition workers without a lock.

use std::{
    any::TypeId,
    collections::HashMap,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use super::{ErasedHandler, SubscriptionId, Target};
use crate::event::{AnyEvent, EventRegistry};

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
    /// What the consume path reads: rebuilt on every change, which bumps `generation`.
    snapshot: RwLock<Arc<Snapshot>>,
    generation: AtomicU64,
}

/// The subscriptions as of one generation, arranged for dispatch.
#[derive(Default)]
pub(crate) struct Snapshot {
    /// Shared by every worker's localized copy: it is only read.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    registry: Arc<EventRegistry>,
    /// Per registered type: its handlers, then the wildcards.
    by_type: HashMap<TypeId, Vec<ErasedHandler>>,
    wildcards: Vec<ErasedHandler>,
}

impl Snapshot {
    /// A copy whose handlers have their own names (see [`ErasedHandler::with_own_name`]).
    #[cfg(feature = "client")]
    fn localized(&self) -> Self {
        let own = |handlers: &Vec<ErasedHandler>| handlers.iter().map(ErasedHandler::with_own_name).collect();
        Self {
            registry: Arc::clone(&self.registry),
            by_type: self.by_type.iter().map(|(t, h)| (*t, own(h))).collect(),
            wildcards: own(&self.wildcards),
        }
    }

    /// The handlers of `event`: its type's, then the wildcards.
    pub(crate) fn handlers_for(&self, event: &AnyEvent) -> &[ErasedHandler] {
        event
            .type_id()
            .and_then(|t| self.by_type.get(&t))
            .unwrap_or(&self.wildcards)
    }

    /// Decodes a consumed record: a registered type becomes its typed event; an event of a type this bus
    /// does not know (no typed subscription) becomes an untyped [`AnyEvent`] that wildcard handlers
    /// receive, as long as its envelope is valid. Bad headers, bad JSON and bad envelopes are errors.
    /// `name` is the record's `event_type` header, read once by the caller (see
    /// [`event_type_header`](crate::event::event_type_header)).
    #[cfg(feature = "client")]
    pub(crate) fn decode(&self, name: &str, value: bytes::Bytes) -> Result<AnyEvent, crate::event::Error> {
        // Looked up first, so that the record's bytes are not shared (a reference count up and down)
        // only in case the type is unknown.
        match self.registry.type_named(name) {
            Some(ty) => ty.decode_json(value),
            None => AnyEvent::decode_untyped_named(name, value),
        }
    }
}

/// A consumer's copy of the table's [`Snapshot`], refreshed when the table changes: the per-record
/// lookups take no lock and touch no shared counter.
#[cfg(feature = "client")]
pub(crate) struct HandlerView {
    generation: u64,
    snapshot: Arc<Snapshot>,
}

#[cfg(feature = "client")]
impl HandlerView {
    /// The current snapshot of `table`.
    pub(crate) fn current<'a>(&'a mut self, table: &HandlerTable) -> &'a Arc<Snapshot> {
        let generation = table.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.snapshot = Arc::new(table.snapshot().localized());
            self.generation = generation;
        }
        &self.snapshot
    }
}

impl HandlerTable {
    /// Registers `handler` for `target` (and the target's type with the registry); refused when another
    /// Rust type has the target's event type name.
    pub(crate) fn add(
        &self,
        target: Target,
        handler: ErasedHandler,
    ) -> Result<SubscriptionId, crate::event::Error> {
        let type_id = match target {
            Target::Type(ty) => {
                self.registry
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .register_type(ty)?;
                Some(ty.type_id())
            }
            Target::All => None,
        };
        let id = SubscriptionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut subs = self.subs.write().unwrap_or_else(PoisonError::into_inner);
        subs.push(Sub { id, type_id, handler });
        self.rebuild(&subs);
        Ok(id)
    }

    /// Removes one subscription; `false` if it was not there.
    pub(crate) fn remove(&self, id: SubscriptionId) -> bool {
        let mut subs = self.subs.write().unwrap_or_else(PoisonError::into_inner);
        let before = subs.len();
        subs.retain(|s| s.id != id);
        self.rebuild(&subs);
        subs.len() != before
    }

    /// Publishes a new snapshot of `subs` (called with the `subs` write lock held, so rebuilds are in
    /// order).
    fn rebuild(&self, subs: &[Sub]) {
        let registry = Arc::new(self.registry());
        let wildcards: Vec<ErasedHandler> = subs
            .iter()
            .filter(|s| s.type_id.is_none())
            .map(|s| s.handler.clone())
            .collect();
        let mut by_type: HashMap<TypeId, Vec<ErasedHandler>> = HashMap::new();
        for s in subs {
            if let Some(t) = s.type_id {
                by_type.entry(t).or_default().push(s.handler.clone());
            }
        }
        for handlers in by_type.values_mut() {
            handlers.extend(wildcards.iter().cloned());
        }
        let snapshot = Arc::new(Snapshot {
            registry,
            by_type,
            wildcards,
        });
        *self.snapshot.write().unwrap_or_else(PoisonError::into_inner) = snapshot;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// A view that follows this table (see [`HandlerView`]).
    #[cfg(feature = "client")]
    pub(crate) fn view(&self) -> HandlerView {
        HandlerView {
            generation: self.generation.load(Ordering::Acquire),
            snapshot: Arc::new(self.snapshot().localized()),
        }
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
        self.snapshot().handlers_for(event).to_vec()
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

impl std::fmt::Debug for HandlerTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerTable")
            .field("subscriptions", &self.len())
            .finish()
    }
}

#[cfg(all(test, feature = "client"))]
mod tests {
    use super::*;
    use crate::event::{DomainEvent, Event};

    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    struct Pinged {
        n: u32,
    }

    impl Event for Pinged {
        const EVENT_TYPE: &'static str = "Pinged";
        const AGGREGATE_TYPE: &'static str = "Ping";
    }

    fn names(handlers: &[ErasedHandler]) -> Vec<&str> {
        handlers.iter().map(ErasedHandler::name).collect()
    }

    #[test]
    fn a_view_follows_subscriptions_typed_first_then_wildcards() {
        let table = HandlerTable::default();
        let mut view = table.view();
        let event =
            AnyEvent::from_arc(Arc::new(DomainEvent::new(uuid::Uuid::nil(), 1, Pinged { n: 1 }))).unwrap();
        assert!(view.current(&table).handlers_for(&event).is_empty());

        let all = table
            .add(Target::All, ErasedHandler::new("audit", |_| async { Ok(()) }))
            .unwrap();
        let typed = ErasedHandler::typed::<Pinged, _, _>("on_ping", |_| async { Ok(()) });
        table
            .add(Target::Type(crate::event::EventType::of::<Pinged>()), typed)
            .unwrap();
        assert_eq!(
            names(view.current(&table).handlers_for(&event)),
            ["on_ping", "audit"]
        );

        assert!(table.remove(all));
        assert_eq!(names(view.current(&table).handlers_for(&event)), ["on_ping"]);
        // The view's handlers have names of their own.
        let shared = table.snapshot();
        let ours = &view.current(&table).handlers_for(&event)[0];
        let theirs = &shared.handlers_for(&event)[0];
        assert!(!Arc::ptr_eq(&ours.label(), &theirs.label()));
    }
}
