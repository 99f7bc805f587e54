//! The producer (feature `client`): records are partitioned, batched per partition, compressed and sent
//! with one Produce request per broker.
//!
//! ```text
//!  Producer::send ──▶ Accumulator (per-partition batches, byte budget) ──▶ Sender task ──▶ brokers
//!        ▲                                                                     │
//!        └──────────── DeliveryFuture: offset or typed error ◀──────────────────┘
//! ```
//!
//! - `partitioner`: Java's murmur2 for keyed records (a Rust and a Java/Python publisher put one key on
//!   the same partition), sticky partitions for unkeyed ones.
//! - `accumulator`: batches, `batch_size`, `linger`, `buffer_memory` backpressure, ordering, sequence
//!   numbers (see its invariants); `accumulator::request_cap`: a request's batches, once encoded,
//!   within `max_request_size`.
//! - `compression_ratio`: the expected compressed size of a topic's batches, learned as they are
//!   encoded (how a drain fills a request).
//! - `sender`: Produce requests, acks, retries within `delivery_timeout`, idempotence.
//! - `delivery`: a batch's answer shared by its records (one allocation per batch).
//!
//! May use: [`crate::protocol`] and [`crate::client::cluster`].

mod accumulator;
mod compression_ratio;
mod config;
mod delivery;
mod error;
mod idempotence;
mod partition_answer;
unstable! { pub mod partitioner; }
mod record;
mod sender;

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Instant,
};

pub use config::{Acks, ProducerConfig};
pub use error::Error;
pub(crate) use partitioner::SplitMix64;
pub use record::{ProducerRecord, RecordMetadata};
use tokio::task::JoinHandle;

use self::{
    accumulator::{Accumulator, epoch_millis},
    delivery::Delivery,
    partitioner::Partitioner,
    sender::Sender,
};
use crate::client::Cluster;

/// A Kafka producer: cheap to clone, safe to share between tasks.
///
/// # Example
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use kafka_event_bus::client::{
///     ClientConfig, Cluster,
///     producer::{Producer, ProducerConfig, ProducerRecord},
/// };
///
/// let cluster = Cluster::connect(ClientConfig::new("localhost:9092")).await?;
/// let producer = Producer::new(cluster, ProducerConfig::default())?;
/// let delivered = producer
///     .send(ProducerRecord::new("orders.stream").with_key("order-1").with_value("{}"))
///     .await?
///     .await?;
/// println!("written at {}/{}", delivered.partition, delivered.offset);
/// producer.close().await;
/// # Ok(()) }
/// ```
///
/// # Dropping
///
/// Dropping the last handle closes the producer: records already handed to it are still sent (within
/// their delivery timeout) by its background task. Call [`close`](Self::close) to wait for that.
#[derive(Debug, Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    accumulator: Arc<Accumulator>,
    cluster: Cluster,
    sender: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.accumulator.close();
    }
}

impl Producer {
    /// Starts a producer on `cluster` (its background sender task runs on the current tokio runtime).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the settings do not [`validate`](ProducerConfig::validate).
    pub fn new(cluster: Cluster, config: ProducerConfig) -> Result<Self, Error> {
        config.validate()?;
        let config = Arc::new(config);
        let accumulator = Arc::new(Accumulator::new(Arc::clone(&config), Partitioner::new()));
        let sender = Arc::new(Sender::new(Arc::clone(&accumulator), cluster.clone(), config));
        let task = tokio::spawn(sender.run());
        Ok(Self {
            inner: Arc::new(Inner {
                accumulator,
                cluster,
                sender: Mutex::new(Some(task)),
            }),
        })
    }

    /// Hands `record` to the producer and returns a future of its acknowledgement.
    ///
    /// Waits only while the buffer is full (backpressure, see
    /// [`ProducerConfig::buffer_memory`]); the record is then batched and sent in the background.
    ///
    /// # Errors
    ///
    /// Immediately: [`Error::UnknownTopic`], [`Error::UnknownPartition`], [`Error::RecordTooLarge`],
    /// [`Error::Closed`]. The returned future resolves to the record's [`RecordMetadata`] or to why it
    /// was not delivered.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if this future is dropped before it completes, the record was not handed over.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, Error> {
        let (num_partitions, available) = self.partitions_of(&record.topic, record.key.is_none()).await?;
        let accumulator = &self.inner.accumulator;
        let permit = accumulator.reserve(&record).await?;
        let delivery = accumulator.append(
            record,
            permit,
            num_partitions,
            &available,
            Instant::now(),
            epoch_millis(),
        )?;
        Ok(DeliveryFuture(delivery))
    }

    /// Sends `record` and waits for its acknowledgement.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), plus the delivery's own error.
    pub async fn send_and_wait(&self, record: ProducerRecord) -> Result<RecordMetadata, Error> {
        self.send(record).await?.await
    }

    /// Sends every record, then waits for all their acknowledgements; the results are in input order.
    /// Records of one partition are written in input order.
    pub async fn send_all(
        &self,
        records: impl IntoIterator<Item = ProducerRecord>,
    ) -> Vec<Result<RecordMetadata, Error>> {
        let mut pending = Vec::new();
        for record in records {
            pending.push(self.send(record).await);
        }
        let mut results = Vec::with_capacity(pending.len());
        for p in pending {
            results.push(match p {
                Ok(delivery) => delivery.await,
                Err(e) => Err(e),
            });
        }
        results
    }

    /// Sends everything handed over so far without waiting for `linger`, and waits until each of those
    /// records is acknowledged or failed.
    pub async fn flush(&self) {
        self.inner.accumulator.flush().await;
    }

    /// Refuses new records, sends everything buffered (each record within its delivery timeout) and
    /// stops the background task.
    pub async fn close(&self) {
        self.inner.accumulator.close();
        self.inner.accumulator.flush().await;
        let task = self.inner.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Bytes of records buffered or in flight (at most [`ProducerConfig::buffer_memory`]).
    pub fn buffered_bytes(&self) -> usize {
        self.inner.accumulator.buffered_bytes()
    }

    async fn partitions_of(&self, topic: &str, unkeyed: bool) -> Result<(i32, Vec<i32>), Error> {
        let mut metadata = self.inner.cluster.metadata();
        if !metadata.topics.contains_key(topic) {
            metadata = self.inner.cluster.refresh_topics(&[topic]).await?;
        }
        let Some(t) = metadata.topics.get(topic) else {
            return Err(Error::UnknownTopic {
                topic: topic.to_owned(),
            });
        };
        let count = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
        let available = if unkeyed {
            t.partitions
                .iter()
                .filter(|p| p.leader.is_some())
                .map(|p| p.partition)
                .collect()
        } else {
            Vec::new()
        };
        Ok((count, available))
    }
}

/// Resolves when the broker has acknowledged the record (or it failed for good).
#[derive(Debug)]
#[must_use = "a delivery future does nothing unless awaited; dropping it does not cancel the send"]
pub struct DeliveryFuture(Delivery);

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}
