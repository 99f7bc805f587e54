//! A JSON document as a tree that borrows from its text: strings without escapes are slices of the
//! input, numbers are parsed exactly (Rust's correctly rounded float parser, not serde_json's fast one),
//! and objects keep their entries in order.
//!
//! Accepts exactly RFC 8259 JSON, as strictly as serde_json: no control characters in strings, escapes
//! checked (surrogates paired), numbers in JSON's grammar and finite, nesting below serde_json's limit
//! of 128, nothing after the value but whitespace. A repeated key keeps its first position and takes its
//! last value (what `serde_json::Map` does). Memory is proportional to the input.

use std::borrow::Cow;

/// serde_json's recursion limit: the 128th nested array or object is refused.
const MAX_DEPTH: usize = 127;

/// Objects up to this many entries look for repeated keys pairwise; larger ones sort.
const PAIRWISE_DEDUP: usize = 16;

/// [`STRING_BYTE`]: a byte inside a string as written.
const PLAIN: u8 = 0;
/// [`STRING_BYTE`]: the closing quote or a backslash.
const END: u8 = 1;
/// [`STRING_BYTE`]: a control character, which JSON refuses unescaped.
const CONTROL: u8 = 2;

/// What each byte is inside a JSON string.
static STRING_BYTE: [u8; 256] = {
    let mut table = [PLAIN; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = CONTROL;
        b += 1;
    }
    table[b'"' as usize] = END;
    table[b'\\' as usize] = END;
    table
};

/// Whether any of the eight bytes of `word` is a quote, a backslash or a control character. (The
/// usual word-at-a-time tests: a byte is zero, or below 0x20, exactly when its high bit survives
/// `(b - n) & !b & 0x80`; carries can only flag bytes after a true one, so the answer is exact.)
fn special_byte_in(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control != 0
}

/// A JSON number as serde_json classifies it: a non-negative integer that fits a `u64`, a negative one
/// that fits an `i64`, or else (`-0`, fractions, exponents, larger integers) a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    PosInt(u64),
    NegInt(i64),
    Float(f64),
}

impl Number {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Number::PosInt(u) => u as f64,
            Number::NegInt(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

/// One entry of an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry<'a> {
    pub(crate) key: Cow<'a, str>,
    pub(crate) value: Node<'a>,
}

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Vec<Entry<'a>>),
}

impl<'a> Node<'a> {
    /// The string, if the value is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    /// What the value is, for messages: "null", "a string"...
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Array(_) => "an array",
            Node::Object(_) => "an object",
        }
    }
}

/// Parses a whole document (one value and optional whitespace). `None`: not JSON, or JSON that serde_json
/// refuses too (out-of-range number, lone surrogate, too deep).
pub(crate) fn parse(text: &str) -> Option<Node<'_>> {
    let mut p = Parser::new(text);
    p.whitespace();
    let node = p.value()?;
    p.end()?;
    Some(node)
}

/// A cursor over a document's text.
pub(crate) struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    pub(crate) fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// Only whitespace is left.
    pub(crate) fn end(&mut self) -> Option<()> {
        self.whitespace();
        (self.pos == self.text.len()).then_some(())
    }

    /// Enters an array or object (the bracket is already eaten).
    pub(crate) fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// After an entry of an object: `Some(true)` if another follows (comma eaten), `Some(false)` at the
    /// closing brace (eaten).
    pub(crate) fn next_entry(&mut self) -> Option<bool> {
        self.whitespace();
        if self.eat(b',').is_some() {
            self.whitespace();
            return Some(true);
        }
        self.eat(b'}')?;
        self.depth -= 1;
        Some(false)
    }

    /// At an object's first entry (after `{` and `enter`): `Some(false)` if the object is empty (closing
    /// brace eaten).
    pub(crate) fn first_entry(&mut self) -> Option<bool> {
        self.whitespace();
        if self.eat(b'}').is_some() {
            self.depth -= 1;
            return Some(false);
        }
        Some(true)
    }

    /// A key and its colon.
    pub(crate) fn key(&mut self) -> Option<Cow<'a, str>> {
        let key = self.string()?;
        self.whitespace();
        self.eat(b':')?;
        self.whitespace();
        Some(key)
    }

    /// The value starting here.
    pub(crate) fn value(&mut self) -> Option<Node<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Node::String),
            b'{' => self.object(),
            b'[' => self.array(),
            b'n' => self.literal("null", Node::Null),
            b't' => self.literal("true", Node::Bool(true)),
            b'f' => self.literal("false", Node::Bool(false)),
            b'-' | b'0'..=b'9' => self.number().map(Node::Number),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str, node: Node<'a>) -> Option<Node<'a>> {
        let rest = self.text.as_bytes().get(self.pos..)?;
        rest.starts_with(word.as_bytes()).then(|| {
            self.pos += word.len();
            node
        })
    }

    fn object(&mut self) -> Option<Node<'a>> {
        self.eat(b'{')?;
        self.enter()?;
        let mut entries = Vec::new();
        if self.first_entry()? {
            loop {
                let key = self.key()?;
                let value = self.value()?;
                entries.push(Entry { key, value });
                if !self.next_entry()? {
                    break;
                }
            }
        }
        dedup(&mut entries);
        Some(Node::Object(entries))
    }

    fn array(&mut self) -> Option<Node<'a>> {
        self.eat(b'[')?;
        self.enter()?;
        let mut items = Vec::new();
        self.whitespace();
        if self.eat(b']').is_none() {
            loop {
                items.push(self.value()?);
                self.whitespace();
                if self.eat(b',').is_some() {
                    self.whitespace();
                } else {
                    self.eat(b']')?;
                    break;
                }
            }
        }
        self.depth -= 1;
        Some(Node::Array(items))
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number in JSON's grammar, classified as serde_json does; floats parsed exactly and refused
    /// when out of range.
    fn number(&mut self) -> Option<Number> {
        let start = self.pos;
        let negative = self.eat(b'-').is_some();
        let int_start = self.pos;
        match self.digits() {
            0 => return None,
            n if n > 1 && self.text.as_bytes().get(int_start) == Some(&b'0') => return None,
            _ => {}
        }
        let mut integral = true;
        if self.eat(b'.').is_some() {
            integral = false;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            integral = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        let text = self.text.get(start..self.pos)?;
        // Up to 19 digits always fit a u64: summed here instead of parsed again.
        if integral && !negative && text.len() <= 19 {
            let n = text.bytes().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            return Some(Number::PosInt(n));
        }
        if integral {
            if !negative {
                if let Ok(u) = text.parse::<u64>() {
                    return Some(Number::PosInt(u));
                }
            } else if let Ok(i) = text.parse::<i64>()
                && i != 0
            {
                return Some(Number::NegInt(i));
            }
        }
        let f = text.parse::<f64>().ok()?;
        f.is_finite().then_some(Number::Float(f))
    }

    /// A string token: borrowed when it has no escapes.
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.pos;
        let at = self.plain_run()?;
        let plain = self.text.get(start..at)?;
        self.pos = at + 1;
        if self.text.as_bytes()[at] == b'"' {
            return Some(Cow::Borrowed(plain));
        }
        let mut owned = String::with_capacity(plain.len() + 16);
        owned.push_str(plain);
        self.escape(&mut owned)?;
        loop {
            let run_start = self.pos;
            let at = self.plain_run()?;
            owned.push_str(self.text.get(run_start..at)?);
            self.pos = at + 1;
            if self.text.as_bytes()[at] == b'"' {
                return Some(Cow::Owned(owned));
            }
            self.escape(&mut owned)?;
        }
    }

    /// The position of the quote or backslash that ends the run of plain string bytes starting here;
    /// `None` at a control character or the end of the text. One pass over the bytes, eight at a time,
    /// instead of a search for the end followed by a second pass for control characters.
    fn plain_run(&self) -> Option<usize> {
        let bytes = self.text.as_bytes();
        let mut i = self.pos;
        while let Some(word) = bytes.get(i..i.saturating_add(8)) {
            let word = u64::from_le_bytes(word.try_into().ok()?);
            if special_byte_in(word) {
                break;
            }
            i += 8;
        }
        // The word with the end (or the last, short one): byte by byte.
        loop {
            match STRING_BYTE[usize::from(*bytes.get(i)?)] {
                PLAIN => i += 1,
                END => return Some(i),
                _ => return None,
            }
        }
    }

    /// The escape after a backslash (already eaten), appended to `out`.
    fn escape(&mut self, out: &mut String) -> Option<()> {
        let c = self.peek()?;
        self.pos += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                match first {
                    0xD800..=0xDBFF => {
                        self.eat(b'\\')?;
                        self.eat(b'u')?;
                        let second = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return None;
                        }
                        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        char::from_u32(code)?
                    }
                    _ => char::from_u32(first)?, // a lone low surrogate is not a char: refused
                }
            }
            _ => return None,
        };
        out.push(ch);
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).ok()
    }
}

/// Leaves one entry per key, at the key's first position, with its last value.
pub(crate) fn dedup(entries: &mut Vec<Entry<'_>>) {
    let n = entries.len();
    if n < 2 {
        return;
    }
    // The common case, checked without allocating: a small object whose keys are all distinct.
    if n <= PAIRWISE_DEDUP && (1..n).all(|j| entries[..j].iter().all(|e| e.key != entries[j].key)) {
        return;
    }
    // `keep[i]`: the entry stays; a repeated key's last value moves to its first position.
    let mut keep = vec![true; n];
    let mut last_of_first: Vec<(usize, usize)> = Vec::new();
    if n <= PAIRWISE_DEDUP {
        for j in 1..n {
            if let Some(i) = (0..j).find(|&i| keep[i] && entries[i].key == entries[j].key) {
                keep[j] = false;
                last_of_first.push((i, j));
            }
        }
    } else {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| entries[a].key.cmp(&entries[b].key).then(a.cmp(&b)));
        for run in order.chunk_by(|&a, &b| entries[a].key == entries[b].key) {
            if let [first, .., last] = *run {
                for &later in &run[1..] {
                    keep[later] = false;
                }
                last_of_first.push((first, last));
            }
        }
    }
    if last_of_first.is_empty() {
        return;
    }
    for (first, last) in last_of_first {
        // Later duplicates of the same first entry come in increasing order: the last one wins.
        entries[first].value = std::mem::replace(&mut entries[last].value, Node::Null);
    }
    let mut i = 0;
    entries.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_classified_as_serde_json_does_and_parsed_exactly() {
        let cases = [
            ("0", Number::PosInt(0)),
            ("18446744073709551615", Number::PosInt(u64::MAX)),
            ("18446744073709551616", Number::Float(18446744073709551616.0)),
            ("-1", Number::NegInt(-1)),
            ("-9223372036854775808", Number::NegInt(i64::MIN)),
            ("-9223372036854775809", Number::Float(-9223372036854775809.0)),
            ("1.0", Number::Float(1.0)),
            ("1E2", Number::Float(100.0)),
            ("1e-400", Number::Float(0.0)),
            ("1.7976931348623157e308", Number::Float(f64::MAX)),
            ("5e-324", Number::Float(5e-324)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Some(Node::Number(expected)), "{text}");
        }
        // `-0` is a float, its sign kept.
        assert!(
            matches!(parse("-0"), Some(Node::Number(Number::Float(f))) if f == 0.0 && f.is_sign_negative())
        );
        for bad in [
            "01", "-", "1.", ".5", "+1", "1e", "1e+", "0x1", "1e400", "-1e400", "Infinity", "NaN",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn strings_borrow_without_escapes_and_check_them() {
        assert!(matches!(
            parse(r#""plain é""#),
            Some(Node::String(Cow::Borrowed("plain é")))
        ));
        assert_eq!(
            parse(r#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#),
            Some(Node::String(Cow::Owned("a\"b\\c/d\u{8}\u{c}\n\r\té😀".into())))
        );
        for bad in [
            "\"\u{1}\"",
            "\"a\\\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\ud800""#,
            r#""\ud800\u0041""#,
            r#""\udc00""#,
            r#""\u00e9"#,
            "\"a\\n\u{1f}\"",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_word_test_agrees_with_the_byte_table() {
        for special in 0..=255u8 {
            for at in 0..8 {
                for fill in [b'x', 0x80, 0xff, b' ', b'#', b']'] {
                    let mut word = [fill; 8];
                    word[at] = special;
                    let expected = word.iter().any(|&b| STRING_BYTE[usize::from(b)] != PLAIN);
                    assert_eq!(special_byte_in(u64::from_le_bytes(word)), expected, "{word:?}");
                }
            }
        }
    }

    #[test]
    fn every_byte_of_a_long_string_is_checked() {
        let long = "x".repeat(40);
        assert_eq!(
            parse(&format!("\"{long}\"")),
            Some(Node::String(Cow::Borrowed(&long)))
        );
        assert_eq!(
            parse(&format!(r#""{long}\n{long}""#)),
            Some(Node::String(Cow::Owned(format!("{long}\n{long}"))))
        );
        for at in 0..long.len() {
            let mut bad = long.clone();
            bad.replace_range(at..=at, "\u{1f}");
            assert_eq!(parse(&format!("\"{bad}\"")), None, "control character at {at}");
            assert_eq!(
                parse(&format!(r#""{long}\t{bad}""#)),
                None,
                "after an escape, at {at}"
            );
        }
        assert_eq!(parse(&format!("\"{long}")), None, "unterminated");
    }

    #[test]
    fn nesting_stops_at_serde_json_limit() {
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_some());
        let deep = format!("{}1{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse(&deep).is_none());
        assert!(serde_json::from_str::<serde_json::Value>(&ok).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&deep).is_err());
    }

    fn keys_and_values(node: &Node<'_>) -> Vec<(String, String)> {
        match node {
            Node::Object(entries) => entries
                .iter()
                .map(|e| {
                    let mut text = Vec::new();
                    super::super::write::node(&mut text, &e.value).unwrap();
                    (e.key.to_string(), String::from_utf8(text).unwrap())
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn objects_keep_their_order_and_a_repeated_key_its_first_place_and_last_value() {
        let node = parse(r#"{"z":1,"a":{"y":[1, 2]},"z":3,"m":null,"z":"last"}"#).unwrap();
        let pairs = keys_and_values(&node);
        let expected = [("z", r#""last""#), ("a", r#"{"y":[1,2]}"#), ("m", "null")];
        assert_eq!(pairs.len(), expected.len());
        for ((k, v), (ek, ev)) in pairs.iter().zip(expected) {
            assert_eq!((k.as_str(), v.as_str()), (ek, ev));
        }
        // A large object (the sorting path), with repeats.
        let body: Vec<String> = (0..100).map(|i| format!(r#""k{}":{i}"#, i % 40)).collect();
        let text = format!("{{{}}}", body.join(","));
        let node = parse(&text).unwrap();
        let pairs = keys_and_values(&node);
        assert_eq!(pairs.len(), 40);
        for (i, (k, v)) in pairs.iter().enumerate() {
            assert_eq!(k, &format!("k{i}"));
            let last = if i + 80 < 100 { i + 80 } else { i + 40 };
            assert_eq!(v, &last.to_string(), "last value of k{i}");
        }
    }

    #[test]
    fn a_hundred_thousand_repeated_keys_take_linear_time() {
        let body: Vec<&str> = std::iter::repeat_n(r#""k":1"#, 100_000).collect();
        let text = format!("{{{}}}", body.join(","));
        let started = std::time::Instant::now();
        let node = parse(&text).unwrap();
        assert_eq!(keys_and_values(&node).len(), 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
