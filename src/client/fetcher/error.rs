//! What stops a partition's records: a batch that cannot be decoded, or one too large to be fetched.

use bytes::Bytes;
use snafu::Snafu;

use crate::protocol::records;

/// A partition's records cannot go on: the stream stops at the batch named (nothing after it is handed
/// out, so no offset past it can be marked done) until the application passes it with
/// [`PartitionStream::skip_failed_batch`](crate::client::consumer::PartitionStream::skip_failed_batch).
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// A record batch failed to decode (CRC mismatch, unknown codec, decompression failure, a batch
    /// decompressing past the limit, malformed records, an old message-set format), also when fetched
    /// a second time.
    #[snafu(display(
        "{topic}-{partition}: record batch at offsets {base_offset}..={last_offset} cannot be decoded: {source}"
    ))]
    CorruptBatch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The batch's base offset.
        base_offset: i64,
        /// The batch's last offset as its header claims it (at least `base_offset`; not to be trusted
        /// when the cause is a CRC mismatch).
        last_offset: i64,
        /// The batch as fetched, every byte (header included).
        batch: Bytes,
        /// Why it cannot be decoded.
        source: records::Error,
    },
    /// The batch at the fetch position is larger than the fetch size limits let a response carry, and
    /// the broker did not send it whole (Kafka does for the first batch of a response; a client limit
    /// or another broker may not). Raise `max_partition_fetch_bytes` / `fetch_max_bytes`.
    #[snafu(display(
        "{topic}-{partition}: the record batch at offset {base_offset} ({size} bytes) came back cut to {received} bytes; the fetch limit is {limit} bytes"
    ))]
    BatchTooLarge {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The batch's base offset.
        base_offset: i64,
        /// The batch's size as its header gives it.
        size: u64,
        /// How many of its bytes came back.
        received: usize,
        /// `max_partition_fetch_bytes`.
        limit: i32,
    },
}

impl Error {
    /// Whether fetching the same batch again may succeed: only for a CRC mismatch (bytes damaged on
    /// the way may arrive intact). The consumer already fetched the batch a second time before it
    /// reported the error, so a retriable one is most likely in the log as well.
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::client::fetcher::Error;
    ///
    /// fn report(e: &Error) -> String {
    ///     format!("{e} (retriable: {}, at {:?})", e.is_retriable(), e.offsets())
    /// }
    /// ```
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::CorruptBatch { source, .. } => source.is_retriable(),
            Self::BatchTooLarge { .. } => false,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        match self {
            Self::CorruptBatch { topic, .. } | Self::BatchTooLarge { topic, .. } => topic,
        }
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        match self {
            Self::CorruptBatch { partition, .. } | Self::BatchTooLarge { partition, .. } => *partition,
        }
    }

    /// The offsets of the batch: first and last (the last as far as known).
    pub fn offsets(&self) -> (i64, i64) {
        match self {
            Self::CorruptBatch {
                base_offset,
                last_offset,
                ..
            } => (*base_offset, *last_offset),
            Self::BatchTooLarge { base_offset, .. } => (*base_offset, *base_offset),
        }
    }

    /// The batch's bytes, when it came back whole.
    pub fn batch(&self) -> Option<&Bytes> {
        match self {
            Self::CorruptBatch { batch, .. } => Some(batch),
            Self::BatchTooLarge { .. } => None,
        }
    }
}
