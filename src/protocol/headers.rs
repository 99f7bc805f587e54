//! Record headers, kept exactly as the wire has them.
//!
//! Decoded headers stay in the record's bytes (one shared slice per record, no allocation per header)
//! and are read in place; they become owned [`Header`]s only when changed or taken apart.

use bytes::Bytes;

use super::records::varint::Reader;

/// One record header: a UTF-8 key and an optional byte value (Kafka allows a null value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header's name.
    pub key: String,
    /// The header's value; `None` is a null value, distinct from an empty one.
    pub value: Option<Bytes>,
}

/// A borrowed view of one header, as [`Headers::iter`] gives them.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::Headers;
///
/// let mut headers = Headers::new();
/// headers.insert("event_type", "OrderCreated");
/// let first = headers.iter().next().unwrap();
/// assert_eq!((first.key, first.value), ("event_type", Some(&b"OrderCreated"[..])));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderRef<'a> {
    /// The header's name.
    pub key: &'a str,
    /// The header's value; `None` is a null value, distinct from an empty one.
    pub value: Option<&'a [u8]>,
}

impl From<HeaderRef<'_>> for Header {
    fn from(h: HeaderRef<'_>) -> Self {
        Header {
            key: h.key.to_owned(),
            value: h.value.map(Bytes::copy_from_slice),
        }
    }
}

/// The headers of one record, in wire order.
///
/// Unlike a map, this keeps the order, repeated keys and null values of what was sent (KIP-82 allows
/// all three), so a record can be forwarded (to a DLQ, say) without losing anything. Headers of a
/// consumed record are read in place from the record's bytes; the first change copies them out.
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
#[derive(Clone, Default)]
pub struct Headers {
    /// The headers, unless `wire` holds them (then this is empty).
    owned: Vec<Header>,
    /// Headers still in the record's bytes.
    wire: Option<Wire>,
}

/// `count` headers encoded as the record format has them (varint key length, key, varint value length
/// or -1, value), checked when decoded: every key is UTF-8 and the bytes end after the last.
#[derive(Clone)]
struct Wire {
    raw: Bytes,
    count: usize,
    /// One bit per key present ([`key_bit`]): most lookups of an absent key end here.
    keys: u64,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// No headers, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            owned: Vec::with_capacity(n),
            wire: None,
        }
    }

    /// Reads `count` headers in record format from `buf` at `start`; returns them and the bytes they
    /// took, or `None` if they are malformed. Keys that are not UTF-8 are decoded lossily (U+FFFD, as the
    /// Java client does); those headers are copied out.
    pub(crate) fn decode(buf: &Bytes, start: usize, count: usize) -> Option<(Self, usize)> {
        let mut r = Reader::new_at(buf, start)?;
        let (mut lossy, mut keys) = (false, 0);
        for _ in 0..count {
            let (key, _) = next_header(&mut r)?;
            lossy |= std::str::from_utf8(key).is_err();
            keys |= key_bit(key);
        }
        let used = r.position() - start;
        if count == 0 {
            return Some((Self::new(), used));
        }
        let raw = buf.slice(start..start + used);
        if !lossy {
            let wire = Some(Wire { raw, count, keys });
            return Some((
                Self {
                    owned: Vec::new(),
                    wire,
                },
                used,
            ));
        }
        let mut r = Reader::new(&raw);
        let mut owned = Vec::with_capacity(count);
        for _ in 0..count {
            let (key, value) = next_header(&mut r)?;
            owned.push(Header {
                key: String::from_utf8_lossy(key).into_owned(),
                value: value.map(|v| raw.slice_ref(v)),
            });
        }
        Some((Self { owned, wire: None }, used))
    }

    /// The owned headers, copied out of the record's bytes first if need be.
    fn owned(&mut self) -> &mut Vec<Header> {
        if let Some(wire) = self.wire.take() {
            self.owned = wire
                .iter()
                .map(|h| Header {
                    key: h.key.to_owned(),
                    value: h.value.map(|v| wire.raw.slice_ref(v)),
                })
                .collect();
        }
        &mut self.owned
    }

    /// Appends a header (an existing header with the same key is kept).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Bytes>) {
        self.owned().push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
    }

    /// Appends a header with a null value.
    pub fn insert_null(&mut self, key: impl Into<String>) {
        self.owned().push(Header {
            key: key.into(),
            value: None,
        });
    }

    /// Removes every header named `key`; returns how many there were.
    pub fn remove(&mut self, key: &str) -> usize {
        if !self.contains_key(key) {
            return 0;
        }
        let owned = self.owned();
        let before = owned.len();
        owned.retain(|h| h.key != key);
        before - owned.len()
    }

    /// The value of the first header named `key`, if it has one.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.get_all(key).next().flatten()
    }

    /// The values of every header named `key`, in order (`None` for a null value).
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::protocol::Headers;
    ///
    /// let mut headers = Headers::new();
    /// headers.insert("trace", "a");
    /// headers.insert_null("trace");
    /// let values: Vec<Option<&[u8]>> = headers.get_all("trace").collect();
    /// assert_eq!(values, [Some(&b"a"[..]), None]);
    /// ```
    pub fn get_all<'a, 'k>(&'a self, key: &'k str) -> impl Iterator<Item = Option<&'a [u8]>> + use<'a, 'k> {
        // Compared as bytes: no UTF-8 check per header.
        let key = key.as_bytes();
        let (owned, wire) = match &self.wire {
            Some(wire) if wire.keys & key_bit(key) == 0 => (None, None),
            Some(wire) => (None, Some(wire.raw_iter())),
            None => (
                Some(self.owned.iter().map(|h| (h.key.as_bytes(), h.value.as_deref()))),
                None,
            ),
        };
        owned
            .into_iter()
            .flatten()
            .chain(wire.into_iter().flatten())
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The value of the last header named `key`, if it has one (a Python dict built from the headers
    /// keeps the last of a repeated key, so eventsource-py reads headers this way).
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::protocol::Headers;
    ///
    /// let mut headers = Headers::new();
    /// headers.insert("trace", "a");
    /// headers.insert("trace", "b");
    /// assert_eq!(headers.get_last("trace"), Some(&b"b"[..]));
    /// ```
    pub fn get_last(&self, key: &str) -> Option<&[u8]> {
        self.get_all(key).last().flatten()
    }

    /// The value of the first header named `key`, if it has one and it is UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether a header named `key` is present (with or without a value).
    pub fn contains_key(&self, key: &str) -> bool {
        self.get_all(key).next().is_some()
    }

    /// How many headers there are (repeated keys count once each).
    pub fn len(&self) -> usize {
        self.wire.as_ref().map_or(self.owned.len(), |w| w.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The headers in order.
    pub fn iter(&self) -> HeaderIter<'_> {
        HeaderIter(match &self.wire {
            Some(wire) => IterRepr::Wire(wire.iter()),
            None => IterRepr::Owned(self.owned.iter()),
        })
    }
}

/// A key's bit in [`Wire::keys`]: from its length and its first and last bytes.
fn key_bit(key: &[u8]) -> u64 {
    let (first, last) = (
        key.first().copied().unwrap_or(0),
        key.last().copied().unwrap_or(0),
    );
    let h = (key.len() as u64)
        .wrapping_mul(0x9e37_79b9)
        .wrapping_add(u64::from(first) << 8 | u64::from(last));
    1 << (h.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 58)
}

/// The next header of a record-format header list: key bytes and value bytes (`None`: null).
fn next_header<'a>(r: &mut Reader<'a>) -> Option<(&'a [u8], Option<&'a [u8]>)> {
    let key_len = usize::try_from(r.varint()?).ok()?;
    let key = r.slice(key_len)?;
    let value_len = r.varint()?;
    let value = match value_len {
        -1 => None,
        n => Some(r.slice(usize::try_from(n).ok()?)?),
    };
    Some((key, value))
}

impl Wire {
    fn raw_iter(&self) -> RawIter<'_> {
        RawIter {
            reader: Reader::new(&self.raw),
            left: self.count,
        }
    }

    fn iter(&self) -> WireIter<'_> {
        WireIter(self.raw_iter())
    }
}

/// Wire headers as key bytes and value bytes.
struct RawIter<'a> {
    reader: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for RawIter<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        next_header(&mut self.reader)
    }
}

struct WireIter<'a>(RawIter<'a>);

impl<'a> Iterator for WireIter<'a> {
    type Item = HeaderRef<'a>;

    fn next(&mut self) -> Option<HeaderRef<'a>> {
        let (key, value) = self.0.next()?;
        // Checked when decoded (`Headers::decode`), so the fallback is never taken.
        let key = std::str::from_utf8(key).unwrap_or_default();
        Some(HeaderRef { key, value })
    }
}

/// An iterator over [`Headers`], in order.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::Headers;
///
/// let mut headers = Headers::new();
/// headers.insert("a", "1");
/// headers.insert_null("b");
/// let keys: Vec<&str> = headers.iter().map(|h| h.key).collect();
/// assert_eq!(keys, ["a", "b"]);
/// ```
pub struct HeaderIter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Owned(std::slice::Iter<'a, Header>),
    Wire(WireIter<'a>),
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = HeaderRef<'a>;

    fn next(&mut self) -> Option<HeaderRef<'a>> {
        match &mut self.0 {
            IterRepr::Owned(it) => it.next().map(|h| HeaderRef {
                key: &h.key,
                value: h.value.as_deref(),
            }),
            IterRepr::Wire(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IterRepr::Owned(it) => it.size_hint(),
            IterRepr::Wire(it) => (0, Some(it.0.left)),
        }
    }
}

impl std::fmt::Debug for HeaderIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderIter { .. }")
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl std::hash::Hash for Headers {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for h in self.iter() {
            h.hash(state);
        }
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<I: IntoIterator<Item = Header>>(iter: I) -> Self {
        Self {
            owned: iter.into_iter().collect(),
            wire: None,
        }
    }
}

impl<'a> FromIterator<HeaderRef<'a>> for Headers {
    fn from_iter<I: IntoIterator<Item = HeaderRef<'a>>>(iter: I) -> Self {
        iter.into_iter().map(Header::from).collect()
    }
}

impl IntoIterator for Headers {
    type Item = Header;
    type IntoIter = std::vec::IntoIter<Header>;
    fn into_iter(mut self) -> Self::IntoIter {
        std::mem::take(self.owned()).into_iter()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = HeaderRef<'a>;
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};

    use super::*;
    use crate::protocol::records::varint::put_varint;

    /// Record-format headers, after `prefix` junk bytes (so `start` is exercised).
    fn wire(prefix: usize, headers: &[(&[u8], Option<&[u8]>)]) -> Bytes {
        let mut out = BytesMut::new();
        out.put_bytes(0xee, prefix);
        for (key, value) in headers {
            put_varint(&mut out, i32::try_from(key.len()).unwrap());
            out.put_slice(key);
            match value {
                Some(v) => {
                    put_varint(&mut out, i32::try_from(v.len()).unwrap());
                    out.put_slice(v);
                }
                None => put_varint(&mut out, -1),
            }
        }
        out.put_u8(0x7f); // whatever follows the headers in the record
        out.freeze()
    }

    fn owned(headers: &[(&str, Option<&str>)]) -> Headers {
        let mut out = Headers::new();
        for (k, v) in headers {
            match v {
                Some(v) => out.insert(*k, v.to_string()),
                None => out.insert_null(*k),
            }
        }
        out
    }

    #[test]
    fn wire_headers_read_in_place_like_owned_ones() {
        let raw = wire(
            3,
            &[
                (b"a", Some(b"1")),
                (b"b", None),
                (b"a", Some(b"")),
                (b"c", Some(b"3")),
            ],
        );
        let (h, used) = Headers::decode(&raw, 3, 4).unwrap();
        assert_eq!(used, raw.len() - 4);
        assert!(h.wire.is_some() && h.owned.is_empty());
        let want = owned(&[("a", Some("1")), ("b", None), ("a", Some("")), ("c", Some("3"))]);
        assert_eq!(h, want);
        assert_eq!(format!("{h:?}"), format!("{want:?}"));
        assert_eq!(
            (h.len(), h.get("a"), h.get_last("a"), h.get("b")),
            (4, Some(&b"1"[..]), Some(&b""[..]), None)
        );
        assert!(h.contains_key("b") && !h.contains_key("d"));
        let hash = |h: &Headers| {
            use std::hash::{BuildHasher, RandomState};
            let s = RandomState::new();
            (s.hash_one(h), s.hash_one(h))
        };
        let (x, y) = hash(&h);
        assert_eq!(x, y);
    }

    #[test]
    fn changing_wire_headers_copies_them_out_in_order() {
        let raw = wire(0, &[(b"a", Some(b"1")), (b"b", None), (b"a", Some(b"2"))]);
        let (mut h, _) = Headers::decode(&raw, 0, 3).unwrap();
        let copy = h.clone();
        assert_eq!(h.remove("zzz"), 0);
        assert!(h.wire.is_some(), "removing nothing keeps the wire form");
        assert_eq!(h.remove("a"), 2);
        h.insert("c", "3");
        assert_eq!(h, owned(&[("b", None), ("c", Some("3"))]));
        assert_eq!(copy.len(), 3, "a clone is unaffected");
        let all: Vec<Header> = copy.into_iter().collect();
        assert_eq!(
            all[2],
            Header {
                key: "a".into(),
                value: Some(Bytes::from_static(b"2"))
            }
        );
    }

    #[test]
    fn non_utf8_keys_are_decoded_lossily() {
        let raw = wire(0, &[(b"ok", Some(b"1")), (b"bad\xff", Some(b"2"))]);
        let (h, _) = Headers::decode(&raw, 0, 2).unwrap();
        let keys: Vec<&str> = h.iter().map(|h| h.key).collect();
        assert_eq!(keys, ["ok", "bad\u{fffd}"]);
    }

    #[test]
    fn malformed_headers_are_refused_without_reading_past_the_end() {
        let raw = wire(0, &[(b"key", Some(b"value"))]);
        for cut in 0..raw.len() - 1 {
            assert!(Headers::decode(&raw.slice(..cut), 0, 1).is_none(), "cut at {cut}");
        }
        // A count far beyond what the bytes hold ends when they do.
        assert!(Headers::decode(&raw, 0, usize::MAX).is_none());
        assert!(Headers::decode(&raw, raw.len() + 1, 1).is_none());
        // Zero headers take no bytes and need none.
        assert_eq!(
            Headers::decode(&Bytes::new(), 0, 0).map(|(h, n)| (h.len(), n)),
            Some((0, 0))
        );
    }
}
