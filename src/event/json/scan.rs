//! One hand-written pass over an event document: the twelve envelope fields are set aside (strings
//! borrowed from the input), and the other fields are copied as text into a smaller document that the
//! payload type is read from.
//!
//! This is the fast path of [`super::decode`]. It takes the shape eventsource-py writes (an object whose
//! keys and envelope strings have no escapes) and gives up, returning `None`, on anything else: not an
//! object, an escape in a key or an envelope string, a repeated envelope field, a payload its type
//! rejects, invalid JSON. The caller then takes the general path, which gives the same result or the
//! precise error.
//!
//! Only the structure is checked here; serde_json checks every value. The payload document is the
//! input's payload fields verbatim, so it is valid JSON only if each of their values is, and every
//! non-string envelope value is parsed by serde_json from its own text: a document accepted here is
//! one serde_json accepts, and it decodes to the same values.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::envelope_index;

/// An envelope field's value: a string (borrowed from the input) or any other JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field<'a> {
    Str(&'a str),
    Value(Value),
}

impl Field<'_> {
    /// The string, if the value is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            Field::Value(Value::String(s)) => Some(s),
            Field::Value(_) => None,
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Field::Value(Value::Null))
    }
}

/// The envelope fields in [`super::ENVELOPE_FIELDS`] order (`None`: absent).
pub(crate) type Envelope<'a> = [Option<Field<'a>>; 12];

/// Reads `value` (a JSON object) once: the envelope fields into `envelope` (empty on entry), the rest as
/// `E`. `None`: not the usual shape, or not valid (see the module docs); `envelope` is then unspecified.
pub(crate) fn scan<'a, E: DeserializeOwned>(value: &'a [u8], envelope: &mut Envelope<'a>) -> Option<E> {
    // One UTF-8 check of the whole document is cheaper than one per string.
    let text = std::str::from_utf8(value).ok()?;
    let mut s = Scanner {
        text,
        bytes: value,
        pos: 0,
    };
    let mut payload = String::with_capacity(value.len());
    payload.push('{');
    s.whitespace();
    s.eat(b'{')?;
    s.whitespace();
    if s.eat(b'}').is_none() {
        loop {
            let key = s.plain_string()?;
            s.whitespace();
            s.eat(b':')?;
            s.whitespace();
            match envelope_index(key) {
                Some(i) => {
                    let slot = envelope.get_mut(i)?;
                    if slot.is_some() {
                        return None;
                    }
                    s.envelope_value(slot)?;
                }
                None => {
                    let value = s.value_text()?;
                    if payload.len() > 1 {
                        payload.push(',');
                    }
                    payload.push('"');
                    payload.push_str(key);
                    payload.push_str("\":");
                    payload.push_str(value);
                }
            }
            s.whitespace();
            if s.eat(b',').is_some() {
                s.whitespace();
            } else {
                s.eat(b'}')?;
                break;
            }
        }
    }
    s.whitespace();
    if s.pos != value.len() {
        return None;
    }
    payload.push('}');
    serde_json::from_str(&payload).ok()
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// A string without escapes (or control characters, which JSON forbids raw): its contents.
    #[inline]
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let len = memchr::memchr(b'"', self.bytes.get(start..)?)?;
        let raw = &self.bytes[start..start + len];
        // No early exit: this vectorizes.
        if raw.iter().fold(false, |bad, &b| bad | (b == b'\\') | (b < 0x20)) {
            return None;
        }
        // Quotes are ASCII, so both ends are character boundaries.
        let contents = self.text.get(start..start + len)?;
        self.pos = start + len + 1;
        Some(contents)
    }

    /// An envelope field's value, into `slot` (written in place: the value is not returned through
    /// the stack): a plain string borrowed, the common scalars directly, anything else parsed by
    /// serde_json from its text.
    #[inline]
    fn envelope_value(&mut self, slot: &mut Option<Field<'a>>) -> Option<()> {
        if self.peek()? == b'"' {
            *slot = Some(Field::Str(self.plain_string()?));
            return Some(());
        }
        let text = self.value_text()?;
        let value = match text {
            "null" => Value::Null,
            "{}" => Value::Object(Map::new()),
            digits if is_small_natural(digits) => Value::from(digits.parse::<u64>().ok()?),
            other => serde_json::from_str(other).ok()?,
        };
        *slot = Some(Field::Value(value));
        Some(())
    }

    /// The text of the value starting here (structure only: strings, brackets and scalar extents).
    fn value_text(&mut self) -> Option<&'a str> {
        let start = self.pos;
        match self.peek()? {
            b'"' => self.skip_string()?,
            b'{' | b'[' => self.skip_nested()?,
            _ => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
            }
        }
        self.text.get(start..self.pos).filter(|t| !t.is_empty())
    }

    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
    }

    /// An object or array, to its matching close (bracket kinds are left to serde_json).
    fn skip_nested(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.skip_string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        self.pos += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
    }
}

/// Decimal digits without a leading zero that fit a `u64` (as serde_json reads them: a `PosInt`).
fn is_small_natural(text: &str) -> bool {
    let b = text.as_bytes();
    !b.is_empty() && b.len() <= 19 && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Payload {
        sku: String,
        #[serde(default)]
        n: Option<serde_json::Value>,
    }

    fn scanned(doc: &str) -> Option<(Envelope<'_>, Payload)> {
        let mut envelope = Envelope::default();
        let payload = scan::<Payload>(doc.as_bytes(), &mut envelope)?;
        Some((envelope, payload))
    }

    #[test]
    fn envelope_strings_are_borrowed_and_scalars_read_directly() {
        let doc = r#"{"event_id":"e","event_version":7,"tenant_id":null,"metadata":{},"sku":"a\"b","n":[1,{"x":"]"}],"aggregate_version":1.0}"#;
        let (envelope, payload) = scanned(doc).unwrap();
        assert!(matches!(envelope[0], Some(Field::Str("e"))));
        assert_eq!(envelope[2], Some(Field::Value(Value::from(7u64))));
        assert_eq!(envelope[7], Some(Field::Value(Value::Null)));
        assert_eq!(envelope[11], Some(Field::Value(Value::Object(Map::new()))));
        assert_eq!(envelope[6], Some(Field::Value(serde_json::json!(1.0))));
        assert_eq!(envelope[1], None);
        assert_eq!(payload.sku, "a\"b");
        assert_eq!(payload.n, Some(serde_json::json!([1, {"x": "]"}])));
    }

    #[test]
    fn numbers_read_as_serde_json_reads_them() {
        for n in [
            "0",
            "7",
            "18446744073709551615",
            "18446744073709551616",
            "-3",
            "1e3",
            "2.50",
            "01",
            "-0",
        ] {
            let doc = format!(r#"{{"event_version":{n},"sku":"s"}}"#);
            let expected = serde_json::from_str::<Value>(n).ok();
            let got = scanned(&doc).map(|(e, _)| e[2].clone());
            assert_eq!(got, expected.map(|v| Some(Field::Value(v))), "{n}");
        }
    }

    #[test]
    fn unusual_or_invalid_documents_are_left_to_the_general_path() {
        for doc in [
            r#"{"even\u0074_id":"e","sku":"s"}"#,           // escape in a key
            r#"{"actor_id":"a\nb","sku":"s"}"#,             // escape in an envelope string
            "{\"actor_id\":\"a\u{1}b\",\"sku\":\"s\"}",     // raw control character
            r#"{"event_id":"e","event_id":"e","sku":"s"}"#, // repeated envelope field
            r#"{"sku":"s","sku":"t"}"#,                     // repeated payload field (serde refuses)
            r#"{"sku":1}"#,                                 // payload type mismatch
            r#"[1]"#,
            r#"{"sku":"s"} x"#,
            r#"{"sku":"s",}"#,
            r#"{"sku":"s" "n":1}"#,
            r#"{"sku":"s","n":tru}"#,
            r#"{"sku":"s","n":[1}]}"#,
            r#"{"sku":"s","n":}"#,
            r#"{"sku":"s","event_version":01}"#,
            r#"{"sku":"s","metadata":{"a":}}"#,
            r#"{"sku":"s""#,
            r#"{"sku""#,
            "",
        ] {
            assert!(scanned(doc).is_none(), "{doc}");
        }
        assert!(
            scan::<Payload>(b"{\"sku\":\"\xff\"}", &mut Envelope::default()).is_none(),
            "not UTF-8"
        );
    }

    #[test]
    fn whitespace_and_empty_objects_are_json() {
        let (envelope, payload) = scanned(" {\n\t\"sku\" : \"s\" ,\r\"metadata\" : { } } ").unwrap();
        assert_eq!(payload.sku, "s");
        assert_eq!(envelope[11], Some(Field::Value(Value::Object(Map::new()))));
        #[derive(Debug, serde::Deserialize)]
        struct Nothing {}
        assert!(scan::<Nothing>(b" { } ", &mut Envelope::default()).is_some());
    }
}
