//! Walks a response body along its [`Message`] layout, checking every count and length against the
//! bytes left before anything is decoded.
//!
//! The walker reads the same encodings as `kafka_protocol`'s decoders (big-endian integers, its
//! unsigned varints, `-1`/`0` nulls) and interprets every count the same way, so a frame it accepts
//! holds, for each array the decoder will size with `Vec::with_capacity`, as many elements as the
//! count says. Known tagged fields must fill exactly the size their header announces: the decoder reads
//! them from the frame without looking at that size.

use super::{
    Violation,
    schema::{Field, Message, Type},
};

/// Where the walk failed: the byte offset in the body, the field, and why.
#[derive(Debug)]
pub(crate) struct Rejection {
    pub(crate) offset: usize,
    pub(crate) field: &'static str,
    pub(crate) violation: Violation,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The offset of `bytes[0]` in the whole body (tagged fields are walked in a sub-cursor).
    base: usize,
}

type Walk<T> = Result<T, Rejection>;

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn reject(&self, field: &'static str, violation: Violation) -> Rejection {
        Rejection {
            offset: self.base + self.pos,
            field,
            violation,
        }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Walk<&'a [u8]> {
        let left = self.left();
        if n > left {
            return Err(self.reject(field, Violation::Truncated { needed: n, left }));
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.bytes[start..self.pos])
    }

    fn int<const N: usize>(&mut self, field: &'static str) -> Walk<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// An unsigned varint as `kafka_protocol` reads it: at most five bytes, the fifth ends it whatever
    /// its high bit; bits past 32 are dropped.
    fn uvarint(&mut self, field: &'static str) -> Walk<u32> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [b] = self.int::<1>(field)?;
            value |= u32::from(b & 0x7f).wrapping_shl(7 * i);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// A length or count: `Ok(None)` for null. Compact forms carry `n + 1`, zero is null; classic ones
    /// an `i16`/`i32` with `-1` for null.
    fn length(&mut self, field: &'static str, flexible: bool, wide: bool) -> Walk<Option<u64>> {
        let at = self.pos;
        let n: i64 = if flexible {
            match self.uvarint(field)? {
                0 => return Ok(None),
                n => i64::from(n) - 1,
            }
        } else if wide {
            i64::from(i32::from_be_bytes(self.int(field)?))
        } else {
            i64::from(i16::from_be_bytes(self.int(field)?))
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => {
                self.pos = at;
                Err(self.reject(field, Violation::NegativeLength { length: n }))
            }
            n => Ok(Some(n.unsigned_abs())),
        }
    }
}

/// Walks a whole body at `version`; returns how many bytes are left after the last field.
pub(crate) fn walk(message: &Message, version: i16, body: &[u8]) -> Walk<usize> {
    let mut cursor = Cursor {
        bytes: body,
        pos: 0,
        base: 0,
    };
    let flexible = version >= message.flexible_from;
    walk_struct(&mut cursor, message.fields, version, flexible)?;
    Ok(cursor.left())
}

fn walk_struct(cursor: &mut Cursor<'_>, fields: &'static [Field], version: i16, flexible: bool) -> Walk<()> {
    for field in fields.iter().filter(|f| f.positional(version, flexible)) {
        let nullable = field.nullable.contains(version);
        walk_value(cursor, field.ty, field.name, nullable, version, flexible)?;
    }
    if flexible {
        walk_tagged_fields(cursor, fields, version)?;
    }
    Ok(())
}

fn walk_tagged_fields(cursor: &mut Cursor<'_>, fields: &'static [Field], version: i16) -> Walk<()> {
    const SECTION: &str = "tagged fields";
    let at = cursor.pos;
    let count = u64::from(cursor.uvarint(SECTION)?);
    // A tagged field is at least a tag and a size: two bytes.
    check_count(cursor, at, SECTION, count, 2)?;
    for _ in 0..count {
        let tag = cursor.uvarint(SECTION)?;
        let at = cursor.pos;
        let size = u64::from(cursor.uvarint(SECTION)?);
        let left = cursor.left();
        let size = usize::try_from(size).ok().filter(|&s| s <= left).ok_or_else(|| {
            cursor.pos = at;
            cursor.reject(SECTION, Violation::LengthTooLarge { length: size, left })
        })?;
        let known = fields
            .iter()
            .find(|f| f.tagged(version, true) && f.tag.is_some_and(|(t, _)| i64::from(t) == i64::from(tag)));
        let base = cursor.base + cursor.pos;
        let value = cursor.take(size, SECTION)?;
        if let Some(field) = known {
            let mut inner = Cursor {
                bytes: value,
                pos: 0,
                base,
            };
            let nullable = field.nullable.contains(version);
            walk_value(&mut inner, field.ty, field.name, nullable, version, true)?;
            if inner.left() > 0 {
                return Err(inner.reject(
                    field.name,
                    Violation::TaggedFieldSize {
                        size,
                        used: inner.pos,
                    },
                ));
            }
        }
    }
    Ok(())
}

fn check_count(cursor: &mut Cursor<'_>, at: usize, field: &'static str, count: u64, min: usize) -> Walk<()> {
    let left = cursor.left();
    let fits = (left / min.max(1)) as u64;
    if count > fits {
        cursor.pos = at;
        return Err(cursor.reject(field, Violation::CountTooLarge { count, left }));
    }
    Ok(())
}

fn walk_value(
    cursor: &mut Cursor<'_>,
    ty: Type,
    field: &'static str,
    nullable: bool,
    version: i16,
    flexible: bool,
) -> Walk<()> {
    let fixed = match ty {
        Type::Bool | Type::Int8 => 1,
        Type::Int16 => 2,
        Type::Int32 => 4,
        Type::Int64 => 8,
        Type::Uuid => 16,
        Type::String | Type::Bytes | Type::Records => {
            let at = cursor.pos;
            let wide = !matches!(ty, Type::String);
            let Some(length) = cursor.length(field, flexible, wide)? else {
                return null(cursor, at, field, nullable);
            };
            let left = cursor.left();
            let length = usize::try_from(length)
                .ok()
                .filter(|&l| l <= left)
                .ok_or_else(|| {
                    cursor.pos = at;
                    cursor.reject(field, Violation::LengthTooLarge { length, left })
                })?;
            cursor.take(length, field)?;
            return Ok(());
        }
        Type::Array(element) => {
            let at = cursor.pos;
            let Some(count) = cursor.length(field, flexible, true)? else {
                return null(cursor, at, field, nullable);
            };
            check_count(cursor, at, field, count, element.min_size(version, flexible))?;
            for _ in 0..count {
                walk_value(cursor, *element, field, false, version, flexible)?;
            }
            return Ok(());
        }
        Type::Struct(fields) => return walk_struct(cursor, fields, version, flexible),
    };
    cursor.take(fixed, field).map(drop)
}

fn null(cursor: &mut Cursor<'_>, at: usize, field: &'static str, nullable: bool) -> Walk<()> {
    if nullable {
        Ok(())
    } else {
        cursor.pos = at;
        Err(cursor.reject(field, Violation::UnexpectedNull))
    }
}
