//! The JSON payload: eventsource-py's `model_dump_json()` on the way out, pydantic's lax validation on the
//! way in.
//!
//! Owns the field order (envelope fields, then payload fields), the text of floats and datetimes, and the
//! defaults and coercions applied when decoding. Uses `serde_json` (with `preserve_order`) and
//! [`super::timefmt`]. Invariants: encoding is deterministic; decoding never panics and reports the first
//! bad field.

use std::io;

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Error, Event, EventMeta, timefmt};

/// The envelope's JSON field names, in eventsource-py's order.
pub const ENVELOPE_FIELDS: [&str; 12] = [
    "event_id",
    "event_type",
    "event_version",
    "occurred_at",
    "aggregate_id",
    "aggregate_type",
    "aggregate_version",
    "tenant_id",
    "actor_id",
    "correlation_id",
    "causation_id",
    "metadata",
];

/// serde_json's compact output with pydantic's float text (`1e+22`, `0.00001`, `1e-6`).
struct PydanticFormatter;

impl serde_json::ser::Formatter for PydanticFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(timefmt::pydantic_float(value).as_bytes())
    }
    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        writer.write_all(timefmt::pydantic_float(f64::from(value)).as_bytes())
    }
}

fn uuid_value(id: Uuid) -> Value {
    Value::String(id.hyphenated().to_string())
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    v.map_or(Value::Null, f)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Encodes envelope and payload as one compact JSON object.
pub(crate) fn encode<E: Serialize>(meta: &EventMeta, payload: &E) -> Result<Vec<u8>, Error> {
    let event_type = &meta.event_type;
    for (field, v) in [
        ("event_version", meta.event_version),
        ("aggregate_version", meta.aggregate_version),
    ] {
        if v == 0 {
            return Err(Error::InvalidVersion {
                event_type: event_type.clone(),
                field,
            });
        }
    }
    let payload = serde_json::to_value(payload).map_err(|source| Error::Serialize {
        event_type: event_type.clone(),
        source,
    })?;
    let fields = match payload {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            return Err(Error::PayloadNotObject {
                event_type: event_type.clone(),
                found: kind(&other),
            });
        }
    };
    let mut doc = Map::with_capacity(ENVELOPE_FIELDS.len() + fields.len());
    doc.insert("event_id".into(), uuid_value(meta.event_id));
    doc.insert("event_type".into(), Value::String(meta.event_type.clone()));
    doc.insert("event_version".into(), meta.event_version.into());
    doc.insert(
        "occurred_at".into(),
        Value::String(timefmt::format_pydantic(meta.occurred_at)),
    );
    doc.insert("aggregate_id".into(), uuid_value(meta.aggregate_id));
    doc.insert(
        "aggregate_type".into(),
        Value::String(meta.aggregate_type.clone()),
    );
    doc.insert("aggregate_version".into(), meta.aggregate_version.into());
    doc.insert("tenant_id".into(), opt(meta.tenant_id, uuid_value));
    doc.insert("actor_id".into(), opt(meta.actor_id.clone(), Value::String));
    doc.insert("correlation_id".into(), uuid_value(meta.correlation_id));
    doc.insert("causation_id".into(), opt(meta.causation_id, uuid_value));
    doc.insert("metadata".into(), Value::Object(meta.metadata.clone()));
    for (k, v) in fields {
        if doc.contains_key(&k) {
            return Err(Error::ReservedField {
                event_type: event_type.clone(),
                field: k,
            });
        }
        doc.insert(k, v);
    }
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PydanticFormatter);
    Value::Object(doc)
        .serialize(&mut ser)
        .map_err(|source| Error::Serialize {
            event_type: event_type.clone(),
            source,
        })?;
    Ok(out)
}

/// Parses the value as a JSON object.
pub(crate) fn parse_object(value: &[u8], event_type: &str) -> Result<Map<String, Value>, Error> {
    match serde_json::from_slice::<Value>(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::InvalidField {
            event_type: event_type.to_owned(),
            field: "<root>",
            reason: format!("Input should be an object, not {}", kind(&other)),
        }),
        Err(source) => Err(Error::MalformedJson {
            event_type: event_type.to_owned(),
            source,
        }),
    }
}

/// Decodes a JSON payload as `E`.
pub(crate) fn decode<E: Event>(value: &[u8]) -> Result<super::DomainEvent<E>, Error> {
    // Fast path: read the envelope fields and the payload straight from the bytes, without building a
    // `Value` tree of the whole document. Anything unusual (a unit payload, `deny_unknown_fields`,
    // duplicate keys, a field the payload rejects) falls back to the general path below, which gives
    // the same result or the precise error.
    if let Ok(envelope) = serde_json::from_slice::<FastEnvelope>(value)
        && let Ok(meta) = meta_from(envelope.into_array(), E::EVENT_TYPE, Some(E::AGGREGATE_TYPE))
        && let Ok(payload) = serde_json::from_slice::<E>(value)
    {
        return Ok(super::DomainEvent { meta, payload });
    }
    let mut map = parse_object(value, E::EVENT_TYPE)?;
    let meta = take_meta(&mut map, E::EVENT_TYPE, Some(E::AGGREGATE_TYPE))?;
    let payload = decode_payload::<E>(map)?;
    Ok(super::DomainEvent { meta, payload })
}

/// Deserializes the non-envelope fields as `E`. A unit struct (which serde reads from `null`, not from an
/// object) takes no fields and ignores any others, as a struct without `deny_unknown_fields` does.
pub(crate) fn decode_payload<E: Event>(rest: Map<String, Value>) -> Result<E, Error> {
    match E::deserialize(Value::Object(rest)) {
        Ok(p) => Ok(p),
        Err(source) => match E::deserialize(Value::Null) {
            Ok(unit) => Ok(unit),
            Err(_) => Err(Error::InvalidPayload {
                event_type: E::EVENT_TYPE.to_owned(),
                source,
            }),
        },
    }
}

/// Removes the envelope fields from `map` and validates them; the payload fields stay in `map`.
///
/// `name` is the type being decoded (for errors, and the default `event_type`); `aggregate_type` the
/// default aggregate type, if the type has one.
pub(crate) fn take_meta(
    map: &mut Map<String, Value>,
    name: &str,
    aggregate_type: Option<&str>,
) -> Result<EventMeta, Error> {
    // One pass over the object takes the twelve envelope fields out (keeping the payload's order),
    // instead of twelve O(n) `shift_remove`s.
    let mut envelope: [Option<Value>; 12] = Default::default();
    map.retain(|k, v| match ENVELOPE_FIELDS.iter().position(|f| f == k) {
        Some(i) => {
            envelope[i] = Some(std::mem::take(v));
            false
        }
        None => true,
    });
    meta_from(envelope, name, aggregate_type)
}

/// Validates the envelope fields (in [`ENVELOPE_FIELDS`] order; `None` = absent) into an [`EventMeta`].
fn meta_from(
    mut envelope: [Option<Value>; 12],
    name: &str,
    aggregate_type: Option<&str>,
) -> Result<EventMeta, Error> {
    let bad = |field: &'static str, reason: String| Error::InvalidField {
        event_type: name.to_owned(),
        field,
        reason,
    };
    let mut take = |field: &str| {
        ENVELOPE_FIELDS
            .iter()
            .position(|f| *f == field)
            .and_then(|i| envelope[i].take())
    };

    let event_id = match take("event_id") {
        None => Uuid::new_v4(),
        Some(v) => lax_uuid(&v).map_err(|r| bad("event_id", r))?,
    };
    let event_type = match take("event_type") {
        None => name.to_owned(),
        Some(Value::String(s)) if s.is_empty() => name.to_owned(),
        Some(Value::String(s)) => s,
        Some(v) => {
            return Err(bad(
                "event_type",
                format!("Input should be a valid string, not {}", kind(&v)),
            ));
        }
    };
    let event_version = match take("event_version") {
        None => 1,
        Some(v) => lax_version(&v).map_err(|r| bad("event_version", r))?,
    };
    let occurred_at = match take("occurred_at") {
        None => timefmt::truncate_to_micros(OffsetDateTime::now_utc()),
        Some(v) => lax_datetime(&v).map_err(|r| bad("occurred_at", r))?,
    };
    let aggregate_id = match take("aggregate_id") {
        None => return Err(bad("aggregate_id", "Field required".into())),
        Some(v) => lax_uuid(&v).map_err(|r| bad("aggregate_id", r))?,
    };
    let aggregate_type = match (take("aggregate_type"), aggregate_type) {
        (Some(Value::String(s)), _) => s,
        (None, Some(default)) => default.to_owned(),
        (None, None) => return Err(bad("aggregate_type", "Field required".into())),
        (Some(v), _) => {
            return Err(bad(
                "aggregate_type",
                format!("Input should be a valid string, not {}", kind(&v)),
            ));
        }
    };
    let aggregate_version = match take("aggregate_version") {
        None => 1,
        Some(v) => lax_version(&v).map_err(|r| bad("aggregate_version", r))?,
    };
    let tenant_id = match take("tenant_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(lax_uuid(&v).map_err(|r| bad("tenant_id", r))?),
    };
    let actor_id = match take("actor_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(v) => {
            return Err(bad(
                "actor_id",
                format!("Input should be a valid string, not {}", kind(&v)),
            ));
        }
    };
    let correlation_id = match take("correlation_id") {
        None => event_id,
        Some(v) => lax_uuid(&v).map_err(|r| bad("correlation_id", r))?,
    };
    let causation_id = match take("causation_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(lax_uuid(&v).map_err(|r| bad("causation_id", r))?),
    };
    let metadata = match take("metadata") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(v) => {
            return Err(bad(
                "metadata",
                format!("Input should be an object, not {}", kind(&v)),
            ));
        }
    };
    Ok(EventMeta {
        event_id,
        event_type,
        event_version,
        occurred_at,
        aggregate_id,
        aggregate_type,
        aggregate_version,
        tenant_id,
        actor_id,
        correlation_id,
        causation_id,
        metadata,
    })
}

/// A UUID as pydantic accepts it: a string, hyphenated or not, any case, braced or `urn:uuid:`.
fn lax_uuid(v: &Value) -> Result<Uuid, String> {
    match v {
        Value::String(s) => Uuid::try_parse(s).map_err(|e| format!("Input should be a valid UUID, {e}")),
        other => Err(format!("UUID input should be a string, not {}", kind(other))),
    }
}

/// A version: an integer >= 1, also accepted as an integral float, a decimal string or a boolean.
fn lax_version(v: &Value) -> Result<u64, String> {
    const INVALID: &str = "Input should be a valid integer";
    let n: i128 = match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                i128::from(u)
            } else if let Some(i) = n.as_i64() {
                i128::from(i)
            } else {
                let f = n.as_f64().ok_or(INVALID)?;
                if f.fract() != 0.0 {
                    return Err(format!("{INVALID}, got a number with a fractional part"));
                }
                if f.abs() > 1.8e19 {
                    return Err(format!("{INVALID}, {f} is too large"));
                }
                f as i128
            }
        }
        Value::String(s) => python_int(s).ok_or_else(|| format!("{INVALID}, unable to parse string"))?,
        Value::Bool(b) => i128::from(*b),
        other => return Err(format!("{INVALID}, not {}", kind(other))),
    };
    if n < 1 {
        return Err("Input should be greater than or equal to 1".into());
    }
    u64::try_from(n).map_err(|_| format!("{INVALID}, {n} is too large"))
}

/// A datetime: a string in the forms of [`timefmt::parse_datetime`], or a number of Unix seconds.
fn lax_datetime(v: &Value) -> Result<OffsetDateTime, String> {
    let parsed = match v {
        Value::String(s) => timefmt::parse_datetime(s),
        Value::Number(n) => timefmt::from_unix(n.as_f64().unwrap_or(f64::NAN)),
        other => return Err(format!("Input should be a valid datetime, not {}", kind(other))),
    };
    parsed
        .map(|p| p.at)
        .map_err(|e| format!("Input should be a valid datetime, {e}"))
}

/// Python's `int(text)` for ASCII input: surrounding whitespace, an optional sign, digits with single
/// underscores between them. `None` where Python raises `ValueError` (or the value does not fit).
pub(crate) fn python_int(text: &str) -> Option<i128> {
    let t = text.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let bytes = digits.as_bytes();
    if bytes.is_empty() || bytes[0] == b'_' || bytes[bytes.len() - 1] == b'_' || digits.contains("__") {
        return None;
    }
    let mut v: i128 = 0;
    for &b in bytes {
        if b == b'_' {
            continue;
        }
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int_matches_python() {
        assert_eq!(python_int(" 4 "), Some(4));
        assert_eq!(python_int("4_000"), Some(4000));
        assert_eq!(python_int("-3"), Some(-3));
        assert_eq!(python_int("+7"), Some(7));
        for bad in ["", " ", "_1", "1_", "1__0", "0x10", "1.0", "-", "١"] {
            assert_eq!(python_int(bad), None, "{bad:?}");
        }
        assert_eq!(python_int(&"9".repeat(60)), None);
    }

    #[test]
    fn versions_are_lax_but_at_least_one() {
        assert_eq!(lax_version(&serde_json::json!("3")), Ok(3));
        assert_eq!(lax_version(&serde_json::json!(3.0)), Ok(3));
        assert_eq!(lax_version(&serde_json::json!(true)), Ok(1));
        for bad in [
            serde_json::json!(0),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!(null),
            serde_json::json!([1]),
            serde_json::json!(1e300),
        ] {
            assert!(lax_version(&bad).is_err(), "{bad}");
        }
    }
}

/// `Some(value)` for a present field, `null` included (absent fields default to `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    <Value as serde::Deserialize>::deserialize(d).map(Some)
}

/// The envelope fields of a document, read without the payload's (which serde skips).
#[derive(serde::Deserialize)]
struct FastEnvelope {
    #[serde(default, deserialize_with = "present")]
    event_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    event_type: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    event_version: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    occurred_at: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    aggregate_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    aggregate_type: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    aggregate_version: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    tenant_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    actor_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    correlation_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    causation_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    metadata: Option<Value>,
}

impl FastEnvelope {
    /// The fields in [`ENVELOPE_FIELDS`] order.
    fn into_array(self) -> [Option<Value>; 12] {
        [
            self.event_id,
            self.event_type,
            self.event_version,
            self.occurred_at,
            self.aggregate_id,
            self.aggregate_type,
            self.aggregate_version,
            self.tenant_id,
            self.actor_id,
            self.correlation_id,
            self.causation_id,
            self.metadata,
        ]
    }
}
