//! [`Metadata`]: an event's free-form `metadata` object, in its own order.
//!
//! Owns the order of the entries (as written by the producer, or as inserted) and, for entries of an
//! event's envelope read from a document, the value's JSON text with its nested objects in the
//! document's order and its floats as written, so that re-encoding a decoded event keeps them.
//! Integers beyond `u64`/`i64` and `-0` are kept as floats (`1e+20`, `-0.0`), not as written.
//! Invariant: one entry per key.

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

#[derive(Clone)]
struct Entry {
    key: String,
    value: Value,
    /// The value's JSON text when read from a document (nested order kept); `None` once the value is set
    /// by the program.
    text: Option<Box<str>>,
}

/// An event's `metadata`: string keys to JSON values, in order (the producer's order when decoded,
/// insertion order when built).
///
/// An ordered type of the crate's own rather than `serde_json::Map`, whose order depends on a
/// process-wide serde_json feature.
///
/// What re-encoding a decoded event keeps, and what it does not:
/// - The event's own `metadata` keeps its key order and, for each value, its nested objects in the
///   document's order and its floats as written. Integers beyond `u64`/`i64` and `-0` come back as
///   floats (`1e+20`, `-0.0`), so those bytes differ from the record's.
/// - A payload field of this type keeps its top-level key order only: its values are plain [`Value`]s,
///   whose nested objects serde_json writes sorted by key (as for a field of type `Value` or `Map`).
/// - A value inserted by the program is written from its [`Value`] (nested objects sorted).
///
/// Equality (`==`) compares the keys and values in order (not the kept text): two `Metadata` with the
/// same entries in different orders are not equal. Lookups and inserts are linear in the number of
/// entries.
///
/// # Example
///
/// ```
/// use kafka_event_bus::event::Metadata;
/// use serde_json::json;
///
/// let mut metadata = Metadata::new();
/// metadata.insert("source", "api");
/// metadata.insert("request", json!({"id": 7}));
/// metadata.insert("source", "batch"); // replaces the value, keeps the position
/// assert_eq!(metadata.get("source"), Some(&json!("batch")));
/// let keys: Vec<&str> = metadata.keys().collect();
/// assert_eq!(keys, ["source", "request"]);
/// ```
#[derive(Clone, Default)]
pub struct Metadata {
    entries: Vec<Entry>,
}

impl Metadata {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.key == key)
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// The value under `key`, to change in place.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let entry = self.entries.iter_mut().find(|e| e.key == key)?;
        entry.text = None;
        Some(&mut entry.value)
    }

    /// Whether there is an entry under `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` to `value`: a new key goes last, an existing one keeps its position. Returns the old
    /// value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        match self.position(&key) {
            Some(i) => {
                let entry = &mut self.entries[i];
                entry.text = None;
                Some(std::mem::replace(&mut entry.value, value))
            }
            None => {
                self.entries.push(Entry {
                    key,
                    value,
                    text: None,
                });
                None
            }
        }
    }

    /// Removes `key`, keeping the order of the others. Returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.position(key)?;
        Some(self.entries.remove(i).value)
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> + '_ {
        self.entries.iter().map(|e| (e.key.as_str(), &e.value))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.entries.iter().map(|e| e.key.as_str())
    }

    /// An entry read from a document: its value and its text. The caller passes each key once (the
    /// parser already merged repeated keys), so this does not look for it.
    pub(crate) fn push_read(&mut self, key: String, value: Value, text: String) {
        self.entries.push(Entry {
            key,
            value,
            text: Some(text.into_boxed_str()),
        });
    }

    /// The entries for the encoder: key, value, and the value's text if it was read from a document.
    pub(crate) fn for_writing(&self) -> impl Iterator<Item = (&str, &Value, Option<&str>)> + '_ {
        self.entries
            .iter()
            .map(|e| (e.key.as_str(), &e.value, e.text.as_deref()))
    }
}

/// Equal when the same keys have equal values in the same order: the same entries in another order are
/// not equal (the kept text is not compared).
impl PartialEq for Metadata {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut metadata = Self::new();
        for (k, v) in iter {
            metadata.insert(k, v);
        }
        metadata
    }
}

impl<K: Into<String>, V: Into<Value>> Extend<(K, V)> for Metadata {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

/// The map's entries in the map's own iteration order.
impl From<Map<String, Value>> for Metadata {
    fn from(map: Map<String, Value>) -> Self {
        map.into_iter().collect()
    }
}

/// A JSON object of the entries, in order.
impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A JSON object, in order; a repeated key keeps its first position and takes its last value.
impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Metadata;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                let mut entries: Vec<Entry> = Vec::new();
                let mut index: HashMap<String, usize> = HashMap::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    match index.get(&key) {
                        Some(&i) => entries[i].value = value,
                        None => {
                            index.insert(key.clone(), entries.len());
                            entries.push(Entry {
                                key,
                                value,
                                text: None,
                            });
                        }
                    }
                }
                Ok(Metadata { entries })
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}
