//! Zig-zag varints (protobuf style) as record fields use them, and a bounds-checked reader.

use bytes::{BufMut, Bytes, BytesMut};

/// Appends `v` as a zig-zag varint (at most 5 bytes).
#[inline]
pub(crate) fn put_varint(out: &mut BytesMut, v: i32) {
    put_unsigned(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

/// Appends `v` as a zig-zag varlong (at most 10 bytes).
#[inline]
pub(crate) fn put_varlong(out: &mut BytesMut, v: i64) {
    put_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

#[inline]
fn put_unsigned(out: &mut BytesMut, mut u: u64) {
    let mut tmp = [0u8; 10];
    let mut n = 0;
    while u >= 0x80 {
        tmp[n] = (u as u8) | 0x80;
        u >>= 7;
        n += 1;
    }
    tmp[n] = u as u8;
    out.put_slice(&tmp[..=n]);
}

/// The encoded size of `v` as a zig-zag varint.
#[inline]
pub(crate) fn varint_len(v: i32) -> usize {
    unsigned_len(u64::from(((v << 1) ^ (v >> 31)) as u32))
}

/// The encoded size of `v` as a zig-zag varlong.
#[inline]
pub(crate) fn varlong_len(v: i64) -> usize {
    unsigned_len(((v << 1) ^ (v >> 63)) as u64)
}

#[inline]
fn unsigned_len(u: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 takes one byte.
    let bits = 64 - (u | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// A cursor over a byte buffer that never reads past its end; `None` means "malformed".
///
/// Slices come out as [`Bytes`] sharing the buffer (no copy).
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a Bytes) -> Self {
        Self {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    /// A reader of `buf` from `pos` on; `None` if `pos` is past its end.
    pub(crate) fn new_at(buf: &'a Bytes, pos: usize) -> Option<Self> {
        (pos <= buf.len()).then_some(Self {
            buf,
            pos,
            end: buf.len(),
        })
    }

    /// The whole buffer this reads.
    pub(crate) fn buffer(&self) -> &'a Bytes {
        self.buf
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    #[inline]
    fn byte(&mut self) -> Option<u8> {
        if self.pos < self.end {
            let b = self.buf.get(self.pos).copied();
            self.pos += 1;
            b
        } else {
            None
        }
    }

    #[inline]
    fn unsigned(&mut self, max_bytes: u32) -> Option<u64> {
        let mut out = 0u64;
        for i in 0..max_bytes {
            let b = self.byte()?;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(out);
            }
        }
        None
    }

    /// A zig-zag varint (at most 5 bytes).
    #[inline]
    pub(crate) fn varint(&mut self) -> Option<i32> {
        let u = self.unsigned(5)?;
        let u = u32::try_from(u).ok()?;
        Some(((u >> 1) as i32) ^ -((u & 1) as i32))
    }

    /// A zig-zag varlong (at most 10 bytes).
    #[inline]
    pub(crate) fn varlong(&mut self) -> Option<i64> {
        let u = self.unsigned(10)?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    pub(crate) fn i8(&mut self) -> Option<i8> {
        self.byte().map(|b| b as i8)
    }

    /// The next `len` bytes, sharing the buffer.
    #[inline]
    pub(crate) fn bytes(&mut self, len: usize) -> Option<Bytes> {
        let end = self.pos.checked_add(len)?;
        if end > self.end {
            return None;
        }
        let out = self.buf.slice(self.pos..end);
        self.pos = end;
        Some(out)
    }

    /// The next `len` bytes as a borrowed slice.
    #[inline]
    pub(crate) fn slice(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let out = self.buf.get(self.pos..end.min(self.end))?;
        if end > self.end {
            return None;
        }
        self.pos = end;
        Some(out)
    }

    /// A nullable length-prefixed field: varint length, -1 for null.
    #[inline]
    pub(crate) fn nullable_bytes(&mut self) -> Option<Option<Bytes>> {
        let len = self.varint()?;
        if len == -1 {
            return Some(None);
        }
        let len = usize::try_from(len).ok()?;
        self.bytes(len).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_encodings() {
        // From the protobuf spec's zig-zag table and Kafka's ByteUtilsTest.
        let cases: [(i32, &[u8]); 6] = [
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for (v, want) in cases {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(&b[..], want, "{v}");
            assert_eq!(varint_len(v), want.len());
        }
        let mut b = BytesMut::new();
        put_varlong(&mut b, i64::MIN);
        assert_eq!(b.len(), 10);
        assert_eq!(varlong_len(i64::MIN), 10);
    }

    #[test]
    fn overlong_varint_rejected() {
        let buf = Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        assert_eq!(Reader::new(&buf).varint(), None);
        // Five bytes whose value needs more than 32 bits.
        let buf = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(Reader::new(&buf).varint(), None);
        let buf = Bytes::from_static(&[0x80]);
        assert_eq!(Reader::new(&buf).varint(), None);
    }

    proptest! {
        #[test]
        fn varint_round_trip(v in any::<i32>()) {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            prop_assert_eq!(b.len(), varint_len(v));
            let b = b.freeze();
            let mut r = Reader::new(&b);
            prop_assert_eq!(r.varint(), Some(v));
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn varlong_round_trip(v in any::<i64>()) {
            let mut b = BytesMut::new();
            put_varlong(&mut b, v);
            prop_assert_eq!(b.len(), varlong_len(v));
            let b = b.freeze();
            let mut r = Reader::new(&b);
            prop_assert_eq!(r.varlong(), Some(v));
        }
    }
}
