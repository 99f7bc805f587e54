//! One DLQ record as an operator sees it: eventsource-py's `get_dlq_messages` entry, typed.

use std::fmt::Write as _;

use bytes::Bytes;
use serde::{Serialize, Serializer, ser::SerializeMap};

use crate::event::{header, python_int};
use crate::protocol::Headers;

/// A record's value as a listing shows it: parsed JSON when it is JSON, else its bytes in lowercase hex
/// (eventsource-py's `orjson.loads(value)`, falling back to `value.hex()`).
///
/// # Example
///
/// ```
/// use kafka_event_bus::dlq::DlqPayload;
///
/// assert_eq!(DlqPayload::from_value(b"{\"a\":1}"), DlqPayload::Json(serde_json::json!({"a": 1})));
/// assert_eq!(DlqPayload::from_value(b"\xff\x01"), DlqPayload::Hex("ff01".into()));
/// assert_eq!(serde_json::to_string(&DlqPayload::Hex("ff01".into()))?, "\"ff01\"");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum DlqPayload {
    /// The value parsed as JSON (any JSON value, as `orjson.loads` accepts).
    Json(serde_json::Value),
    /// The value is not JSON: its bytes in lowercase hex.
    Hex(String),
}

impl DlqPayload {
    /// Reads a (non-empty) value.
    pub fn from_value(value: &[u8]) -> Self {
        match serde_json::from_slice(value) {
            Ok(json) => Self::Json(json),
            Err(_) => {
                let mut hex = String::with_capacity(value.len() * 2);
                for b in value {
                    let _ = write!(hex, "{b:02x}");
                }
                Self::Hex(hex)
            }
        }
    }
}

/// One DLQ record, with the fields (and, serialized, the keys) of eventsource-py's `get_dlq_messages`
/// entries: `topic`, `partition`, `offset`, `key`, `timestamp`, `headers`, `payload`, `replay_count`.
///
/// Where eventsource-py would raise, this reads on: a non-UTF-8 key or header value is decoded lossily
/// (U+FFFD), a null header value serializes as JSON `null`, an unparseable `dlq_replay_count` counts 0.
/// The headers are kept exactly as on the wire (order, duplicates, nulls); serialized, they become an
/// object in Python dict order (a repeated name keeps its first position and its last value).
///
/// # Example
///
/// ```
/// use kafka_event_bus::dlq::DlqEntry;
/// use kafka_event_bus::protocol::Headers;
///
/// let mut headers = Headers::new();
/// headers.insert("event_type", "OrderCreated");
/// headers.insert("dlq_replay_count", "2");
/// let entry = DlqEntry::from_record("o.stream.dlq", 0, 7, 1_700_000_000_000,
///     Some("k".into()), Some(r#"{"x":1}"#.into()), headers);
/// assert_eq!(entry.replay_count, 2);
/// let json = serde_json::to_string(&entry)?;
/// assert_eq!(json, concat!(r#"{"topic":"o.stream.dlq","partition":0,"offset":7,"key":"k","#,
///     r#""timestamp":1700000000000,"headers":{"event_type":"OrderCreated","dlq_replay_count":"2"},"#,
///     r#""payload":{"x":1},"replay_count":2}"#));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DlqEntry {
    /// The DLQ topic.
    pub topic: String,
    /// The DLQ partition.
    pub partition: i32,
    /// The offset in the DLQ partition (what `DlqAdmin::replay` takes).
    pub offset: i64,
    /// The key as UTF-8 text; `None` when null or empty.
    pub key: Option<String>,
    /// The record's timestamp, in ms since the epoch.
    pub timestamp: i64,
    /// The headers, original ones first, then the `dlq_*` ones.
    #[serde(serialize_with = "headers_as_dict")]
    pub headers: Headers,
    /// The value; `None` when null or empty.
    pub payload: Option<DlqPayload>,
    /// `dlq_replay_count` (the last one, as a dict keeps it), 0 when missing or unparseable.
    pub replay_count: i64,
}

impl DlqEntry {
    /// The entry for one record read from a DLQ partition.
    pub fn from_record(
        topic: impl Into<String>,
        partition: i32,
        offset: i64,
        timestamp: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Headers,
    ) -> Self {
        let replay_count = headers
            .get_last(header::DLQ_REPLAY_COUNT)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(python_int)
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(0);
        Self {
            topic: topic.into(),
            partition,
            offset,
            key: key
                .filter(|k| !k.is_empty())
                .map(|k| String::from_utf8_lossy(&k).into_owned()),
            timestamp,
            payload: value
                .filter(|v| !v.is_empty())
                .map(|v| DlqPayload::from_value(&v)),
            headers,
            replay_count,
        }
    }

    /// The provenance the nine `dlq_*` headers record.
    ///
    /// # Errors
    ///
    /// As [`DeadLetter::from_headers`](crate::dlq::DeadLetter::from_headers).
    pub fn dead_letter(&self) -> Result<crate::dlq::DeadLetter, crate::dlq::Error> {
        crate::dlq::DeadLetter::from_headers(&self.headers)
    }
}

/// Headers as a Python dict `{k: v.decode()}`: first position, last value; lossy UTF-8; null → null.
fn headers_as_dict<S: Serializer>(headers: &Headers, serializer: S) -> Result<S::Ok, S::Error> {
    let mut merged: Vec<(&str, Option<String>)> = Vec::with_capacity(headers.len());
    for h in headers.iter() {
        let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
        match merged.iter_mut().find(|(k, _)| *k == h.key) {
            Some(slot) => slot.1 = value,
            None => merged.push((h.key, value)),
        }
    }
    let mut map = serializer.serialize_map(Some(merged.len()))?;
    for (k, v) in &merged {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_null_key_and_value_are_none() {
        let e = DlqEntry::from_record(
            "t",
            1,
            2,
            3,
            Some(Bytes::new()),
            Some(Bytes::new()),
            Headers::new(),
        );
        assert_eq!((e.key, e.payload), (None, None));
        let e = DlqEntry::from_record("t", 1, 2, 3, None, None, Headers::new());
        assert_eq!((e.key, e.payload, e.replay_count), (None, None, 0));
    }

    #[test]
    fn poison_bytes_never_fail() {
        let mut h = Headers::new();
        h.insert("bin", &b"\xff"[..]);
        h.insert_null("null");
        h.insert("dlq_replay_count", "x");
        let e = DlqEntry::from_record(
            "t",
            0,
            0,
            0,
            Some(Bytes::from_static(b"\xc3")),
            Some(Bytes::from_static(b"\x00{")),
            h,
        );
        assert_eq!(e.key.as_deref(), Some("\u{fffd}"));
        assert_eq!(e.payload, Some(DlqPayload::Hex("007b".into())));
        assert_eq!(e.replay_count, 0);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json["headers"],
            serde_json::json!({"bin": "\u{fffd}", "null": null, "dlq_replay_count": "x"})
        );
    }

    #[test]
    fn repeated_headers_keep_first_position_and_last_value() {
        let mut h = Headers::new();
        h.insert("a", "1");
        h.insert("b", "2");
        h.insert("a", "3");
        h.insert("dlq_replay_count", "1");
        h.insert("dlq_replay_count", "4");
        let e = DlqEntry::from_record("t", 0, 0, 0, None, Some(Bytes::from_static(b"7")), h);
        assert_eq!(e.replay_count, 4);
        assert_eq!(e.payload, Some(DlqPayload::Json(serde_json::json!(7))));
        let text = serde_json::to_string(&e.headers_json()).unwrap();
        assert_eq!(text, r#"{"a":"3","b":"2","dlq_replay_count":"4"}"#);
    }

    impl DlqEntry {
        fn headers_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()["headers"].clone()
        }
    }
}
