//! One pass over an event document: the twelve envelope fields are set aside (strings borrowed from the
//! input where they have no escapes) while every other field goes straight to the payload type.
//!
//! This is the fast path of [`super::decode`]; anything it cannot do (a document that is not an object,
//! a repeated envelope field, a payload that is not a map-shaped struct) is an error here and the caller
//! falls back to the general path, which gives the same result or the precise error.

use std::borrow::Cow;

use serde::{
    Deserialize,
    de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor},
};
use serde_json::Value;

use super::envelope_index;

/// An envelope field's value: a string (borrowed from the input when it can be) or any other JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field<'a> {
    Str(Cow<'a, str>),
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

/// Reads `value` (a JSON object) once: the envelope fields into the returned array, the rest as `E`.
pub(crate) fn split<'de, E: Deserialize<'de>>(
    value: &'de [u8],
) -> Result<(Envelope<'de>, E), serde_json::Error> {
    let mut envelope: Envelope<'de> = Default::default();
    // One UTF-8 check of the whole document is cheaper than one per string; a document that is not
    // UTF-8 is not JSON either (the general path names the error).
    let text = std::str::from_utf8(value).map_err(|_| de::Error::custom("not UTF-8"))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let payload = E::deserialize(Splitter {
        inner: &mut de,
        envelope: &mut envelope,
    })?;
    de.end()?;
    Ok((envelope, payload))
}

/// A deserializer that shows the payload type the document's object without its envelope fields.
struct Splitter<'a, 'de, D> {
    inner: D,
    envelope: &'a mut Envelope<'de>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Splitter<'_, 'de, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_map(SplitVisitor {
            visitor,
            envelope: self.envelope,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

struct SplitVisitor<'a, 'de, V> {
    visitor: V,
    envelope: &'a mut Envelope<'de>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for SplitVisitor<'_, 'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(PayloadFields {
            map,
            envelope: self.envelope,
        })
    }
}

/// The object's entries minus the envelope fields, which are stored as they go by.
struct PayloadFields<'a, 'de, A> {
    map: A,
    envelope: &'a mut Envelope<'de>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for PayloadFields<'_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        while let Some(key) = self.map.next_key_seed(KeySeed)? {
            match envelope_index(&key) {
                Some(i) => {
                    let slot = self
                        .envelope
                        .get_mut(i)
                        .ok_or_else(|| de::Error::custom("field"))?;
                    if slot.is_some() {
                        return Err(de::Error::custom("repeated envelope field"));
                    }
                    *slot = Some(self.map.next_value::<FieldSeed<'de>>()?.0);
                }
                None => {
                    return match key {
                        Cow::Borrowed(k) => seed.deserialize(de::value::BorrowedStrDeserializer::new(k)),
                        Cow::Owned(k) => seed.deserialize(k.into_deserializer()),
                    }
                    .map(Some);
                }
            }
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// Reads a [`Field`] (a seed only to give `next_value` a type).
struct FieldSeed<'de>(Field<'de>);

impl<'de> Deserialize<'de> for FieldSeed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor).map(FieldSeed)
    }
}

/// Reads an object key, borrowed from the input when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s))
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Owned(s)))
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Field<'de>, E> {
        Ok(Field::Value(Value::Bool(b)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Field<'de>, E> {
        Ok(Field::Value(Value::from(n)))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Field<'de>, E> {
        Ok(Field::Value(Value::from(n)))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Field<'de>, E> {
        // serde_json never produces a non-finite float; `Null` keeps this total anyway.
        Ok(Field::Value(
            serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Field<'de>, E> {
        Ok(Field::Value(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Field<'de>, E> {
        Ok(Field::Value(Value::Null))
    }

    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Field<'de>, M::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Field::Value)
    }

    fn visit_seq<S: de::SeqAccess<'de>>(self, seq: S) -> Result<Field<'de>, S::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Field::Value)
    }
}
