//! The encoder: writes an event's JSON text directly, in eventsource-py's field order (the envelope,
//! then the payload's fields in the order its `Serialize` gives them), with pydantic's float text.
//!
//! No JSON map is built, so the order does not depend on serde_json's `preserve_order` feature: the
//! payload is serialized once, in place after the envelope, and its opening brace becomes the comma
//! that joins it to the envelope. Metadata entries read from a document are written as [`node`] wrote
//! them when they were read: in the document's order, in pydantic's form.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};
use uuid::Uuid;

use super::super::{Error, EventMeta, timefmt};
use super::envelope_index;
use super::node::{Node, Number};

/// serde_json's compact output with pydantic's float text (`1e+22`, `0.00001`, `1e-6`).
struct PydanticFormatter;

impl Formatter for PydanticFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(timefmt::pydantic_float(value).as_bytes())
    }
    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        writer.write_all(timefmt::pydantic_float(f64::from(value)).as_bytes())
    }
}

/// Appends `value` as compact JSON with pydantic's float text.
fn json(out: &mut Vec<u8>, value: &(impl Serialize + ?Sized)) -> Result<(), serde_json::Error> {
    value.serialize(&mut Serializer::with_formatter(out, PydanticFormatter))
}

/// Appends `"name":` (names are the envelope's own, plain ASCII).
fn name(out: &mut Vec<u8>, name: &str, first: bool) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn uuid(out: &mut Vec<u8>, id: Uuid) {
    out.push(b'"');
    out.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

fn opt_uuid(out: &mut Vec<u8>, id: Option<Uuid>) {
    match id {
        Some(id) => uuid(out, id),
        None => out.extend_from_slice(b"null"),
    }
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(n.to_string().as_bytes());
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
    let serialize = |source| Error::Serialize {
        event_type: event_type.clone(),
        source,
    };
    let mut out = Vec::with_capacity(384);
    out.push(b'{');
    name(&mut out, "event_id", true);
    uuid(&mut out, meta.event_id);
    name(&mut out, "event_type", false);
    json(&mut out, event_type).map_err(serialize)?;
    name(&mut out, "event_version", false);
    number(&mut out, meta.event_version);
    name(&mut out, "occurred_at", false);
    out.push(b'"');
    out.extend_from_slice(timefmt::format_pydantic(meta.occurred_at).as_bytes());
    out.push(b'"');
    name(&mut out, "aggregate_id", false);
    uuid(&mut out, meta.aggregate_id);
    name(&mut out, "aggregate_type", false);
    json(&mut out, &meta.aggregate_type).map_err(serialize)?;
    name(&mut out, "aggregate_version", false);
    number(&mut out, meta.aggregate_version);
    name(&mut out, "tenant_id", false);
    opt_uuid(&mut out, meta.tenant_id);
    name(&mut out, "actor_id", false);
    json(&mut out, &meta.actor_id).map_err(serialize)?;
    name(&mut out, "correlation_id", false);
    uuid(&mut out, meta.correlation_id);
    name(&mut out, "causation_id", false);
    opt_uuid(&mut out, meta.causation_id);
    name(&mut out, "metadata", false);
    out.push(b'{');
    for (i, (key, value, text)) in meta.metadata.for_writing().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json(&mut out, key).map_err(serialize)?;
        out.push(b':');
        match text {
            Some(text) => out.extend_from_slice(text.as_bytes()),
            None => json(&mut out, value).map_err(serialize)?,
        }
    }
    out.push(b'}');

    let start = out.len();
    json(&mut out, payload).map_err(serialize)?;
    match out.get(start..) {
        Some(b"null" | b"{}") => {
            out.truncate(start);
            out.push(b'}');
        }
        Some([b'{', fields @ ..]) => {
            match field_clash(fields) {
                Some(FieldClash::Reserved(field)) => {
                    return Err(Error::ReservedField {
                        event_type: event_type.clone(),
                        field,
                    });
                }
                Some(FieldClash::Repeated(field)) => {
                    return Err(Error::DuplicateField {
                        event_type: event_type.clone(),
                        field,
                    });
                }
                None => {}
            }
            // The payload's `{` joins its fields to the envelope's; its `}` closes the document.
            out[start] = b',';
        }
        other => {
            return Err(Error::PayloadNotObject {
                event_type: event_type.clone(),
                found: match other.and_then(|b| b.first()) {
                    Some(b'[') => "an array",
                    Some(b'"') => "a string",
                    Some(b't' | b'f') => "a boolean",
                    _ => "a number",
                },
            });
        }
    }
    Ok(out)
}

/// A top-level payload key that cannot go into the envelope.
enum FieldClash {
    /// The key is an envelope field name.
    Reserved(String),
    /// The key was already written.
    Repeated(String),
}

/// The first top-level key of a compact object's fields (after its `{`, as serde_json writes them) that
/// is an envelope field name or repeats an earlier key. serde_json writes equal keys as equal bytes,
/// so keys are compared as written.
fn field_clash(fields: &[u8]) -> Option<FieldClash> {
    let mut seen = std::collections::HashSet::new();
    let mut at = 0;
    while fields.get(at) == Some(&b'"') {
        let key_end = string_end(fields, at)?;
        let key = fields.get(at + 1..key_end - 1)?;
        if let Ok(key) = std::str::from_utf8(key)
            && envelope_index(key).is_some()
        {
            return Some(FieldClash::Reserved(key.to_owned()));
        }
        if !seen.insert(key) {
            return Some(FieldClash::Repeated(String::from_utf8_lossy(key).into_owned()));
        }
        // Past the colon and the value, to the comma (or the closing brace: done).
        at = value_end(fields, key_end + 1)?;
        if fields.get(at) != Some(&b',') {
            return None;
        }
        at += 1;
    }
    None
}

/// The index after the string token starting at `at`.
fn string_end(text: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        let next = i + memchr::memchr2(b'"', b'\\', text.get(i..)?)?;
        if text[next] == b'"' {
            return Some(next + 1);
        }
        i = next + 2;
    }
}

/// The index after the compact value starting at `at`.
fn value_end(text: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = at;
    loop {
        match *text.get(i)? {
            b'"' => {
                i = string_end(text, i)?;
                if depth == 0 {
                    return Some(i);
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return Some(i),
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b',' if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
}

/// Appends a parsed value as pydantic re-dumps it: compact, objects in their order, floats in pydantic's
/// text, strings with serde_json's (and pydantic's) escapes.
pub(crate) fn node(out: &mut Vec<u8>, value: &Node<'_>) -> Result<(), serde_json::Error> {
    match value {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Node::Number(Number::PosInt(u)) => number(out, *u),
        Node::Number(Number::NegInt(i)) => out.extend_from_slice(i.to_string().as_bytes()),
        Node::Number(Number::Float(f)) => json(out, f)?,
        Node::String(s) => json(out, s.as_ref())?,
        Node::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                node(out, item)?;
            }
            out.push(b']');
        }
        Node::Object(entries) => {
            out.push(b'{');
            for (i, entry) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json(out, entry.key.as_ref())?;
                out.push(b':');
                node(out, &entry.value)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}
