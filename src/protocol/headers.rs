//! Record headers, kept exactly as the wire has them.

use bytes::Bytes;

/// One record header: a UTF-8 key and an optional byte value (Kafka allows a null value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header's name.
    pub key: String,
    /// The header's value; `None` is a null value, distinct from an empty one.
    pub value: Option<Bytes>,
}

/// The headers of one record, in wire order.
///
/// Unlike a map, this keeps the order, repeated keys and null values of what was sent (KIP-82 allows
/// all three), so a record can be forwarded (to a DLQ, say) without losing anything.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::Headers;
///
/// let mut headers = Headers::new();
/// headers.insert("event_type", "OrderCreated");
/// headers.insert("trace", "a");
/// headers.insert("trace", "b");
/// headers.insert_null("tombstone");
///
/// assert_eq!(headers.get_str("event_type"), Some("OrderCreated"));
/// assert_eq!(headers.get("trace"), Some(&b"a"[..])); // the first of a repeated key
/// assert_eq!(headers.len(), 4);
/// assert_eq!(headers.get("tombstone"), None);
/// assert!(headers.contains_key("tombstone"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// No headers, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Appends a header (an existing header with the same key is kept).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Bytes>) {
        self.0.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
    }

    /// Appends a header with a null value.
    pub fn insert_null(&mut self, key: impl Into<String>) {
        self.0.push(Header {
            key: key.into(),
            value: None,
        });
    }

    /// Removes every header named `key`; returns how many there were.
    pub fn remove(&mut self, key: &str) -> usize {
        let before = self.0.len();
        self.0.retain(|h| h.key != key);
        before - self.0.len()
    }

    /// The value of the first header named `key`, if it has one.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
    }

    /// The value of the first header named `key`, if it has one and it is UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether a header named `key` is present (with or without a value).
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.iter().any(|h| h.key == key)
    }

    /// How many headers there are (repeated keys count once each).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The headers in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<I: IntoIterator<Item = Header>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl IntoIterator for Headers {
    type Item = Header;
    type IntoIter = std::vec::IntoIter<Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Record headers carry trace context: `telemetry` reads and writes `traceparent`, `tracestate` and
/// `baggage` through this.
impl crate::telemetry::HeaderCarrier for Headers {
    fn text(&self, key: &str) -> Option<&str> {
        self.get_str(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.iter().map(|h| h.key.as_str()).collect()
    }

    fn set_text(&mut self, key: &str, value: String) {
        self.remove(key);
        self.insert(key, value);
    }
}
