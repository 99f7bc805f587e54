//! One hand-written pass over an event document: the envelope fields in their usual forms (strings
//! without escapes, `null`, `{}`, small integers) are set aside directly, strings borrowed from the
//! input; everything else is copied as text into a smaller document that serde_json parses into a map,
//! which the caller then treats exactly as the general path treats the whole document.
//!
//! This is the fast path of [`super::decode`]. It gives up, returning `None`, on a document that is not
//! an object, a repeated envelope field, or anything serde_json rejects in the smaller document; the
//! caller then takes the general path, which gives the same result or the precise error.
//!
//! Why the results are the same: the smaller document is the input minus the entries set aside, with
//! every other key and value verbatim, at the same nesting depth; the structure around them (braces,
//! colons, commas, whitespace) is checked here as strictly as JSON defines it, and the entries set aside
//! are valid JSON whose values are what serde_json would read. So the input is valid exactly when the
//! smaller document is, and parsing it gives the general path's map minus the entries set aside.

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

/// Reads `value` (a JSON object) once: the envelope fields in their usual forms into `envelope` (empty
/// on entry), every other entry into the returned map (see the module docs). `None`: not an object, a
/// repeated envelope field, or not valid JSON; `envelope` is then unspecified.
pub(crate) fn scan<'a>(value: &'a [u8], envelope: &mut Envelope<'a>) -> Option<Map<String, Value>> {
    // One UTF-8 check of the whole document is cheaper than one per string.
    let text = std::str::from_utf8(value).ok()?;
    let mut s = Scanner { text, pos: 0 };
    let mut rest = String::with_capacity(value.len());
    rest.push('{');
    s.whitespace();
    s.eat(b'{')?;
    s.whitespace();
    if s.eat(b'}').is_none() {
        loop {
            let key = s.string_text()?;
            s.whitespace();
            s.eat(b':')?;
            s.whitespace();
            let set_aside = match plain_contents(key).and_then(envelope_index) {
                Some(i) => {
                    let slot = envelope.get_mut(i)?;
                    if slot.is_some() {
                        return None;
                    }
                    s.usual_value(slot)?
                }
                None => false,
            };
            if !set_aside {
                let value = s.value_text()?;
                if rest.len() > 1 {
                    rest.push(',');
                }
                rest.push_str(key);
                rest.push(':');
                rest.push_str(value);
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
    if s.pos != text.len() {
        return None;
    }
    rest.push('}');
    serde_json::from_str(&rest).ok()
}

/// The contents of a string token (quotes included) if it has no escapes and no control characters
/// (which JSON forbids raw): then they are the string's value.
fn plain_contents(token: &str) -> Option<&str> {
    let inner = token.get(1..token.len().checked_sub(1)?)?;
    // No early exit: this vectorizes.
    let bad = inner
        .bytes()
        .fold(false, |bad, b| bad | (b == b'\\') | (b < 0x20));
    (!bad).then_some(inner)
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// The token of the string starting here, quotes included (structure only).
    fn string_text(&mut self) -> Option<&'a str> {
        let start = self.pos;
        self.skip_string()?;
        // Quotes are ASCII, so both ends are character boundaries.
        self.text.get(start..self.pos)
    }

    /// An envelope field's value in one of its usual forms, into `slot` (written in place, not returned
    /// through the stack): a string without escapes (borrowed), `null`, `{}`, or a small integer.
    /// `Some(false)`: another form, left where it is for serde_json.
    #[inline]
    fn usual_value(&mut self, slot: &mut Option<Field<'a>>) -> Option<bool> {
        let start = self.pos;
        if self.peek()? == b'"' {
            if let Some(contents) = plain_contents(self.string_text()?) {
                *slot = Some(Field::Str(contents));
                return Some(true);
            }
        } else {
            let value = match self.value_text()? {
                "null" => Some(Value::Null),
                "{}" => Some(Value::Object(Map::new())),
                digits if is_small_natural(digits) => digits.parse::<u64>().ok().map(Value::from),
                _ => None,
            };
            if let Some(value) = value {
                *slot = Some(Field::Value(value));
                return Some(true);
            }
        }
        self.pos = start;
        Some(false)
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
            let bytes = self.text.as_bytes();
            let at = self.pos + memchr::memchr2(b'"', b'\\', bytes.get(self.pos..)?)?;
            if bytes[at] == b'"' {
                self.pos = at + 1;
                return Some(());
            }
            self.pos = at + 2;
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
    use crate::event::json::ENVELOPE_FIELDS;

    fn scanned(doc: &str) -> Option<(Envelope<'_>, Map<String, Value>)> {
        let mut envelope = Envelope::default();
        let rest = scan(doc.as_bytes(), &mut envelope)?;
        Some((envelope, rest))
    }

    fn as_value(field: &Field<'_>) -> Value {
        match field {
            Field::Str(s) => Value::String((*s).to_owned()),
            Field::Value(v) => v.clone(),
        }
    }

    #[test]
    fn usual_envelope_forms_are_set_aside_and_the_rest_parsed() {
        let doc = r#"{"event_id":"e","event_version":7,"tenant_id":null,"metadata":{},"sku":"a\"b","n":[1,{"x":"]"}],"aggregate_version":1.0,"actor_id":"a\nb","even\u0074_type":"T"}"#;
        let (envelope, rest) = scanned(doc).unwrap();
        assert!(matches!(envelope[0], Some(Field::Str("e"))), "borrowed");
        assert_eq!(envelope[2], Some(Field::Value(Value::from(7u64))));
        assert_eq!(envelope[7], Some(Field::Value(Value::Null)));
        assert_eq!(envelope[11], Some(Field::Value(Value::Object(Map::new()))));
        // A float, an escaped string and an escaped key are left to serde_json.
        assert_eq!((&envelope[6], &envelope[8], &envelope[1]), (&None, &None, &None));
        let expected = serde_json::json!({
            "sku": "a\"b", "n": [1, {"x": "]"}], "aggregate_version": 1.0, "actor_id": "a\nb", "event_type": "T"
        });
        assert_eq!(Value::Object(rest.clone()), expected);
        assert_eq!(
            rest.keys().collect::<Vec<_>>(),
            ["sku", "n", "aggregate_version", "actor_id", "event_type"],
            "in document order"
        );
    }

    /// Set-aside fields plus the rest are serde_json's map of the whole document, entry for entry.
    #[test]
    fn the_parts_make_up_what_serde_json_reads() {
        let docs = [
            r#"{"event_id":"e","sku":"s"}"#,
            " {\n\t\"sku\" : \"s\" ,\r\"metadata\" : { } , \"event_version\" : 12 } ",
            r#"{"aggregate_version":18446744073709551615,"event_version":18446744073709551616,"tenant_id":-0}"#,
            r#"{"causation_id":"\u00e9","correlation_id":"é","x":{"event_id":"nested"},"":1}"#,
            r#"{"sku":"s","sku":"t","metadata":{"a":[1,{"b":null}]}}"#,
            r#"{}"#,
        ];
        for doc in docs {
            let full: Map<String, Value> = serde_json::from_str(doc).unwrap();
            let (envelope, rest) = scanned(doc).unwrap_or_else(|| panic!("{doc}"));
            let mut rebuilt = rest.clone();
            for (field, name) in envelope.iter().zip(ENVELOPE_FIELDS) {
                if let Some(field) = field {
                    assert!(!rest.contains_key(name), "{doc}: {name} twice");
                    rebuilt.insert(name.to_owned(), as_value(field));
                }
            }
            assert_eq!(rebuilt, full, "{doc}");
            let full_rest: Vec<_> = full.iter().filter(|(k, _)| rest.contains_key(*k)).collect();
            assert_eq!(rest.iter().collect::<Vec<_>>(), full_rest, "{doc}: order");
        }
    }

    #[test]
    fn what_serde_json_refuses_is_refused_and_so_is_a_repeated_envelope_field() {
        let deep = format!(r#"{{"x":{}1{}}}"#, "[".repeat(127), "]".repeat(127));
        let deep_metadata = format!(
            r#"{{"metadata":{{"a":{}1{}}}}}"#,
            "[".repeat(126),
            "]".repeat(126)
        );
        let invalid = [
            "{\"actor_id\":\"a\u{1}b\",\"sku\":\"s\"}", // raw control character
            r#"{"sku":"s","x":1e400}"#,                 // out of range, in a field no type reads
            r#"{"sku":"s","x":"\ud800"}"#,              // lone surrogate
            r#"{"sku":"s","x":["\udfff"]}"#,
            deep.as_str(), // deeper than serde_json's limit
            deep_metadata.as_str(),
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
            r#"{"sku":"s\"#,
            "",
        ];
        for doc in invalid {
            assert!(
                serde_json::from_str::<Value>(doc).is_err(),
                "serde_json accepts {doc}"
            );
            assert!(scanned(doc).is_none(), "{doc}");
        }
        assert!(
            scan(b"{\"sku\":\"\xff\"}", &mut Envelope::default()).is_none(),
            "not UTF-8"
        );
        // Valid JSON, but for the general path to decide: not an object (its error names that), and a
        // repeated envelope field (the last value wins there).
        assert!(scanned("[1]").is_none());
        assert!(scanned(r#"{"event_id":"e","event_id":"f"}"#).is_none());
    }
}
