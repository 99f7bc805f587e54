//! The event type registry: event type names to decoders.
//!
//! Owns the rule that one name maps to one Rust type (a second, different type under a name is refused
//! at registration; registering the same type again is a no-op) and the consumer's decode step: header
//! name → type → typed [`AnyEvent`]. Uses [`super::codec`] and [`super::any`].

use std::any::TypeId;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::{AnyEvent, DomainEvent, Error, Event, codec};
use crate::protocol::Headers;

/// A registered event type: its names and its decoder, with the Rust type erased.
///
/// # Example
///
/// ```
/// use kafka_event_bus::event::{Event, EventType};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct OrderCreated { customer_id: String }
/// # impl Event for OrderCreated { const EVENT_TYPE: &'static str = "OrderCreated";
/// #     const AGGREGATE_TYPE: &'static str = "Order"; }
///
/// let ty = EventType::of::<OrderCreated>();
/// assert_eq!(ty.name(), "OrderCreated");
/// assert_eq!(ty.aggregate_type(), "Order");
/// ```
#[derive(Clone, Copy)]
pub struct EventType {
    name: &'static str,
    aggregate_type: &'static str,
    type_id: TypeId,
    rust_name: &'static str,
    decode: fn(Bytes, &'static str) -> Result<AnyEvent, Error>,
}

fn decode_as<E: Event>(value: Bytes, name: &'static str) -> Result<AnyEvent, Error> {
    let event = DomainEvent::<E>::from_json(&value)?;
    Ok(AnyEvent::typed(Arc::new(event), value, name))
}

impl EventType {
    /// The descriptor of `E`.
    pub fn of<E: Event>() -> Self {
        Self {
            name: E::EVENT_TYPE,
            aggregate_type: E::AGGREGATE_TYPE,
            type_id: TypeId::of::<E>(),
            rust_name: std::any::type_name::<E>(),
            decode: decode_as::<E>,
        }
    }

    /// The event type name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The default aggregate type.
    pub fn aggregate_type(&self) -> &'static str {
        self.aggregate_type
    }

    /// The payload's Rust type.
    pub fn type_id(&self) -> TypeId {
        self.type_id
    }

    /// The payload's Rust type name (for messages).
    pub fn rust_name(&self) -> &'static str {
        self.rust_name
    }

    /// Decodes a JSON value as this type.
    ///
    /// # Errors
    ///
    /// As [`DomainEvent::from_json`].
    pub fn decode_json(&self, value: Bytes) -> Result<AnyEvent, Error> {
        (self.decode)(value, self.name)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventType")
            .field("name", &self.name)
            .field("aggregate_type", &self.aggregate_type)
            .field("rust_name", &self.rust_name)
            .finish()
    }
}

impl PartialEq for EventType {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.type_id == other.type_id
    }
}

impl Eq for EventType {}

/// Event type names to decoders, as eventsource-py's `EventRegistry`.
///
/// A bus registers a type when a handler subscribes to it; a consumer decodes each record with
/// [`decode`](Self::decode).
///
/// # Example
///
/// ```
/// use kafka_event_bus::event::{DomainEvent, Error, Event, EventRegistry};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct OrderCreated { customer_id: String }
/// impl Event for OrderCreated {
///     const EVENT_TYPE: &'static str = "OrderCreated";
///     const AGGREGATE_TYPE: &'static str = "Order";
/// }
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct Impostor { x: u8 }
/// impl Event for Impostor {
///     const EVENT_TYPE: &'static str = "OrderCreated";
///     const AGGREGATE_TYPE: &'static str = "Order";
/// }
///
/// let mut registry = EventRegistry::new();
/// assert!(registry.register::<OrderCreated>()?);
/// assert!(!registry.register::<OrderCreated>()?); // already there: fine
/// assert!(matches!(registry.register::<Impostor>(), Err(Error::DuplicateEventType { .. })));
///
/// let record = DomainEvent::new(uuid::Uuid::new_v4(), 1, OrderCreated { customer_id: "c".into() })
///     .to_record()?;
/// let any = registry.decode(&record.headers, record.value.clone())?;
/// assert_eq!(any.downcast::<OrderCreated>()?.payload.customer_id, "c");
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct EventRegistry {
    types: BTreeMap<&'static str, EventType>,
}

impl EventRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `E` under `E::EVENT_TYPE`. Returns whether it was new.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateEventType`] if another type has that name.
    pub fn register<E: Event>(&mut self) -> Result<bool, Error> {
        self.register_type(EventType::of::<E>())
    }

    /// Registers a type descriptor. Returns whether it was new.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateEventType`] if another type has that name.
    pub fn register_type(&mut self, ty: EventType) -> Result<bool, Error> {
        match self.types.get(ty.name) {
            Some(existing) if existing.type_id == ty.type_id => Ok(false),
            Some(existing) => Err(Error::DuplicateEventType {
                event_type: ty.name.to_owned(),
                existing: existing.rust_name,
                new: ty.rust_name,
            }),
            None => {
                self.types.insert(ty.name, ty);
                Ok(true)
            }
        }
    }

    /// Removes a name; returns whether it was registered.
    pub fn unregister(&mut self, name: &str) -> bool {
        self.types.remove(name).is_some()
    }

    /// The type registered under `name`.
    pub fn get(&self, name: &str) -> Option<&EventType> {
        self.types.get(name)
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.types.contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.types.keys().copied()
    }

    /// How many types are registered.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Decodes a consumed record as eventsource-py's consumer does: the first `event_type` header picks
    /// the type, then the JSON value is validated as that type.
    ///
    /// # Errors
    ///
    /// [`Error::MissingEventType`] (eventsource-py drops such records), [`Error::EventTypeNotUtf8`],
    /// [`Error::UnknownEventType`], or a JSON error of [`DomainEvent::from_json`]; see
    /// [`Error::should_dead_letter`].
    pub fn decode(&self, headers: &Headers, value: impl Into<Bytes>) -> Result<AnyEvent, Error> {
        self.decode_named(codec::event_type_header(headers)?, value.into())
    }

    /// The type registered under `name`, if any.
    pub(crate) fn type_named(&self, name: &str) -> Option<&EventType> {
        self.types.get(name)
    }

    /// [`decode`](Self::decode) of a record whose `event_type` header was already read as `name`.
    pub(crate) fn decode_named(&self, name: &str, value: Bytes) -> Result<AnyEvent, Error> {
        let ty = self.type_named(name).ok_or_else(|| Error::UnknownEventType {
            event_type: name.to_owned(),
        })?;
        ty.decode_json(value)
    }
}
