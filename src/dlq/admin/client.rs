//! [`DlqAdmin`]: list, count and replay dead letters with plain Fetch requests to the partition leaders
//! and a producer for replays.

use std::time::Duration;

use snafu::ResultExt;
use tokio::time::Instant;

use super::entry::DlqEntry;
use super::error::{AdminError, MetadataSnafu, ReplaySnafu};
use super::read::{self, Fetched, INITIAL_FETCH_BYTES, MAX_FETCH_BYTES, ReadRecord, retrying};
use super::targeted_replay_headers;
use crate::client::cluster::{self, Cluster};
use crate::client::producer::{Producer, ProducerRecord, RecordMetadata};
use crate::dlq::replay_count;
use crate::protocol::ResponseError;

/// How long [`DlqAdmin::count`] and [`DlqAdmin::replay`]'s read may take by default (eventsource-py's
/// replay waits 5 s for the record).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long past its timeout a listing may take to wind down before it is cut.
const TIMEOUT_GRACE: Duration = Duration::from_millis(50);

/// What [`DlqAdmin`] needs to know.
///
/// # Example
///
/// ```
/// use kafka_event_bus::dlq::DlqAdminConfig;
///
/// let admin = DlqAdminConfig::new("a.stream", "a.stream.dlq");
/// assert_eq!(admin.max_replay_attempts, 3);
///
/// let custom = DlqAdminConfig::new("a.stream", "a.stream.dlq").with_max_replay_attempts(1);
/// assert_eq!(custom.max_replay_attempts, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DlqAdminConfig {
    /// The main topic replays are published to.
    pub topic: String,
    /// The DLQ topic.
    pub dlq_topic: String,
    /// `dlq_max_replay_attempts`: a record replayed this many times is refused unless forced.
    pub max_replay_attempts: u32,
    /// The bound on [`DlqAdmin::count`] and on [`DlqAdmin::replay`]'s read of the record.
    pub read_timeout: Duration,
}

impl DlqAdminConfig {
    /// Replays go to `topic`, dead letters are read from `dlq_topic`; 3 replay attempts (the
    /// eventsource-py's default), [`DEFAULT_READ_TIMEOUT`].
    pub fn new(topic: impl Into<String>, dlq_topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            dlq_topic: dlq_topic.into(),
            max_replay_attempts: 3,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }

    /// Sets [`max_replay_attempts`](Self::max_replay_attempts).
    pub fn with_max_replay_attempts(mut self, max: u32) -> Self {
        self.max_replay_attempts = max;
        self
    }

    /// Sets [`read_timeout`](Self::read_timeout).
    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }
}

/// The operator's handle on the DLQ: eventsource-py's `get_dlq_messages`, `get_dlq_message_count` and
/// `replay_dlq_message`, without their bugs (eventsource-py bug 2, 3, 8 in `docs/spec-bugs.md`).
///
/// Reads never join a consumer group and never commit: each partition is read from its leader with
/// plain Fetch requests, from the log start to the high watermark.
///
/// # Example
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use kafka_event_bus::client::{ClientConfig, Cluster, producer::{Producer, ProducerConfig}};
/// use kafka_event_bus::dlq::{DlqAdmin, DlqAdminConfig};
///
/// let cluster = Cluster::connect(ClientConfig::new("localhost:9092")).await?;
/// let producer = Producer::new(cluster.clone(), ProducerConfig::default())?;
/// let admin = DlqAdmin::new(cluster, producer, DlqAdminConfig::new("orders.stream", "orders.stream.dlq"));
///
/// println!("{} dead letters", admin.count().await?);
/// for entry in admin.messages(100, Duration::from_secs(5)).await? {
///     println!("{}", serde_json::to_string(&entry)?);
/// }
/// let written = admin.replay(0, 42, false).await?; // acknowledged by the broker
/// println!("replayed to {}/{}", written.partition, written.offset);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DlqAdmin {
    cluster: Cluster,
    producer: Producer,
    config: DlqAdminConfig,
}

impl DlqAdmin {
    /// An admin reading with `cluster` and replaying with `producer` (which should use `acks=all`).
    pub fn new(cluster: Cluster, producer: Producer, config: DlqAdminConfig) -> Self {
        Self {
            cluster,
            producer,
            config,
        }
    }

    /// Its settings.
    pub fn config(&self) -> &DlqAdminConfig {
        &self.config
    }

    /// At most `limit` dead letters, partition by partition in offset order.
    ///
    /// Each partition is read from its log start up to its high watermark as it was when the call
    /// started (records written meanwhile are left for the next call), so this returns as soon as what
    /// existed has been read; it never waits for more. `timeout` bounds the whole call: when it passes,
    /// the entries read so far are returned (and a warning is logged), as eventsource-py intends, or
    /// [`AdminError::Timeout`] if none were: an unreachable broker is an error, never an empty DLQ. A
    /// missing DLQ topic has no entries (it is not created).
    ///
    /// # Errors
    ///
    /// [`AdminError::Timeout`] as above; a non-retriable read failure ([`AdminError::Broker`],
    /// [`AdminError::Decode`]...) at once; a retriable one that still fails when `timeout` passes.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn messages(&self, limit: usize, timeout: Duration) -> Result<Vec<DlqEntry>, AdminError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let deadline = Instant::now() + timeout;
        // The reads themselves stop at `deadline` and say why; the grace only catches what does not.
        let result = tokio::time::timeout_at(
            deadline + TIMEOUT_GRACE,
            self.read_into(&mut out, limit, deadline),
        )
        .await;
        match result {
            Ok(Ok(())) => Ok(out),
            Ok(Err(AdminError::ReadTimeout { .. } | AdminError::Timeout { .. })) | Err(_) => {
                if out.is_empty() {
                    return Err(AdminError::Timeout {
                        topic: self.config.dlq_topic.clone(),
                        timeout,
                    });
                }
                tracing::warn!(
                    topic = %self.config.dlq_topic,
                    read = out.len(),
                    ?timeout,
                    "DLQ listing timed out; returning what was read"
                );
                Ok(out)
            }
            Ok(Err(e)) => Err(e),
        }
    }

    async fn read_into(
        &self,
        out: &mut Vec<DlqEntry>,
        limit: usize,
        deadline: Instant,
    ) -> Result<(), AdminError> {
        let topic = self.config.dlq_topic.as_str();
        let Some(partitions) = self.partitions(deadline).await? else {
            return Ok(());
        };
        // First every partition's end as of now (with its first records), then the rest up to it.
        let mut cursors = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let start = retrying(&self.cluster, (topic, partition, -2), deadline, || {
                read::earliest(&self.cluster, topic, partition)
            })
            .await?;
            let first = self.fetch(partition, start, deadline).await?;
            cursors.push((partition, first.high_watermark, first));
        }
        for (partition, end, mut fetched) in cursors {
            loop {
                for r in fetched.records.drain(..).take_while(|r| r.offset < end) {
                    if out.len() >= limit {
                        return Ok(());
                    }
                    out.push(entry(topic, partition, r));
                }
                if out.len() >= limit || fetched.next_offset >= end {
                    break;
                }
                let at = fetched.next_offset;
                fetched = self.fetch(partition, at, deadline).await?;
                if fetched.records.is_empty() && fetched.next_offset <= at {
                    tracing::warn!(%topic, partition, offset = at, end, "no progress reading the DLQ; skipping the rest of this partition");
                    break;
                }
            }
        }
        Ok(())
    }

    /// How many dead letters the DLQ holds: the sum over its partitions of (high watermark − log start).
    ///
    /// The end is a Fetch response's high watermark, not ListOffsets(latest) (which Tansu gets wrong
    /// after multi-record batches); the start is ListOffsets(earliest). It works on an empty topic (0)
    /// and is 0 for a missing one (the topic is not created). On a compacted DLQ it counts offsets, not
    /// surviving records.
    ///
    /// # Errors
    ///
    /// A read failure, retriable ones having been retried for [`DlqAdminConfig::read_timeout`]
    /// (then [`AdminError::Timeout`], [`AdminError::ReadTimeout`] or the last failure).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn count(&self) -> Result<u64, AdminError> {
        let topic = self.config.dlq_topic.as_str();
        let deadline = Instant::now() + self.config.read_timeout;
        let Some(partitions) = self.partitions(deadline).await? else {
            return Ok(0);
        };
        let mut total: u64 = 0;
        for partition in partitions {
            let start = retrying(&self.cluster, (topic, partition, -2), deadline, || {
                read::earliest(&self.cluster, topic, partition)
            })
            .await?;
            let end = retrying(&self.cluster, (topic, partition, start), deadline, || {
                read::fetch(&self.cluster, topic, partition, start, 1)
            })
            .await?
            .high_watermark;
            total = total.saturating_add(u64::try_from(end.saturating_sub(start)).unwrap_or(0));
        }
        Ok(total)
    }

    /// Republishes the dead letter at `partition`/`offset` to the main topic, as eventsource-py does
    /// (same key and value; headers without any `dlq_*` or `retry_count`, then `retry_count=0` and
    /// `dlq_replay_count` + 1), plus [`REPLAY_CONSUMER_GROUP`](super::REPLAY_CONSUMER_GROUP) naming the
    /// group that dead-lettered it (see [`targeted_replay_headers`]). Returns where the broker wrote it,
    /// after its acknowledgement. The DLQ record stays where it is.
    ///
    /// # Errors
    ///
    /// - [`AdminError::NotFound`]: no record at that offset (or no such partition or topic);
    /// - [`AdminError::ReplayLimit`]: its `dlq_replay_count` (the first one) is at least
    ///   [`DlqAdminConfig::max_replay_attempts`] and `force` is false;
    /// - [`AdminError::ReadTimeout`] or another read failure;
    /// - [`AdminError::Replay`]: the main topic did not acknowledge the replay.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe once the replay was handed to the producer: it may still be written.
    pub async fn replay(
        &self,
        partition: i32,
        offset: i64,
        force: bool,
    ) -> Result<RecordMetadata, AdminError> {
        let read = self.read_record(partition, offset).await?;
        let replayed = replay_count(&read.record.headers);
        let max = self.config.max_replay_attempts;
        if !force && replayed >= i64::from(max) {
            return Err(AdminError::ReplayLimit {
                partition,
                offset,
                replay_count: replayed,
                max,
            });
        }
        let mut record = ProducerRecord::new(self.config.topic.clone())
            .with_headers(targeted_replay_headers(&read.record.headers));
        record.key = read.record.key;
        record.value = read.record.value;
        self.producer.send_and_wait(record).await.context(ReplaySnafu {
            topic: self.config.topic.clone(),
            partition,
            offset,
        })
    }

    /// The record at exactly `partition`/`offset` of the DLQ.
    async fn read_record(&self, partition: i32, offset: i64) -> Result<ReadRecord, AdminError> {
        let topic = self.config.dlq_topic.as_str();
        let not_found = || AdminError::NotFound {
            topic: topic.to_owned(),
            partition,
            offset,
        };
        let deadline = Instant::now() + self.config.read_timeout;
        let exists = self
            .partitions(deadline)
            .await?
            .is_some_and(|partitions| partitions.contains(&partition));
        if !exists || offset < 0 {
            return Err(not_found());
        }
        let fetched = match self.fetch(partition, offset, deadline).await {
            Err(AdminError::Broker { source, .. }) if source.code == ResponseError::OffsetOutOfRange => {
                return Err(not_found());
            }
            other => other?,
        };
        fetched
            .records
            .into_iter()
            .find(|r| r.offset == offset)
            .ok_or_else(not_found)
    }

    /// The DLQ's partitions (fresh metadata); `None` when the topic does not exist.
    async fn partitions(&self, deadline: Instant) -> Result<Option<Vec<i32>>, AdminError> {
        let topic = self.config.dlq_topic.as_str();
        let started = Instant::now();
        match tokio::time::timeout_at(deadline, self.cluster.partitions(topic)).await {
            Ok(Ok(partitions)) => Ok(Some(partitions)),
            Ok(Err(cluster::Error::UnknownTopic { .. })) => Ok(None),
            Ok(Err(source)) => Err(source).context(MetadataSnafu { topic }),
            Err(_elapsed) => Err(AdminError::Timeout {
                topic: topic.to_owned(),
                timeout: deadline.saturating_duration_since(started),
            }),
        }
    }

    /// One fetch at `offset`, retried until `deadline`, growing the size limit while a single batch does
    /// not fit.
    async fn fetch(&self, partition: i32, offset: i64, deadline: Instant) -> Result<Fetched, AdminError> {
        let topic = self.config.dlq_topic.as_str();
        let mut max_bytes = INITIAL_FETCH_BYTES;
        loop {
            let fetched = retrying(&self.cluster, (topic, partition, offset), deadline, || {
                read::fetch(&self.cluster, topic, partition, offset, max_bytes)
            })
            .await?;
            if !fetched.truncated || max_bytes >= MAX_FETCH_BYTES {
                return Ok(fetched);
            }
            max_bytes = max_bytes.saturating_mul(2).min(MAX_FETCH_BYTES);
        }
    }
}

fn entry(topic: &str, partition: i32, r: ReadRecord) -> DlqEntry {
    DlqEntry::from_record(
        topic,
        partition,
        r.offset,
        r.timestamp,
        r.record.key,
        r.record.value,
        r.record.headers,
    )
}
