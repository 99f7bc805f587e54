//! Reading record batches out of a Fetch response's `records` bytes.
//!
//! Invariants: no input makes this panic or allocate beyond the input's size plus
//! [`DecodeOptions::max_uncompressed_batch_bytes`] per batch (record counts are never trusted for
//! capacity); a truncated last batch ends the iteration quietly; after an error the iteration ends.

use bytes::Bytes;

use super::compression::{DecompressError, decompress};
use super::error::Error;
use super::varint::Reader;
use super::{BATCH_HEADER_LEN, Compression, Headers, Record, RecordBatch, TimestampType};

/// The smallest record: length, attributes, timestamp delta, offset delta, key, value, header count.
const MIN_RECORD_LEN: usize = 7;
/// baseOffset + batchLength: the bytes before what `batchLength` counts.
const LOG_OVERHEAD: usize = 12;

/// How to decode.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::records::DecodeOptions;
///
/// let opts = DecodeOptions::default().with_skip_control_batches(false);
/// assert!(!opts.skip_control_batches && opts.check_crcs);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeOptions {
    /// Leave out control batches (transaction markers); [`RecordBatchDecoder::next_offset`] still moves
    /// past them. Default `true`; a `read_committed` consumer turns it off to see abort markers.
    pub skip_control_batches: bool,
    /// Verify each batch's CRC-32C (Java's `check.crcs`). Default `true`.
    pub check_crcs: bool,
    /// The most bytes one compressed batch may decompress to. Default 128 MiB.
    pub max_uncompressed_batch_bytes: usize,
}

impl DecodeOptions {
    /// Sets [`skip_control_batches`](Self::skip_control_batches).
    pub fn with_skip_control_batches(mut self, skip: bool) -> Self {
        self.skip_control_batches = skip;
        self
    }

    /// Sets [`check_crcs`](Self::check_crcs).
    pub fn with_check_crcs(mut self, check: bool) -> Self {
        self.check_crcs = check;
        self
    }

    /// Sets [`max_uncompressed_batch_bytes`](Self::max_uncompressed_batch_bytes).
    pub fn with_max_uncompressed_batch_bytes(mut self, limit: usize) -> Self {
        self.max_uncompressed_batch_bytes = limit;
        self
    }
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            skip_control_batches: true,
            check_crcs: true,
            max_uncompressed_batch_bytes: 128 << 20,
        }
    }
}

/// Decodes every complete batch in `records` (a Fetch response partition's `records` field).
///
/// A truncated last batch is left out, as is every control batch when
/// [`skip_control_batches`](DecodeOptions::skip_control_batches) is set. Use [`RecordBatchDecoder`] to
/// keep the batches before a corrupt one, or to learn the offset after skipped control batches.
///
/// # Errors
///
/// The first batch that fails to decode (see [`Error`]).
///
/// # Example
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use kafka_event_bus::protocol::{Headers, records::*};
///
/// let mut fetched = BytesMut::new();
/// let mut b = RecordBatchBuilder::new(Compression::None);
/// b.append(0, Some(b"k"), Some(b"v1"), &Headers::new())?;
/// fetched.extend_from_slice(&b.finish()?);
/// b.append(0, Some(b"k"), Some(b"v2"), &Headers::new())?;
/// let second = b.finish()?;
/// fetched.extend_from_slice(&second[..second.len() - 3]); // cut short, as fetches are
///
/// let batches = decode_batches(fetched.freeze(), &DecodeOptions::default())?;
/// assert_eq!(batches.len(), 1);
/// assert_eq!(batches[0].records[0].value.as_deref(), Some(&b"v1"[..]));
/// # Ok::<(), kafka_event_bus::protocol::records::Error>(())
/// ```
pub fn decode_batches(records: Bytes, options: &DecodeOptions) -> Result<Vec<RecordBatch>, Error> {
    RecordBatchDecoder::new(records, *options).collect()
}

/// An iterator over the batches in a Fetch response's `records` bytes.
///
/// Yields each complete batch (control batches only if asked), in order; stops at the end, at a
/// truncated last batch, or after yielding an error.
///
/// # Example
///
/// ```
/// use bytes::BytesMut;
/// use kafka_event_bus::protocol::{Headers, records::*};
///
/// let mut b = RecordBatchBuilder::new(Compression::Lz4);
/// for i in 0..3 {
///     b.append(i, None, Some(format!("event {i}").as_bytes()), &Headers::new())?;
/// }
/// let bytes = b.finish()?;
///
/// let mut decoder = RecordBatchDecoder::new(bytes, DecodeOptions::default());
/// let batch = decoder.next().unwrap()?;
/// assert_eq!(batch.records.len(), 3);
/// assert!(decoder.next().is_none());
/// assert_eq!(decoder.next_offset(), Some(3));
/// assert_eq!(decoder.truncated_bytes(), 0);
/// # Ok::<(), kafka_event_bus::protocol::records::Error>(())
/// ```
#[derive(Debug)]
pub struct RecordBatchDecoder {
    buf: Bytes,
    pos: usize,
    options: DecodeOptions,
    next_offset: Option<i64>,
    done: bool,
    /// The bytes of the batch being read (or that last failed): `(start, end)` in `buf`.
    last: (usize, usize),
    /// The last error left `pos` after a batch whose bounds were sound: [`Self::resume`] may go on.
    resumable: bool,
}

impl RecordBatchDecoder {
    /// A decoder over `records`.
    pub fn new(records: Bytes, options: DecodeOptions) -> Self {
        Self {
            buf: records,
            pos: 0,
            options,
            next_offset: None,
            done: false,
            last: (0, 0),
            resumable: false,
        }
    }

    /// The bytes of the batch last yielded or last failed (empty before the first).
    pub(crate) fn last_batch(&self) -> Bytes {
        self.buf.slice(self.last.0..self.last.1)
    }

    /// After an error: goes on with the batch after the failed one, when the failed batch's bounds
    /// were sound (its records failed to decode, not its frame or CRC). Returns whether it did.
    pub(crate) fn resume(&mut self) -> bool {
        let resumed = self.done && self.resumable;
        if resumed {
            self.done = false;
            self.resumable = false;
        }
        resumed
    }

    /// The offset after the last complete batch read so far, yielded or skipped: where the next fetch
    /// of this partition starts. `None` before the first batch.
    pub fn next_offset(&self) -> Option<i64> {
        self.next_offset
    }

    /// How many bytes at the end do not form a complete batch (a batch cut by the fetch size limit).
    /// Meaningful once the iterator returned `None`.
    pub fn truncated_bytes(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next batch's bounds, `None` if what is left is not a whole batch.
    fn frame(&self) -> Result<Option<(i64, usize)>, Error> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let Some((offset, rest)) = rest.split_first_chunk::<8>() else {
            return Ok(None);
        };
        let Some((length, _)) = rest.split_first_chunk::<4>() else {
            return Ok(None);
        };
        let base_offset = i64::from_be_bytes(*offset);
        let length = i32::from_be_bytes(*length);
        let Some(body) = usize::try_from(length)
            .ok()
            .filter(|&l| l >= BATCH_HEADER_LEN - LOG_OVERHEAD)
        else {
            // Old message sets (magic 0 and 1) can be this short: name the real problem when we can.
            return match rest.get(8).map(|&m| m as i8) {
                Some(magic) if magic != 2 && length >= 0 => {
                    Err(Error::UnsupportedMagic { base_offset, magic })
                }
                _ => Err(Error::BatchLength { base_offset, length }),
            };
        };
        let end = self.pos + LOG_OVERHEAD + body;
        Ok((end <= self.buf.len()).then_some((base_offset, end)))
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, Error> {
        loop {
            let Some((base_offset, end)) = self.frame()? else {
                return Ok(None);
            };
            let batch = self.buf.slice(self.pos..end);
            self.last = (self.pos, end);
            let header = verified_header(&batch, base_offset, self.options.check_crcs)?;
            self.pos = end;
            self.next_offset = Some(
                base_offset
                    .saturating_add(i64::from(header.last_offset_delta))
                    .saturating_add(1),
            );
            if header.is_control() && self.options.skip_control_batches {
                continue;
            }
            self.resumable = true;
            return header
                .into_batch(batch.slice(BATCH_HEADER_LEN..), base_offset, &self.options)
                .map(Some);
        }
    }
}

impl Iterator for RecordBatchDecoder {
    type Item = Result<RecordBatch, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(Some(batch)) => {
                self.resumable = false;
                Some(Ok(batch))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The header of one whole batch (`batch`: base offset to the end of its records), checked: magic 2,
/// a length that holds the header and, with `check_crcs`, the CRC-32C. The records are not looked at.
fn verified_header(batch: &[u8], base_offset: i64, check_crcs: bool) -> Result<BatchHeader, Error> {
    let header = BatchHeader::parse(batch, base_offset)?;
    if check_crcs {
        let computed = crc32c::crc32c(batch.get(21..).unwrap_or_default());
        if computed != header.crc {
            return Err(Error::CrcMismatch {
                base_offset,
                stored: header.crc,
                computed,
            });
        }
    }
    Ok(header)
}

/// What [`check_batch`] found sound in a batch's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckedBatch {
    /// The base offset.
    pub(crate) base_offset: i64,
    /// The last offset delta, as the header says.
    pub(crate) last_offset_delta: i32,
}

/// Checks one whole batch (`batch`: from its base offset to the end of its records, exactly its
/// `batchLength` + 12 bytes) without decoding its records: see [`verified_header`].
pub(crate) fn check_batch(batch: &[u8], check_crcs: bool) -> Result<CheckedBatch, Error> {
    let base_offset = i64::from_be_bytes(be(batch, 0));
    let length = i32::from_be_bytes(be(batch, 8));
    if usize::try_from(length)
        .ok()
        .filter(|&l| l >= BATCH_HEADER_LEN - LOG_OVERHEAD)
        .is_none()
    {
        return match batch.get(16).map(|&m| m as i8) {
            Some(magic) if magic != 2 && length >= 0 => Err(Error::UnsupportedMagic { base_offset, magic }),
            _ => Err(Error::BatchLength { base_offset, length }),
        };
    }
    let header = verified_header(batch, base_offset, check_crcs)?;
    Ok(CheckedBatch {
        base_offset,
        last_offset_delta: header.last_offset_delta,
    })
}

impl std::iter::FusedIterator for RecordBatchDecoder {}

/// The fixed header of a batch, after `baseOffset` and `batchLength`.
struct BatchHeader {
    partition_leader_epoch: i32,
    crc: u32,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    record_count: i32,
}

fn be<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

impl BatchHeader {
    /// Parses a whole batch's header (`batch` is at least `BATCH_HEADER_LEN` long; `frame` checked it).
    fn parse(batch: &[u8], base_offset: i64) -> Result<Self, Error> {
        let magic = i8::from_be_bytes(be(batch, 16));
        if magic != 2 || batch.len() < BATCH_HEADER_LEN {
            return Err(Error::UnsupportedMagic { base_offset, magic });
        }
        Ok(Self {
            partition_leader_epoch: i32::from_be_bytes(be(batch, 12)),
            crc: u32::from_be_bytes(be(batch, 17)),
            attributes: i16::from_be_bytes(be(batch, 21)),
            last_offset_delta: i32::from_be_bytes(be(batch, 23)),
            base_timestamp: i64::from_be_bytes(be(batch, 27)),
            max_timestamp: i64::from_be_bytes(be(batch, 35)),
            producer_id: i64::from_be_bytes(be(batch, 43)),
            producer_epoch: i16::from_be_bytes(be(batch, 51)),
            base_sequence: i32::from_be_bytes(be(batch, 53)),
            record_count: i32::from_be_bytes(be(batch, 57)),
        })
    }

    fn is_control(&self) -> bool {
        self.attributes & (1 << 5) != 0
    }

    fn into_batch(
        self,
        body: Bytes,
        base_offset: i64,
        options: &DecodeOptions,
    ) -> Result<RecordBatch, Error> {
        let id = (self.attributes & 0x7) as u8;
        let compression = Compression::from_id(id).ok_or(Error::UnknownCompression { base_offset, id })?;
        let data = if compression == Compression::None {
            body
        } else {
            decompress(compression, &body, options.max_uncompressed_batch_bytes).map_err(|e| match e {
                DecompressError::TooLarge => Error::DecompressedTooLarge {
                    base_offset,
                    limit: options.max_uncompressed_batch_bytes,
                },
                DecompressError::Codec(source) => Error::Decompress {
                    base_offset,
                    compression,
                    source,
                },
            })?
        };
        let records = decode_records(&data, self.record_count)
            .map_err(|what| Error::Malformed { base_offset, what })?;
        Ok(RecordBatch {
            base_offset,
            partition_leader_epoch: self.partition_leader_epoch,
            compression,
            timestamp_type: if self.attributes & (1 << 3) != 0 {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            is_transactional: self.attributes & (1 << 4) != 0,
            is_control: self.is_control(),
            has_delete_horizon: self.attributes & (1 << 6) != 0,
            last_offset_delta: self.last_offset_delta,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            records,
        })
    }
}

fn decode_records(data: &Bytes, count: i32) -> Result<Vec<Record>, &'static str> {
    let count = usize::try_from(count).map_err(|_| "negative record count")?;
    let mut r = Reader::new(data);
    let mut records = Vec::with_capacity(count.min(r.remaining() / MIN_RECORD_LEN));
    for _ in 0..count {
        records.push(decode_record(&mut r)?);
    }
    if r.remaining() != 0 {
        return Err("bytes left after the last record");
    }
    Ok(records)
}

fn decode_record(r: &mut Reader<'_>) -> Result<Record, &'static str> {
    let len = r.varint().ok_or("bad record length")?;
    let len = usize::try_from(len).map_err(|_| "negative record length")?;
    if len > r.remaining() {
        return Err("record longer than its batch");
    }
    let start = r.position();
    r.i8().ok_or("truncated record")?; // attributes: unused
    let timestamp_delta = r.varlong().ok_or("bad timestamp delta")?;
    let offset_delta = r.varint().ok_or("bad offset delta")?;
    let key = r.nullable_bytes().ok_or("bad key")?;
    let value = r.nullable_bytes().ok_or("bad value")?;
    let n = r.varint().ok_or("bad header count")?;
    let n = usize::try_from(n).map_err(|_| "negative header count")?;
    let (headers, used) = Headers::decode(r.buffer(), r.position(), n).ok_or("bad header")?;
    r.slice(used).ok_or("bad header")?;
    if r.position() - start != len {
        return Err("record length does not match its fields");
    }
    Ok(Record {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers,
    })
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
