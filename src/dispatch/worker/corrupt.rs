//! A record batch the partition's stream stopped at because it cannot be decoded: counted, then
//! dead-lettered (its bytes as one DLQ record) and passed, or the partition stays stopped at it.

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::{
    Settled,
    dlq_send::{Letter, send_until_acked},
};
use crate::{
    client::fetcher,
    dispatch::{CorruptBatches, Dispatcher, stats::Counter, stats::Stamp},
    dlq::{DLQ_ORIGINAL_LAST_OFFSET, DeadLetter, DlqReason},
    protocol::{Headers, records},
};

/// The `dlq_error_type` and metric `error.type` of a batch that cannot be decoded.
fn error_type(e: &fetcher::Error) -> &'static str {
    match e {
        fetcher::Error::CorruptBatch { source, .. } => match source {
            records::Error::CrcMismatch { .. } => "CrcMismatch",
            records::Error::UnsupportedMagic { .. } => "UnsupportedMagic",
            records::Error::BatchLength { .. } => "BatchLength",
            records::Error::UnknownCompression { .. } => "UnknownCompression",
            records::Error::Decompress { .. } => "Decompress",
            records::Error::DecompressedTooLarge { .. } => "DecompressedTooLarge",
            records::Error::Malformed { .. } => "Malformed",
            _ => "CorruptBatch",
        },
        fetcher::Error::BatchTooLarge { .. } => "BatchTooLarge",
    }
}

/// Counts `error`'s batch and applies the policy: dead-letters it (`Settled::Yes`: the caller then passes
/// it with [`skip_failed_batch`](crate::client::consumer::PartitionStream::skip_failed_batch)), or
/// leaves the stream stopped at it (`Settled::Stuck`: the partition pauses, so the member stays in the
/// group, until it is revoked). The DLQ send is [`send_until_acked`]: `Settled::Interrupted` when a halt
/// cut it short (the batch is fetched again by whoever gets the partition next), `Settled::Stuck` when
/// the DLQ refused it for good.
pub(super) async fn settle_corrupt(
    dispatcher: &Dispatcher,
    e: fetcher::Error,
    halt: &CancellationToken,
) -> Settled {
    let kind = error_type(&e);
    let (first, last) = e.offsets();
    dispatcher.stats.add(Counter::CorruptBatches, 1);
    dispatcher.stats.stamp(Stamp::Error);
    dispatcher
        .telemetry
        .metrics()
        .corrupt_batch(e.topic(), e.partition(), kind);
    let batch = match (dispatcher.config.corrupt_batches, e.batch()) {
        (CorruptBatches::DeadLetter, Some(batch)) => batch.clone(),
        _ => {
            error!(
                topic = e.topic(), partition = e.partition(), first, last, error = %e,
                "record batch cannot be decoded; the partition stops at it (the committed offset stays before it)"
            );
            return Settled::Stuck;
        }
    };
    let letter = DeadLetter {
        reason: DlqReason::CorruptBatch,
        error_type: kind.to_owned(),
        error_message: e.to_string(),
        retry_count: 0,
        timestamp: OffsetDateTime::now_utc(),
        original_topic: e.topic().to_owned(),
        original_partition: e.partition(),
        original_offset: first,
        consumer_group: dispatcher.config.consumer_group.clone(),
    };
    let mut headers = Headers::new();
    headers.insert(DLQ_ORIGINAL_LAST_OFFSET, last.to_string());
    let sending = Letter {
        key: None,
        value: Some(batch),
        headers: &headers,
        dead: &letter,
        event_type: "unknown",
    };
    match send_until_acked(dispatcher, sending, halt).await {
        Ok(meta) => {
            info!(
                topic = e.topic(), partition = e.partition(), first, last, error = %e,
                dlq_partition = meta.partition, dlq_offset = meta.offset,
                "record batch that cannot be decoded sent to the DLQ"
            );
            Settled::Yes
        }
        Err(settled) => settled,
    }
}
