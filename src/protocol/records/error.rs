//! Errors of the record-batch codec.

use snafu::Snafu;

use super::Compression;

/// A boxed error from a compression library.
pub(crate) type CodecError = Box<dyn std::error::Error + Send + Sync>;

/// An error encoding or decoding record batches.
///
/// Decoding errors name the batch's base offset, so a consumer can report (or skip) the exact spot.
/// Only [`CrcMismatch`](Error::CrcMismatch) is retriable: bytes damaged on the way may arrive intact
/// when fetched again; everything else is in the log itself.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// A compression name other than `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    #[snafu(display("unknown compression type {name:?} (expected none, gzip, snappy, lz4 or zstd)"))]
    UnknownCompressionName {
        /// The name given.
        name: String,
    },
    /// A batch whose attributes name a compression codec Kafka does not define.
    #[snafu(display("batch at offset {base_offset}: unknown compression codec id {id}"))]
    UnknownCompression {
        /// The batch's base offset.
        base_offset: i64,
        /// The attribute bits (0..=7).
        id: u8,
    },
    /// A batch in the old message format (magic 0 or 1), which Kafka 4 no longer writes.
    #[snafu(display("batch at offset {base_offset}: unsupported magic byte {magic} (only v2)"))]
    UnsupportedMagic {
        /// The batch's base offset.
        base_offset: i64,
        /// The magic byte read.
        magic: i8,
    },
    /// A batch length too small to hold a v2 batch header.
    #[snafu(display("batch at offset {base_offset}: invalid batch length {length}"))]
    BatchLength {
        /// The batch's base offset.
        base_offset: i64,
        /// The length field read.
        length: i32,
    },
    /// The CRC-32C stored in a batch does not match its bytes.
    #[snafu(display(
        "batch at offset {base_offset}: CRC-32C {stored:#010x} stored, {computed:#010x} computed"
    ))]
    CrcMismatch {
        /// The batch's base offset.
        base_offset: i64,
        /// The CRC in the batch header.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// The records of a batch do not parse (bad varint, length out of range, wrong count, trailing bytes).
    #[snafu(display("batch at offset {base_offset}: malformed records: {what}"))]
    Malformed {
        /// The batch's base offset.
        base_offset: i64,
        /// What was wrong.
        what: &'static str,
    },
    /// A compressed batch could not be decompressed.
    #[snafu(display("batch at offset {base_offset}: cannot decompress {compression}: {source}"))]
    Decompress {
        /// The batch's base offset.
        base_offset: i64,
        /// The codec.
        compression: Compression,
        /// What the codec said.
        source: CodecError,
    },
    /// A compressed batch decompresses to more than the configured limit.
    #[snafu(display("batch at offset {base_offset}: decompresses to more than {limit} bytes"))]
    DecompressedTooLarge {
        /// The batch's base offset.
        base_offset: i64,
        /// The limit (`DecodeOptions::max_uncompressed_batch_bytes`).
        limit: usize,
    },
    /// Records could not be compressed.
    #[snafu(display("cannot compress with {compression}: {source}"))]
    Compress {
        /// The codec.
        compression: Compression,
        /// What the codec said.
        source: CodecError,
    },
    /// A field too large for the wire format (a key, value or batch over 2 GiB, too many records).
    #[snafu(display("{what} is too large for a record batch"))]
    TooLarge {
        /// Which field.
        what: &'static str,
    },
}

impl Error {
    /// Whether fetching or sending the same data again may succeed.
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::protocol::Compression;
    ///
    /// let err = "brotli".parse::<Compression>().unwrap_err();
    /// assert!(!err.is_retriable());
    /// ```
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::CrcMismatch { .. })
    }
}
