//! The producer against a real broker: every codec, acks, per-key order, backpressure, delivery
//! timeouts, and connections cut mid-stream with idempotence on.

use std::{collections::HashMap, time::Duration};

use bytes::Bytes;
use kafka_event_bus::{
    client::{
        ClientConfig, Cluster, NewTopic,
        producer::{Acks, Error, Producer, ProducerConfig, ProducerRecord},
    },
    protocol::{Headers, records::Compression},
};

use crate::{fault_proxy::FaultyBroker, read_back::read_partition, support::unique, trial};

async fn topic(cluster: &Cluster, prefix: &str, partitions: i32) -> String {
    let name = unique(prefix);
    cluster
        .ensure_topics(&[NewTopic::new(&name, partitions, 1)])
        .await
        .unwrap();
    name
}

fn event(topic: &str, key: &str, i: usize) -> ProducerRecord {
    let mut headers = Headers::new();
    headers.insert("event_type", "OrderCreated");
    headers.insert("seq", i.to_string());
    headers.insert("dup", "a");
    headers.insert("dup", "b");
    headers.insert_null("null");
    ProducerRecord::new(topic)
        .with_key(key.to_owned())
        .with_value(format!(
            r#"{{"i":{i},"key":"{key}","pad":"{}"}}"#,
            "x".repeat(200)
        ))
        .with_headers(headers)
}

/// Reads the whole topic back: key → values in offset order, and the total count.
async fn read_topic(cluster: &Cluster, topic: &str, partitions: i32) -> (HashMap<Bytes, Vec<usize>>, usize) {
    let mut by_key: HashMap<Bytes, Vec<usize>> = HashMap::new();
    let mut total = 0;
    for p in 0..partitions {
        let records = read_partition(cluster, topic, p).await;
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        assert!(offsets.windows(2).all(|w| w[1] > w[0]), "offsets increase");
        for (_, record) in records {
            let seq: usize = record.headers.get_str("seq").unwrap().parse().unwrap();
            // Headers arrive as sent: order, duplicates and nulls.
            let keys: Vec<&str> = record.headers.iter().map(|h| h.key).collect();
            assert_eq!(keys, ["event_type", "seq", "dup", "dup", "null"]);
            assert!(record.headers.contains_key("null") && record.headers.get("null").is_none());
            by_key.entry(record.key.unwrap()).or_default().push(seq);
            total += 1;
        }
    }
    (by_key, total)
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "init_producer_id_with_the_current_id_gives_a_usable_identity",
        |ctx| async move {
            use kafka_event_bus::client::connection::BrokerConnection;
            use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};
            let broker = BrokerConnection::new(ctx.bootstrap.split(',').next().unwrap(), ctx.config().into());
            let init = |id: i64, epoch: i16| {
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(30_000)
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(epoch)
            };
            let first = broker.request(&init(-1, -1)).await.unwrap();
            assert_eq!(first.error_code, 0);
            // KIP-360: the current identity along, as the producer sends it after losing its sequences.
            let bumped = broker
                .request(&init(first.producer_id.0, first.producer_epoch))
                .await
                .unwrap();
            eprintln!(
                "InitProducerId: fresh ({}, {}), with the current id: error {} -> ({}, {})",
                first.producer_id.0,
                first.producer_epoch,
                bumped.error_code,
                bumped.producer_id.0,
                bumped.producer_epoch
            );
            if bumped.error_code == 0 {
                // A broker that bumps: the same id at a higher epoch, or a new id.
                let (old, new) = (
                    (first.producer_id.0, first.producer_epoch),
                    (bumped.producer_id.0, bumped.producer_epoch),
                );
                assert!(new.0 >= 0 && new != old, "{old:?} -> {new:?}");
            } else {
                // Tansu refuses it (UNKNOWN_SERVER_ERROR): the producer then asks for a fresh id, which
                // must differ from the old one.
                let fresh = broker.request(&init(-1, -1)).await.unwrap();
                assert_eq!(fresh.error_code, 0);
                assert_ne!(fresh.producer_id.0, first.producer_id.0);
            }
        },
    ));

    for compression in Compression::ALL {
        let name = format!("round_trips_with_{}", compression.name());
        trials.push(trial(&name, move |ctx| async move {
            let cluster = ctx.cluster().await;
            let topic = topic(&cluster, "produce", 3).await;
            let producer = Producer::new(
                cluster.clone(),
                ProducerConfig::default()
                    .with_compression(compression)
                    .with_batch_size(4096),
            )
            .unwrap();
            let records: Vec<_> = (0..300)
                .map(|i| event(&topic, &format!("k{}", i % 7), i))
                .collect();
            let results = producer.send_all(records).await;
            let mut offsets: HashMap<i32, Vec<i64>> = HashMap::new();
            for r in results {
                let r = r.unwrap();
                offsets.entry(r.partition).or_default().push(r.offset);
            }
            // Offsets per partition are contiguous from 0: nothing lost, nothing doubled.
            for (p, mut o) in offsets {
                o.sort();
                assert_eq!(o, (0..o.len() as i64).collect::<Vec<_>>(), "partition {p}");
            }
            let (by_key, total) = read_topic(&cluster, &topic, 3).await;
            assert_eq!(total, 300);
            for (key, seqs) in by_key {
                assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order of {key:?}");
            }
            producer.close().await;
        }));
    }

    // Compressible records teach the producer a low compression ratio; incompressible ones follow in
    // every partition, all ready at once. The drain expects them small, yet no Produce request on
    // the wire may exceed `max_request_size` (plus the request's own framing): the sender sends the
    // batches that fit once encoded and the others in the next requests. All records arrive, in order.
    trials.push(trial("gzip_requests_stay_within_max_request_size_as_sent", |_ctx| async move {
        const CAP: usize = 20_000;
        let broker = FaultyBroker::start().await;
        let cluster = Cluster::connect(ClientConfig::new(&broker.bootstrap))
            .await
            .unwrap();
        let topic = topic(&cluster, "produce-gzip-cap", 64).await;
        let producer = Producer::new(
            cluster.clone(),
            ProducerConfig::default()
                .with_compression(Compression::Gzip)
                .with_batch_size(8192)
                .with_linger(Duration::from_secs(10))
                .with_max_request_size(CAP),
        )
        .unwrap();
        let mut deliveries = Vec::new();
        let mut seq = 0;
        let mut noise = 0x5eed_u64;
        for round in 0..7 {
            for p in 0..64 {
                for _ in 0..10 {
                    let value = if round < 6 {
                        Bytes::from("a compressible value, ".repeat(10))
                    } else {
                        produce_sizes::incompressible(&mut noise, 220)
                    };
                    let record = event(&topic, &format!("p{p}"), seq)
                        .with_partition(p)
                        .with_value(value);
                    seq += 1;
                    deliveries.push(producer.send(record).await.unwrap());
                }
            }
            producer.flush().await;
        }
        for delivery in deliveries {
            delivery.await.unwrap();
        }
        // Produce's API key is 0.
        let largest = broker.largest_request(0);
        assert!(largest > 0, "the proxy saw no Produce request");
        assert!(
            largest <= CAP + 2048,
            "a Produce request of {largest} bytes on the wire, max_request_size {CAP}"
        );
        let (by_key, total) = read_topic(&cluster, &topic, 64).await;
        assert_eq!(total, seq);
        for (key, seqs) in by_key {
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order of {key:?}");
        }
        producer.close().await;
    }));

    trials.push(trial("acks_none_leader_and_all", |ctx| async move {
        let cluster = ctx.cluster().await;
        for acks in [Acks::None, Acks::Leader, Acks::All] {
            let topic = topic(&cluster, "acks", 1).await;
            let producer = Producer::new(cluster.clone(), ProducerConfig::default().with_acks(acks)).unwrap();
            let results = producer.send_all((0..50).map(|i| event(&topic, "k", i))).await;
            for r in &results {
                let r = r.as_ref().unwrap();
                if acks == Acks::None {
                    assert_eq!(r.offset, -1, "acks=0 has no offsets");
                } else {
                    assert!(r.offset >= 0);
                }
            }
            producer.close().await;
            // acks=0 gives no confirmation: wait until the broker has them all.
            let mut total = 0;
            for _ in 0..100 {
                total = read_topic(&cluster, &topic, 1).await.1;
                if total == 50 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(total, 50, "{acks:?}");
        }
    }));

    trials.push(trial(
        "keyed_order_holds_under_load",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let topic = topic(&cluster, "order", 6).await;
            let producer = Producer::new(
                cluster.clone(),
                ProducerConfig::default()
                    .with_compression(Compression::None)
                    .with_batch_size(64 * 1024)
                    .with_linger(Duration::from_millis(2)),
            )
            .unwrap();
            const N: usize = 20_000;
            let mut pending = Vec::with_capacity(N);
            for i in 0..N {
                pending.push(
                    producer
                        .send(event(&topic, &format!("agg-{}", i % 50), i))
                        .await
                        .unwrap(),
                );
            }
            for p in pending {
                p.await.unwrap();
            }
            let (by_key, total) = read_topic(&cluster, &topic, 6).await;
            assert_eq!(total, N);
            assert_eq!(by_key.len(), 50);
            for (key, seqs) in by_key {
                assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order of {key:?}");
            }
            // The same key always lands on the same partition as Java's partitioner puts it.
            let meta = producer.send_and_wait(event(&topic, "agg-0", N)).await.unwrap();
            let expected =
                kafka_event_bus::client::producer::partitioner::partition_for_key(b"agg-0", 6).unwrap();
            assert_eq!(meta.partition, expected);
            producer.close().await;
        },
    ));

    trials.push(trial(
        "a_full_buffer_blocks_senders_instead_of_growing",
        |_ctx| async move {
            let broker = FaultyBroker::start().await;
            let cluster = Cluster::connect(ClientConfig::new(&broker.bootstrap))
                .await
                .unwrap();
            let topic = topic(&cluster, "backpressure", 1).await;
            let config = ProducerConfig::default()
                .with_buffer_memory(64 * 1024)
                .with_max_request_size(16 * 1024)
                .with_linger(Duration::from_millis(1))
                .with_request_timeout(Duration::from_secs(2))
                .with_delivery_timeout(Duration::from_secs(4));
            let producer = Producer::new(cluster, config).unwrap();
            producer.send_and_wait(event(&topic, "k", 0)).await.unwrap();
            broker.broker.pause(); // the broker stops answering
            let mut handed_over = 0;
            let mut blocked = false;
            let mut pending = Vec::new();
            for i in 1..10_000 {
                match tokio::time::timeout(Duration::from_millis(200), producer.send(event(&topic, "k", i)))
                    .await
                {
                    Ok(delivery) => {
                        pending.push(delivery.unwrap());
                        handed_over += 1;
                    }
                    Err(_) => {
                        blocked = true;
                        break;
                    }
                }
                assert!(producer.buffered_bytes() <= 64 * 1024);
            }
            assert!(blocked, "send never waited ({handed_over} records handed over)");
            assert!(handed_over < 400, "{handed_over} records fit a 64 KiB buffer?");
            // Every record handed over fails with a typed timeout, and memory is released.
            for p in pending {
                let err = p.await.unwrap_err();
                assert!(matches!(err, Error::DeliveryTimeout { .. }), "{err}");
                assert!(err.is_retriable());
            }
            assert_eq!(producer.buffered_bytes(), 0);
            broker.broker.resume();
        },
    ));

    trials.push(trial(
        "idempotence_survives_cut_connections",
        |_ctx| async move {
            let broker = FaultyBroker::start().await;
            let config = ClientConfig::new(&broker.bootstrap)
                .with_reconnect_backoff(Duration::from_millis(5), Duration::from_millis(50));
            let cluster = Cluster::connect(config).await.unwrap();
            let topic = topic(&cluster, "cut", 2).await;
            let producer = Producer::new(
                cluster.clone(),
                ProducerConfig::default()
                    .with_compression(Compression::Lz4)
                    .with_batch_size(2048)
                    .with_linger(Duration::from_millis(1))
                    .with_retry_backoff(Duration::from_millis(10)),
            )
            .unwrap();
            const N: usize = 3_000;
            let mut pending = Vec::with_capacity(N);
            let mut cuts = 0;
            for i in 0..N {
                pending.push(
                    producer
                        .send(event(&topic, &format!("k{}", i % 10), i))
                        .await
                        .unwrap(),
                );
                if i % 300 == 150 {
                    cuts += broker.cut();
                    tokio::task::yield_now().await;
                }
            }
            let mut acknowledged = 0;
            for p in pending {
                p.await.unwrap();
                acknowledged += 1;
            }
            assert!(cuts > 0, "the proxy cut no connection");
            assert_eq!(acknowledged, N);
            // Exactly once in the log: no duplicates, no gaps, per-key order kept.
            let (by_key, total) = read_topic(&cluster, &topic, 2).await;
            assert_eq!(total, N, "duplicates or losses after {cuts} cuts");
            for (key, seqs) in by_key {
                assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order of {key:?}");
            }
            producer.close().await;
        },
    ));

    trials.push(trial(
        "unknown_topics_and_oversized_records_are_typed_errors",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let producer = Producer::new(
                cluster.clone(),
                ProducerConfig::default().with_max_request_size(1024),
            )
            .unwrap();
            let err = producer
                .send(ProducerRecord::new(unique("missing")).with_value("v"))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::UnknownTopic { .. }), "{err}");
            let topic = topic(&cluster, "big", 1).await;
            let err = producer
                .send(ProducerRecord::new(&topic).with_value(vec![0u8; 4096]))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::RecordTooLarge { .. }), "{err}");
            let err = producer
                .send(ProducerRecord::new(&topic).with_partition(9).with_value("v"))
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::UnknownPartition { partition: 9, .. }),
                "{err}"
            );
            producer.close().await;
            let err = producer
                .send(ProducerRecord::new(&topic).with_value("v"))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Closed), "{err}");
        },
    ));
}

/// Test values gzip cannot shrink.
mod produce_sizes {
    use bytes::Bytes;

    /// `len` bytes that gzip cannot shrink (SplitMix64 output).
    pub(crate) fn incompressible(state: &mut u64, len: usize) -> Bytes {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out.truncate(len);
        Bytes::from(out)
    }
}
