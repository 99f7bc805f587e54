//! Produce requests of compressed batches stay within `max_request_size` as sent: per-topic
//! compression estimates when a drain fills a request, and the cap on the encoded request, whose
//! overflow goes back to its partitions without counting an attempt.

use std::collections::BTreeMap;

use super::*;
use crate::{
    client::cluster::{PartitionMetadata, TopicMetadata},
    protocol::records::Compression,
};

const CAP: usize = 20_000;

fn gzip_accumulator() -> Accumulator {
    let config = ProducerConfig::default()
        .with_compression(Compression::Gzip)
        .with_batch_size(100_000)
        .with_linger(Duration::from_millis(10))
        .with_max_request_size(CAP)
        .with_buffer_memory(64 << 20);
    Accumulator::new(Arc::new(config), Partitioner::with_seed(1))
}

/// Metadata of `topics` (name, partitions), every partition led by broker 1.
fn metadata(topics: &[(&str, usize)]) -> ClusterMetadata {
    let mut by_name = BTreeMap::new();
    for &(name, count) in topics {
        let partitions = (0..count)
            .map(|i| PartitionMetadata {
                partition: i as i32,
                leader: Some(1),
                leader_epoch: 0,
                replicas: vec![1],
                isr: vec![1],
                error: None,
            })
            .collect();
        let topic = TopicMetadata {
            name: name.to_owned(),
            is_internal: false,
            partitions,
            error: None,
        };
        by_name.insert(name.to_owned(), topic);
    }
    ClusterMetadata {
        cluster_id: None,
        controller_id: Some(1),
        brokers: BTreeMap::new(),
        topics: by_name,
        generation: 1,
    }
}

fn compressible() -> Bytes {
    Bytes::from("a compressible value, ".repeat(10))
}

fn incompressible(rng: &mut u64) -> Bytes {
    let mut value = Vec::with_capacity(224);
    while value.len() < 220 {
        *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        value.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    Bytes::from(value)
}

/// Appends a batch of 10 records of `value` to each of `partitions` of `topic`.
async fn fill(
    acc: &Accumulator,
    topic: &str,
    partitions: std::ops::Range<i32>,
    num_partitions: i32,
    mut value: impl FnMut() -> Bytes,
    now: Instant,
) -> Vec<Delivery> {
    let mut deliveries = Vec::new();
    for p in partitions {
        for _ in 0..10 {
            let r = ProducerRecord::new(topic).with_partition(p).with_value(value());
            let permit = acc.reserve(&r).await.unwrap();
            deliveries.push(acc.append(r, permit, num_partitions, &[], now, 1_000).unwrap());
        }
    }
    deliveries
}

/// What the sender does with one drained request: the batches it sends, encoded.
fn send_request(acc: &Accumulator, batches: Vec<ProducerBatch>) -> Vec<(ProducerBatch, Bytes)> {
    let request = acc.encode_request(batches);
    assert!(request.failed.is_empty());
    request.sending
}

/// Drains, sends and completes requests until nothing is left; the largest request sent, in bytes
/// of batches, among those of more than one batch.
fn send_everything(acc: &Accumulator, meta: &ClusterMetadata, now: Instant) -> usize {
    let mut largest = 0;
    for _ in 0..10_000 {
        let drained = acc.drain(now, meta, &HashSet::new(), None);
        if drained.by_broker.is_empty() {
            assert!(acc.is_empty(), "nothing drained, something left");
            return largest;
        }
        for (_, batches) in drained.by_broker {
            let sent = send_request(acc, batches);
            let bytes: usize = sent.iter().map(|(_, b)| b.len()).sum();
            if sent.len() > 1 {
                largest = largest.max(bytes);
            }
            for (batch, _) in sent {
                acc.complete(batch, Ok(0));
            }
        }
    }
    panic!("the requests never ended");
}

/// Compressible batches teach a low ratio; incompressible ones follow in 608 partitions. Their first
/// drain expects them small: the request as encoded must still not exceed the cap.
#[tokio::test]
async fn a_ratio_jump_sends_no_request_above_the_cap() {
    let acc = gzip_accumulator();
    let meta = metadata(&[("t", 608)]);
    let t0 = Instant::now();
    let later = t0 + Duration::from_millis(20);
    for _ in 0..4 {
        fill(&acc, "t", 0..32, 608, compressible, t0).await;
        send_everything(&acc, &meta, later);
    }
    let mut rng = 7;
    let deliveries = fill(&acc, "t", 0..608, 608, || incompressible(&mut rng), t0).await;
    let largest = send_everything(&acc, &meta, later);
    assert!(largest <= CAP, "a request of {largest} bytes, capped at {CAP}");
    for delivery in deliveries {
        assert!(delivery.try_recv().unwrap().is_ok());
    }
}

/// An incompressible topic beside a compressible one: one global estimate, lowered by the
/// compressible batches, would fill the incompressible topic's requests many times over the cap.
#[tokio::test]
async fn each_topic_has_its_own_compression_estimate() {
    let acc = gzip_accumulator();
    let meta = metadata(&[("a", 200), ("b", 200)]);
    let t0 = Instant::now();
    let later = t0 + Duration::from_millis(20);
    let mut rng = 11;
    for cycle in 0..10 {
        fill(&acc, "a", cycle..cycle + 1, 200, || incompressible(&mut rng), t0).await;
        fill(&acc, "b", cycle * 4..cycle * 4 + 4, 200, compressible, t0).await;
        send_everything(&acc, &meta, later);
    }
    fill(&acc, "a", 0..100, 200, || incompressible(&mut rng), t0).await;
    let mut drained = acc.drain(later, &meta, &HashSet::new(), None);
    let (_, batches) = drained.by_broker.pop().unwrap();
    let count = batches.len();
    let sent: usize = batches.into_iter().map(|mut b| b.encode().unwrap().len()).sum();
    assert!(
        sent <= CAP,
        "{count} batches of the incompressible topic drained: {sent} bytes, capped at {CAP}"
    );
    assert!(count >= 7, "{count} batches");
}

/// Batches beyond the cap go back to the front of their partitions, ready at once: no attempt
/// counted, not possibly written, the same sequence numbers.
#[tokio::test]
async fn batches_over_the_cap_are_requeued_without_an_attempt() {
    let acc = gzip_accumulator();
    let meta = metadata(&[("t", 64)]);
    let t0 = Instant::now();
    let later = t0 + Duration::from_millis(20);
    for _ in 0..4 {
        fill(&acc, "t", 0..32, 64, compressible, t0).await;
        send_everything(&acc, &meta, later);
    }
    let mut rng = 3;
    fill(&acc, "t", 0..64, 64, || incompressible(&mut rng), t0).await;
    let producer = Some((7, 0));
    let mut drained = acc.drain(later, &meta, &HashSet::new(), producer);
    let (_, batches) = drained.by_broker.pop().unwrap();
    let assigned: HashMap<i32, Option<(i64, i16, i32)>> =
        batches.iter().map(|b| (b.partition, b.producer)).collect();
    let sent = send_request(&acc, batches);
    let bytes: usize = sent.iter().map(|(_, b)| b.len()).sum();
    assert!(bytes <= CAP, "{} batches, {bytes} bytes sent", sent.len());
    let sent: HashSet<i32> = sent.iter().map(|(b, _)| b.partition).collect();
    let returned: HashSet<i32> = assigned.keys().copied().filter(|p| !sent.contains(p)).collect();
    assert!(!returned.is_empty(), "every drained batch was sent");

    // Their partitions are not in flight any more: the next drain takes them at once, first.
    let mut drained = acc.drain(later, &meta, &HashSet::new(), producer);
    let (_, batches) = drained.by_broker.pop().unwrap();
    let again = batches
        .iter()
        .take_while(|b| returned.contains(&b.partition))
        .count();
    assert!(again > 0, "the returned batches are not first in line");
    assert_eq!(
        again,
        batches.iter().filter(|b| returned.contains(&b.partition)).count()
    );
    for batch in &batches[..again] {
        assert_eq!(batch.attempts, 0);
        assert!(!batch.maybe_written);
        assert!(batch.retry_at.is_none());
        assert!(batch.last_error.is_none());
        assert_eq!(batch.producer, assigned[&batch.partition]);
    }
    assert!(batches.iter().all(|b| !sent.contains(&b.partition)));
}

/// Drains the 64 incompressible batches of `t` after a compressible history, with `producer`, and
/// sends what fits: the partitions sent, and the drained batches' sequences by partition.
async fn drain_over_the_cap(
    acc: &Accumulator,
    meta: &ClusterMetadata,
    producer: Option<ProducerState>,
    now: Instant,
) -> (Vec<(ProducerBatch, Bytes)>, Vec<Delivery>) {
    for _ in 0..4 {
        fill(acc, "t", 0..32, 64, compressible, now).await;
        send_everything(acc, meta, now + Duration::from_millis(20));
    }
    let mut rng = 3;
    let deliveries = fill(acc, "t", 0..64, 64, || incompressible(&mut rng), now).await;
    let mut drained = acc.drain(now + Duration::from_millis(20), meta, &HashSet::new(), producer);
    let (_, batches) = drained.by_broker.pop().unwrap();
    (send_request(acc, batches), deliveries)
}

/// A batch returned unsent gives its sequence back: if it expires before it is drained again, the
/// partition's next batch takes that sequence, not the one after it (a gap the broker would answer
/// with OUT_OF_ORDER_SEQUENCE_NUMBER, an epoch bump failing other partitions' uncertain batches).
#[tokio::test]
async fn a_returned_batch_that_expires_leaves_no_sequence_gap() {
    let acc = gzip_accumulator();
    let meta = metadata(&[("t", 64)]);
    let t0 = Instant::now();
    let producer = Some((7, 0));
    let (sent, _deliveries) = drain_over_the_cap(&acc, &meta, producer, t0).await;
    let sent_parts: HashSet<i32> = sent.iter().map(|(b, _)| b.partition).collect();
    for (batch, _) in sent {
        acc.complete(batch, Ok(0));
    }
    // The returned batches wait (their broker busy) past the delivery timeout.
    let expired_at = t0 + acc.config.delivery_timeout + Duration::from_secs(1);
    let busy: HashSet<i32> = [1].into_iter().collect();
    let drained = acc.drain(expired_at, &meta, &busy, producer);
    let returned = drained
        .expired
        .iter()
        .map(|b| b.partition)
        .find(|p| !sent_parts.contains(p))
        .expect("a returned batch expired");
    for batch in drained.expired {
        acc.complete(batch, Err(Error::Closed));
    }
    let _next = fill(&acc, "t", returned..returned + 1, 64, compressible, expired_at).await;
    let later = expired_at + Duration::from_millis(20);
    let mut drained = acc.drain(later, &meta, &HashSet::new(), producer);
    let (_, batches) = drained.by_broker.pop().unwrap();
    let next = batches.iter().find(|b| b.partition == returned).unwrap();
    assert_eq!(
        next.producer,
        Some((7, 0, 0)),
        "the first batch partition {returned} sends must have sequence 0"
    );
}

/// A returned batch drained again gets its sequence anew, and its bytes (encoded under the sequence
/// it gave back) are rewritten to carry it.
#[tokio::test]
async fn a_returned_encoded_batch_is_sent_with_the_sequence_drained_again() {
    let acc = gzip_accumulator();
    let meta = metadata(&[("t", 64)]);
    let t0 = Instant::now();
    let producer = Some((7, 0));
    let (sent, _deliveries) = drain_over_the_cap(&acc, &meta, producer, t0).await;
    let sent_parts: HashSet<i32> = sent.iter().map(|(b, _)| b.partition).collect();
    for (batch, _) in sent {
        acc.complete(batch, Ok(0));
    }
    let mut drained = acc.drain(t0 + Duration::from_millis(20), &meta, &HashSet::new(), producer);
    let (_, batches) = drained.by_broker.pop().unwrap();
    let first = &batches[0];
    assert!(!sent_parts.contains(&first.partition));
    assert!(
        first.encoded.is_some(),
        "the batch that broke the cap was encoded"
    );
    assert_eq!(first.producer, Some((7, 0, 0)));
    for (batch, bytes) in send_request(&acc, batches) {
        // A v2 batch's base sequence is at byte 53.
        let base_sequence = i32::from_be_bytes([bytes[53], bytes[54], bytes[55], bytes[56]]);
        assert_eq!(Some(base_sequence), batch.producer.map(|p| p.2));
    }
}

/// A batch that cannot be encoded is failed unsent: its sequence goes back to its partition.
#[tokio::test]
async fn a_batch_failed_unencoded_leaves_no_sequence_gap() {
    let acc = gzip_accumulator();
    let meta = metadata(&[("t", 4)]);
    let t0 = Instant::now();
    let later = t0 + Duration::from_millis(20);
    let producer = Some((7, 0));
    let _first = fill(&acc, "t", 0..1, 4, compressible, t0).await;
    let mut drained = acc.drain(later, &meta, &HashSet::new(), producer);
    let (_, mut batches) = drained.by_broker.pop().unwrap();
    // Bytes the producer state cannot be written into.
    batches[0].encoded = Some(Bytes::from_static(b"not a record batch"));
    batches[0].builder = None;
    batches[0].stale_encoding = true;
    let request = acc.encode_request(batches);
    assert!(request.sending.is_empty());
    for (batch, e) in request.failed {
        acc.complete(batch, Err(Error::Encode { source: Arc::new(e) }));
    }
    let _second = fill(&acc, "t", 0..1, 4, compressible, t0).await;
    let mut drained = acc.drain(later, &meta, &HashSet::new(), producer);
    let (_, batches) = drained.by_broker.pop().unwrap();
    assert_eq!(batches[0].producer, Some((7, 0, 0)));
}

/// Returned batches are first in line for the next drain, before partitions that were parked
/// behind their busy broker meanwhile.
#[tokio::test]
async fn returned_batches_go_before_partitions_parked_behind_a_busy_broker() {
    returned_batches_go_first(false).await;
}

/// Returned batches whose broker is still busy at the next drain park ahead of the partitions
/// parked before them.
#[tokio::test]
async fn returned_batches_park_ahead_of_partitions_parked_before() {
    returned_batches_go_first(true).await;
}

/// Drains 32 incompressible batches; while their request is encoded (some batches returned), 32
/// more partitions park behind the busy broker; with `still_busy`, a drain finds the broker busy
/// once more before it is free. The request after must start with the returned batches.
async fn returned_batches_go_first(still_busy: bool) {
    let acc = gzip_accumulator();
    let meta = metadata(&[("t", 64)]);
    let t0 = Instant::now();
    let later = t0 + Duration::from_millis(20);
    for _ in 0..4 {
        fill(&acc, "t", 0..32, 64, compressible, t0).await;
        send_everything(&acc, &meta, later);
    }
    let mut rng = 3;
    let _a = fill(&acc, "t", 0..32, 64, || incompressible(&mut rng), t0).await;
    let mut drained = acc.drain(later, &meta, &HashSet::new(), None);
    let (_, batches) = drained.by_broker.pop().unwrap();
    let drained_order: Vec<i32> = batches.iter().map(|b| b.partition).collect();
    // While the request is encoded, other partitions become ready and park behind the busy broker.
    let _b = fill(&acc, "t", 32..64, 64, || incompressible(&mut rng), t0).await;
    let busy: HashSet<i32> = [1].into_iter().collect();
    assert!(acc.drain(later, &meta, &busy, None).by_broker.is_empty());
    let sent = send_request(&acc, batches);
    let sent: HashSet<i32> = sent.iter().map(|(b, _)| b.partition).collect();
    let returned: Vec<i32> = drained_order.into_iter().filter(|p| !sent.contains(p)).collect();
    assert!(!returned.is_empty(), "every drained batch was sent");

    if still_busy {
        assert!(acc.drain(later, &meta, &busy, None).by_broker.is_empty());
    }
    let mut drained = acc.drain(later, &meta, &HashSet::new(), None);
    let (_, batches) = drained.by_broker.pop().unwrap();
    let order: Vec<i32> = batches.iter().map(|b| b.partition).collect();
    let first = returned.len().min(order.len());
    assert_eq!(
        order[..first],
        returned[..first],
        "the next request {order:?} must start with the returned partitions {returned:?}"
    );
}

/// A batch whose partition has no queue any more is failed, not dropped: a dropped batch would
/// never answer its records nor leave `incomplete`, and `flush` would wait forever.
#[tokio::test]
async fn a_batch_without_its_partition_queue_is_failed_not_dropped() {
    let acc = gzip_accumulator();
    let meta = metadata(&[("t", 4)]);
    let t0 = Instant::now();
    let later = t0 + Duration::from_millis(20);
    let deliveries = fill(&acc, "t", 0..2, 4, compressible, t0).await;
    let mut drained = acc.drain(later, &meta, &HashSet::new(), None);
    let (_, mut batches) = drained.by_broker.pop().unwrap();
    assert_eq!(batches.len(), 2);
    for batch in &mut batches {
        batch.partition += 100;
    }
    let retried = batches.pop().unwrap();
    acc.requeue(retried, later, "a retriable error".to_owned());
    acc.learn_and_return(Vec::new(), batches, &mut []);
    for delivery in &deliveries {
        let outcome = delivery.try_recv();
        assert!(
            matches!(outcome, Some(Err(Error::UnknownPartition { .. }))),
            "{outcome:?}"
        );
    }
    assert!(acc.is_empty());
}
