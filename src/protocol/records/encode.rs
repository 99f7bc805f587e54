//! Writing record batches: [`RecordBatchBuilder`] for the producer, [`RecordBatch::encode`] for whole
//! batches, and [`rewrite_producer_state`] to stamp an encoded batch for idempotence.
//!
//! Invariant: every batch written has a correct `batchLength`, record count and CRC-32C, whatever the
//! record contents; lengths that do not fit the wire's `i32`s are an [`Error::TooLarge`], never a wrap.

use bytes::{BufMut, Bytes, BytesMut};
use snafu::{OptionExt, ResultExt};

use super::compression::compress;
use super::error::{CompressSnafu, Error, TooLargeSnafu};
use super::varint::{put_varint, put_varlong, varint_len, varlong_len};
use super::{BATCH_HEADER_LEN, Compression, Headers, NO_PRODUCER_ID, RecordBatch};

/// Byte offsets of the header fields.
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const PRODUCER_ID_AT: usize = 43;

/// The fields of a batch header other than lengths and CRC.
struct HeaderFields {
    base_offset: i64,
    partition_leader_epoch: i32,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    record_count: i32,
}

/// Writes the header into `batch[..61]` (already reserved), then `batchLength` and the CRC over
/// `batch[21..]`. `batch` must be exactly one whole batch.
fn seal(batch: &mut [u8], h: &HeaderFields) -> Result<(), Error> {
    let length = i32::try_from(batch.len() - 12)
        .ok()
        .context(TooLargeSnafu { what: "batch" })?;
    let Some(header) = batch.get_mut(..BATCH_HEADER_LEN) else {
        return TooLargeSnafu { what: "batch header" }.fail();
    };
    let mut w = &mut header[..];
    w.put_i64(h.base_offset);
    w.put_i32(length);
    w.put_i32(h.partition_leader_epoch);
    w.put_i8(2);
    w.put_u32(0); // CRC, below
    w.put_i16(h.attributes);
    w.put_i32(h.last_offset_delta);
    w.put_i64(h.base_timestamp);
    w.put_i64(h.max_timestamp);
    w.put_i64(h.producer_id);
    w.put_i16(h.producer_epoch);
    w.put_i32(h.base_sequence);
    w.put_i32(h.record_count);
    debug_assert_eq!(header[MAGIC_AT], 2);
    update_crc(batch);
    Ok(())
}

fn update_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(batch.get(ATTRIBUTES_AT..).unwrap_or_default());
    if let Some(field) = batch.get_mut(CRC_AT..ATTRIBUTES_AT) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
}

/// Rewrites the producer id, epoch and base sequence of one encoded batch and recomputes its CRC.
///
/// The producer stamps a batch when it drains it for sending (and again if a retry needs a new epoch or
/// sequence), after the records were compressed: only the header changes, so no record is re-encoded.
///
/// # Errors
///
/// [`Error::Malformed`] if `batch` is shorter than a batch header or is not a v2 batch.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use kafka_event_bus::protocol::{Headers, records::*};
///
/// let mut b = RecordBatchBuilder::new(Compression::Gzip);
/// b.append(1_000, None, Some(b"v"), &Headers::new())?;
/// let mut batch = b.finish()?.to_vec();
/// rewrite_producer_state(&mut batch, 7, 1, 42)?;
///
/// let decoded = decode_batches(Bytes::from(batch), &DecodeOptions::default())?;
/// assert_eq!((decoded[0].producer_id, decoded[0].producer_epoch, decoded[0].base_sequence), (7, 1, 42));
/// # Ok::<(), kafka_event_bus::protocol::records::Error>(())
/// ```
pub fn rewrite_producer_state(
    batch: &mut [u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<(), Error> {
    let malformed = |what| Error::Malformed {
        base_offset: -1,
        what,
    };
    if batch.get(MAGIC_AT) != Some(&2) {
        return Err(malformed("not a v2 batch"));
    }
    let mut w = batch
        .get_mut(PRODUCER_ID_AT..PRODUCER_ID_AT + 14)
        .ok_or_else(|| malformed("shorter than a batch header"))?;
    w.put_i64(producer_id);
    w.put_i16(producer_epoch);
    w.put_i32(base_sequence);
    update_crc(batch);
    Ok(())
}

/// The encoded size of one record's body (everything after its length varint).
#[inline]
fn body_len(
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &Headers,
) -> Result<usize, Error> {
    let mut n = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta);
    n += field_len(key, "key")? + field_len(value, "value")?;
    n += varint_len(wire_len(headers.len(), "header count")?);
    for h in headers {
        n += varint_len(wire_len(h.key.len(), "header key")?) + h.key.len();
        n += field_len(h.value.as_deref(), "header value")?;
    }
    Ok(n)
}

#[inline]
fn wire_len(len: usize, what: &'static str) -> Result<i32, Error> {
    i32::try_from(len).ok().context(TooLargeSnafu { what })
}

#[inline]
fn field_len(field: Option<&[u8]>, what: &'static str) -> Result<usize, Error> {
    Ok(match field {
        None => 1,
        Some(f) => varint_len(wire_len(f.len(), what)?) + f.len(),
    })
}

#[inline]
fn put_field(out: &mut BytesMut, field: Option<&[u8]>) {
    match field {
        None => put_varint(out, -1),
        Some(f) => {
            // Lengths were checked by `body_len`.
            put_varint(out, f.len() as i32);
            out.put_slice(f);
        }
    }
}

/// Appends one record; returns the bytes written.
fn put_record(
    out: &mut BytesMut,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &Headers,
) -> Result<usize, Error> {
    let body = body_len(offset_delta, timestamp_delta, key, value, headers)?;
    let body_i32 = wire_len(body, "record")?;
    let total = varint_len(body_i32) + body;
    out.reserve(total);
    put_varint(out, body_i32);
    out.put_i8(0); // record attributes: unused
    put_varlong(out, timestamp_delta);
    put_varint(out, offset_delta);
    put_field(out, key);
    put_field(out, value);
    put_varint(out, headers.len() as i32);
    for h in headers {
        put_varint(out, h.key.len() as i32);
        out.put_slice(h.key.as_bytes());
        put_field(out, h.value.as_deref());
    }
    Ok(total)
}

impl RecordBatch {
    /// Appends this batch, as the wire has it, to `out` (nothing, on error).
    ///
    /// Every header field is written as it is (records keep their own offset and timestamp deltas), so
    /// a decoded batch re-encodes to the same bytes when uncompressed.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] for a field over the wire's limits, [`Error::Compress`] if the codec fails.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), Error> {
        let count = wire_len(self.records.len(), "record count")?;
        let start = out.len();
        out.put_bytes(0, BATCH_HEADER_LEN);
        let written = self.encode_body(out);
        if written.is_err() {
            out.truncate(start);
        }
        written?;
        let fields = HeaderFields {
            base_offset: self.base_offset,
            partition_leader_epoch: self.partition_leader_epoch,
            attributes: self.attributes(),
            last_offset_delta: self.last_offset_delta,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            record_count: count,
        };
        let batch = out.get_mut(start..).unwrap_or_default();
        let sealed = seal(batch, &fields);
        if sealed.is_err() {
            out.truncate(start);
        }
        sealed
    }

    /// Appends the records section (compressed if need be).
    fn encode_body(&self, out: &mut BytesMut) -> Result<(), Error> {
        let mut plain = BytesMut::new();
        let body = if self.compression == Compression::None {
            &mut *out
        } else {
            &mut plain
        };
        for r in &self.records {
            put_record(
                body,
                r.offset_delta,
                r.timestamp_delta,
                r.key.as_deref(),
                r.value.as_deref(),
                &r.headers,
            )?;
        }
        if self.compression != Compression::None {
            compress(self.compression, &plain, out).context(CompressSnafu {
                compression: self.compression,
            })?;
        }
        Ok(())
    }
}

/// Builds one batch for a Produce request, record by record, into a single reused buffer.
///
/// Records get consecutive offset deltas from 0 and timestamp deltas from the first record's timestamp;
/// the batch's base offset is 0 (the broker assigns offsets) and its partition leader epoch -1.
/// [`size`](Self::size) and [`record_size`](Self::record_size) let an accumulator close the batch before
/// it passes `batch.size`. [`finish`](Self::finish) returns the batch and leaves the builder empty and
/// ready for the next one, keeping its buffer's capacity.
///
/// Compressed batches are compressed once, at `finish`; until then `size` counts uncompressed bytes,
/// and [`estimated_size`](Self::estimated_size) scales them by a compression ratio the caller observed
/// (Java's producer does the same, so compressed batches fill up to `batch.size` after compression).
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::{Headers, records::*};
///
/// let mut headers = Headers::new();
/// headers.insert("event_type", "OrderCreated");
/// headers.insert("trace", "a");
/// headers.insert("trace", "b"); // duplicate keys survive
///
/// let mut b = RecordBatchBuilder::new(Compression::Snappy);
/// b.set_producer_state(1000, 0, 0);
/// let n = b.record_size(1_700_000_000_000, Some(b"order-1"), Some(b"{\"total\":3}"), &headers)?;
/// assert_eq!(b.append(1_700_000_000_000, Some(b"order-1"), Some(b"{\"total\":3}"), &headers)?, n);
/// b.append(1_700_000_000_002, Some(b"order-2"), None, &Headers::new())?;
/// assert_eq!(b.len(), 2);
/// assert_eq!(b.size(), BATCH_HEADER_LEN + b.records_size());
///
/// let bytes = b.finish()?;
/// assert!(b.is_empty());
/// let batch = &decode_batches(bytes, &DecodeOptions::default())?[0];
/// assert_eq!(batch.records[0].headers, headers);
/// assert_eq!(batch.records[1].value, None);
/// assert_eq!((batch.producer_id, batch.base_sequence, batch.last_offset_delta), (1000, 0, 1));
/// assert_eq!(batch.max_timestamp, 1_700_000_000_002);
/// # Ok::<(), kafka_event_bus::protocol::records::Error>(())
/// ```
#[derive(Debug)]
pub struct RecordBatchBuilder {
    compression: Compression,
    /// `BATCH_HEADER_LEN` reserved bytes, then the uncompressed records.
    buf: BytesMut,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    is_transactional: bool,
}

impl RecordBatchBuilder {
    /// An empty batch with `compression`.
    pub fn new(compression: Compression) -> Self {
        Self::with_capacity(compression, 16 * 1024)
    }

    /// An empty batch whose buffer starts with room for `bytes` (use the producer's `batch.size`).
    pub fn with_capacity(compression: Compression, bytes: usize) -> Self {
        let mut buf = BytesMut::with_capacity(bytes.max(BATCH_HEADER_LEN));
        buf.put_bytes(0, BATCH_HEADER_LEN);
        Self {
            compression,
            buf,
            count: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: -1,
            is_transactional: false,
        }
    }

    /// The batch's codec.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Sets the idempotent producer's id, epoch and the first record's sequence number (these can also
    /// be set after encoding with [`rewrite_producer_state`]). Kept across [`finish`](Self::finish).
    pub fn set_producer_state(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
    }

    /// Marks the batch as part of a transaction. Kept across [`finish`](Self::finish).
    pub fn set_transactional(&mut self, transactional: bool) {
        self.is_transactional = transactional;
    }

    /// How many records were appended.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The bytes of the records appended so far, uncompressed.
    pub fn records_size(&self) -> usize {
        self.buf.len() - BATCH_HEADER_LEN
    }

    /// The batch's size if it were closed now without compression: header plus records.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// The expected size after compression, given the ratio compressed/uncompressed observed on
    /// earlier batches (1.0 for no compression).
    pub fn estimated_size(&self, compression_ratio: f32) -> usize {
        let ratio = if self.compression == Compression::None {
            1.0
        } else {
            compression_ratio.clamp(0.0, 1.5)
        };
        BATCH_HEADER_LEN + (self.records_size() as f64 * f64::from(ratio)).ceil() as usize
    }

    fn deltas(&self, timestamp: i64) -> (i32, i64) {
        let base = if self.count == 0 {
            timestamp
        } else {
            self.base_timestamp
        };
        (self.count, timestamp.wrapping_sub(base))
    }

    /// The bytes [`append`](Self::append) would add (uncompressed) for this record.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] if a field does not fit the wire format.
    pub fn record_size(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<usize, Error> {
        let (od, td) = self.deltas(timestamp);
        let body = body_len(od, td, key, value, headers)?;
        Ok(varint_len(wire_len(body, "record")?) + body)
    }

    /// Appends a record with timestamp `timestamp` (ms since the epoch); returns the bytes added.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] if a field does not fit the wire format or the batch already holds
    /// `i32::MAX` records; nothing is appended then.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<usize, Error> {
        if self.count == i32::MAX {
            return TooLargeSnafu { what: "record count" }.fail();
        }
        let (od, td) = self.deltas(timestamp);
        let n = put_record(&mut self.buf, od, td, key, value, headers)?;
        if self.count == 0 {
            self.base_timestamp = timestamp;
            self.max_timestamp = timestamp;
        } else {
            self.max_timestamp = self.max_timestamp.max(timestamp);
        }
        self.count += 1;
        Ok(n)
    }

    /// Closes the batch: returns it as the wire has it, and empties the builder for the next batch.
    ///
    /// An empty builder gives an empty batch (no records), which brokers reject: check
    /// [`is_empty`](Self::is_empty) first.
    ///
    /// # Errors
    ///
    /// [`Error::Compress`] if the codec fails, [`Error::TooLarge`] for a batch over 2 GiB. The builder
    /// is emptied either way.
    pub fn finish(&mut self) -> Result<Bytes, Error> {
        let fields = HeaderFields {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes: i16::from(self.compression.id()) | if self.is_transactional { 1 << 4 } else { 0 },
            last_offset_delta: self.count.saturating_sub(1),
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            record_count: self.count,
        };
        self.count = 0;
        let result = if self.compression == Compression::None {
            // In place: the records are already behind the reserved header.
            let mut batch = self.buf.split();
            seal(&mut batch, &fields).map(|()| batch.freeze())
        } else {
            let plain = self.buf.get(BATCH_HEADER_LEN..).unwrap_or_default();
            let mut batch = BytesMut::with_capacity(BATCH_HEADER_LEN + plain.len() / 2 + 64);
            batch.put_bytes(0, BATCH_HEADER_LEN);
            let compressed = compress(self.compression, plain, &mut batch).context(CompressSnafu {
                compression: self.compression,
            });
            self.buf.clear();
            compressed
                .and_then(|()| seal(&mut batch, &fields))
                .map(|()| batch.freeze())
        };
        self.buf.clear();
        self.buf.put_bytes(0, BATCH_HEADER_LEN);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::records::{DecodeOptions, decode_batches};

    fn headers() -> Headers {
        let mut h = Headers::new();
        h.insert("a", "1");
        h.insert_null("n");
        h.insert("a", "2");
        h
    }

    #[test]
    fn header_layout_is_the_wire_layout() {
        let mut b = RecordBatchBuilder::new(Compression::None);
        b.set_producer_state(0x0102_0304_0506_0708, 9, 10);
        b.append(5, Some(b"k"), Some(b"v"), &Headers::new()).unwrap();
        b.append(3, None, None, &Headers::new()).unwrap();
        let bytes = b.finish().unwrap();
        assert_eq!(&bytes[0..8], &0i64.to_be_bytes());
        assert_eq!(
            i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize,
            bytes.len() - 12
        );
        assert_eq!(&bytes[12..16], &(-1i32).to_be_bytes());
        assert_eq!(bytes[16], 2);
        let crc = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
        assert_eq!(crc, crc32c::crc32c(&bytes[21..]));
        assert_eq!(&bytes[21..23], &0i16.to_be_bytes());
        assert_eq!(&bytes[23..27], &1i32.to_be_bytes()); // last offset delta
        assert_eq!(&bytes[27..35], &5i64.to_be_bytes()); // base timestamp: the first record's
        assert_eq!(&bytes[35..43], &5i64.to_be_bytes()); // max timestamp
        assert_eq!(&bytes[43..51], &0x0102_0304_0506_0708i64.to_be_bytes());
        assert_eq!(&bytes[51..53], &9i16.to_be_bytes());
        assert_eq!(&bytes[53..57], &10i32.to_be_bytes());
        assert_eq!(&bytes[57..61], &2i32.to_be_bytes());
        // First record: length 8 (zig-zag 16), attrs 0, ts delta 0, offset delta 0, key "k", value "v",
        // no headers. Second: ts delta -2 (zig-zag 3), offset delta 1, null key and value.
        assert_eq!(
            &bytes[61..],
            &[16, 0, 0, 0, 2, b'k', 2, b'v', 0, 12, 0, 3, 2, 1, 1, 0]
        );
    }

    #[test]
    fn builder_is_reusable_and_sizes_are_exact() {
        for c in Compression::ALL {
            let mut b = RecordBatchBuilder::with_capacity(c, 0);
            b.set_transactional(true);
            for round in 0..3 {
                let mut expect = BATCH_HEADER_LEN;
                for i in 0..(10 + round) {
                    let value = format!("value-{i}");
                    let n = b
                        .record_size(100 + i, Some(b"key"), Some(value.as_bytes()), &headers())
                        .unwrap();
                    assert_eq!(
                        b.append(100 + i, Some(b"key"), Some(value.as_bytes()), &headers())
                            .unwrap(),
                        n
                    );
                    expect += n;
                    assert_eq!(b.size(), expect);
                }
                let bytes = b.finish().unwrap();
                assert!(b.is_empty() && b.size() == BATCH_HEADER_LEN);
                let batches = decode_batches(bytes, &DecodeOptions::default()).unwrap();
                assert_eq!(batches.len(), 1);
                let batch = &batches[0];
                assert_eq!(batch.compression, c);
                assert!(batch.is_transactional);
                assert_eq!(batch.records.len() as i64, 10 + round);
                assert_eq!(
                    batch.records.last().unwrap().value.as_deref(),
                    Some(format!("value-{}", 9 + round).as_bytes())
                );
                assert_eq!(batch.records[3].headers, headers());
            }
        }
    }

    #[test]
    fn estimated_size_scales_compressed_only() {
        let mut b = RecordBatchBuilder::new(Compression::Gzip);
        b.append(0, None, Some(&[b'x'; 1000]), &Headers::new()).unwrap();
        let plain = b.records_size();
        assert_eq!(b.estimated_size(0.5), BATCH_HEADER_LEN + plain.div_ceil(2));
        let mut n = RecordBatchBuilder::new(Compression::None);
        n.append(0, None, Some(&[b'x'; 1000]), &Headers::new()).unwrap();
        assert_eq!(n.estimated_size(0.5), n.size());
    }

    #[test]
    fn rewrite_producer_state_keeps_crc_valid() {
        let mut b = RecordBatchBuilder::new(Compression::Zstd);
        b.append(1, Some(b"k"), Some(b"v"), &headers()).unwrap();
        let mut bytes = b.finish().unwrap().to_vec();
        rewrite_producer_state(&mut bytes, 77, 3, 1_000).unwrap();
        let batch = decode_batches(Bytes::from(bytes.clone()), &DecodeOptions::default())
            .unwrap()
            .remove(0);
        assert_eq!(
            (batch.producer_id, batch.producer_epoch, batch.base_sequence),
            (77, 3, 1_000)
        );
        assert!(rewrite_producer_state(&mut bytes[..40], 1, 1, 1).is_err());
        bytes[16] = 1;
        assert!(rewrite_producer_state(&mut bytes, 1, 1, 1).is_err());
    }

    #[test]
    fn timestamps_going_backwards_are_kept() {
        let mut b = RecordBatchBuilder::new(Compression::None);
        b.append(1_000, None, Some(b"a"), &Headers::new()).unwrap();
        b.append(900, None, Some(b"b"), &Headers::new()).unwrap();
        b.append(1_100, None, Some(b"c"), &Headers::new()).unwrap();
        let batch = decode_batches(b.finish().unwrap(), &DecodeOptions::default())
            .unwrap()
            .remove(0);
        let ts: Vec<i64> = batch.records.iter().map(|r| batch.timestamp_of(r)).collect();
        assert_eq!(ts, [1_000, 900, 1_100]);
        assert_eq!((batch.base_timestamp, batch.max_timestamp), (1_000, 1_100));
    }
}
