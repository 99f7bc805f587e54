//! Reads of one DLQ partition: the log start, and one Fetch (1 ms wait) decoded into records with the
//! high watermark, both through the client's single-partition reader. No group, no position state, no
//! commits.

use std::time::Duration;

use snafu::ResultExt;
use tokio::time::Instant;

use super::error::{AdminError, DecodeSnafu};
use crate::client::{
    Cluster,
    fetcher::{
        FetchConfig, IsolationLevel,
        partition_reader::{self, ReadError},
    },
    subscription::TopicPartition,
};
use crate::protocol::records::{DecodeOptions, Record, RecordBatchDecoder};

/// The fetch size a read starts with; doubled (up to [`MAX_FETCH_BYTES`]) when one batch is larger.
pub(super) const INITIAL_FETCH_BYTES: i32 = 1 << 20;
/// The largest fetch size a read grows to.
pub(super) const MAX_FETCH_BYTES: i32 = 64 << 20;

/// One record read back: offset, timestamp and the record.
#[derive(Debug)]
pub(super) struct ReadRecord {
    pub(super) offset: i64,
    pub(super) timestamp: i64,
    pub(super) record: Record,
}

/// What one Fetch returned for a partition.
#[derive(Debug)]
pub(super) struct Fetched {
    /// The partition's high watermark at the time of the fetch.
    pub(super) high_watermark: i64,
    /// The records at or after the fetch offset, in offset order.
    pub(super) records: Vec<ReadRecord>,
    /// Where the next fetch starts (the fetch offset when nothing complete came back).
    pub(super) next_offset: i64,
    /// Whether a batch was cut by the size limit before any complete one (fetch again, larger).
    pub(super) truncated: bool,
}

/// The admin error for a failed read of `topic`/`partition`.
fn admin_error(error: ReadError, topic: &str, partition: i32) -> AdminError {
    let topic = topic.to_owned();
    match error {
        ReadError::Leader { source, .. } => AdminError::Cluster {
            topic,
            partition,
            source,
        },
        ReadError::Connection { source, .. } => AdminError::Connection {
            topic,
            partition,
            source,
        },
        ReadError::Broker { source, .. } => AdminError::Broker {
            topic,
            partition,
            source,
        },
        ReadError::MissingPartition { .. } => AdminError::MissingPartition { topic, partition },
    }
}

/// ListOffsets(earliest): the log start of `topic`/`partition`.
pub(super) async fn earliest(cluster: &Cluster, topic: &str, partition: i32) -> Result<i64, AdminError> {
    let tp = TopicPartition::new(topic, partition);
    partition_reader::log_start(cluster, &tp, IsolationLevel::ReadUncommitted)
        .await
        .map(|offset| offset.max(0))
        .map_err(|e| admin_error(e, topic, partition))
}

/// How long a read's Fetch may wait for data: 1 ms, i.e. "answer with what there is". Not 0: Tansu
/// answers a zero-wait Fetch with no partitions at all (and then reading would only ever time out).
const FETCH_MAX_WAIT: Duration = Duration::from_millis(1);

/// One Fetch of `topic`/`partition` at `offset` that does not wait for data (see [`FETCH_MAX_WAIT`]).
pub(super) async fn fetch(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: i32,
) -> Result<Fetched, AdminError> {
    let tp = TopicPartition::new(topic, partition);
    let config = FetchConfig {
        fetch_max_wait: FETCH_MAX_WAIT,
        fetch_min_bytes: 0,
        fetch_max_bytes: max_bytes,
        max_partition_fetch_bytes: max_bytes,
        isolation_level: IsolationLevel::ReadUncommitted,
        ..FetchConfig::default()
    };
    let data = partition_reader::fetch(cluster, &tp, offset, &config)
        .await
        .map_err(|e| admin_error(e, topic, partition))?;
    let (records, next_offset, truncated) =
        decode_bounded(data.records, offset, MAX_DECODED_BYTES).context(DecodeSnafu {
            topic,
            partition,
            offset,
        })?;
    Ok(Fetched {
        high_watermark: data.high_watermark,
        records,
        next_offset,
        truncated,
    })
}

/// The most record bytes (keys, values, headers) one read decodes out of a Fetch response; the batch
/// that crosses it is the last one read, and the next read starts after it.
const MAX_DECODED_BYTES: usize = 64 << 20;
/// The most bytes one compressed batch of the DLQ may decompress to.
const MAX_UNCOMPRESSED_BATCH_BYTES: usize = 64 << 20;

/// Decodes the records at or after `offset` from a Fetch response's `records`, batch by batch, until
/// `budget` record bytes are decoded (at least one batch): the records, the offset the next read
/// starts at, and whether nothing came back but a cut batch.
fn decode_bounded(
    records: bytes::Bytes,
    offset: i64,
    budget: usize,
) -> Result<(Vec<ReadRecord>, i64, bool), crate::protocol::records::Error> {
    let options = DecodeOptions::default().with_max_uncompressed_batch_bytes(MAX_UNCOMPRESSED_BATCH_BYTES);
    let mut decoder = RecordBatchDecoder::new(records, options);
    let mut out = Vec::new();
    let mut next_offset = offset;
    let mut decoded = 0usize;
    while decoded < budget {
        let Some(batch) = decoder.next() else {
            // Past control batches skipped at the end.
            if let Some(after_skipped) = decoder.next_offset() {
                next_offset = next_offset.max(after_skipped);
            }
            break;
        };
        let batch = batch?;
        for record in &batch.records {
            let at = batch.offset_of(record);
            if at >= offset {
                decoded = decoded.saturating_add(record_size(record));
                out.push(ReadRecord {
                    offset: at,
                    timestamp: batch.timestamp_of(record),
                    record: record.clone(),
                });
            }
        }
        next_offset = next_offset.max(batch.next_offset());
    }
    let truncated = next_offset == offset && decoder.truncated_bytes() > 0;
    Ok((out, next_offset, truncated))
}

/// About how many bytes a decoded record holds on to.
fn record_size(record: &Record) -> usize {
    let bytes = |b: &Option<bytes::Bytes>| b.as_ref().map_or(0, bytes::Bytes::len);
    let headers: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
        .sum();
    bytes(&record.key) + bytes(&record.value) + headers + 32
}

/// Runs `op` until it succeeds, fails for good, or `deadline` passes. A retriable failure (a leader
/// change, a dropped connection) refreshes the topic's metadata and tries again after a short backoff.
/// When the deadline cuts an attempt short, the error is [`AdminError::ReadTimeout`] for
/// `partition`/`offset` with the last failure, if any.
pub(super) async fn retrying<T, F, Fut>(
    cluster: &Cluster,
    (topic, partition, offset): (&str, i32, i64),
    deadline: Instant,
    mut op: F,
) -> Result<T, AdminError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AdminError>>,
{
    let mut backoff = Duration::from_millis(20);
    let mut last_error: Option<String> = None;
    loop {
        let error = match tokio::time::timeout_at(deadline, op()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if !e.is_retriable() => return Err(e),
            Ok(Err(e)) => e,
            Err(_elapsed) => {
                return Err(AdminError::ReadTimeout {
                    partition,
                    offset,
                    last_error,
                });
            }
        };
        if Instant::now() + backoff >= deadline {
            return Err(error);
        }
        tracing::debug!(%topic, partition, %error, "DLQ read failed, retrying");
        last_error = Some(error.to_string());
        let _ = tokio::time::timeout_at(deadline, cluster.refresh_topics(&[topic])).await;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::protocol::{
        Headers,
        records::{Compression, RecordBatch},
    };

    /// Batches at `bases`, each of three ~1 KB gzip records.
    fn batches(bases: &[i64]) -> bytes::Bytes {
        let mut out = BytesMut::new();
        for &base in bases {
            let records = (0..3)
                .map(|i| Record {
                    offset_delta: i,
                    value: Some(bytes::Bytes::from("v".repeat(1000))),
                    headers: Headers::new(),
                    ..Record::default()
                })
                .collect();
            RecordBatch {
                base_offset: base,
                compression: Compression::Gzip,
                last_offset_delta: 2,
                records,
                ..RecordBatch::default()
            }
            .encode(&mut out)
            .unwrap();
        }
        out.freeze()
    }

    #[test]
    fn a_read_decodes_up_to_its_budget_and_goes_on_from_there() {
        let all = batches(&[0, 3, 6]);
        let (records, next, truncated) = decode_bounded(all.clone(), 1, 4000).unwrap();
        assert_eq!(
            records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5],
            "the batch that crosses the budget is the last"
        );
        assert_eq!((next, truncated), (6, false));
        let (records, next, _) = decode_bounded(all.clone(), 6, 1).unwrap();
        assert_eq!((records.len(), next), (3, 9), "at least one batch");
        let (records, next, _) = decode_bounded(all, 0, usize::MAX).unwrap();
        assert_eq!((records.len(), next), (9, 9));
        let cut = batches(&[0]);
        let (records, next, truncated) = decode_bounded(cut.slice(..cut.len() - 1), 0, 100).unwrap();
        assert_eq!((records.len(), next, truncated), (0, 0, true));
    }
}
