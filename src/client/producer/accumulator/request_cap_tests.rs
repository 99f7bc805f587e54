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
    for mut delivery in deliveries {
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
