//! An event document read in one pass: the envelope fields set aside by name, every other entry (the
//! payload's) kept in order for the payload type.
//!
//! The whole document is checked as [`super::node`] checks JSON, fields no type reads included, so a
//! document is accepted exactly when serde_json accepts it. A repeated field takes its last value.

use super::envelope_index;
use super::node::{self, Entry, Node, Parser};

/// The envelope fields in [`super::ENVELOPE_FIELDS`] order (`None`: absent).
pub(crate) type Envelope<'a> = [Option<Node<'a>>; 12];

/// A document split into its envelope and its payload's entries.
#[derive(Debug, Default)]
pub(crate) struct Document<'a> {
    pub(crate) envelope: Envelope<'a>,
    pub(crate) payload: Vec<Entry<'a>>,
}

/// Why a document could not be read.
#[derive(Debug, PartialEq)]
pub(crate) enum Unreadable {
    /// Not JSON (or JSON serde_json refuses).
    Malformed,
    /// JSON, but not an object: what it is ("an array", "null"...).
    NotObject(&'static str),
}

/// Reads `value` as an event document into `doc`, replacing what `doc` held (a document read before,
/// or left half-read by a failure, leaves nothing behind).
pub(crate) fn read<'a>(value: &'a [u8], doc: &mut Document<'a>) -> Result<(), Unreadable> {
    doc.envelope = Envelope::default();
    doc.payload.clear();
    let text = std::str::from_utf8(value).map_err(|_| Unreadable::Malformed)?;
    let mut p = Parser::new(text);
    p.whitespace();
    if p.eat(b'{').is_none() {
        // Not an object: say what it is, if it is JSON at all.
        return Err(match node::parse(text) {
            Some(other) => Unreadable::NotObject(other.kind()),
            None => Unreadable::Malformed,
        });
    }
    entries(&mut p, doc).ok_or(Unreadable::Malformed)
}

fn entries<'a>(p: &mut Parser<'a>, doc: &mut Document<'a>) -> Option<()> {
    p.enter()?;
    if p.first_entry()? {
        loop {
            let key = p.key()?;
            let value = p.value()?;
            match envelope_index(&key) {
                Some(i) => *doc.envelope.get_mut(i)? = Some(value),
                None => doc.payload.push(Entry { key, value }),
            }
            if !p.next_entry()? {
                break;
            }
        }
    }
    p.end()?;
    node::dedup(&mut doc.payload);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_document_keeps_nothing_of_the_one_before() {
        let mut doc = Document::default();
        let failed = br#"{"aggregate_id":"a","tenant_id":"t","x":1,"#;
        assert_eq!(read(failed, &mut doc), Err(Unreadable::Malformed));
        read(br#"{"aggregate_id":"b","c":2}"#, &mut doc).unwrap();
        let set = doc.envelope.iter().filter(|f| f.is_some()).count();
        assert_eq!(set, 1, "only aggregate_id: {doc:?}");
        assert_eq!(doc.payload.len(), 1, "only c: {doc:?}");
        read(br#"{"aggregate_id":"c"}"#, &mut doc).unwrap();
        assert!(doc.payload.is_empty(), "{doc:?}");
    }
}
