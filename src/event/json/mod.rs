//! The JSON payload: eventsource-py's `model_dump_json()` on the way out, pydantic's lax validation on the
//! way in.
//!
//! Owns the field order (envelope fields, then payload fields), the text of floats and datetimes, and the
//! defaults and coercions applied when decoding. Writes the JSON text itself ([`write`]) and reads it with
//! its own parser ([`node`], [`document`]), which keeps the document's order and parses numbers exactly,
//! so neither direction depends on serde_json's process-wide `preserve_order` or `float_roundtrip`
//! features; serde is the interface to the payload types ([`de`]). Uses [`super::timefmt`]. Invariants:
//! encoding is deterministic; decoding never panics and reports the first bad field; a payload never
//! writes a top-level key twice. A decode then encode keeps the top-level order and the metadata's
//! nested order, not the nested order of payload fields of type `Value`, `Map` or `Metadata` (sorted),
//! nor integers beyond 64 bits or `-0` (written as floats).

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Error, Event, EventMeta, Metadata, timefmt};
use document::{Envelope, Unreadable};
use node::{Entry, Node, Number};

mod de;
mod document;
mod node;
mod write;

pub(crate) use write::encode;

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
    same_field_name(key.as_bytes(), name.as_bytes()).then_some(i)
}

/// `key == name` for an envelope field's `name` (8 to 17 bytes): compared as three overlapping 8-byte
/// words, which cover every byte of names up to 24 bytes, instead of a call to `memcmp` per key.
fn same_field_name(key: &[u8], name: &[u8]) -> bool {
    let n = name.len();
    if key.len() != n || !(8..=24).contains(&n) {
        return key == name;
    }
    let word = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    [0, (n - 8) / 2, n - 8]
        .into_iter()
        .all(|at| word(key, at) == word(name, at))
}

/// Reads `value` as an event document into `doc` (filled in place: a document is a few hundred bytes,
/// which moving by value copies); the errors say why in `event_type`'s name.
fn read<'a>(value: &'a [u8], event_type: &str, doc: &mut document::Document<'a>) -> Result<(), Error> {
    document::read(value, doc).map_err(|why| match why {
        Unreadable::NotObject(found) => Error::InvalidField {
            event_type: event_type.to_owned(),
            field: "<root>",
            reason: format!("Input should be an object, not {found}"),
        },
        Unreadable::Malformed => Error::MalformedJson {
            event_type: event_type.to_owned(),
            source: syntax_error(value),
        },
    })
}

/// serde_json's description of what is wrong with a document this crate's parser refused (the parsers
/// accept the same documents; should serde_json accept this one, a generic error).
fn syntax_error(value: &[u8]) -> serde_json::Error {
    match serde_json::from_slice::<serde::de::IgnoredAny>(value) {
        Err(e) => e,
        Ok(_) => match serde_json::from_slice::<Value>(value) {
            Err(e) => e,
            Ok(_) => <serde_json::Error as serde::de::Error>::custom("invalid JSON"),
        },
    }
}

/// Decodes a JSON payload as `E`.
pub(crate) fn decode<E: Event>(value: &[u8]) -> Result<super::DomainEvent<E>, Error> {
    let mut doc = document::Document::default();
    read(value, E::EVENT_TYPE, &mut doc)?;
    let meta = meta_from(doc.envelope, E::EVENT_TYPE, Some(E::AGGREGATE_TYPE))?;
    let payload = decode_payload::<E>(doc.payload)?;
    Ok(super::DomainEvent { meta, payload })
}

/// Decodes only the envelope of a JSON payload (the document is still checked whole). `name` is the type
/// name (for errors, and the default `event_type`); there is no default aggregate type.
pub(crate) fn decode_meta(value: &[u8], name: &str) -> Result<EventMeta, Error> {
    let mut doc = document::Document::default();
    read(value, name, &mut doc)?;
    meta_from(doc.envelope, name, None)
}

/// Deserializes the non-envelope fields as `E`. A unit struct (which serde reads from `null`, not from an
/// object) takes no fields and ignores any others, as a struct without `deny_unknown_fields` does.
fn decode_payload<E: Event>(fields: Vec<Entry<'_>>) -> Result<E, Error> {
    match E::deserialize(Node::Object(fields)) {
        Ok(p) => Ok(p),
        Err(source) => match E::deserialize(Node::Null) {
            Ok(unit) => Ok(unit),
            Err(_) => Err(Error::InvalidPayload {
                event_type: E::EVENT_TYPE.to_owned(),
                source,
            }),
        },
    }
}

/// The field as an owned string, or itself if it is not a string.
fn string(f: Node<'_>) -> Result<String, Node<'_>> {
    match f {
        Node::String(s) => Ok(s.into_owned()),
        other => Err(other),
    }
}

/// Validates the envelope fields (in [`ENVELOPE_FIELDS`] order; `None` = absent) into an [`EventMeta`].
fn meta_from(envelope: Envelope<'_>, name: &str, aggregate_type: Option<&str>) -> Result<EventMeta, Error> {
    let bad = |field: &'static str, reason: String| Error::InvalidField {
        event_type: name.to_owned(),
        field,
        reason,
    };
    let text = |field: &'static str, v: Node<'_>| {
        string(v).map_err(|v| bad(field, format!("Input should be a valid string, not {}", v.kind())))
    };
    let not_null = |f: &Node<'_>| !f.is_null();
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
        None => Metadata::new(),
        Some(Node::Object(entries)) => metadata_from(entries).map_err(|e| bad("metadata", e.to_string()))?,
        Some(v) => {
            return Err(bad(
                "metadata",
                format!("Input should be an object, not {}", v.kind()),
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

/// The metadata entries as values, each with its text (nested objects in the document's order, floats
/// as written; integers beyond 64 bits and `-0` as floats).
fn metadata_from(entries: Vec<Entry<'_>>) -> Result<Metadata, serde_json::Error> {
    let mut metadata = Metadata::new();
    for Entry { key, value } in entries {
        let mut text = Vec::new();
        write::node(&mut text, &value)?;
        let text = String::from_utf8(text).map_err(<serde_json::Error as serde::de::Error>::custom)?;
        metadata.push_read(key.into_owned(), Value::deserialize(value)?, text);
    }
    Ok(metadata)
}

/// A UUID as pydantic accepts it: a string, hyphenated or not, any case, braced or `urn:uuid:`.
fn lax_uuid(v: &Node<'_>) -> Result<Uuid, String> {
    match v.as_str() {
        Some(s) => Uuid::try_parse(s).map_err(|e| format!("Input should be a valid UUID, {e}")),
        None => Err(format!("UUID input should be a string, not {}", v.kind())),
    }
}

/// A version: an integer >= 1, also accepted as an integral float, a decimal string or a boolean.
fn lax_version(v: &Node<'_>) -> Result<u64, String> {
    const INVALID: &str = "Input should be a valid integer";
    let n: i128 = match v {
        Node::String(s) => python_int(s).ok_or_else(|| format!("{INVALID}, unable to parse string"))?,
        Node::Number(Number::PosInt(u)) => i128::from(*u),
        Node::Number(Number::NegInt(i)) => i128::from(*i),
        Node::Number(Number::Float(f)) => {
            if f.fract() != 0.0 {
                return Err(format!("{INVALID}, got a number with a fractional part"));
            }
            if f.abs() > 1.8e19 {
                return Err(format!("{INVALID}, {f} is too large"));
            }
            *f as i128
        }
        Node::Bool(b) => i128::from(*b),
        other => return Err(format!("{INVALID}, not {}", other.kind())),
    };
    if n < 1 {
        return Err("Input should be greater than or equal to 1".into());
    }
    u64::try_from(n).map_err(|_| format!("{INVALID}, {n} is too large"))
}

/// A datetime: a string in the forms of [`timefmt::parse_datetime`], or a number of Unix seconds.
fn lax_datetime(v: &Node<'_>) -> Result<OffsetDateTime, String> {
    let parsed = match v {
        Node::String(s) => timefmt::parse_datetime(s),
        Node::Number(n) => timefmt::from_unix(n.as_f64()),
        other => {
            return Err(format!("Input should be a valid datetime, not {}", other.kind()));
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
    fn field_names_compare_as_bytes_do() {
        let (long, longer) = ("x".repeat(24), "y".repeat(30));
        let others = ["", "a", "sku", long.as_str(), longer.as_str()];
        let names = ENVELOPE_FIELDS.iter().chain(&others);
        for name in names {
            let name = name.as_bytes();
            assert!(same_field_name(name, name));
            // Every single-byte change, at every position, is told apart.
            for at in 0..name.len() {
                for byte in [0u8, b'_', b'e', 0x7f, 0x80, 0xff] {
                    let mut other = name.to_vec();
                    other[at] = byte;
                    assert_eq!(same_field_name(&other, name), other == name, "{other:?}");
                }
            }
            let mut longer = name.to_vec();
            longer.push(b'd');
            assert!(!same_field_name(&longer, name));
            assert!(!same_field_name(&longer[..name.len().saturating_sub(1)], name) || name.is_empty());
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

    fn node(text: &str) -> Node<'_> {
        node::parse(text).unwrap()
    }

    #[test]
    fn versions_are_lax_but_at_least_one() {
        assert_eq!(lax_version(&node(r#""3""#)), Ok(3));
        assert_eq!(lax_version(&node("3.0")), Ok(3));
        assert_eq!(lax_version(&node("true")), Ok(1));
        for bad in ["0", "-1", "1.5", "null", "[1]", "1e300", "-0"] {
            assert!(lax_version(&node(bad)).is_err(), "{bad}");
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

    #[test]
    fn repeated_fields_take_their_last_value() {
        let id = "0b6a3e6e-9d7c-4c31-8a0e-6f1f2a8d9c01";
        let other = "0b6a3e6e-9d7c-4c31-8a0e-6f1f2a8d9c02";
        let doc = format!(
            r#"{{"aggregate_id":"{id}","total":1,"order_id":"a","aggregate_id":"{other}","total":2.5,"order_id":"b"}}"#
        );
        let e = decode::<Placed>(doc.as_bytes()).unwrap();
        assert_eq!(e.meta.aggregate_id.to_string(), other);
        assert_eq!((e.payload.order_id.as_str(), e.payload.total), ("b", 2.5));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let malformed = decode::<Placed>(br#"{"order_id":}"#).unwrap_err();
        assert!(matches!(malformed, Error::MalformedJson { .. }), "{malformed}");
        assert!(malformed.to_string().contains("line 1 column"), "{malformed}");
        let not_object = decode::<Placed>(b" [1,2] ").unwrap_err();
        assert_eq!(
            not_object.to_string(),
            "Failed to deserialize Placed: <root>: Input should be an object, not an array"
        );
        let metadata =
            decode::<Placed>(br#"{"aggregate_id":"0b6a3e6e-9d7c-4c31-8a0e-6f1f2a8d9c01","metadata":[1]}"#)
                .unwrap_err();
        assert!(
            metadata
                .to_string()
                .contains("metadata: Input should be an object, not an array")
        );
    }

    /// Mutations of event documents: this crate's parser accepts a document exactly when serde_json does,
    /// and reads the same values (up to the last bit of floats, which serde_json without
    /// `float_roundtrip` may get wrong), and decoding never panics.
    #[test]
    fn the_parser_agrees_with_serde_json_on_mutated_documents() {
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
                r#"{{"aggregate_id":"{id}","extra":[1e300,"\u00e9\ud83d\ude00",{{"k":-1.5e-300}},18446744073709551615,-9223372036854775808,-0],"order_id":"o","total":2}}"#
            ),
        ];
        const ALPHABET: &[u8] = b"{}[]\":,\\ \t\n0123456789-.+eEnultrfasxu\x00\x01\x1f\x7f\xc3\xa9";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let (mut accepted, mut decoded) = (0, 0);
        for round in 0..20_000 {
            let mut doc = bases[next(bases.len())].as_bytes().to_vec();
            for _ in 0..usize::from(round >= bases.len()) * (1 + next(3)) {
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
            let shown = String::from_utf8_lossy(&doc).into_owned();
            let theirs = serde_json::from_slice::<Value>(&doc);
            let ours = std::str::from_utf8(&doc).ok().and_then(node::parse);
            match (&theirs, ours) {
                (Ok(theirs), Some(ours)) => {
                    accepted += 1;
                    let ours = Value::deserialize(ours).unwrap();
                    assert!(same(&ours, theirs), "{shown}: {ours} vs {theirs}");
                }
                (Err(_), None) => {}
                (theirs, ours) => panic!("{shown}: serde_json {theirs:?}, ours {ours:?}"),
            }
            match decode::<Placed>(&doc) {
                Ok(_) => decoded += 1,
                Err(Error::MalformedJson { .. }) => assert!(theirs.is_err(), "{shown}"),
                Err(_) => assert!(theirs.is_ok(), "{shown}"),
            }
        }
        // Both outcomes are exercised.
        assert!(
            decoded > 1_000 && accepted < 19_000,
            "{decoded} decoded, {accepted} accepted"
        );
    }

    /// Equal JSON values, floats within a few units in the last place.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
                x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs()).max(f64::MIN_POSITIVE)
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|((kx, x), (ky, y))| kx == ky && same(x, y))
            }
            _ => a == b,
        }
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Flattened {
        order_id: String,
        #[serde(flatten)]
        extra: std::collections::BTreeMap<String, String>,
    }
    impl Event for Flattened {
        const EVENT_TYPE: &'static str = "Flattened";
        const AGGREGATE_TYPE: &'static str = "Order";
    }

    #[test]
    fn a_payload_key_written_twice_is_refused() {
        let meta = EventMeta::new("Flattened", "Order", Uuid::nil(), 1);
        let twice = Flattened {
            order_id: "a".into(),
            extra: std::collections::BTreeMap::from([("order_id".to_owned(), "b".to_owned())]),
        };
        match encode(&meta, &twice) {
            Err(Error::DuplicateField { event_type, field }) => {
                assert_eq!((event_type.as_str(), field.as_str()), ("Flattened", "order_id"));
            }
            other => panic!("not a DuplicateField: {other:?}"),
        }
        let once = Flattened {
            order_id: "a".into(),
            extra: std::collections::BTreeMap::from([("sku".to_owned(), "b".to_owned())]),
        };
        let json = String::from_utf8(encode(&meta, &once).unwrap()).unwrap();
        assert!(json.ends_with(r#""order_id":"a","sku":"b"}"#), "{json}");
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct FreeForm {
        attrs: Metadata,
        free: Value,
    }
    impl Event for FreeForm {
        const EVENT_TYPE: &'static str = "FreeForm";
        const AGGREGATE_TYPE: &'static str = "Order";
    }

    /// What a decode then encode keeps: the envelope's and the payload's top-level order and the
    /// metadata's nested order; what it does not keep: nested objects inside payload fields of type
    /// `Value` or `Metadata` come back sorted by key, and integers beyond 64 bits and `-0` (metadata
    /// included) come back as floats.
    #[test]
    fn what_a_reencode_keeps_and_what_it_does_not() {
        let id = "0b6a3e6e-9d7c-4c31-8a0e-6f1f2a8d9c01";
        let envelope = format!(
            r#"{{"event_id":"{id}","event_type":"FreeForm","event_version":1,"occurred_at":"2024-05-06T07:08:09.123456Z","aggregate_id":"{id}","aggregate_type":"Order","aggregate_version":1,"tenant_id":null,"actor_id":null,"correlation_id":"{id}","causation_id":null,"metadata":{{"n":100000000000000000000,"z":-0,"o":{{"w":1,"h":2}}}}"#
        );
        let doc = format!(r#"{envelope},"attrs":{{"y":{{"w":1,"h":2}},"b":1}},"free":{{"w":1,"h":2}}}}"#);
        let event = decode::<FreeForm>(doc.as_bytes()).unwrap();
        let out = String::from_utf8(encode(&event.meta, &event.payload).unwrap()).unwrap();
        let envelope = envelope
            .replace("100000000000000000000", "1e+20")
            .replace("-0,", "-0.0,");
        let expected =
            format!(r#"{envelope},"attrs":{{"y":{{"h":2,"w":1}},"b":1}},"free":{{"h":2,"w":1}}}}"#);
        assert_eq!(out, expected);
    }
}
