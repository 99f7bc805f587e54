//! Kafka record batches (message format v2, "magic 2"): the types, an encoder and a decoder.
//!
//! Owns the bytes inside a Produce request's and a Fetch response's `records` field. May use only
//! [`crate::protocol::Headers`], `bytes` and the codec crates; no I/O, no clock.
//!
//! # Layout of a batch
//!
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 (=2) | crc u32 (CRC-32C of
//! everything after it) | attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32 | records (compressed as a whole)
//!
//! record: length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//!         key (varint length, -1 = null) | value (same) | headerCount varint |
//!         headers: key (varint length + UTF-8) | value (varint length, -1 = null)
//! ```
//!
//! # Why our own codec
//!
//! `kafka_protocol::records` keeps headers in an `IndexMap` (duplicate keys collapse, order is not the
//! wire's) and builds a map per record. The producer must outrun librdkafka, and the consumer must keep
//! headers as sent, so this module:
//!
//! - **encodes straight into one `BytesMut`** ([`RecordBatchBuilder`]): a record is written with one size
//!   computation and a few `put_slice`s, no per-record allocation. Uncompressed batches are built in
//!   place behind a reserved header and handed out with `split().freeze()` (no copy); compressed ones
//!   are compressed once, from the builder's buffer into the batch, when the batch is closed. The
//!   builder keeps its buffer's capacity across batches.
//! - **decodes without copying payloads** ([`RecordBatchDecoder`]): for an uncompressed batch, keys,
//!   values and header values are [`Bytes`] slices of the fetch response (a live record keeps that
//!   response's buffer alive); for a compressed batch they are slices of the one decompressed buffer.
//!   Header keys are `String`s (one small allocation each, as [`Headers`] stores them).
//! - uses hardware CRC-32C (`crc32c` picks SSE4.2 / ARMv8 CRC at run time).
//!
//! `kafka_protocol`'s record codec serves only as an independent cross-check in tests.
//!
//! # Invariants
//!
//! - Decoding never panics on any input; each failure is an [`Error`] naming the batch's base offset.
//! - A truncated last batch (Fetch responses cut at `max_bytes`) ends decoding; it is not an error.
//! - Decompression never produces more than [`DecodeOptions::max_uncompressed_batch_bytes`].
//! - Encoding then decoding gives back the same records, headers (order, duplicates, nulls) included,
//!   under every codec.

mod compression;
mod decode;
mod encode;
mod error;
mod gunzip;
pub(crate) mod varint;

use bytes::Bytes;

pub use compression::Compression;
pub(crate) use decode::{CheckedBatch, check_batch};
pub use decode::{DecodeOptions, RecordBatchDecoder, decode_batches};
pub use encode::RecordBatchBuilder;
#[cfg(feature = "client")]
pub(crate) use encode::rewrite_producer_state;
pub use error::Error;

use super::Headers;

/// The size of a v2 batch header, before the records.
pub const BATCH_HEADER_LEN: usize = 61;

/// "No producer id": the value of a non-idempotent batch's producer id, epoch and base sequence.
pub const NO_PRODUCER_ID: i64 = -1;

/// How a batch's timestamps were set (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TimestampType {
    /// Set by the producer (each record's own timestamp).
    #[default]
    CreateTime,
    /// Set by the broker on append: every record's timestamp is the batch's `max_timestamp`.
    LogAppendTime,
}

/// One record of a batch, with its offset and timestamp relative to the batch.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use kafka_event_bus::protocol::{Headers, records::Record};
///
/// let mut headers = Headers::new();
/// headers.insert("event_type", "OrderCreated");
/// let r = Record {
///     offset_delta: 0,
///     timestamp_delta: 0,
///     key: Some(Bytes::from_static(b"order-42")),
///     value: Some(Bytes::from_static(b"{}")),
///     headers,
/// };
/// assert_eq!(r.headers.get_str("event_type"), Some("OrderCreated"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The record's offset minus the batch's base offset.
    pub offset_delta: i32,
    /// The record's timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The key; `None` is a null key (unkeyed record).
    pub key: Option<Bytes>,
    /// The value; `None` is a null value (a tombstone).
    pub value: Option<Bytes>,
    /// The headers, in wire order.
    pub headers: Headers,
}

/// A whole record batch: its header fields and its records.
///
/// Decoding gives these; [`RecordBatch::encode`] writes one (the producer's hot path uses
/// [`RecordBatchBuilder`] instead, which needs no `Record` values).
///
/// # Example
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use kafka_event_bus::protocol::records::{Compression, DecodeOptions, Record, RecordBatch, decode_batches};
///
/// let batch = RecordBatch {
///     base_offset: 100,
///     compression: Compression::Lz4,
///     base_timestamp: 1_700_000_000_000,
///     max_timestamp: 1_700_000_000_005,
///     last_offset_delta: 1,
///     records: vec![
///         Record { value: Some(Bytes::from_static(b"a")), ..Record::default() },
///         Record { offset_delta: 1, timestamp_delta: 5, value: Some(Bytes::from_static(b"b")), ..Record::default() },
///     ],
///     ..RecordBatch::default()
/// };
/// let mut buf = BytesMut::new();
/// batch.encode(&mut buf)?;
///
/// let decoded = decode_batches(buf.freeze(), &DecodeOptions::default())?;
/// assert_eq!(decoded, vec![batch.clone()]);
/// assert_eq!(decoded[0].offset_of(&decoded[0].records[1]), 101);
/// assert_eq!(decoded[0].timestamp_of(&decoded[0].records[1]), 1_700_000_000_005);
/// assert_eq!(decoded[0].next_offset(), 102);
/// # Ok::<(), kafka_event_bus::protocol::records::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    /// The offset of the first record (0 in a Produce request: the broker assigns offsets).
    pub base_offset: i64,
    /// The leader epoch of the partition when the broker wrote the batch (-1 from producers).
    pub partition_leader_epoch: i32,
    /// How the records section is compressed.
    pub compression: Compression,
    /// Whether timestamps are the producer's or the broker's.
    pub timestamp_type: TimestampType,
    /// Part of a transaction.
    pub is_transactional: bool,
    /// A control batch (transaction markers), not user records.
    pub is_control: bool,
    /// KIP-534: `base_timestamp` is the delete horizon of a compacted batch.
    pub has_delete_horizon: bool,
    /// The offset delta of the last record (kept even if compaction removed that record).
    pub last_offset_delta: i32,
    /// The timestamp the records' deltas are relative to.
    pub base_timestamp: i64,
    /// The largest timestamp in the batch.
    pub max_timestamp: i64,
    /// The idempotent producer's id, or [`NO_PRODUCER_ID`].
    pub producer_id: i64,
    /// The producer's epoch, or -1.
    pub producer_epoch: i16,
    /// The sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// The records.
    pub records: Vec<Record>,
}

impl Default for RecordBatch {
    fn default() -> Self {
        Self {
            base_offset: 0,
            partition_leader_epoch: -1,
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
            is_transactional: false,
            is_control: false,
            has_delete_horizon: false,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: -1,
            records: Vec::new(),
        }
    }
}

impl RecordBatch {
    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset after the batch: where the next fetch starts.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// A record's absolute offset.
    pub fn offset_of(&self, record: &Record) -> i64 {
        self.base_offset.saturating_add(i64::from(record.offset_delta))
    }

    /// A record's timestamp: the batch's `max_timestamp` under [`TimestampType::LogAppendTime`], else
    /// the base timestamp plus the record's delta.
    pub fn timestamp_of(&self, record: &Record) -> i64 {
        match self.timestamp_type {
            TimestampType::LogAppendTime => self.max_timestamp,
            TimestampType::CreateTime => self.base_timestamp.saturating_add(record.timestamp_delta),
        }
    }

    /// The attributes field as written on the wire.
    fn attributes(&self) -> i16 {
        let mut a = i16::from(self.compression.id());
        if self.timestamp_type == TimestampType::LogAppendTime {
            a |= 1 << 3;
        }
        if self.is_transactional {
            a |= 1 << 4;
        }
        if self.is_control {
            a |= 1 << 5;
        }
        if self.has_delete_horizon {
            a |= 1 << 6;
        }
        a
    }
}
