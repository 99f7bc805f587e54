//! A record batch that fails to decode, produced as a user would meet it: batches A (valid), B (one
//! bit of its records flipped after the CRC was computed; the broker stores it as sent), C (valid),
//! then D (valid). Nothing past B may be handed out or committed until B is passed, and B's
//! neighbours are never lost.

use std::{sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus},
    client::{
        Cluster,
        consumer::{Consumer, ConsumerEvent, PartitionStream},
        TopicPartition,
    },
    dlq::{DLQ_ORIGINAL_LAST_OFFSET, DeadLetter, DlqReason},
    event::DomainEvent,
    protocol::{Compression, Headers, RecordBatchBuilder},
};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    bus::{config, warm_up},
    group_support::{create_topic, eventually, fast_config, produce_batch},
    read_back::read_partition,
    support::{OrderCreated, unique},
    trial,
};

const WAIT: Duration = Duration::from_secs(30);

/// A batch of three records `"{tag}-0"`..`"{tag}-2"`.
pub(crate) fn batch(tag: &str) -> Bytes {
    let mut builder = RecordBatchBuilder::new(Compression::None);
    for i in 0..3 {
        let value = format!("{tag}-{i}");
        builder
            .append(
                1_700_000_000_000,
                Some(tag.as_bytes()),
                Some(value.as_bytes()),
                &Headers::new(),
            )
            .unwrap();
    }
    builder.finish().unwrap()
}

/// A batch of three `OrderCreated` events for customers `"{tag}-0"`..`"{tag}-2"`, one aggregate.
pub(crate) fn event_batch(tag: &str) -> Bytes {
    event_batch_in(tag, Compression::None)
}

/// [`event_batch`] compressed with `compression`.
fn event_batch_in(tag: &str, compression: Compression) -> Bytes {
    let aggregate = Uuid::new_v4();
    let mut builder = RecordBatchBuilder::new(compression);
    for i in 0..3 {
        let event = DomainEvent::new(
            aggregate,
            i + 1,
            OrderCreated {
                customer_id: format!("{tag}-{i}"),
            },
        );
        let record = event.into_any().unwrap().to_record();
        builder
            .append(
                1_700_000_000_000,
                Some(&record.key),
                Some(&record.value),
                &record.headers,
            )
            .unwrap();
    }
    builder.finish().unwrap()
}

/// `batch` with one bit of its last byte but one flipped (a record's bytes): the CRC no longer matches.
pub(crate) fn flipped(batch: &Bytes) -> Bytes {
    let mut bytes = BytesMut::from(&batch[..]);
    let at = bytes.len() - 2;
    bytes[at] ^= 0x01;
    bytes.freeze()
}

/// A gzip [`event_batch`] whose compressed records are garbage, with a CRC that matches: it passes the
/// fetcher's checks and fails to decompress.
fn undecompressable(tag: &str) -> Bytes {
    let mut bytes = BytesMut::from(&event_batch_in(tag, Compression::Gzip)[..]);
    let end = bytes.len();
    bytes[61..end].fill(0x5a);
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes.freeze()
}

/// A bus on a fresh prefix (`corrupt_batch_policy` = `policy`) with a handler recording customer ids,
/// warmed up; then A, B (corrupt), C produced to partition 0 of its topic, and D once A was handled.
/// Returns the bus, the ids handled within `settle` after D, partition 0's offset before A, and the
/// bytes of B as sent.
async fn bus_over_a_corrupt_batch(
    ctx: &'static crate::support::Ctx,
    name: &str,
    (policy, in_flight): (&str, usize),
    settle: Duration,
) -> (KafkaEventBus, String, Vec<String>, i64, Bytes) {
    let b = flipped(&event_batch("B"));
    bus_over_a_bad_batch(ctx, name, (policy, in_flight), settle, b).await
}

/// [`bus_over_a_corrupt_batch`] with `b` as B.
async fn bus_over_a_bad_batch(
    ctx: &'static crate::support::Ctx,
    name: &str,
    (policy, in_flight): (&str, usize),
    settle: Duration,
    b: Bytes,
) -> (KafkaEventBus, String, Vec<String>, i64, Bytes) {
    let prefix = unique(name);
    let mut cfg = config(ctx, &prefix, &prefix);
    cfg.corrupt_batch_policy = policy.into();
    cfg.max_in_flight_per_partition = in_flight;
    let bus = KafkaEventBus::new(cfg).unwrap();
    bus.connect().await.unwrap();
    bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(1))
        .await
        .unwrap();
    bus.start_consuming_in_background().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
        let _ = tx.send(e.payload.customer_id.clone());
        std::future::ready(Ok(()))
    })
    .unwrap();
    warm_up(&bus).await;
    let cluster = ctx.cluster().await;
    let topic = format!("{prefix}.stream");
    let start = read_partition(&cluster, &topic, 0).await.len() as i64;
    produce_batch(&cluster, &topic, 0, event_batch("A")).await;
    produce_batch(&cluster, &topic, 0, b.clone()).await;
    produce_batch(&cluster, &topic, 0, event_batch("C")).await;
    let mut handled = Vec::new();
    while handled.len() < 3 {
        let id = tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        handled.push(id);
    }
    produce_batch(&cluster, &topic, 0, event_batch("D")).await;
    let until = tokio::time::Instant::now() + settle;
    while let Ok(Some(id)) = tokio::time::timeout_at(until, rx.recv()).await {
        handled.push(id);
    }
    (bus, topic, handled, start, b)
}

/// The offset the group `group` committed for partition 0 of `topic`, as a new member of it sees it.
/// Shuts `bus` (over `topic`) down, checks its counts of corrupt batches and of events sent to the DLQ,
/// and returns the offset its group committed on partition 0.
async fn shut_down(
    ctx: &'static crate::support::Ctx,
    bus: &KafkaEventBus,
    topic: &str,
    corrupt_and_dead_lettered: (u64, u64),
) -> Option<i64> {
    bus.shutdown(Duration::from_secs(10)).await.unwrap();
    let stats = bus.stats();
    assert_eq!(
        (stats.corrupt_batches, stats.messages_sent_to_dlq),
        corrupt_and_dead_lettered,
        "{stats:?}"
    );
    committed(ctx, topic.trim_end_matches(".stream"), topic).await
}

async fn committed(ctx: &'static crate::support::Ctx, group: &str, topic: &str) -> Option<i64> {
    let cluster = ctx.cluster().await;
    let mut consumer = Consumer::connect(&cluster, fast_config(group, topic)).unwrap();
    let _stream = assigned(&mut consumer).await;
    let at = consumer.committed(&TopicPartition::new(topic, 0));
    drop(_stream);
    consumer.close().await;
    at
}

fn ids(tag: &str) -> Vec<String> {
    (0..3).map(|i| format!("{tag}-{i}")).collect()
}

/// [`batch`] with one bit of its last record flipped: the stored CRC no longer matches.
pub(crate) fn corrupt_batch(tag: &str) -> Bytes {
    let mut bytes = BytesMut::from(&batch(tag)[..]);
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    bytes.freeze()
}

/// Produces A, B (corrupt) and C, three records each, to partition 0 of a new topic: offsets 0..=2,
/// 3..=5 and 6..=8.
pub(crate) async fn produce_a_b_c(cluster: &Cluster, topic: &str) {
    create_topic(cluster, topic, 1).await;
    produce_batch(cluster, topic, 0, batch("A")).await;
    produce_batch(cluster, topic, 0, corrupt_batch("B")).await;
    produce_batch(cluster, topic, 0, batch("C")).await;
}

async fn assigned(consumer: &mut Consumer) -> PartitionStream {
    match tokio::time::timeout(WAIT, consumer.next_event()).await.unwrap() {
        Some(ConsumerEvent::Assigned(mut streams)) => streams.remove(0),
        other => panic!("unexpected {other:?}"),
    }
}

fn value(r: &kafka_event_bus::client::consumer::ConsumerRecord) -> String {
    String::from_utf8(r.value.clone().unwrap_or_default().to_vec()).unwrap()
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "stream_and_commit_never_pass_a_corrupt_batch",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("corrupt-stop"), unique("corrupt-stop-g"));
            produce_a_b_c(&cluster, &topic).await;
            let mut consumer = Consumer::connect(&cluster, fast_config(&group, &topic)).unwrap();
            let mut stream = assigned(&mut consumer).await;
            for i in 0..3 {
                let r = tokio::time::timeout(WAIT, stream.next()).await.unwrap().unwrap();
                assert_eq!((r.offset, value(&r)), (i, format!("A-{i}")));
                stream.store_offset(r.offset + 1);
            }
            produce_batch(&cluster, &topic, 0, batch("D")).await;
            // B cannot be decoded: nothing after it is handed out (neither C nor D).
            if let Ok(Some(r)) = tokio::time::timeout(Duration::from_secs(3), stream.next()).await {
                panic!(
                    "record {} ({}) handed out past the corrupt batch at 3",
                    r.offset,
                    value(&r)
                );
            }
            let tp = TopicPartition::new(topic.as_str(), 0);
            eventually("A committed", WAIT, || consumer.committed(&tp) == Some(3)).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(
                consumer.committed(&tp),
                Some(3),
                "the committed offset stays at B"
            );
            assert_eq!(consumer.position(&tp), Some(3), "the position stays at B");
            consumer.close().await;
        },
    ));
    trials.push(trial(
        "try_next_reports_the_batch_and_skip_goes_on_after_it",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("corrupt-skip"), unique("corrupt-skip-g"));
            produce_a_b_c(&cluster, &topic).await;
            let mut consumer = Consumer::connect(&cluster, fast_config(&group, &topic)).unwrap();
            let mut stream = assigned(&mut consumer).await;
            let mut seen = Vec::new();
            let mut errors = Vec::new();
            while seen.len() < 9 {
                match tokio::time::timeout(WAIT, stream.try_next())
                    .await
                    .unwrap()
                    .unwrap()
                {
                    Ok(r) => {
                        seen.push((r.offset, value(&r)));
                        stream.store_offset(r.offset + 1);
                        if seen.len() == 6 {
                            produce_batch(&cluster, &topic, 0, batch("D")).await;
                        }
                    }
                    Err(e) => {
                        assert_eq!(
                            (e.topic(), e.partition(), e.offsets()),
                            (topic.as_str(), 0, (3, 5)),
                            "{e}"
                        );
                        assert!(e.is_retriable(), "a CRC mismatch: {e}");
                        assert_eq!(e.batch().map(Bytes::len), Some(corrupt_batch("B").len()));
                        errors.push(e.to_string());
                        assert!(stream.skip_failed_batch());
                    }
                }
            }
            assert_eq!(errors.len(), 1, "{errors:?}");
            let want: Vec<(i64, String)> = ["A", "C", "D"]
                .iter()
                .zip([0, 6, 9])
                .flat_map(|(tag, base)| (0..3).map(move |i| (base + i, format!("{tag}-{i}"))))
                .collect();
            assert_eq!(seen, want);
            let tp = TopicPartition::new(topic.as_str(), 0);
            eventually("D committed", WAIT, || consumer.committed(&tp) == Some(12)).await;
            consumer.close().await;
        },
    ));
    trials.push(trial(
        "the_bus_dead_letters_a_corrupt_batch_and_handles_its_neighbours",
        |ctx| async move {
            let (bus, topic, handled, start, b) =
                bus_over_a_corrupt_batch(ctx, "corrupt-bus", ("dead_letter", 1), Duration::from_secs(3))
                    .await;
            assert_eq!(handled, [ids("A"), ids("C"), ids("D")].concat());
            let committed = shut_down(ctx, &bus, &topic, (1, 1)).await;
            let cluster = ctx.cluster().await;
            let dlq = read_partition(&cluster, &format!("{topic}.dlq"), 0).await;
            assert_eq!(dlq.len(), 1);
            let record = &dlq[0].1;
            let letter = DeadLetter::from_headers(&record.headers).unwrap();
            assert_eq!(letter.reason, DlqReason::CorruptBatch);
            assert_eq!(letter.error_type, "CrcMismatch");
            assert_eq!(
                (letter.original_partition, letter.original_offset),
                (0, start + 3)
            );
            assert_eq!(
                record.headers.get_str(DLQ_ORIGINAL_LAST_OFFSET),
                Some((start + 5).to_string().as_str())
            );
            assert!(letter.error_message.contains("CRC"), "{}", letter.error_message);
            let value = record.value.clone().unwrap();
            assert_eq!(value.len(), b.len());
            assert_eq!(
                value[12..],
                b[12..],
                "the batch as stored (its base offset set by the broker)"
            );
            assert_eq!(committed, Some(start + 12), "after D");
        },
    ));
    trials.push(trial(
        "the_bus_stops_at_a_corrupt_batch_with_the_stop_policy",
        |ctx| async move {
            let (bus, topic, handled, start, _) =
                bus_over_a_corrupt_batch(ctx, "corrupt-stop-bus", ("stop", 1), Duration::from_secs(3)).await;
            // The first three handled are A's; nothing after B.
            assert_eq!(handled, ids("A"));
            let committed = shut_down(ctx, &bus, &topic, (1, 0)).await;
            assert_eq!(committed, Some(start + 3), "at B");
        },
    ));
    trials.push(trial(
        "fetches_fit_in_the_largest_response_the_connection_takes",
        |ctx| async move {
            // fetch_max_bytes (2 MiB by default) above max_response_size: a Fetch asking for it got a
            // response the connection refused, and the same Fetch again, forever.
            let mut client = ctx.config();
            client.max_response_size = 256 << 10;
            let cluster = Cluster::connect(client).await.unwrap();
            let (topic, group) = (unique("small-frames"), unique("small-frames-g"));
            create_topic(&cluster, &topic, 1).await;
            let payload = "x".repeat(1000);
            for b in 0..20 {
                let values: Vec<String> = (0..50).map(|i| format!("{b}-{i}-{payload}")).collect();
                crate::group_support::produce(&cluster, &topic, 0, &values, Compression::None).await;
            }
            let mut consumer = Consumer::connect(&cluster, fast_config(&group, &topic)).unwrap();
            let mut stream = assigned(&mut consumer).await;
            for offset in 0..1000 {
                let r = tokio::time::timeout(Duration::from_secs(15), stream.next())
                    .await
                    .expect("records keep coming")
                    .unwrap();
                assert_eq!(r.offset, offset);
            }
            consumer.close().await;
        },
    ));
    trials.push(trial(
        "the_keyed_worker_dead_letters_a_corrupt_batch_too",
        |ctx| async move {
            let (bus, topic, mut handled, start, _) =
                bus_over_a_corrupt_batch(ctx, "corrupt-keyed", ("dead_letter", 4), Duration::from_secs(3))
                    .await;
            // Keys run concurrently: C's and D's records may interleave.
            handled.sort();
            assert_eq!(handled, [ids("A"), ids("C"), ids("D")].concat());
            let committed = shut_down(ctx, &bus, &topic, (1, 1)).await;
            assert_eq!(committed, Some(start + 12), "after D");
        },
    ));
    trials.push(trial(
        "a_batch_that_fails_to_decompress_is_dead_lettered_and_its_neighbours_handled",
        |ctx| async move {
            let (bus, topic, handled, start, b) = bus_over_a_bad_batch(
                ctx,
                "undecompressable",
                ("dead_letter", 1),
                Duration::from_secs(3),
                undecompressable("B"),
            )
            .await;
            assert_eq!(handled, [ids("A"), ids("C"), ids("D")].concat());
            let committed = shut_down(ctx, &bus, &topic, (1, 1)).await;
            let cluster = ctx.cluster().await;
            let dlq = read_partition(&cluster, &format!("{topic}.dlq"), 0).await;
            let letter = DeadLetter::from_headers(&dlq[0].1.headers).unwrap();
            assert_eq!(
                (letter.reason, letter.error_type.as_str()),
                (DlqReason::CorruptBatch, "Decompress")
            );
            assert_eq!(letter.original_offset, start + 3);
            assert_eq!(dlq[0].1.value.as_ref().map(Bytes::len), Some(b.len()));
            assert_eq!(committed, Some(start + 12), "after D");
        },
    ));
}
