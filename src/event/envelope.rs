//! The event model: the [`Event`] trait users implement for their payloads, the standard envelope
//! fields ([`EventMeta`]) and the typed event ([`DomainEvent`]).
//!
//! Owns construction defaults (new v4 id, now in UTC at microsecond precision, correlation id = event id)
//! and the typed JSON and record entry points. Uses [`super::json`] and [`super::codec`]. Invariant: a
//! `DomainEvent` built here always encodes (unless its payload's own `Serialize` fails or clashes with an
//! envelope field name).

use std::sync::Arc;

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AnyEvent, Error, EventRecord, Metadata, codec, json, timefmt};
use crate::protocol::Headers;

/// A payload type: a serde struct with named fields, plus the two names eventsource-py keeps as class
/// attributes.
///
/// `EVENT_TYPE` is the registry name (the `event_type` header and JSON field); `AGGREGATE_TYPE` is the
/// default `aggregate_type`. Keep `AGGREGATE_TYPE` within `[A-Za-z0-9_.-]+` so eventsource-py 0.15
/// accepts it.
///
/// # Example
///
/// ```
/// use kafka_event_bus::event::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct OrderCreated {
///     customer_id: String,
/// }
///
/// impl Event for OrderCreated {
///     const EVENT_TYPE: &'static str = "OrderCreated";
///     const AGGREGATE_TYPE: &'static str = "Order";
/// }
/// ```
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event type name, as eventsource-py's `event_type`.
    const EVENT_TYPE: &'static str;
    /// The aggregate type name, as eventsource-py's `aggregate_type` default.
    const AGGREGATE_TYPE: &'static str;
}

/// The standard fields of every event, in eventsource-py's JSON order.
///
/// # Example
///
/// ```
/// use kafka_event_bus::event::EventMeta;
/// use uuid::Uuid;
///
/// let meta = EventMeta::new("OrderCreated", "Order", Uuid::new_v4(), 1);
/// assert_eq!(meta.correlation_id, meta.event_id);
/// assert_eq!(meta.event_version, 1);
/// assert!(meta.metadata.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EventMeta {
    /// Unique id of this event.
    pub event_id: Uuid,
    /// The event type name as written in the JSON payload (usually the registry name).
    pub event_type: String,
    /// Schema version of the payload, >= 1.
    pub event_version: u64,
    /// When it happened (microsecond precision). Header form `+00:00`, JSON form `Z`.
    pub occurred_at: OffsetDateTime,
    /// The aggregate it belongs to; also the record key.
    pub aggregate_id: Uuid,
    /// The aggregate's type.
    pub aggregate_type: String,
    /// The aggregate's version after this event, >= 1.
    pub aggregate_version: u64,
    /// Tenant, for multi-tenant services.
    pub tenant_id: Option<Uuid>,
    /// Who caused it (user or system).
    pub actor_id: Option<String>,
    /// Links the events of one operation across aggregates.
    pub correlation_id: Uuid,
    /// The event that caused this one.
    pub causation_id: Option<Uuid>,
    /// Free-form JSON metadata, in order (see [`Metadata`]).
    pub metadata: Metadata,
}

impl EventMeta {
    /// Fresh metadata: new v4 id, now (UTC), versions 1 and `aggregate_version`, correlation id = event id,
    /// no tenant, actor or causation, empty metadata.
    pub fn new(
        event_type: impl Into<String>,
        aggregate_type: impl Into<String>,
        aggregate_id: Uuid,
        aggregate_version: u64,
    ) -> Self {
        let event_id = Uuid::new_v4();
        Self {
            event_id,
            event_type: event_type.into(),
            event_version: 1,
            occurred_at: timefmt::truncate_to_micros(OffsetDateTime::now_utc()),
            aggregate_id,
            aggregate_type: aggregate_type.into(),
            aggregate_version,
            tenant_id: None,
            actor_id: None,
            correlation_id: event_id,
            causation_id: None,
            metadata: Metadata::new(),
        }
    }

    /// The publish headers of this event, in eventsource-py's order (see [`codec::publish_headers`]).
    pub fn headers(&self) -> Headers {
        codec::publish_headers(self)
    }
}

/// A typed event: the envelope plus the user's payload.
///
/// Construct with [`DomainEvent::new`] and the `with_*` methods; encode with [`to_record`](Self::to_record)
/// (or [`to_json`](Self::to_json)); decode with [`from_record`](Self::from_record) (or
/// [`from_json`](Self::from_json)), or through an [`EventRegistry`](super::EventRegistry) when the type is
/// not known in advance.
///
/// # Example
///
/// ```
/// use kafka_event_bus::event::{DomainEvent, Event};
/// use serde::{Deserialize, Serialize};
/// use uuid::Uuid;
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct OrderShipped {
///     tracking_number: String,
/// }
/// impl Event for OrderShipped {
///     const EVENT_TYPE: &'static str = "OrderShipped";
///     const AGGREGATE_TYPE: &'static str = "Order";
/// }
///
/// let cause = Uuid::new_v4();
/// let event = DomainEvent::new(Uuid::new_v4(), 2, OrderShipped { tracking_number: "TRK-1".into() })
///     .with_actor_id("user:alice")
///     .with_causation_id(cause)
///     .with_metadata("source", "api");
/// assert_eq!(event.meta.event_type, "OrderShipped");
/// assert_eq!(event.meta.aggregate_type, "Order");
/// assert_eq!(event.meta.causation_id, Some(cause));
/// assert_eq!(event.meta.correlation_id, event.meta.event_id);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DomainEvent<E> {
    /// The standard fields.
    pub meta: EventMeta,
    /// The user's fields.
    pub payload: E,
}

impl<E: Event> DomainEvent<E> {
    /// A new event for version `aggregate_version` of the aggregate `aggregate_id`, with the defaults of
    /// [`EventMeta::new`] and `E`'s type names.
    pub fn new(aggregate_id: Uuid, aggregate_version: u64, payload: E) -> Self {
        Self {
            meta: EventMeta::new(E::EVENT_TYPE, E::AGGREGATE_TYPE, aggregate_id, aggregate_version),
            payload,
        }
    }

    /// Sets the event id. A correlation id that was defaulted to the old event id follows it.
    pub fn with_event_id(mut self, event_id: Uuid) -> Self {
        if self.meta.correlation_id == self.meta.event_id {
            self.meta.correlation_id = event_id;
        }
        self.meta.event_id = event_id;
        self
    }

    /// Sets when it happened (truncated to microseconds, Python's precision).
    pub fn with_occurred_at(mut self, at: OffsetDateTime) -> Self {
        self.meta.occurred_at = timefmt::truncate_to_micros(at);
        self
    }

    /// Sets the payload schema version (>= 1).
    pub fn with_event_version(mut self, version: u64) -> Self {
        self.meta.event_version = version;
        self
    }

    /// Sets the tenant.
    pub fn with_tenant_id(mut self, tenant_id: Uuid) -> Self {
        self.meta.tenant_id = Some(tenant_id);
        self
    }

    /// Sets the actor. An empty actor is kept in the JSON but, as in eventsource-py, sends no header.
    pub fn with_actor_id(mut self, actor_id: impl Into<String>) -> Self {
        self.meta.actor_id = Some(actor_id.into());
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, correlation_id: Uuid) -> Self {
        self.meta.correlation_id = correlation_id;
        self
    }

    /// Sets the causation id.
    pub fn with_causation_id(mut self, causation_id: Uuid) -> Self {
        self.meta.causation_id = Some(causation_id);
        self
    }

    /// Marks this event as caused by `cause`: its causation id becomes the cause's event id and its
    /// correlation id the cause's correlation id (eventsource-py's `with_causation`).
    pub fn caused_by(mut self, cause: &EventMeta) -> Self {
        self.meta.causation_id = Some(cause.event_id);
        self.meta.correlation_id = cause.correlation_id;
        self
    }

    /// Adds (or replaces) one metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.meta.metadata.insert(key.into(), value.into());
        self
    }

    /// The JSON payload, byte-compatible with eventsource-py's `model_dump_json()`.
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`], [`Error::PayloadNotObject`], [`Error::ReservedField`],
    /// [`Error::DuplicateField`] or [`Error::InvalidVersion`].
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        json::encode(&self.meta, &self.payload)
    }

    /// Decodes a JSON payload as eventsource-py does (lax types, defaults for missing optional fields).
    /// The payload's own `event_type` is kept as written, even if it differs from `E::EVENT_TYPE`.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedJson`], [`Error::InvalidField`] or [`Error::InvalidPayload`].
    pub fn from_json(value: &[u8]) -> Result<Self, Error> {
        json::decode::<E>(value)
    }

    /// The Kafka record: key = aggregate id, value = [`to_json`](Self::to_json), publish headers.
    ///
    /// # Errors
    ///
    /// As [`to_json`](Self::to_json).
    pub fn to_record(&self) -> Result<EventRecord, Error> {
        Ok(EventRecord {
            key: codec::record_key(&self.meta.aggregate_id),
            value: Bytes::from(self.to_json()?),
            headers: codec::publish_headers(&self.meta),
        })
    }

    /// Decodes a consumed record as this type. The `event_type` header alone decides the type, as in
    /// eventsource-py; it must be `E::EVENT_TYPE`.
    ///
    /// # Errors
    ///
    /// [`Error::MissingEventType`], [`Error::EventTypeNotUtf8`], [`Error::TypeMismatch`] or any error of
    /// [`from_json`](Self::from_json).
    pub fn from_record(headers: &Headers, value: &[u8]) -> Result<Self, Error> {
        let name = codec::event_type_header(headers)?;
        if name != E::EVENT_TYPE {
            return Err(Error::TypeMismatch {
                expected: E::EVENT_TYPE.to_owned(),
                found: name.to_owned(),
            });
        }
        Self::from_json(value)
    }

    /// Type-erases this event for a bus (encodes the JSON once).
    ///
    /// # Errors
    ///
    /// As [`to_json`](Self::to_json).
    pub fn into_any(self) -> Result<AnyEvent, Error> {
        AnyEvent::from_arc(Arc::new(self))
    }
}
