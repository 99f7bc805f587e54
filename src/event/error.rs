//! Errors of the event layer: decoding a record, encoding an event, registering a type.

use snafu::Snafu;

/// An error encoding, decoding or registering an event.
///
/// The decode errors mirror what eventsource-py's consumer does with a record: a missing `event_type`
/// header is dropped ([`should_dead_letter`](Self::should_dead_letter) is `false`), every other decode
/// failure is a `DeserializationError` that goes straight to the DLQ. Their messages match
/// eventsource-py's (`Unknown event type: X`, `Failed to deserialize X: …`) so DLQ records read the same.
///
/// # Example
///
/// ```
/// use kafka_event_bus::event::{Error, EventRegistry};
/// use kafka_event_bus::protocol::Headers;
///
/// let mut headers = Headers::new();
/// headers.insert("event_type", "NoSuchEvent");
/// let err = EventRegistry::new().decode(&headers, b"{}".to_vec()).unwrap_err();
/// assert!(matches!(err, Error::UnknownEventType { .. }));
/// assert_eq!(err.to_string(), "Unknown event type: NoSuchEvent");
/// assert!(err.should_dead_letter());
/// assert_eq!(err.reference_error_type(), "DeserializationError");
/// ```
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The record has no `event_type` header, or it is null or empty.
    #[snafu(display("Message missing event_type header"))]
    MissingEventType,

    /// The `event_type` header is not UTF-8 (eventsource-py crashes its consume loop on this one; here
    /// it is a deserialization error like any other).
    #[snafu(display("event_type header is not valid UTF-8"))]
    EventTypeNotUtf8,

    /// No type is registered under this name.
    #[snafu(display("Unknown event type: {event_type}"))]
    UnknownEventType {
        /// The name from the header.
        event_type: String,
    },

    /// The value is not a JSON object (syntax error, not UTF-8, truncated, an array...).
    #[snafu(display("Failed to deserialize {event_type}: {source}"))]
    MalformedJson {
        /// The type being decoded.
        event_type: String,
        /// What the JSON parser said.
        source: serde_json::Error,
    },

    /// An envelope field is missing or has the wrong type or value.
    #[snafu(display("Failed to deserialize {event_type}: {field}: {reason}"))]
    InvalidField {
        /// The type being decoded.
        event_type: String,
        /// The field's JSON name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The payload fields do not deserialize into the event's payload type.
    #[snafu(display("Failed to deserialize {event_type}: {source}"))]
    InvalidPayload {
        /// The type being decoded.
        event_type: String,
        /// What serde said.
        source: serde_json::Error,
    },

    /// A typed decode or downcast met an event of another type.
    #[snafu(display("event type mismatch: expected {expected}, found {found}"))]
    TypeMismatch {
        /// The type asked for.
        expected: String,
        /// The type found.
        found: String,
    },

    /// Two different Rust types were registered under one event type name.
    #[snafu(display("event type {event_type} is already registered as {existing}, not {new}"))]
    DuplicateEventType {
        /// The event type name.
        event_type: String,
        /// The Rust type already registered.
        existing: &'static str,
        /// The Rust type that was refused.
        new: &'static str,
    },

    /// The payload could not be serialized.
    #[snafu(display("cannot encode {event_type}: {source}"))]
    Serialize {
        /// The type being encoded.
        event_type: String,
        /// What serde said.
        source: serde_json::Error,
    },

    /// The payload does not serialize as a JSON object (a struct with named fields).
    #[snafu(display("cannot encode {event_type}: the payload must serialize as a JSON object, not {found}"))]
    PayloadNotObject {
        /// The type being encoded.
        event_type: String,
        /// The JSON kind it serialized as.
        found: &'static str,
    },

    /// A payload field has the name of an envelope field.
    #[snafu(display("cannot encode {event_type}: payload field {field} has the name of an envelope field"))]
    ReservedField {
        /// The type being encoded.
        event_type: String,
        /// The clashing field.
        field: String,
    },

    /// The payload writes the same top-level key twice (e.g. a `#[serde(flatten)]` map holding the
    /// name of a field); readers would keep only one of the two values.
    #[snafu(display("cannot encode {event_type}: payload field {field} is written twice"))]
    DuplicateField {
        /// The type being encoded.
        event_type: String,
        /// The repeated key.
        field: String,
    },

    /// A version field is 0 (eventsource-py requires versions >= 1).
    #[snafu(display("cannot encode {event_type}: {field} must be >= 1"))]
    InvalidVersion {
        /// The type being encoded.
        event_type: String,
        /// `event_version` or `aggregate_version`.
        field: &'static str,
    },
}

impl Error {
    /// Whether this is a failure to decode a consumed record (as opposed to an encode or registration
    /// error).
    pub fn is_decode(&self) -> bool {
        matches!(
            self,
            Self::MissingEventType
                | Self::EventTypeNotUtf8
                | Self::UnknownEventType { .. }
                | Self::MalformedJson { .. }
                | Self::InvalidField { .. }
                | Self::InvalidPayload { .. }
                | Self::TypeMismatch { .. }
        )
    }

    /// Whether a consumer should send the record to the DLQ (reason `deserialization_error`) rather than
    /// drop it: true for every decode error except a missing `event_type` header, which eventsource-py
    /// logs, commits and drops.
    pub fn should_dead_letter(&self) -> bool {
        self.is_decode() && !matches!(self, Self::MissingEventType)
    }

    /// The exception class name eventsource-py would report for this error in a `dlq_error_type` header.
    pub fn reference_error_type(&self) -> &'static str {
        if self.is_decode() {
            "DeserializationError"
        } else {
            "ValueError"
        }
    }
}
