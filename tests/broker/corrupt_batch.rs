//! A record batch that fails to decode, produced as a user would meet it: batches A (valid), B (one
//! bit of its records flipped after the CRC was computed; the broker stores it as sent), C (valid),
//! then D (valid). Nothing past B may be handed out or committed until B is passed, and B's
//! neighbours are never lost.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_event_bus::{
    client::{
        Cluster,
        consumer::{Consumer, ConsumerEvent, PartitionStream},
        subscription::TopicPartition,
    },
    protocol::{Compression, Headers, RecordBatchBuilder},
};
use libtest_mimic::Trial;

use crate::{
    group_support::{create_topic, eventually, fast_config, produce_batch},
    support::unique,
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

pub(crate) fn trials(trials: &mut Vec<Trial>) {
    trials.push(trial(
        "corrupt_batch::stream_and_commit_never_pass_a_corrupt_batch",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("corrupt-stop"), unique("corrupt-stop-g"));
            produce_a_b_c(&cluster, &topic).await;
            let mut consumer = Consumer::subscribe(&cluster, fast_config(&group, &topic)).unwrap();
            let mut stream = assigned(&mut consumer).await;
            for i in 0..3 {
                let r = tokio::time::timeout(WAIT, stream.next()).await.unwrap().unwrap();
                assert_eq!((r.offset, value(&r)), (i, format!("A-{i}")));
                stream.mark_done(r.offset);
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
        "corrupt_batch::try_next_reports_the_batch_and_skip_goes_on_after_it",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("corrupt-skip"), unique("corrupt-skip-g"));
            produce_a_b_c(&cluster, &topic).await;
            let mut consumer = Consumer::subscribe(&cluster, fast_config(&group, &topic)).unwrap();
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
                        stream.mark_done(r.offset);
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
}
