//! [`AnyEvent`]: an event whose payload type is erased: the envelope, the raw JSON, and (when known) the
//! typed value, for wildcard handlers and for moving events of mixed types through one bus.
//!
//! Uses [`super::json`] and [`super::codec`]. Invariants: `json()` is exactly the bytes on the wire (as
//! received, or as encoded once at construction); a typed `AnyEvent` downcasts without re-parsing.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::{DomainEvent, Error, Event, EventMeta, EventRecord, codec, json};
use crate::protocol::Headers;

trait ErasedEvent: Any + Send + Sync {
    fn meta(&self) -> &EventMeta;
}

impl<E: Event> ErasedEvent for DomainEvent<E> {
    fn meta(&self) -> &EventMeta {
        &self.meta
    }
}

enum Body {
    Typed {
        type_id: TypeId,
        event: Arc<dyn ErasedEvent>,
    },
    Untyped(Box<EventMeta>),
}

struct Inner {
    type_name: Cow<'static, str>,
    json: Bytes,
    body: Body,
}

/// A type-erased event: metadata plus raw JSON, downcastable to its concrete type.
///
/// Cloning is cheap (one reference count). Wildcard handlers receive these; [`EventBus::publish`]
/// takes them so one call can carry several event types.
///
/// [`EventBus::publish`]: crate::bus::EventBus::publish
///
/// # Example
///
/// ```
/// use kafka_event_bus::event::{AnyEvent, DomainEvent, Event};
/// use serde::{Deserialize, Serialize};
/// use uuid::Uuid;
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct OrderCreated { customer_id: String }
/// impl Event for OrderCreated {
///     const EVENT_TYPE: &'static str = "OrderCreated";
///     const AGGREGATE_TYPE: &'static str = "Order";
/// }
///
/// let any: AnyEvent = DomainEvent::new(Uuid::new_v4(), 1, OrderCreated { customer_id: "c".into() })
///     .into_any()?;
/// assert_eq!(any.type_name(), "OrderCreated");
/// assert!(any.is::<OrderCreated>());
/// let raw: serde_json::Value = serde_json::from_slice(any.json())?;
/// assert_eq!(raw["customer_id"], "c");
/// let typed = any.downcast::<OrderCreated>()?;
/// assert_eq!(typed.payload.customer_id, "c");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AnyEvent(Arc<Inner>);

impl AnyEvent {
    /// Erases a typed event, encoding its JSON once.
    ///
    /// # Errors
    ///
    /// As [`DomainEvent::to_json`].
    pub fn from_arc<E: Event>(event: Arc<DomainEvent<E>>) -> Result<Self, Error> {
        let json = Bytes::from(event.to_json()?);
        Ok(Self::typed(event, json, E::EVENT_TYPE))
    }

    pub(crate) fn typed<E: Event>(event: Arc<DomainEvent<E>>, json: Bytes, type_name: &'static str) -> Self {
        Self(Arc::new(Inner {
            type_name: Cow::Borrowed(type_name),
            json,
            body: Body::Typed {
                type_id: TypeId::of::<E>(),
                event,
            },
        }))
    }

    /// Decodes only the envelope of a consumed record, for a type this process does not know. The
    /// `event_type` header gives the type name; the payload's own fields stay in [`json`](Self::json).
    ///
    /// # Errors
    ///
    /// [`Error::MissingEventType`], [`Error::EventTypeNotUtf8`], [`Error::MalformedJson`],
    /// [`Error::InvalidField`] (an untyped event has no default `aggregate_type`, so it must be present).
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::event::AnyEvent;
    /// use kafka_event_bus::protocol::Headers;
    ///
    /// let mut headers = Headers::new();
    /// headers.insert("event_type", "Pinged");
    /// let json = r#"{"aggregate_id":"0b0f3c9e5a394d5c8d7e3f2a1b4c5d6e","aggregate_type":"Ping","n":1}"#;
    /// let any = AnyEvent::decode_untyped(&headers, json.into())?;
    /// assert_eq!(any.type_name(), "Pinged");
    /// assert_eq!(any.meta().event_type, "Pinged");
    /// assert_eq!(any.meta().aggregate_id.to_string(), "0b0f3c9e-5a39-4d5c-8d7e-3f2a1b4c5d6e");
    /// assert_eq!(any.type_id(), None);
    /// # Ok::<(), kafka_event_bus::event::Error>(())
    /// ```
    pub fn decode_untyped(headers: &Headers, value: Bytes) -> Result<Self, Error> {
        Self::decode_untyped_named(codec::event_type_header(headers)?, value)
    }

    /// [`decode_untyped`](Self::decode_untyped) of a record whose `event_type` header was already read
    /// as `name`.
    pub(crate) fn decode_untyped_named(name: &str, value: Bytes) -> Result<Self, Error> {
        let name = name.to_owned();
        let meta = json::decode_meta(&value, &name)?;
        Ok(Self(Arc::new(Inner {
            type_name: Cow::Owned(name),
            json: value,
            body: Body::Untyped(Box::new(meta)),
        })))
    }

    /// The envelope fields.
    pub fn meta(&self) -> &EventMeta {
        match &self.0.body {
            Body::Typed { event, .. } => event.meta(),
            Body::Untyped(meta) => meta,
        }
    }

    /// The registry name this event was resolved by: the `event_type` header of a consumed record, or
    /// `E::EVENT_TYPE` of a typed event. (The payload's own `event_type` is in [`meta`](Self::meta).)
    pub fn type_name(&self) -> &str {
        &self.0.type_name
    }

    /// [`type_name`](Self::type_name) as a metric label (a typed event's is static: no copy).
    #[cfg(feature = "client")]
    pub(crate) fn type_label(&self) -> opentelemetry::StringValue {
        match &self.0.type_name {
            Cow::Borrowed(name) => (*name).into(),
            Cow::Owned(name) => name.clone().into(),
        }
    }

    /// The JSON payload, exactly as received or encoded.
    pub fn json(&self) -> &Bytes {
        &self.0.json
    }

    /// The payload's Rust type, if this event is typed.
    pub fn type_id(&self) -> Option<TypeId> {
        match &self.0.body {
            Body::Typed { type_id, .. } => Some(*type_id),
            Body::Untyped(_) => None,
        }
    }

    /// Whether this is an `E`: its Rust type if typed, else its type name.
    pub fn is<E: Event>(&self) -> bool {
        match &self.0.body {
            Body::Typed { type_id, .. } => *type_id == TypeId::of::<E>(),
            Body::Untyped(_) => self.0.type_name == E::EVENT_TYPE,
        }
    }

    /// The typed event. A typed `AnyEvent` of type `E` is returned as is (no parsing); an untyped one
    /// whose type name is `E::EVENT_TYPE` is decoded from its JSON.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] for another type, or a decode error of [`DomainEvent::from_json`].
    pub fn downcast<E: Event>(&self) -> Result<Arc<DomainEvent<E>>, Error> {
        let mismatch = || Error::TypeMismatch {
            expected: E::EVENT_TYPE.to_owned(),
            found: self.0.type_name.to_string(),
        };
        match &self.0.body {
            Body::Typed { event, .. } => {
                let any: Arc<dyn Any + Send + Sync> = event.clone();
                any.downcast::<DomainEvent<E>>().map_err(|_| mismatch())
            }
            Body::Untyped(_) if self.0.type_name == E::EVENT_TYPE => {
                DomainEvent::<E>::from_json(&self.0.json).map(Arc::new)
            }
            Body::Untyped(_) => Err(mismatch()),
        }
    }

    /// The record to publish: key = aggregate id, value = [`json`](Self::json), the publish headers.
    pub fn to_record(&self) -> EventRecord {
        let meta = self.meta();
        EventRecord {
            key: codec::record_key(&meta.aggregate_id),
            value: self.0.json.clone(),
            headers: codec::publish_headers(meta),
        }
    }
}

impl fmt::Debug for AnyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyEvent")
            .field("type_name", &self.0.type_name)
            .field("typed", &self.type_id().is_some())
            .field("meta", self.meta())
            .field("json_len", &self.0.json.len())
            .finish()
    }
}

impl<E: Event> TryFrom<DomainEvent<E>> for AnyEvent {
    type Error = Error;
    fn try_from(event: DomainEvent<E>) -> Result<Self, Error> {
        Self::from_arc(Arc::new(event))
    }
}
