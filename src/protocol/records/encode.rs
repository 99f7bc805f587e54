//! Writing record batches: [`RecordBatchBuilder`] for the producer, [`RecordBatch::encode`] for whole
//! batches, and [`rewrite_producer_state`] to stamp an encoded batch for idempotence.
//!
//! Invariant: every batch written has a correct `batchLength`, record count and CRC-32C, whatever the
//! record contents; lengths that do not fit the wire's `i32`s are an [`Error::TooLarge`], never a wrap.

use bytes::{BufMut, Bytes, BytesMut};
use snafu::{OptionExt, ResultExt};

use super::compression::{DEFAULT_GZIP_LEVEL, compress};
use super::error::{CompressSnafu, Error, TooLargeSnafu};
use super::varint::{put_varint, put_varlong, varint_len, varlong_len};
use super::{BATCH_HEADER_LEN, Compression, Headers, NO_PRODUCER_ID, RecordBatch};

/// Byte offsets of the header fields.
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
#[cfg_attr(not(feature = "client"), allow(dead_code))]
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
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) fn rewrite_producer_state(
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
        n += field_len(h.value, "header value")?;
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
    put_measured_record(out, body, offset_delta, timestamp_delta, key, value, headers)
}

/// Appends one record whose body size `body_len` gave as `body`; returns the bytes written.
fn put_measured_record(
    out: &mut BytesMut,
    body: usize,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &Headers,
) -> Result<usize, Error> {
    let body_i32 = wire_len(body, "record")?;
    let total = varint_len(body_i32) + body;
    out.reserve(total);
    let start = out.len();
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
        put_field(out, h.value);
    }
    debug_assert_eq!(
        out.len() - start,
        total,
        "a record's measured size is what it wrote"
    );
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
            compress(self.compression, DEFAULT_GZIP_LEVEL, &plain, out).context(CompressSnafu {
                compression: self.compression,
            })?;
        }
        Ok(())
    }
}

/// A record's encoded size on a builder, as [`RecordBatchBuilder::measure`] found it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordSize {
    /// Its body (after the length prefix).
    body: usize,
    /// The bytes the record adds to the batch.
    pub(crate) total: usize,
    /// The offset and timestamp deltas it was measured with (the builder's record count, and the
    /// record's timestamp less the batch's first): its size depends on them.
    deltas: (i32, i64),
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
    gzip_level: u32,
}

impl RecordBatchBuilder {
    /// An empty batch with `compression`.
    pub fn new(compression: Compression) -> Self {
        Self::with_capacity(compression, 16 * 1024)
    }

    /// An empty batch whose buffer starts with room for `bytes` (use the producer's `batch.size`).
    pub fn with_capacity(compression: Compression, bytes: usize) -> Self {
        Self::with_buffer(compression, BytesMut::with_capacity(bytes.max(BATCH_HEADER_LEN)))
    }

    /// An empty batch written into `buf`, whose contents are dropped and whose capacity is kept (the
    /// buffer of a batch already sent, say).
    pub(crate) fn with_buffer(compression: Compression, mut buf: BytesMut) -> Self {
        buf.clear();
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
            gzip_level: DEFAULT_GZIP_LEVEL,
        }
    }

    /// The batch's codec.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Sets the idempotent producer's id, epoch and the first record's sequence number (these can also
    /// be rewritten in the encoded batch, as the producer does when it sends it). Kept across [`finish`](Self::finish).
    pub fn set_producer_state(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
    }

    /// Sets gzip's level, 1 (fastest) to 9 (smallest); values outside are clamped. The default is 6, as
    /// in Java (`compression.gzip.level`) and librdkafka. The other codecs have one level each here:
    /// lz4_flex has no levels and ruzstd's only encoder level is ≈ zstd level 1.
    pub fn set_gzip_level(&mut self, level: u32) {
        self.gzip_level = level.clamp(1, 9);
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
            if compression_ratio.is_nan() {
                1.0
            } else {
                compression_ratio.clamp(0.0, 1.5)
            }
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
        Ok(self.measure(timestamp, key, value, headers)?.total)
    }

    /// The size of this record's body if appended now (its length prefix excluded), for
    /// [`append_measured`](Self::append_measured).
    pub(crate) fn measure(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<RecordSize, Error> {
        let (od, td) = self.deltas(timestamp);
        let body = body_len(od, td, key, value, headers)?;
        let total = varint_len(wire_len(body, "record")?) + body;
        Ok(RecordSize {
            body,
            total,
            deltas: (od, td),
        })
    }

    /// [`append`](Self::append) of the record [`measure`](Self::measure)d as `size`: its size is
    /// not computed again when its deltas are still the same (the same record count and timestamp
    /// less the batch's first); otherwise it is measured anew.
    pub(crate) fn append_measured(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &Headers,
        size: RecordSize,
    ) -> Result<usize, Error> {
        self.append_with(timestamp, |buf, od, td| {
            let body = if size.deltas == (od, td) {
                size.body
            } else {
                body_len(od, td, key, value, headers)?
            };
            put_measured_record(buf, body, od, td, key, value, headers)
        })
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
        self.append_with(timestamp, |buf, od, td| put_record(buf, od, td, key, value, headers))
    }

    fn append_with(
        &mut self,
        timestamp: i64,
        put: impl FnOnce(&mut BytesMut, i32, i64) -> Result<usize, Error>,
    ) -> Result<usize, Error> {
        if self.count == i32::MAX {
            return TooLargeSnafu { what: "record count" }.fail();
        }
        let (od, td) = self.deltas(timestamp);
        let n = put(&mut self.buf, od, td)?;
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
            let compressed =
                compress(self.compression, self.gzip_level, plain, &mut batch).context(CompressSnafu {
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
#[path = "encode_tests.rs"]
mod tests;
