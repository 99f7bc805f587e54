//! The accumulator's rules with virtual time: batching, linger, ordering, sequences, expiry,
//! backpressure, flush.

use std::collections::BTreeMap;

use super::*;
use crate::{
    client::cluster::{BrokerMetadata, PartitionMetadata, TopicMetadata},
    protocol::records::{Compression, DecodeOptions, decode_batches},
};

fn metadata(topic: &str, leaders: &[i32]) -> ClusterMetadata {
    let partitions = leaders
        .iter()
        .enumerate()
        .map(|(i, &leader)| PartitionMetadata {
            partition: i as i32,
            leader: (leader >= 0).then_some(leader),
            leader_epoch: 0,
            replicas: vec![leader],
            isr: vec![leader],
            error: None,
        })
        .collect();
    let mut topics = BTreeMap::new();
    topics.insert(
        topic.to_owned(),
        TopicMetadata {
            name: topic.to_owned(),
            is_internal: false,
            partitions,
            error: None,
        },
    );
    let brokers = [1, 2]
        .into_iter()
        .map(|id| {
            let broker = BrokerMetadata {
                id,
                host: "h".into(),
                port: 9092,
                rack: None,
            };
            (id, broker)
        })
        .collect();
    ClusterMetadata {
        cluster_id: None,
        controller_id: Some(1),
        brokers,
        topics,
        generation: 1,
    }
}

fn config() -> ProducerConfig {
    ProducerConfig::default()
        .with_compression(Compression::None)
        .with_batch_size(1000)
        .with_linger(Duration::from_millis(10))
}

fn accumulator(config: ProducerConfig) -> Accumulator {
    Accumulator::new(Arc::new(config), Partitioner::with_seed(1))
}

fn record(partition: i32, value: &str) -> ProducerRecord {
    ProducerRecord::new("t")
        .with_partition(partition)
        .with_value(value.to_owned())
}

async fn append(acc: &Accumulator, r: ProducerRecord, now: Instant) -> Delivery {
    let permit = acc.reserve(&r).await.unwrap();
    acc.append(r, permit, 2, &[0, 1], now, 1_000).unwrap()
}

fn values(batch: &mut ProducerBatch) -> Vec<String> {
    let bytes = batch.encode().unwrap();
    decode_batches(bytes, &DecodeOptions::default()).unwrap()[0]
        .records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_batch_waits_for_linger_unless_full() {
    let acc = accumulator(config());
    let t0 = Instant::now();
    let meta = metadata("t", &[1, 1]);
    append(&acc, record(0, "a"), t0).await;
    let drained = acc.drain(t0, &meta, &HashSet::new(), None);
    assert!(drained.by_broker.is_empty());
    assert_eq!(drained.next_wake, Some(t0 + Duration::from_millis(10)));

    let drained = acc.drain(t0 + Duration::from_millis(10), &meta, &HashSet::new(), None);
    assert_eq!(drained.by_broker.len(), 1);

    // A full batch goes at once, before its linger.
    let big = "x".repeat(600);
    append(&acc, record(1, &big), t0).await;
    append(&acc, record(1, &big), t0).await; // does not fit: seals the first
    let mut drained = acc.drain(t0, &meta, &HashSet::new(), None);
    let (broker, batches) = drained.by_broker.pop().unwrap();
    assert_eq!((broker, batches.len(), batches[0].record_count()), (1, 1, 1));
}

#[tokio::test]
async fn one_batch_in_flight_per_partition_and_retries_keep_order_and_sequence() {
    let acc = accumulator(config().with_batch_size(100));
    let t0 = Instant::now();
    let meta = metadata("t", &[1, 1]);
    let producer = Some((7, 0));
    let mut deliveries = Vec::new();
    for i in 0..6 {
        deliveries.push(append(&acc, record(0, &format!("{i:040}")), t0).await);
    }
    let later = t0 + Duration::from_millis(20);
    let mut first = acc
        .drain(later, &meta, &HashSet::new(), producer)
        .by_broker
        .remove(0)
        .1;
    assert_eq!(first.len(), 1, "one batch of the partition at a time");
    let mut batch = first.remove(0);
    assert_eq!(batch.producer, Some((7, 0, 0)));
    let n = batch.record_count() as i32;
    assert!(
        acc.drain(later, &meta, &HashSet::new(), producer)
            .by_broker
            .is_empty()
    );

    // A retry goes first again, with the same sequence and the same bytes.
    let sent = batch.encode().unwrap();
    acc.requeue(batch, later, "boom".into());
    assert!(
        acc.drain(later, &meta, &HashSet::new(), producer)
            .by_broker
            .is_empty(),
        "backoff"
    );
    let retry_time = later + Duration::from_millis(100);
    let mut batch = acc
        .drain(retry_time, &meta, &HashSet::new(), producer)
        .by_broker
        .remove(0)
        .1
        .remove(0);
    assert_eq!(batch.producer, Some((7, 0, 0)));
    assert_eq!(batch.encode().unwrap(), sent);
    assert_eq!(batch.attempts, 1);
    acc.complete(batch, Ok(100));

    // The next batch continues the sequence; after a producer-id change sequences restart at 0.
    let mut next = acc
        .drain(retry_time, &meta, &HashSet::new(), producer)
        .by_broker
        .remove(0)
        .1
        .remove(0);
    assert_eq!(next.producer, Some((7, 0, n)));
    assert!(values(&mut next)[0].ends_with(&format!("{n}")));
    next.sequence_refused = true;
    acc.requeue(next, retry_time, "out of order".into());
    let t = retry_time + Duration::from_millis(100);
    let mut next = acc
        .drain(t, &meta, &HashSet::new(), Some((8, 0)))
        .by_broker
        .remove(0)
        .1
        .remove(0);
    assert_eq!(next.producer, Some((8, 0, 0)));
    // The re-encoded batch carries the new state.
    let bytes = next.encode().unwrap();
    let decoded = &decode_batches(bytes, &DecodeOptions::default()).unwrap()[0];
    assert_eq!((decoded.producer_id, decoded.base_sequence), (8, 0));
    acc.complete(next, Ok(200));

    // Offsets follow the record order.
    let first_offsets: Vec<i64> = {
        let mut out = Vec::new();
        for d in deliveries.drain(..n as usize) {
            out.push(d.await.unwrap().offset);
        }
        out
    };
    assert_eq!(first_offsets, (100..100 + i64::from(n)).collect::<Vec<_>>());
}

#[tokio::test]
async fn batches_without_a_leader_wait_and_ask_for_metadata() {
    let acc = accumulator(config());
    let t0 = Instant::now();
    append(&acc, record(0, "a"), t0).await;
    let drained = acc.drain(
        t0 + Duration::from_secs(1),
        &metadata("t", &[-1, 1]),
        &HashSet::new(),
        None,
    );
    assert!(drained.by_broker.is_empty());
    assert!(drained.needs_metadata);
    // Busy brokers are skipped too.
    let busy = HashSet::from([1]);
    let drained = acc.drain(t0 + Duration::from_secs(1), &metadata("t", &[1, 1]), &busy, None);
    assert!(drained.by_broker.is_empty() && !drained.needs_metadata);
}

#[tokio::test]
async fn requests_are_grouped_by_broker_and_capped_in_size() {
    let acc = accumulator(config().with_batch_size(600).with_max_request_size(1000));
    let t0 = Instant::now();
    let big = "x".repeat(500);
    for p in 0..2 {
        append(&acc, record(p, &big), t0).await;
    }
    let later = t0 + Duration::from_secs(1);
    // Both partitions on broker 1: only one ~560-byte batch fits a 1000-byte request.
    let drained = acc.drain(later, &metadata("t", &[1, 1]), &HashSet::new(), None);
    assert_eq!(drained.by_broker.len(), 1);
    assert_eq!(drained.by_broker[0].1.len(), 1);
    // The other goes in the next request.
    let drained = acc.drain(later, &metadata("t", &[1, 1]), &HashSet::new(), None);
    assert_eq!(drained.by_broker[0].1.len(), 1);

    let acc = accumulator(config());
    append(&acc, record(0, "a"), t0).await;
    append(&acc, record(1, "b"), t0).await;
    let drained = acc.drain(later, &metadata("t", &[1, 2]), &HashSet::new(), None);
    let mut brokers: Vec<i32> = drained.by_broker.iter().map(|(b, _)| *b).collect();
    brokers.sort();
    assert_eq!(brokers, [1, 2]);
}

#[tokio::test]
async fn expired_batches_are_reported() {
    let acc = accumulator(config().with_delivery_timeout(Duration::from_secs(31)));
    let t0 = Instant::now();
    let delivery = append(&acc, record(0, "a"), t0).await;
    let drained = acc.drain(
        t0 + Duration::from_secs(31),
        &metadata("t", &[-1, -1]),
        &HashSet::new(),
        None,
    );
    assert_eq!(drained.expired.len(), 1);
    for b in drained.expired {
        acc.complete(b, Err(Error::Closed));
    }
    assert!(matches!(delivery.await, Err(Error::Closed)));
    assert!(acc.is_empty());
}

#[tokio::test]
async fn a_full_buffer_applies_backpressure_until_batches_complete() {
    let acc = Arc::new(accumulator(
        config().with_buffer_memory(300).with_max_request_size(300),
    ));
    let t0 = Instant::now();
    let value = "v".repeat(150);
    append(&acc, record(0, &value), t0).await;
    assert!(acc.buffered_bytes() > 150);
    // The second record does not fit the buffer: reserving waits.
    let second = record(1, &value);
    let waiting = tokio::time::timeout(Duration::from_millis(50), acc.reserve(&second)).await;
    assert!(waiting.is_err(), "reserve should wait while the buffer is full");
    // Completing the first batch frees its bytes.
    let batch = acc
        .drain(
            t0 + Duration::from_secs(1),
            &metadata("t", &[1, 1]),
            &HashSet::new(),
            None,
        )
        .by_broker
        .remove(0)
        .1
        .remove(0);
    acc.complete(batch, Ok(0));
    assert_eq!(acc.buffered_bytes(), 0);
    let permit = tokio::time::timeout(Duration::from_secs(1), acc.reserve(&second))
        .await
        .unwrap()
        .unwrap();
    drop(permit);
    // A record larger than the whole buffer is refused at once.
    let huge = record(0, &"h".repeat(400));
    assert!(matches!(
        acc.reserve(&huge).await,
        Err(Error::RecordTooLarge { .. })
    ));
}

#[tokio::test]
async fn flush_sends_open_batches_at_once_and_waits_for_them() {
    let acc = Arc::new(accumulator(config().with_linger(Duration::from_secs(3600))));
    let t0 = Instant::now();
    let delivery = append(&acc, record(0, "a"), t0).await;
    let flusher = {
        let acc = Arc::clone(&acc);
        tokio::spawn(async move { acc.flush().await })
    };
    tokio::task::yield_now().await;
    let mut drained = acc.drain(t0, &metadata("t", &[1, 1]), &HashSet::new(), None);
    assert_eq!(drained.by_broker.len(), 1, "flush ignores linger");
    assert!(!flusher.is_finished());
    let batch = drained.by_broker.remove(0).1.remove(0);
    acc.complete(batch, Ok(5));
    tokio::time::timeout(Duration::from_secs(1), flusher)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.await.unwrap().offset, 5);
}

#[tokio::test]
async fn closed_accumulators_refuse_records() {
    let acc = accumulator(config());
    acc.close();
    let r = record(0, "a");
    let permit = acc.reserve(&r).await.unwrap();
    assert!(matches!(
        acc.append(r, permit, 2, &[], Instant::now(), 0),
        Err(Error::Closed)
    ));
    let r = record(5, "a");
    let acc = accumulator(config());
    let permit = acc.reserve(&r).await.unwrap();
    assert!(matches!(
        acc.append(r, permit, 2, &[], Instant::now(), 0),
        Err(Error::UnknownPartition { partition: 5, .. })
    ));
}

#[tokio::test]
async fn a_batch_that_may_have_been_written_is_not_resent_under_a_new_epoch() {
    let acc = accumulator(config().with_batch_size(100));
    let t0 = Instant::now();
    let meta = metadata("t", &[1, 1]);
    let old = Some((7, 0));
    let _unanswered = append(&acc, record(0, "unanswered"), t0).await;
    let _rejected = append(&acc, record(1, "rejected"), t0).await;
    let later = t0 + Duration::from_millis(20);
    let mut sent = acc
        .drain(later, &meta, &HashSet::new(), old)
        .by_broker
        .remove(0)
        .1;
    assert_eq!(sent.len(), 2);
    sent.sort_by_key(|b| b.partition);
    let (mut unanswered, rejected) = (sent.remove(0), sent.remove(0));
    assert_eq!(unanswered.producer, Some((7, 0, 0)));
    // Partition 0's request timed out, and its retry came back UNKNOWN_PRODUCER_ID; partition 1's
    // came back OUT_OF_ORDER_SEQUENCE_NUMBER.
    unanswered.maybe_written = true;
    unanswered.sequence_refused = true;
    acc.requeue(unanswered, later, "unknown producer id".into());
    let mut rejected = rejected;
    rejected.sequence_refused = true;
    acc.requeue(rejected, later, "out of order".into());
    let next_on_0 = append(&acc, record(0, "after"), later).await;

    // The epoch is bumped: the rejected batch moves to it at sequence 0; the unanswered one may be in
    // the log under (7, 0, 0) and must not be written again as (7, 1, 0).
    let t = later + Duration::from_millis(100);
    let drained = acc.drain(t, &meta, &HashSet::new(), Some((7, 1)));
    let resent: Vec<_> = drained.by_broker.into_iter().flat_map(|(_, b)| b).collect();
    assert_eq!(resent.len(), 1);
    assert_eq!((resent[0].partition, resent[0].producer), (1, Some((7, 1, 0))));
    assert_eq!(drained.uncertain.len(), 1);
    let uncertain = drained.uncertain.into_iter().next().unwrap();
    assert_eq!(uncertain.partition, 0);
    assert!(
        acc.drain(t, &meta, &HashSet::new(), Some((7, 1)))
            .by_broker
            .is_empty(),
        "partition 0 stays busy until the uncertain batch is failed"
    );
    acc.complete(
        uncertain,
        Err(Error::DeliveryUncertain {
            topic: "t".into(),
            partition: 0,
            reason: "test".into(),
        }),
    );
    // Later records of the partition go on under the new epoch.
    let mut after = acc
        .drain(t, &meta, &HashSet::new(), Some((7, 1)))
        .by_broker
        .remove(0)
        .1
        .remove(0);
    assert_eq!(after.producer, Some((7, 1, 0)));
    assert_eq!(values(&mut after), ["after"]);
    acc.complete(after, Ok(5));
    assert_eq!(next_on_0.await.unwrap().offset, 5);
}

fn many_partitions(n: usize) -> ClusterMetadata {
    metadata("t", &vec![1; n])
}

async fn append_to(acc: &Accumulator, partition: i32, partitions: i32, now: Instant) -> Delivery {
    let r = record(partition, "v");
    let permit = acc.reserve(&r).await.unwrap();
    acc.append(r, permit, partitions, &[], now, 1_000).unwrap()
}

/// Whether the sender was woken (a stored `notify_one` permit), consuming the permit.
fn woken(acc: &Accumulator) -> bool {
    use futures::FutureExt;
    acc.wake_sender.notified().now_or_never().is_some()
}

#[tokio::test]
async fn only_the_first_lingering_batch_wakes_the_sender() {
    let acc = accumulator(config());
    let t0 = Instant::now();
    let meta = many_partitions(1000);
    let _a = append_to(&acc, 0, 1000, t0).await;
    assert!(
        woken(&acc),
        "a first batch: the sender must learn when its linger ends"
    );
    let drained = acc.drain(t0, &meta, &HashSet::new(), None);
    assert_eq!(drained.next_wake, Some(t0 + Duration::from_millis(10)));
    // Later batches end their linger after that one: the sleeping sender needs no wake-up for them.
    let mut later = Vec::new();
    for p in 1..100 {
        later.push(append_to(&acc, p, 1000, t0 + Duration::from_millis(1)).await);
    }
    assert!(!woken(&acc), "one wake-up per new batch");
    let drained = acc.drain(t0 + Duration::from_millis(10), &meta, &HashSet::new(), None);
    assert_eq!(drained.by_broker[0].1.len(), 1);
    assert_eq!(drained.next_wake, Some(t0 + Duration::from_millis(11)));
    let drained = acc.drain(t0 + Duration::from_millis(11), &meta, &HashSet::new(), None);
    assert_eq!(drained.by_broker[0].1.len(), 99);
}

#[tokio::test]
async fn a_drain_looks_only_at_partitions_with_data() {
    let acc = accumulator(config());
    let t0 = Instant::now();
    let meta = many_partitions(10_000);
    for p in [3, 5000, 9999] {
        append_to(&acc, p, 10_000, t0).await;
    }
    // The first drain sweeps every partition for expired batches; the next ones do not.
    acc.drain(t0, &meta, &HashSet::new(), None);
    {
        let state = acc.lock();
        assert!(state.ready.is_empty(), "lingering batches are not listed");
        assert_eq!(state.lingering.len(), 3);
    }
    let drained = acc.drain(t0 + Duration::from_millis(10), &meta, &HashSet::new(), None);
    let mut sent: Vec<i32> = drained.by_broker[0].1.iter().map(|b| b.partition).collect();
    sent.sort();
    assert_eq!(sent, [3, 5000, 9999]);
    let state = acc.lock();
    assert!(state.ready.is_empty() && state.lingering.is_empty());
}

#[tokio::test]
async fn partitions_behind_a_busy_broker_wait_parked_until_it_is_free() {
    let acc = accumulator(config());
    let t0 = Instant::now();
    let meta = metadata("t", &[1, 2]);
    append(&acc, record(0, "a"), t0).await;
    append(&acc, record(1, "b"), t0).await;
    let later = t0 + Duration::from_millis(10);
    let drained = acc.drain(later, &meta, &HashSet::from([1]), None);
    assert_eq!(drained.by_broker.len(), 1);
    assert_eq!(drained.by_broker[0].0, 2);
    assert_eq!(acc.lock().parked.get(&1).map(Vec::len), Some(1));
    assert!(
        acc.drain(later, &meta, &HashSet::from([1]), None)
            .by_broker
            .is_empty()
    );
    let drained = acc.drain(later, &meta, &HashSet::new(), None);
    assert_eq!(drained.by_broker.len(), 1);
    assert_eq!(
        (drained.by_broker[0].0, drained.by_broker[0].1[0].partition),
        (1, 0)
    );
    assert!(acc.lock().parked.is_empty());
}

#[tokio::test]
async fn an_expired_batch_behind_one_in_flight_leaves_its_partition_in_flight() {
    let acc = accumulator(
        config()
            .with_batch_size(100)
            .with_delivery_timeout(Duration::from_secs(31)),
    );
    let t0 = Instant::now();
    let meta = metadata("t", &[1, 1]);
    let value = "x".repeat(60);
    append(&acc, record(0, &value), t0).await;
    append(&acc, record(0, &value), t0 + Duration::from_secs(1)).await; // seals the first
    let in_flight = acc
        .drain(t0 + Duration::from_secs(1), &meta, &HashSet::new(), None)
        .by_broker
        .remove(0)
        .1
        .remove(0);
    // The second batch expires while the first is still unanswered.
    let drained = acc.drain(t0 + Duration::from_secs(32), &meta, &HashSet::new(), None);
    assert_eq!(drained.expired.len(), 1);
    for batch in drained.expired {
        acc.complete(batch, Err(Error::Closed));
    }
    append(&acc, record(0, "next"), t0 + Duration::from_secs(32)).await;
    assert!(
        acc.drain(t0 + Duration::from_secs(33), &meta, &HashSet::new(), None)
            .by_broker
            .is_empty(),
        "one batch in flight per partition"
    );
    acc.complete(in_flight, Ok(0));
    let drained = acc.drain(t0 + Duration::from_secs(33), &meta, &HashSet::new(), None);
    assert_eq!(drained.by_broker[0].1.len(), 1);
}

/// While nothing can be sent at all (no producer id), the sender only fails expired batches and never
/// drains: their linger entries must go with them, or an outage grows the list for ever.
#[tokio::test]
async fn batches_failed_without_a_drain_leave_no_linger_entry_behind() {
    let acc = accumulator(config().with_delivery_timeout(Duration::from_secs(31)));
    let t0 = Instant::now();
    for round in 0..50u64 {
        let now = t0 + Duration::from_secs(40 * round);
        let delivery = append(&acc, record(0, "a"), now).await;
        acc.fail_expired(now + Duration::from_secs(31), "no producer id");
        assert!(matches!(delivery.await, Err(Error::DeliveryTimeout { .. })));
    }
    assert!(acc.is_empty());
    assert!(acc.lock().lingering.len() <= 1, "{}", acc.lock().lingering.len());
}

/// A gzip request is filled by its batches' size as sent: once batches of a topic have shown how
/// well they compress, a drain groups them by their expected compressed size, not their uncompressed
/// one (which left a 1 MiB request ~170 KiB on the wire at 1,000 partitions). The estimate improves
/// by a small step per encoded batch, so it takes a few hundred batches to learn a 10× ratio.
#[tokio::test]
async fn a_request_of_compressed_batches_is_filled_by_their_compressed_size() {
    let config = config()
        .with_compression(Compression::Gzip)
        .with_batch_size(100_000)
        .with_max_request_size(20_000)
        .with_buffer_memory(1 << 20);
    let acc = accumulator(config);
    let t0 = Instant::now();
    let later = t0 + Duration::from_millis(20);
    let meta = many_partitions(32);
    let value = "a compressible value, ".repeat(10);
    let mut first = None;
    let mut count = 0;
    let mut sent = 0;
    for round in 0..10 {
        for p in 0..32 {
            for _ in 0..10 {
                let r = ProducerRecord::new("t")
                    .with_partition(p)
                    .with_value(value.clone());
                let permit = acc.reserve(&r).await.unwrap();
                acc.append(r, permit, 32, &[], t0, 1_000).unwrap();
            }
        }
        // The sender encodes and sends each request; encoding tells how well batches compressed.
        let mut requests = 0;
        while !acc.is_empty() {
            let mut drained = acc.drain(later, &meta, &HashSet::new(), None);
            let (_, batches) = drained.by_broker.pop().unwrap();
            let request = acc.encode_request(batches);
            requests += 1;
            if round == 9 && requests == 1 {
                count = request.sending.len();
                sent = request.sending.iter().map(|(_, b)| b.len()).sum();
            }
            for (batch, _) in request.sending {
                acc.complete(batch, Ok(0));
            }
        }
        first.get_or_insert(requests);
    }
    // Batches of ~2.5 KB uncompressed: 7 or 8 fit in 20,000 bytes before anything is known.
    assert!(first.unwrap_or(0) >= 4, "{first:?} requests in the first round");
    // Each batch is ~10× smaller as sent: once learned, all 32 fit in one request.
    assert!(
        count == 32,
        "{count} batches, {sent} bytes as sent, in a request capped at 20,000"
    );
    assert!(sent <= 20_000, "{sent} bytes");
}

/// The producer took a new identity because the broker lost *another* partition's sequences: a batch
/// whose request went unanswered is resent under the identity it was first sent with (the broker still
/// holds that partition's sequences and discards a copy it already wrote), and the partition moves to
/// the new identity, at sequence 0, with its next batch.
/// The only batch a drain sends.
fn drain_one(
    acc: &Accumulator,
    now: Instant,
    meta: &ClusterMetadata,
    busy: &HashSet<i32>,
    producer: Option<(i64, i16)>,
) -> ProducerBatch {
    let mut batches = all_batches(acc.drain(now, meta, busy, producer));
    assert_eq!(batches.len(), 1, "one batch drained");
    batches.remove(0)
}

/// The error of a batch of t-0 that expired after 120 s, its last attempt failing with `last_error`.
fn expiry_error(last_error: Option<&str>) -> Error {
    Error::DeliveryTimeout {
        topic: "t".into(),
        partition: 0,
        timeout: Duration::from_secs(120),
        last_error: last_error.map(str::to_owned),
    }
}

/// Every batch of a drain, whatever its broker.
fn all_batches(drained: Drained) -> Vec<ProducerBatch> {
    drained.by_broker.into_iter().flat_map(|(_, b)| b).collect()
}

#[tokio::test]
async fn an_unanswered_batch_keeps_its_identity_when_another_partition_forces_a_new_one() {
    let acc = accumulator(config().with_batch_size(100));
    let t0 = Instant::now();
    let meta = metadata("t", &[1, 1]);
    let unanswered = append(&acc, record(0, "unanswered"), t0).await;
    let later = t0 + Duration::from_millis(20);
    let mut batch = drain_one(&acc, later, &meta, &HashSet::new(), Some((7, 0)));
    batch.maybe_written = true;
    acc.requeue(batch, later, "request timed out".into());
    let next = append(&acc, record(0, "next"), later).await;

    let t = later + Duration::from_millis(100);
    let drained = acc.drain(t, &meta, &HashSet::new(), Some((8, 0)));
    assert!(
        drained.uncertain.is_empty(),
        "failed although its partition's sequences are intact"
    );
    let mut resent = all_batches(drained);
    assert_eq!(resent.len(), 1);
    let mut resent = resent.remove(0);
    assert_eq!(resent.producer, Some((7, 0, 0)));
    assert_eq!(values(&mut resent), ["unanswered"]);
    acc.complete(resent, Ok(3));
    assert_eq!(unanswered.await.unwrap().offset, 3);

    let mut after = drain_one(&acc, t, &meta, &HashSet::new(), Some((8, 0)));
    assert_eq!(after.producer, Some((8, 0, 0)));
    assert_eq!(values(&mut after), ["next"]);
    acc.complete(after, Ok(4));
    assert_eq!(next.await.unwrap().offset, 4);
}

/// A batch whose request went unanswered and that then failed (expired) leaves its partition's
/// sequences unresolved: the broker may or may not hold it. Nothing more of the partition goes under
/// that identity (its next batch would follow a possible gap, and be refused); the sender is told to
/// take a new one, under which the partition restarts at sequence 0, as Java's client bumps the epoch.
#[tokio::test]
async fn an_unanswered_batch_that_fails_leaves_its_partition_waiting_for_a_new_identity() {
    let acc = accumulator(config().with_batch_size(100));
    let t0 = Instant::now();
    let meta = metadata("t", &[1, 1]);
    let old = Some((7, 0));
    let _lost = append(&acc, record(0, "lost"), t0).await;
    let later = t0 + Duration::from_millis(20);
    let mut batch = drain_one(&acc, later, &meta, &HashSet::new(), old);
    assert_eq!(batch.producer, Some((7, 0, 0)));
    batch.maybe_written = true;
    let error = expiry_error(Some("request timed out"));
    acc.complete(batch, Err(error));
    assert_eq!(acc.take_unresolved(), [(7, 0)]);
    assert!(acc.take_unresolved().is_empty(), "reported once");
    let next = append(&acc, record(0, "next"), later).await;
    let other = append(&acc, record(1, "other"), later).await;

    let t = later + Duration::from_millis(20);
    let drained = acc.drain(t, &meta, &HashSet::new(), old);
    let sent: Vec<_> = all_batches(drained);
    assert_eq!(
        sent.len(),
        1,
        "only the other partition goes on under the old identity"
    );
    assert_eq!((sent[0].partition, sent[0].producer), (1, Some((7, 0, 0))));
    for batch in sent {
        acc.complete(batch, Ok(0));
    }
    assert_eq!(other.await.unwrap().offset, 0);

    let mut after = drain_one(&acc, t, &meta, &HashSet::new(), Some((8, 0)));
    assert_eq!(after.producer, Some((8, 0, 0)));
    assert_eq!(values(&mut after), ["next"]);
    acc.complete(after, Ok(1));
    assert_eq!(next.await.unwrap().offset, 1);
}

/// An unanswered batch waiting for its retry expires in the queue: the drain that expires it does not
/// send the partition's next batch under the same identity (past a possible gap).
#[tokio::test]
async fn an_unanswered_batch_expiring_in_its_queue_holds_the_next_one_for_a_new_identity() {
    let acc = accumulator(config().with_batch_size(100));
    let t0 = Instant::now();
    let meta = metadata("t", &[1, 1]);
    let old = Some((7, 0));
    let _lost = append(&acc, record(0, "lost"), t0).await;
    let later = t0 + Duration::from_millis(20);
    let mut batch = drain_one(&acc, later, &meta, &HashSet::new(), old);
    batch.maybe_written = true;
    acc.requeue(batch, later, "connection lost".into());
    let expiry = t0 + Duration::from_secs(120);
    let next = append(&acc, record(0, "next"), expiry - Duration::from_secs(1)).await;

    let mut drained = acc.drain(expiry, &meta, &HashSet::new(), old);
    assert_eq!(drained.expired.len(), 1);
    let expired = std::mem::take(&mut drained.expired);
    let sent: Vec<_> = all_batches(drained);
    assert!(
        sent.is_empty(),
        "sent under the old identity: {:?}",
        sent.iter().map(|b| b.producer).collect::<Vec<_>>()
    );
    for batch in expired {
        let error = expiry_error(None);
        acc.complete(batch, Err(error));
    }
    assert_eq!(acc.take_unresolved(), [(7, 0)]);
    let mut after = drain_one(&acc, expiry, &meta, &HashSet::new(), Some((8, 0)));
    assert_eq!(after.producer, Some((8, 0, 0)));
    assert_eq!(values(&mut after), ["next"]);
    acc.complete(after, Ok(2));
    assert_eq!(next.await.unwrap().offset, 2);
}

/// A batch that was sent and answered (never written: NOT_LEADER_OR_FOLLOWER until it expired, or a
/// non-retriable rejection) leaves its sequence unused on the broker: the partition's next batch must
/// not go out past that gap under the same identity.
#[tokio::test]
async fn an_answered_batch_that_fails_sends_nothing_past_its_sequence() {
    let acc = accumulator(config().with_batch_size(100));
    let t0 = Instant::now();
    let meta = metadata("t", &[1, 1]);
    let old = Some((7, 0));
    let _lost = append(&acc, record(0, "lost"), t0).await;
    let later = t0 + Duration::from_millis(20);
    let batch = drain_one(&acc, later, &meta, &HashSet::new(), old);
    assert_eq!(batch.producer, Some((7, 0, 0)));
    assert!(!batch.maybe_written);
    let error = expiry_error(Some("NOT_LEADER_OR_FOLLOWER"));
    acc.complete(batch, Err(error));
    let _next = append(&acc, record(0, "next"), later).await;
    let t = later + Duration::from_millis(20);
    let sent = all_batches(acc.drain(t, &meta, &HashSet::new(), old));
    let past_gap: Vec<_> = sent
        .iter()
        .filter_map(|b| b.producer)
        .filter(|&(id, epoch, seq)| (id, epoch) == (7, 0) && seq != 0)
        .collect();
    assert!(
        past_gap.is_empty(),
        "sent past the gap (broker expects seq 0): {past_gap:?}"
    );
}

/// Otherwise the next batch's first attempt goes unanswered, its retry is refused
/// (OUT_OF_ORDER_SEQUENCE_NUMBER: the gap), and it is failed as uncertain although never written.
#[tokio::test]
async fn the_batch_after_an_answered_failure_is_not_failed_as_uncertain() {
    let acc = accumulator(config().with_batch_size(100));
    let t0 = Instant::now();
    let meta = metadata("t", &[1, 1]);
    let old = Some((7, 0));
    let _lost = append(&acc, record(0, "lost"), t0).await;
    let later = t0 + Duration::from_millis(20);
    let batch = drain_one(&acc, later, &meta, &HashSet::new(), old);
    let error = expiry_error(Some("NOT_LEADER_OR_FOLLOWER"));
    acc.complete(batch, Err(error));
    assert_eq!(
        acc.take_unresolved(),
        [(7, 0)],
        "the failed batch's identity is given up"
    );
    let next = append(&acc, record(0, "next"), later).await;
    let t = later + Duration::from_millis(20);
    // Nothing of the partition goes out past the gap under the old identity...
    let sent = all_batches(acc.drain(t, &meta, &HashSet::new(), old));
    assert!(
        sent.is_empty(),
        "sent past the gap: {:?}",
        sent.iter().map(|b| b.producer).collect::<Vec<_>>()
    );
    // ...and under the new one it starts at sequence 0; an unanswered attempt there is retried under
    // the same identity, not failed as uncertain.
    let mut first = drain_one(&acc, t, &meta, &HashSet::new(), Some((8, 0)));
    assert_eq!(first.producer, Some((8, 0, 0)));
    first.maybe_written = true;
    acc.requeue(first, t, "request timed out".into());
    let t2 = t + Duration::from_millis(200);
    let drained = acc.drain(t2, &meta, &HashSet::new(), Some((8, 0)));
    assert!(
        drained.uncertain.is_empty(),
        "never written, yet failed as DeliveryUncertain"
    );
    let mut retry = all_batches(drained).remove(0);
    assert_eq!(retry.producer, Some((8, 0, 0)));
    assert_eq!(values(&mut retry), ["next"]);
    acc.complete(retry, Ok(5));
    assert_eq!(next.await.unwrap().offset, 5);
}

/// A renewal may hand out the id and epoch the partition abandoned (a broker that answers a bump with
/// the same pair): the partition goes on at sequence 0 under it, rather than waiting forever.
#[tokio::test]
async fn a_partition_sends_again_under_a_renewed_identity_equal_to_the_abandoned_one() {
    let acc = accumulator(config().with_batch_size(100));
    let t0 = Instant::now();
    let meta = metadata("t", &[1, 1]);
    let same = Some((7, 0));
    let _lost = append(&acc, record(0, "lost"), t0).await;
    let later = t0 + Duration::from_millis(20);
    let mut batch = drain_one(&acc, later, &meta, &HashSet::new(), same);
    batch.maybe_written = true;
    let error = expiry_error(Some("request timed out"));
    acc.complete(batch, Err(error));
    assert_eq!(acc.take_unresolved(), [(7, 0)]);
    let _next = append(&acc, record(0, "next"), later).await;
    let t = later + Duration::from_millis(20);
    assert!(
        acc.drain(t, &meta, &HashSet::new(), same).by_broker.is_empty(),
        "held until the identity is renewed"
    );
    acc.renewed();
    let t = t + Duration::from_millis(20);
    let sent = all_batches(acc.drain(t, &meta, &HashSet::new(), same));
    assert_eq!(sent.len(), 1, "sent under the renewed identity");
    assert_eq!(sent[0].producer, Some((7, 0, 0)));
}

#[tokio::test]
async fn a_completed_batch_lends_its_buffer_to_the_next_one() {
    let acc = accumulator(config().with_linger(Duration::ZERO));
    let t0 = Instant::now();
    let meta = metadata("t", &[1, 1]);
    let first = append(&acc, record(0, &"a".repeat(300)), t0).await;
    let mut batch = drain_one(&acc, t0, &meta, &HashSet::new(), None);
    let sent = batch.encode().unwrap();
    acc.complete(batch, Ok(0));
    assert_eq!(first.await.unwrap().offset, 0);
    assert!(
        acc.lock().spare_buffers.is_empty(),
        "a request still holds the bytes"
    );
    drop(sent);

    append(&acc, record(0, "b"), t0).await;
    let mut batch = drain_one(&acc, t0, &meta, &HashSet::new(), None);
    let sent = batch.encode().unwrap();
    let reused = sent.as_ptr();
    drop(sent);
    acc.complete(batch, Ok(1));
    assert_eq!(acc.lock().spare_buffers.len(), 1, "nothing else holds the bytes");

    let third = append(&acc, record(1, "c"), t0).await;
    assert!(acc.lock().spare_buffers.is_empty(), "the next batch took it");
    let mut batch = drain_one(&acc, t0, &meta, &HashSet::new(), None);
    assert_eq!(values(&mut batch), ["c"]);
    assert_eq!(batch.encode().unwrap().as_ptr(), reused);
    acc.complete(batch, Ok(7));
    assert_eq!(third.await.unwrap().offset, 7);
}

#[tokio::test]
async fn a_completed_batch_lends_its_buffer_only_when_a_new_batch_could_use_it() {
    // Default batch size (16 KiB): an uncompressed batch's buffer is lent. Gzip's output keeps 32 KiB
    // of room (over the 32 KiB a 16 KiB batch can grow to), and the other codecs' output for one
    // small record is far below a fresh batch's first capacity: neither is lent.
    for compression in Compression::ALL {
        let acc = accumulator(
            ProducerConfig::default()
                .with_compression(compression)
                .with_linger(Duration::ZERO),
        );
        let t0 = Instant::now();
        let meta = metadata("t", &[1]);
        append(&acc, record(0, "a"), t0).await;
        let mut batch = drain_one(&acc, t0, &meta, &HashSet::new(), None);
        drop(batch.encode().unwrap());
        acc.complete(batch, Ok(0));
        let spare: Vec<usize> = acc.lock().spare_buffers.iter().map(BytesMut::capacity).collect();
        assert!(
            spare.iter().all(|&c| (16 * 1024..=32 * 1024).contains(&c)),
            "{compression:?}: {spare:?}"
        );
        let lent = usize::from(compression == Compression::None);
        assert_eq!(spare.len(), lent, "{compression:?}");
    }
}
