//! The network side of the producer: one task drains ready batches from the accumulator and sends one
//! Produce request per broker; a task per request handles its response.
//!
//! ```text
//!  loop: drain(now, leaders, busy brokers, producer id) ──▶ per broker: spawn request task
//!          ▲                                                   │ encode + compress (off the lock,
//!          │ wake: new/full batch, completion, backoff end     │ in parallel across requests; what
//!          │                                                   │ exceeds max_request_size goes back)
//!          └──────── complete (offsets) / requeue (retry) ◀────┘ Produce → response per partition
//! ```
//!
//! Retriable failures (connection loss, NOT_LEADER_OR_FOLLOWER, timeouts...) put the batch back at the
//! front of its partition's queue after `retry_backoff`, refreshing metadata when the leader may have
//! moved, until `delivery_timeout`. With idempotence, OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID
//! and a fenced epoch on a partition, under the current identity, make the sender take a new one
//! (InitProducerId carrying the current id and epoch, as KIP-360 asks; a new id when the broker refuses
//! the bump). The refused partition restarts at sequence 0 under it; its batch is resent there only if
//! none of its attempts can have been written, and one whose attempt went unanswered fails with
//! [`Error::DeliveryUncertain`]. Other partitions finish their retries under the identity they were
//! sent with, then move over. A batch that carries a sequence and fails for good leaves its
//! partition's sequences unresolved: the sender takes a new identity the same way before that partition
//! sends again (see `idempotence`).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kafka_protocol::messages::{
    InitProducerIdRequest, ProduceRequest, ProducerId, TopicName,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use tracing::{debug, warn};

use super::{
    Error, ProducerConfig,
    accumulator::{Accumulator, ProducerBatch, ProducerState},
    config::Acks,
    partition_answer::{PartitionAnswer, partition_answer},
};
use crate::{
    client::Cluster,
    protocol::{ResponseError, ServerError, StrBytes},
};

/// Shared between the sender loop and its request tasks.
#[derive(Debug)]
pub(crate) struct Sender {
    pub(crate) accumulator: Arc<Accumulator>,
    pub(crate) cluster: Cluster,
    pub(crate) config: Arc<ProducerConfig>,
    /// Produce requests in flight per broker id.
    in_flight: Mutex<HashMap<i32, usize>>,
    /// The idempotent producer's id and epoch; `None` until obtained, or after it must be replaced.
    producer: Mutex<Option<ProducerState>>,
    /// The id and epoch being replaced, sent along with InitProducerId so the broker may bump the epoch.
    replaced: Mutex<Option<ProducerState>>,
    refreshing: std::sync::atomic::AtomicBool,
}

impl Sender {
    pub(crate) fn new(accumulator: Arc<Accumulator>, cluster: Cluster, config: Arc<ProducerConfig>) -> Self {
        Self {
            accumulator,
            cluster,
            config,
            in_flight: Mutex::new(HashMap::new()),
            producer: Mutex::new(None),
            replaced: Mutex::new(None),
            refreshing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn producer_state(&self) -> Option<ProducerState> {
        *self.producer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sender loop; returns once the accumulator is closed and empty.
    pub(crate) async fn run(self: Arc<Self>) {
        let idempotent = self.config.is_idempotent();
        loop {
            let wake = self.accumulator.wake_sender.notified();
            if idempotent {
                // Before the identity is read for this drain.
                self.replace_if_unresolved();
            }
            if idempotent && self.producer_state().is_none() && !self.accumulator.is_empty() {
                match self.init_producer_id().await {
                    Ok(state) => {
                        *self.producer.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
                        self.accumulator.renewed();
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot get a producer id; retrying");
                        self.accumulator.fail_expired(Instant::now(), &e.to_string());
                        tokio::time::sleep(self.config.retry_backoff).await;
                        continue;
                    }
                }
            }
            let now = Instant::now();
            let busy: HashSet<i32> = self
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|(_, n)| **n >= self.config.max_in_flight_per_broker)
                .map(|(id, _)| *id)
                .collect();
            let producer = if idempotent {
                let Some(producer) = self.producer_state() else {
                    // A request task just gave the identity up: draining now would send batches
                    // without sequences. The next turn gets a new one.
                    if self.accumulator.is_closed_and_empty() {
                        return;
                    }
                    tokio::select! {
                        () = wake => {}
                        () = tokio::time::sleep(self.config.retry_backoff) => {}
                    }
                    continue;
                };
                Some(producer)
            } else {
                None
            };
            let drained = self
                .accumulator
                .drain(now, &self.cluster.metadata(), &busy, producer);
            for batch in drained.expired {
                let error = timeout_error(&batch, self.config.delivery_timeout);
                self.accumulator.complete(batch, Err(error));
            }
            for batch in drained.uncertain {
                let error = Error::DeliveryUncertain {
                    topic: batch.topic.to_string(),
                    partition: batch.partition,
                    reason: format!(
                        "the broker refused the partition's sequences after an attempt went unanswered \
                         (last error: {})",
                        batch.last_error.as_deref().unwrap_or("none")
                    ),
                };
                warn!(topic = %batch.topic, partition = batch.partition, "{error}");
                self.accumulator.complete(batch, Err(error));
            }
            if drained.needs_metadata {
                self.refresh_metadata();
            }
            for (broker, batches) in drained.by_broker {
                *self
                    .in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(broker)
                    .or_default() += 1;
                tokio::spawn(Arc::clone(&self).send(broker, batches));
            }
            if self.accumulator.is_closed_and_empty() {
                return;
            }
            let next = drained
                .next_wake
                .unwrap_or(now + Duration::from_secs(1))
                .max(now + Duration::from_micros(100));
            let retry_metadata = if drained.needs_metadata {
                now + self.config.retry_backoff
            } else {
                next
            };
            tokio::select! {
                () = wake => {}
                () = tokio::time::sleep_until(next.min(retry_metadata).into()) => {}
            }
        }
    }

    /// Replaces the current identity when a partition left its sequences unresolved under it (a batch
    /// that carried a sequence failed): the partition sends nothing more under it, and restarts at
    /// sequence 0 under the next one.
    fn replace_if_unresolved(&self) {
        let unresolved = self.accumulator.take_unresolved();
        self.give_up_identity(&unresolved, "a batch that carried a sequence failed");
    }

    /// Gives the current identity up for the next one when it is among `given_up`: only the current
    /// one is replaced, since a partition still on an older identity (a retry carrying it) moves to
    /// the current one with its next batch.
    fn give_up_identity(&self, given_up: &[ProducerState], why: &str) {
        if given_up.is_empty() {
            return;
        }
        let mut producer = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = *producer
            && given_up.contains(&current)
        {
            warn!("{why}; bumping the producer epoch");
            *producer = None;
            *self.replaced.lock().unwrap_or_else(|p| p.into_inner()) = Some(current);
        }
    }

    /// A producer identity: a bump of the one being replaced (KIP-360; InitProducerId is always v3+
    /// here), or a fresh one when there is none or the broker refuses the bump.
    async fn init_producer_id(&self) -> Result<ProducerState, Error> {
        let replaced = *self.replaced.lock().unwrap_or_else(|p| p.into_inner());
        let (broker, response) = match replaced {
            Some(current) => match self.request_producer_id(current).await? {
                (_, response) if response.error_code != 0 => {
                    debug!(
                        error_code = response.error_code,
                        "the broker refused the epoch bump; asking for a new producer id"
                    );
                    self.request_producer_id((-1, -1)).await?
                }
                // The same id and epoch again would restart sequences the broker still holds (a
                // batch at sequence 0 could be taken for a duplicate and dropped): not a renewal.
                (_, response) if same_identity(&response, current) => {
                    debug!("the broker handed back the same identity; asking for a new producer id");
                    self.request_producer_id((-1, -1)).await?
                }
                answer => answer,
            },
            None => self.request_producer_id((-1, -1)).await?,
        };
        if let Some(source) = ServerError::from_code(response.error_code, None) {
            return Err(Error::Rejected {
                topic: String::new(),
                partition: -1,
                broker,
                source,
            });
        }
        if replaced.is_some_and(|current| same_identity(&response, current)) {
            // Retried by the sender loop after its backoff, as any failed renewal.
            return Err(Error::Rejected {
                topic: String::new(),
                partition: -1,
                broker,
                source: ServerError {
                    code: ResponseError::UnknownServerError,
                    message: Some("InitProducerId handed back the identity being replaced".into()),
                },
            });
        }
        *self.replaced.lock().unwrap_or_else(|p| p.into_inner()) = None;
        debug!(
            producer_id = response.producer_id.0,
            epoch = response.producer_epoch,
            "idempotent producer id"
        );
        Ok((response.producer_id.0, response.producer_epoch))
    }

    async fn request_producer_id(
        &self,
        (id, epoch): ProducerState,
    ) -> Result<(String, kafka_protocol::messages::InitProducerIdResponse), Error> {
        let timeout_ms = i32::try_from(self.config.request_timeout.as_millis()).unwrap_or(i32::MAX);
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch);
        Ok(self.cluster.request_any(&request).await?)
    }

    fn refresh_metadata(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = this.cluster.refresh_metadata().await {
                debug!(error = %e, "metadata refresh failed");
            }
            this.refreshing.store(false, Ordering::Release);
            this.accumulator.wake_sender.notify_one();
        });
    }

    /// Sends one Produce request with `batches` to `broker` and settles every batch.
    async fn send(self: Arc<Self>, broker: i32, batches: Vec<ProducerBatch>) {
        self.send_inner(broker, batches).await;
        if let Some(n) = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&broker)
        {
            *n = n.saturating_sub(1);
        }
        self.accumulator.wake_sender.notify_one();
    }

    async fn send_inner(&self, broker: i32, batches: Vec<ProducerBatch>) {
        // Encode (compress) here, outside the accumulator's lock and in parallel across requests; the
        // batches beyond `max_request_size` as encoded go back to their partitions unsent.
        let request = self.accumulator.encode_request(batches);
        for (batch, e) in request.failed {
            self.accumulator
                .complete(batch, Err(Error::Encode { source: Arc::new(e) }));
        }
        let mut topics: Vec<TopicProduceData> = Vec::new();
        let mut sending = Vec::with_capacity(request.sending.len());
        for (batch, bytes) in request.sending {
            let data = PartitionProduceData::default()
                .with_index(batch.partition)
                .with_records(Some(bytes));
            match topics.iter_mut().find(|t| t.name.0.as_str() == &*batch.topic) {
                Some(topic) => topic.partition_data.push(data),
                None => topics.push(
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(batch.topic.to_string())))
                        .with_partition_data(vec![data]),
                ),
            }
            sending.push(batch);
        }
        if sending.is_empty() {
            return;
        }
        let connection = match self.cluster.broker(broker) {
            Ok(connection) => connection,
            Err(e) => {
                self.refresh_metadata_now().await;
                return self.retry_all(sending, &e.to_string());
            }
        };
        let timeout_ms = i32::try_from(self.config.request_timeout.as_millis()).unwrap_or(i32::MAX);
        let request = ProduceRequest::default()
            .with_acks(self.config.acks.wire())
            .with_timeout_ms(timeout_ms)
            .with_topic_data(topics);

        if self.config.acks == Acks::None {
            let sent = match connection.messenger().await {
                Ok(messenger) => messenger.send_oneway(&request).await,
                Err(e) => Err(e),
            };
            // Encoded into its frame: the batches' buffers are theirs alone again (reused, see
            // `Accumulator::complete`).
            drop(request);
            return match sent {
                Ok(()) => sending
                    .into_iter()
                    .for_each(|b| self.accumulator.complete(b, Ok(-1))),
                Err(e) if e.is_retriable() => self.retry_all(sending, &e.to_string()),
                Err(e) => self.fail_all(sending, |b| Error::Connection {
                    topic: b.topic.to_string(),
                    partition: b.partition,
                    source: e.clone(),
                }),
            };
        }

        // The broker may hold the request up to its own timeout; give the answer a little longer.
        let wait = self.config.request_timeout + Duration::from_secs(5);
        let messenger = match connection.messenger().await {
            Ok(messenger) => Ok(messenger),
            // Nothing was sent: the batches were certainly not written.
            Err(e) if e.is_retriable() => return self.retry_all(sending, &e.to_string()),
            Err(e) => Err(e),
        };
        let answer = match messenger {
            Ok(messenger) => messenger.request_with_timeout(&request, wait).await,
            Err(e) => Err(e),
        };
        drop(request);
        let response = match answer {
            Ok(response) => response,
            Err(e) if e.is_retriable() => {
                // The request may have reached the broker and been written.
                for batch in &mut sending {
                    batch.maybe_written = true;
                }
                return self.retry_all(sending, &e.to_string());
            }
            Err(e) => {
                return self.fail_all(sending, |b| Error::Connection {
                    topic: b.topic.to_string(),
                    partition: b.partition,
                    source: e.clone(),
                });
            }
        };
        let mut results: HashMap<(&str, i32), (i16, i64, Option<String>)> = HashMap::new();
        for topic in &response.responses {
            for p in &topic.partition_responses {
                let message = p.error_message.as_ref().map(|m| m.to_string());
                results.insert(
                    (topic.name.0.as_str(), p.index),
                    (p.error_code, p.base_offset, message),
                );
            }
        }
        let mut refresh = false;
        // The identities the broker refused some partition's sequences under.
        let mut refused: Vec<ProducerState> = Vec::new();
        let now = Instant::now();
        for mut batch in sending {
            let Some((code, base_offset, message)) = results.get(&(&*batch.topic, batch.partition)).cloned()
            else {
                batch.maybe_written = true;
                self.retry_or_expire(batch, now, "no response for the partition".into());
                continue;
            };
            let Some(error) = ServerError::from_code(code, message.as_deref()) else {
                self.accumulator.complete(batch, Ok(base_offset));
                continue;
            };
            match partition_answer(error.code) {
                PartitionAnswer::Duplicate => self.accumulator.complete(batch, Ok(-1)),
                PartitionAnswer::SequenceRefused => {
                    refused.extend(batch.identity());
                    batch.sequence_refused = true;
                    self.retry_or_expire(batch, now, error.to_string());
                }
                PartitionAnswer::Retry {
                    refresh: moved,
                    maybe_written,
                } => {
                    refresh |= moved;
                    batch.maybe_written |= maybe_written;
                    self.retry_or_expire(batch, now, error.to_string());
                }
                PartitionAnswer::Reject => {
                    let (topic, partition) = (batch.topic.to_string(), batch.partition);
                    self.accumulator.complete(
                        batch,
                        Err(Error::Rejected {
                            topic,
                            partition,
                            broker: connection.address().to_owned(),
                            source: error,
                        }),
                    );
                }
            }
        }
        self.give_up_identity(
            &refused,
            "the broker lost track of this producer's sequence numbers",
        );
        if refresh {
            self.refresh_metadata_now().await;
        }
    }

    async fn refresh_metadata_now(&self) {
        if let Err(e) = self.cluster.refresh_metadata().await {
            debug!(error = %e, "metadata refresh failed");
        }
    }

    fn retry_all(&self, batches: Vec<ProducerBatch>, error: &str) {
        let now = Instant::now();
        for batch in batches {
            self.retry_or_expire(batch, now, error.to_owned());
        }
    }

    fn fail_all(&self, batches: Vec<ProducerBatch>, error: impl Fn(&ProducerBatch) -> Error) {
        for batch in batches {
            let e = error(&batch);
            self.accumulator.complete(batch, Err(e));
        }
    }

    fn retry_or_expire(&self, mut batch: ProducerBatch, now: Instant, error: String) {
        if now.saturating_duration_since(batch.created) + self.config.retry_backoff
            >= self.config.delivery_timeout
        {
            batch.last_error = Some(error);
            let e = timeout_error(&batch, self.config.delivery_timeout);
            self.accumulator.complete(batch, Err(e));
        } else {
            debug!(topic = %batch.topic, partition = batch.partition, attempts = batch.attempts, %error, "retrying batch");
            self.accumulator.requeue(batch, now, error);
        }
    }
}

fn timeout_error(batch: &ProducerBatch, timeout: Duration) -> Error {
    Error::DeliveryTimeout {
        topic: batch.topic.to_string(),
        partition: batch.partition,
        timeout,
        last_error: batch.last_error.clone(),
    }
}

/// Whether an InitProducerId answer is the identity `current` (not a new one).
fn same_identity(
    response: &kafka_protocol::messages::InitProducerIdResponse,
    current: ProducerState,
) -> bool {
    response.error_code == 0 && (response.producer_id.0, response.producer_epoch) == current
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{InitProducerIdResponse, ProducerId};

    use super::same_identity;

    #[test]
    fn an_answer_with_the_identity_being_replaced_is_not_a_renewal() {
        let answer = |id, epoch| {
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch)
        };
        assert!(same_identity(&answer(7, 0), (7, 0)));
        assert!(!same_identity(&answer(7, 1), (7, 0)), "an epoch bump");
        assert!(!same_identity(&answer(8, 0), (7, 0)), "a new producer id");
        assert!(
            !same_identity(&answer(7, 0).with_error_code(45), (7, 0)),
            "a refusal"
        );
    }
}
