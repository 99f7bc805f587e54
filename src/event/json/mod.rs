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
use scan::{Envelope, Field};

mod scan;

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

/// The position of `key` in [`ENVELOPE_FIELDS`], if it is an envelope field: its length and first byte
/// leave at most one candidate, compared with a literal (this runs for every key of every consumed
/// event).
fn envelope_index(key: &str) -> Option<usize> {
    let (i, name) = match (key.len(), *key.as_bytes().first()?) {
        (8, b'e') => (0, "event_id"),
        (10, b'e') => (1, "event_type"),
        (13, b'e') => (2, "event_version"),
        (11, b'o') => (3, "occurred_at"),
        (12, b'a') => (4, "aggregate_id"),
        (14, b'a') => (5, "aggregate_type"),
        (17, b'a') => (6, "aggregate_version"),
        (9, b't') => (7, "tenant_id"),
        (8, b'a') => (8, "actor_id"),
        (14, b'c') => (9, "correlation_id"),
        (12, b'c') => (10, "causation_id"),
        (8, b'm') => (11, "metadata"),
        _ => return None,
    };
    (key == name).then_some(i)
}

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

fn field_kind(f: &Field<'_>) -> &'static str {
    match f {
        Field::Str(_) => "a string",
        Field::Value(v) => kind(v),
    }
}

/// The field as an owned string, or itself if it is not a string.
fn string(f: Field<'_>) -> Result<String, Field<'_>> {
    match f {
        Field::Str(s) => Ok(s.to_owned()),
        Field::Value(Value::String(s)) => Ok(s),
        other => Err(other),
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
    // Fast path: one pass over the bytes sets the usual envelope fields aside (strings borrowed) and
    // leaves serde_json only the rest: the same map the general path would build, minus those entries
    // (see `scan`). Anything else (invalid JSON, a repeated envelope field, a bad envelope value, a
    // payload its type rejects) falls back to the general path below, which gives the precise error.
    let mut envelope: Envelope<'_> = Default::default();
    if let Some(mut rest) = scan::scan(value, &mut envelope)
        && take_envelope(&mut rest, &mut envelope)
        && let Ok(meta) = meta_from(envelope, E::EVENT_TYPE, Some(E::AGGREGATE_TYPE))
        && let Ok(payload) = decode_payload::<E>(rest)
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
    let mut envelope: Envelope<'_> = Default::default();
    take_envelope(map, &mut envelope); // empty before: nothing can clash
    meta_from(envelope, name, aggregate_type)
}

/// Moves the envelope fields of `map` into `envelope` in one pass (keeping the payload's order, instead of
/// twelve O(n) `shift_remove`s). `false` if one of them was already there (the caller gives up).
fn take_envelope(map: &mut Map<String, Value>, envelope: &mut Envelope<'_>) -> bool {
    let mut clash = false;
    map.retain(|k, v| match envelope_index(k) {
        Some(i) => {
            clash |= envelope[i].is_some();
            envelope[i] = Some(Field::Value(std::mem::take(v)));
            false
        }
        None => true,
    });
    !clash
}

/// Validates the envelope fields (in [`ENVELOPE_FIELDS`] order; `None` = absent) into an [`EventMeta`].
fn meta_from(envelope: Envelope<'_>, name: &str, aggregate_type: Option<&str>) -> Result<EventMeta, Error> {
    let bad = |field: &'static str, reason: String| Error::InvalidField {
        event_type: name.to_owned(),
        field,
        reason,
    };
    let text = |field: &'static str, v: Field<'_>| {
        string(v).map_err(|v| {
            bad(
                field,
                format!("Input should be a valid string, not {}", field_kind(&v)),
            )
        })
    };
    let not_null = |f: &Field<'_>| !f.is_null();
    // In `ENVELOPE_FIELDS` order.
    let [
        event_id,
        event_type,
        event_version,
        occurred_at,
        aggregate_id,
        aggregate_type_field,
        aggregate_version,
        tenant_id,
        actor_id,
        correlation_id,
        causation_id,
        metadata,
    ] = envelope;

    let event_id = match event_id {
        None => Uuid::new_v4(),
        Some(v) => lax_uuid(&v).map_err(|r| bad("event_id", r))?,
    };
    let event_type = match event_type.map(|v| text("event_type", v)).transpose()? {
        None => name.to_owned(),
        Some(s) if s.is_empty() => name.to_owned(),
        Some(s) => s,
    };
    let event_version = match event_version {
        None => 1,
        Some(v) => lax_version(&v).map_err(|r| bad("event_version", r))?,
    };
    let occurred_at = match occurred_at {
        None => timefmt::truncate_to_micros(OffsetDateTime::now_utc()),
        Some(v) => lax_datetime(&v).map_err(|r| bad("occurred_at", r))?,
    };
    let aggregate_id = match aggregate_id {
        None => return Err(bad("aggregate_id", "Field required".into())),
        Some(v) => lax_uuid(&v).map_err(|r| bad("aggregate_id", r))?,
    };
    let aggregate_type = match (
        aggregate_type_field
            .map(|v| text("aggregate_type", v))
            .transpose()?,
        aggregate_type,
    ) {
        (Some(s), _) => s,
        (None, Some(default)) => default.to_owned(),
        (None, None) => return Err(bad("aggregate_type", "Field required".into())),
    };
    let aggregate_version = match aggregate_version {
        None => 1,
        Some(v) => lax_version(&v).map_err(|r| bad("aggregate_version", r))?,
    };
    let tenant_id = match tenant_id.filter(not_null) {
        None => None,
        Some(v) => Some(lax_uuid(&v).map_err(|r| bad("tenant_id", r))?),
    };
    let actor_id = actor_id
        .filter(not_null)
        .map(|v| text("actor_id", v))
        .transpose()?;
    let correlation_id = match correlation_id {
        None => event_id,
        Some(v) => lax_uuid(&v).map_err(|r| bad("correlation_id", r))?,
    };
    let causation_id = match causation_id.filter(not_null) {
        None => None,
        Some(v) => Some(lax_uuid(&v).map_err(|r| bad("causation_id", r))?),
    };
    let metadata = match metadata {
        None => Map::new(),
        Some(Field::Value(Value::Object(m))) => m,
        Some(v) => {
            return Err(bad(
                "metadata",
                format!("Input should be an object, not {}", field_kind(&v)),
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
fn lax_uuid(v: &Field<'_>) -> Result<Uuid, String> {
    match v.as_str() {
        Some(s) => Uuid::try_parse(s).map_err(|e| format!("Input should be a valid UUID, {e}")),
        None => Err(format!("UUID input should be a string, not {}", field_kind(v))),
    }
}

/// A version: an integer >= 1, also accepted as an integral float, a decimal string or a boolean.
fn lax_version(v: &Field<'_>) -> Result<u64, String> {
    const INVALID: &str = "Input should be a valid integer";
    let n: i128 = match (v.as_str(), v) {
        (Some(s), _) => python_int(s).ok_or_else(|| format!("{INVALID}, unable to parse string"))?,
        (None, Field::Value(Value::Number(n))) => {
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
        (None, Field::Value(Value::Bool(b))) => i128::from(*b),
        (None, other) => return Err(format!("{INVALID}, not {}", field_kind(other))),
    };
    if n < 1 {
        return Err("Input should be greater than or equal to 1".into());
    }
    u64::try_from(n).map_err(|_| format!("{INVALID}, {n} is too large"))
}

/// A datetime: a string in the forms of [`timefmt::parse_datetime`], or a number of Unix seconds.
fn lax_datetime(v: &Field<'_>) -> Result<OffsetDateTime, String> {
    let parsed = match (v.as_str(), v) {
        (Some(s), _) => timefmt::parse_datetime(s),
        (None, Field::Value(Value::Number(n))) => timefmt::from_unix(n.as_f64().unwrap_or(f64::NAN)),
        (None, other) => {
            return Err(format!(
                "Input should be a valid datetime, not {}",
                field_kind(other)
            ));
        }
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
    fn envelope_index_finds_exactly_the_envelope_fields() {
        for (i, field) in ENVELOPE_FIELDS.iter().enumerate() {
            assert_eq!(envelope_index(field), Some(i), "{field}");
        }
        for other in [
            "",
            "sku",
            "event_i",
            "event_idx",
            "Event_id",
            "metadatA",
            "aggregate_versio",
            "quantity",
        ] {
            assert_eq!(envelope_index(other), None, "{other}");
        }
    }

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
        assert_eq!(lax_version(&Field::Value(serde_json::json!("3"))), Ok(3));
        assert_eq!(lax_version(&Field::Value(serde_json::json!(3.0))), Ok(3));
        assert_eq!(lax_version(&Field::Value(serde_json::json!(true))), Ok(1));
        for bad in [
            serde_json::json!(0),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!(null),
            serde_json::json!([1]),
            serde_json::json!(1e300),
        ] {
            assert!(lax_version(&Field::Value(bad.clone())).is_err(), "{bad}");
        }
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Placed {
        order_id: String,
        total: f64,
        #[serde(default)]
        tags: Vec<String>,
    }

    impl Event for Placed {
        const EVENT_TYPE: &'static str = "Placed";
        const AGGREGATE_TYPE: &'static str = "Order";
    }

    /// The general path alone (a `Map` of the whole document), to compare the one-pass path with.
    fn general(value: &[u8]) -> Result<super::super::DomainEvent<Placed>, Error> {
        let mut map = parse_object(value, Placed::EVENT_TYPE)?;
        let meta = take_meta(&mut map, Placed::EVENT_TYPE, Some(Placed::AGGREGATE_TYPE))?;
        Ok(super::super::DomainEvent {
            meta,
            payload: decode_payload::<Placed>(map)?,
        })
    }

    #[test]
    fn the_one_pass_path_agrees_with_the_general_path() {
        let id = "0b6a3e6e-9d7c-4c31-8a0e-6f1f2a8d9c01";
        let docs = [
            format!(
                r#"{{"event_id":"{id}","aggregate_id":"{id}","order_id":"o-1","total":1.5,"occurred_at":"2024-05-06T07:08:09.123456Z"}}"#
            ),
            // Escapes in envelope values and keys, fields in any order, payload between envelope fields.
            format!(
                r#"{{"order_id":"o\"2","aggregate_type":"Ord\u0065r","even\u0074_id":"{id}","total":2,"aggregate_id":"{id}","actor_id":"a\nb"}}"#
            ),
            // Lax forms: versions as strings and floats, datetime as Unix seconds, metadata nested.
            format!(
                r#"{{"event_id":"{id}","aggregate_id":"{id}","event_version":"2","aggregate_version":3.0,"occurred_at":1714979291.5,"metadata":{{"a":[1,{{"b":null}}]}},"order_id":"o","total":0,"tags":["x"]}}"#
            ),
            // Nulls where they are allowed, an unknown field, whitespace.
            format!(
                " {{ \"event_id\":\"{id}\", \"aggregate_id\" : \"{id}\" , \"tenant_id\":null,\"causation_id\":null,\"actor_id\":null,\"extra\":{{\"k\":1}},\"order_id\":\"o\",\"total\":1e2 }} "
            ),
            // A repeated envelope field, a missing payload field, a bad UUID, a non-object, trailing garbage.
            format!(
                r#"{{"event_id":"{id}","aggregate_id":"{id}","aggregate_id":"{id}","order_id":"o","total":1}}"#
            ),
            format!(r#"{{"aggregate_id":"{id}","order_id":"o"}}"#),
            r#"{"aggregate_id":"nope","order_id":"o","total":1}"#.to_owned(),
            "[1,2]".to_owned(),
            format!(r#"{{"aggregate_id":"{id}","order_id":"o","total":1}} x"#),
            // What only a full parse sees, in fields no type reads: a number out of range, a lone
            // surrogate, nesting deeper than serde_json's limit.
            format!(r#"{{"aggregate_id":"{id}","order_id":"o","total":1,"x":1e400}}"#),
            format!(r#"{{"aggregate_id":"{id}","order_id":"o","total":1,"x":"\ud800"}}"#),
            format!(
                r#"{{"aggregate_id":"{id}","order_id":"o","total":1,"x":{}1{}}}"#,
                "[".repeat(127),
                "]".repeat(127)
            ),
        ];
        for doc in &docs {
            let fast = decode::<Placed>(doc.as_bytes());
            let slow = general(doc.as_bytes());
            match (&fast, &slow) {
                (Ok(a), Ok(b)) => {
                    let mut b_meta = b.meta.clone();
                    if !doc.contains("occurred_at") {
                        b_meta.occurred_at = a.meta.occurred_at; // both default to "now"
                    }
                    assert_eq!((&a.meta, &a.payload), (&b_meta, &b.payload), "{doc}");
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{doc}"),
                _ => panic!("{doc}: {fast:?} vs {slow:?}"),
            }
        }
        // The first documents decode; check one value came through the one-pass path intact.
        let e = decode::<Placed>(docs[1].as_bytes()).unwrap();
        assert_eq!(
            (e.payload.order_id.as_str(), e.meta.actor_id.as_deref()),
            ("o\"2", Some("a\nb"))
        );
        let mut envelope = Envelope::default();
        scan::scan(docs[0].as_bytes(), &mut envelope).unwrap();
        assert!(
            matches!(&envelope[0], Some(Field::Str(_))),
            "strings are borrowed"
        );
    }

    /// Decodes `doc` by both paths and checks they agree: the same event (up to the values both
    /// generate when a field is absent: a new event id, "now") or the same error.
    fn assert_paths_agree(doc: &[u8]) {
        let fast = decode::<Placed>(doc);
        let slow = general(doc);
        match (fast, slow) {
            (Ok(a), Ok(mut b)) => {
                let map = parse_object(doc, "Placed").unwrap();
                if !map.contains_key("event_id") {
                    b.meta.event_id = a.meta.event_id;
                    if !map.contains_key("correlation_id") {
                        b.meta.correlation_id = a.meta.correlation_id;
                    }
                }
                if !map.contains_key("occurred_at") {
                    b.meta.occurred_at = a.meta.occurred_at;
                }
                assert_eq!(
                    (&a.meta, &a.payload),
                    (&b.meta, &b.payload),
                    "{}",
                    String::from_utf8_lossy(doc)
                );
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{}", String::from_utf8_lossy(doc)),
            (fast, slow) => panic!("{}: {fast:?} vs {slow:?}", String::from_utf8_lossy(doc)),
        }
    }

    #[test]
    fn the_paths_agree_on_mutated_documents() {
        let id = "0b6a3e6e-9d7c-4c31-8a0e-6f1f2a8d9c01";
        let bases = [
            // The shape eventsource-py writes.
            format!(
                r#"{{"event_id":"{id}","event_type":"Placed","event_version":1,"occurred_at":"2024-05-06T07:08:09.123456Z","aggregate_id":"{id}","aggregate_type":"Order","aggregate_version":12,"tenant_id":null,"actor_id":"user-1","correlation_id":"{id}","causation_id":null,"metadata":{{}},"order_id":"o-1","total":1.5,"tags":["a","b\"c"]}}"#
            ),
            format!(
                r#"{{"event_id":"{id}","aggregate_id":"{id}","event_version":"2","aggregate_version":3.0,"occurred_at":1714979291.5,"metadata":{{"a":[1,{{"b":null}}]}},"order_id":"o","total":0,"tags":["x"]}}"#
            ),
            format!(
                " {{ \"aggregate_id\" : \"{id}\" , \"tenant_id\":\"{id}\",\"order_id\":\"\\u00e9 é\",\"total\":-1e2 }} "
            ),
            // A field no type reads, with numbers near the limits and escapes for mutations to break.
            format!(
                r#"{{"aggregate_id":"{id}","extra":[1e300,"\u00e9\ud83d\ude00",{{"k":-1.5e-300}},18446744073709551615],"order_id":"o","total":2}}"#
            ),
        ];
        const ALPHABET: &[u8] = b"{}[]\":,\\ \t\n0123456789-.+eEnultrfasx\x01";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for base in &bases {
            assert_paths_agree(base.as_bytes());
        }
        let (mut fast, mut valid) = (0, 0);
        for _ in 0..20_000 {
            let mut doc = bases[next(bases.len())].as_bytes().to_vec();
            for _ in 0..=next(3) {
                let at = next(doc.len() + 1);
                match next(4) {
                    0 if at < doc.len() => doc[at] = ALPHABET[next(ALPHABET.len())],
                    1 => doc.insert(at, ALPHABET[next(ALPHABET.len())]),
                    2 if at < doc.len() => {
                        doc.remove(at);
                    }
                    _ => {
                        let end = (at + next(12)).min(doc.len());
                        let copy = doc[at..end].to_vec();
                        doc.splice(at..at, copy);
                    }
                }
            }
            assert_paths_agree(&doc);
            let ok = general(&doc).is_ok();
            valid += usize::from(ok);
            fast += usize::from(ok && scan::scan(&doc, &mut Envelope::default()).is_some());
        }
        // Both outcomes are exercised: documents that decode (through the fast path) and ones that do not.
        assert!(fast > 1_000 && valid < 19_000, "{fast} fast, {valid} valid");
    }
}
