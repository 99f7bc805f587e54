//! The dead-letter queue's I/O against a real broker: the acknowledged DLQ send, listing (bounded, never
//! hanging), counting (high watermark, not ListOffsets(latest)) and replay (targeted at the group that
//! dead-lettered the record).

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_event_bus::{
    client::{
        Cluster, NewTopic,
        producer::{Producer, ProducerConfig, ProducerRecord},
    },
    dlq::{
        AdminError, DeadLetter, DlqAdmin, DlqAdminConfig, DlqPayload, DlqReason, DlqSink,
        REPLAY_CONSUMER_GROUP, replay_is_for,
    },
    protocol::Headers,
};

use crate::{fault_proxy::FaultyBroker, read_back::read_partition, support::unique, trial};

/// A main topic and a DLQ topic (created with the given partition counts), and the handles on them.
struct Setup {
    cluster: Cluster,
    producer: Producer,
    topic: String,
    dlq_topic: String,
}

impl Setup {
    async fn new(cluster: Cluster, main_partitions: i32, dlq_partitions: i32) -> Self {
        let topic = unique("dlq-main");
        let dlq_topic = format!("{topic}.dlq");
        cluster
            .ensure_topics(&[
                NewTopic::new(&topic, main_partitions, 1),
                NewTopic::new(&dlq_topic, dlq_partitions, 1),
            ])
            .await
            .unwrap();
        let producer = Producer::new(
            cluster.clone(),
            ProducerConfig::default().with_linger(Duration::from_millis(20)),
        )
        .unwrap();
        Self {
            cluster,
            producer,
            topic,
            dlq_topic,
        }
    }

    fn admin(&self, max_replay_attempts: u32) -> DlqAdmin {
        DlqAdmin::new(
            self.cluster.clone(),
            self.producer.clone(),
            DlqAdminConfig::new(&self.topic, &self.dlq_topic).with_max_replay_attempts(max_replay_attempts),
        )
    }

    fn sink(&self) -> DlqSink {
        DlqSink::new(self.producer.clone(), &self.dlq_topic)
    }
}

fn dead(original_topic: &str, offset: i64, group: &str) -> DeadLetter {
    DeadLetter {
        reason: DlqReason::MaxRetriesExceeded,
        error_type: "ValueError".into(),
        error_message: format!("handler failed at {offset}"),
        retry_count: 3,
        timestamp: micros(time::OffsetDateTime::now_utc()),
        original_topic: original_topic.into(),
        original_partition: 0,
        original_offset: offset,
        consumer_group: group.into(),
    }
}

/// `dlq_timestamp` is written with microseconds (Python's `isoformat()`).
fn micros(t: time::OffsetDateTime) -> time::OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000).unwrap()
}

fn original_headers(i: usize) -> Headers {
    let mut h = Headers::new();
    h.insert("event_id", format!("00000000-0000-0000-0000-{i:012}"));
    h.insert("event_type", "OrderCreated");
    h.insert("retry_count", "3");
    h.insert("retry_after", "1714979290.5");
    h
}

/// Writes `n` records straight to the DLQ topic (no `dlq_*` headers), batched: one `send_all`, so the
/// producer packs several records per batch.
async fn fill(setup: &Setup, n: usize) {
    let records = (0..n).map(|i| {
        ProducerRecord::new(&setup.dlq_topic)
            .with_key(format!("key-{}", i % 3))
            .with_value(format!(r#"{{"i":{i}}}"#))
            .with_headers(original_headers(i))
    });
    for r in setup.producer.send_all(records).await {
        r.unwrap();
    }
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial("sink_then_messages_lists_it", |ctx| async move {
        let setup = Setup::new(ctx.cluster().await, 1, 2).await;
        let sink = setup.sink();
        assert_eq!(sink.topic(), setup.dlq_topic);
        let mut written = Vec::new();
        for i in 0..3 {
            let (key, value) = match i {
                0 => (
                    Some(Bytes::from("order-0")),
                    Some(Bytes::from(r#"{"customer_id":"c-0"}"#)),
                ),
                1 => (None, Some(Bytes::from_static(b"\xff\x00 not json"))),
                _ => (Some(Bytes::from("order-2")), None),
            };
            let mut headers = original_headers(i);
            headers.insert("dup", "a");
            headers.insert("dup", "b");
            let d = dead(&setup.topic, i64::try_from(i).unwrap(), "g1");
            let meta = sink.send(key, value, &headers, &d).await.unwrap();
            assert!(meta.offset >= 0, "acknowledged with an offset");
            written.push((meta, d, headers));
        }

        let admin = setup.admin(3);
        let started = Instant::now();
        let entries = admin.messages(10, Duration::from_secs(5)).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(entries.len(), 3);
        for (meta, d, headers) in &written {
            let e = entries
                .iter()
                .find(|e| e.partition == meta.partition && e.offset == meta.offset)
                .unwrap();
            assert_eq!(e.topic, setup.dlq_topic);
            assert_eq!(e.timestamp, meta.timestamp);
            assert_eq!(e.replay_count, 0);
            assert_eq!(e.dead_letter().unwrap(), *d, "the nine dlq_* headers round-trip");
            // The original headers first, exactly (order, duplicates), then the nine.
            let names: Vec<&str> = e.headers.iter().map(|h| h.key).collect();
            let original: Vec<&str> = headers.iter().map(|h| h.key).collect();
            assert_eq!(names[..original.len()], original[..]);
            assert_eq!(names.len(), original.len() + 9);
            assert!(names[original.len()..].iter().all(|n| n.starts_with("dlq_")));
            assert_eq!(e.headers.get_str("dlq_consumer_group"), Some("g1"));
            assert_eq!(e.headers.get_str("dlq_reason"), Some("max_retries_exceeded"));
            assert_eq!(e.headers.get_str("dlq_retry_count"), Some("3"));
            assert_eq!(
                e.headers.get_str("dlq_original_topic"),
                Some(setup.topic.as_str())
            );
        }
        let by_offset = |original: i64| {
            entries
                .iter()
                .find(|e| e.headers.get_str("dlq_original_offset") == Some(&original.to_string()))
                .unwrap()
        };
        assert_eq!(by_offset(0).key.as_deref(), Some("order-0"));
        assert_eq!(
            by_offset(0).payload,
            Some(DlqPayload::Json(serde_json::json!({"customer_id": "c-0"})))
        );
        assert_eq!(by_offset(1).key, None);
        assert_eq!(
            by_offset(1).payload,
            Some(DlqPayload::Hex("ff00206e6f74206a736f6e".into()))
        );
        assert_eq!(by_offset(2).payload, None);

        // Serialized with eventsource-py's keys, headers as a dict (last value wins).
        // The key order of the serialized text (a `serde_json::Value` sorts its keys).
        let text = serde_json::to_string(by_offset(0)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_by_key(|k| text.find(&format!("\"{k}\":")));
        assert_eq!(
            keys,
            [
                "topic",
                "partition",
                "offset",
                "key",
                "timestamp",
                "headers",
                "payload",
                "replay_count"
            ]
        );
        assert_eq!(json["headers"]["dup"], "b");
        assert_eq!(json["headers"]["dlq_consumer_group"], "g1");
    }));

    trials.push(trial("messages_is_bounded_and_quick", |ctx| async move {
        let cluster = ctx.cluster().await;

        // A DLQ topic that does not exist: nothing, at once, and it is not created.
        let missing = DlqAdmin::new(
            cluster.clone(),
            Producer::new(cluster.clone(), ProducerConfig::default()).unwrap(),
            DlqAdminConfig::new(unique("no-main"), unique("no-dlq")),
        );
        let started = Instant::now();
        assert!(
            missing
                .messages(10, Duration::from_secs(5))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(missing.count().await.unwrap(), 0);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(
            cluster.partitions(&missing.config().dlq_topic).await.is_err(),
            "not created"
        );

        // An empty DLQ topic: nothing, at once (not after the timeout).
        let setup = Setup::new(cluster, 1, 3).await;
        let admin = setup.admin(3);
        let started = Instant::now();
        assert!(
            admin
                .messages(10, Duration::from_secs(5))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(
            admin
                .messages(0, Duration::from_secs(5))
                .await
                .unwrap()
                .is_empty()
        );

        // Fewer than the limit: all of them, at once; more: exactly the limit.
        fill(&setup, 7).await;
        let started = Instant::now();
        let all = admin.messages(100, Duration::from_secs(5)).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(all.len(), 7);
        let mut seen: Vec<i64> = all
            .iter()
            .map(|e| e.headers.get_str("event_id").unwrap()[24..].parse().unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..7).collect::<Vec<i64>>());
        for w in all.windows(2) {
            assert!(
                (w[0].partition, w[0].offset) < (w[1].partition, w[1].offset),
                "partition by partition, in offset order"
            );
        }
        let three = admin.messages(3, Duration::from_secs(5)).await.unwrap();
        assert_eq!(three.len(), 3);
        assert_eq!(three[..], all[..3]);

        // A producer writing all the while does not keep the listing going: it stops at the ends it
        // saw when it started.
        let writer = {
            let producer = setup.producer.clone();
            let topic = setup.dlq_topic.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let r = ProducerRecord::new(&topic)
                        .with_key(format!("w-{i}"))
                        .with_value("{}");
                    if producer.send_and_wait(r).await.is_err() {
                        break;
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let listed = admin.messages(1_000_000, Duration::from_secs(20)).await.unwrap();
        let took = started.elapsed();
        writer.abort();
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(listed.len() > 7, "{}", listed.len());
    }));

    trials.push(trial("count_uses_the_high_watermark", |ctx| async move {
        let setup = Setup::new(ctx.cluster().await, 1, 2).await;
        let admin = setup.admin(3);
        assert_eq!(admin.count().await.unwrap(), 0, "empty topic");

        fill(&setup, 25).await;
        // The records went out in multi-record batches, where ListOffsets(latest) is wrong on Tansu.
        let mut multi = false;
        let mut total = 0;
        for p in 0..2 {
            let records = read_partition(&setup.cluster, &setup.dlq_topic, p).await;
            multi |= records.iter().any(|(_, r)| r.offset_delta > 0);
            total += records.len();
        }
        assert!(multi, "the test needs a batch of more than one record");
        assert_eq!(total, 25);
        assert_eq!(admin.count().await.unwrap(), 25);

        fill(&setup, 10).await;
        assert_eq!(admin.count().await.unwrap(), 35);
        assert_eq!(
            admin.messages(1000, Duration::from_secs(5)).await.unwrap().len(),
            35
        );
    }));

    trials.push(trial("replay_republishes_for_the_failing_group", |ctx| async move {
        let setup = Setup::new(ctx.cluster().await, 1, 1).await;
        let sink = setup.sink();
        let admin = setup.admin(2);

        let headers = original_headers(1);
        let dlq = sink
            .send(
                Some(Bytes::from("order-1")),
                Some(Bytes::from(r#"{"customer_id":"c-1"}"#)),
                &headers,
                &dead(&setup.topic, 41, "shipping"),
            )
            .await
            .unwrap();

        let replayed = admin.replay(dlq.partition, dlq.offset, false).await.unwrap();
        assert_eq!(replayed.topic, setup.topic);
        let main = read_partition(&setup.cluster, &setup.topic, 0).await;
        assert_eq!(main.len(), 1, "acknowledged, so already readable");
        let (offset, record) = &main[0];
        assert_eq!(*offset, replayed.offset);
        assert_eq!(record.key.as_deref(), Some(&b"order-1"[..]));
        assert_eq!(record.value.as_deref(), Some(&br#"{"customer_id":"c-1"}"#[..]));
        let pairs: Vec<(&str, &str)> = record
            .headers
            .iter()
            .map(|h| (h.key, std::str::from_utf8(h.value.unwrap()).unwrap()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("event_id", "00000000-0000-0000-0000-000000000001"),
                ("event_type", "OrderCreated"),
                ("retry_after", "1714979290.5"),
                ("retry_count", "0"),
                ("dlq_replay_count", "1"),
                (REPLAY_CONSUMER_GROUP, "shipping"),
            ]
        );
        assert!(replay_is_for(&record.headers, "shipping"));
        assert!(!replay_is_for(&record.headers, "billing"), "billing handled it already");
        assert_eq!(admin.count().await.unwrap(), 1, "the DLQ record stays");

        // A record replayed as often as allowed is refused, unless forced.
        let mut twice = headers.clone();
        twice.insert("dlq_replay_count", "2");
        let again = sink
            .send(Some(Bytes::from("order-2")), Some(Bytes::from("{}")), &twice, &dead(&setup.topic, 42, "shipping"))
            .await
            .unwrap();
        let err = admin.replay(again.partition, again.offset, false).await.unwrap_err();
        assert!(
            matches!(err, AdminError::ReplayLimit { replay_count: 2, max: 2, .. }),
            "{err:?}"
        );
        assert!(!err.is_retriable());
        assert_eq!(
            err.to_string(),
            format!(
                "Message at partition {}, offset {} has been replayed 2 times, exceeding max of 2. Use force=True to override.",
                again.partition, again.offset
            )
        );
        assert_eq!(read_partition(&setup.cluster, &setup.topic, 0).await.len(), 1, "nothing sent");
        let forced = admin.replay(again.partition, again.offset, true).await.unwrap();
        let main = read_partition(&setup.cluster, &setup.topic, 0).await;
        assert_eq!(main.len(), 2);
        let (offset, record) = &main[1];
        assert_eq!(*offset, forced.offset);
        assert_eq!(record.headers.get_str("dlq_replay_count"), Some("3"));
        assert_eq!(record.headers.get_str("retry_count"), Some("0"));
        assert_eq!(record.headers.get_str(REPLAY_CONSUMER_GROUP), Some("shipping"));
        let dlq_names: Vec<&str> = record
            .headers
            .iter()
            .map(|h| h.key)
            .filter(|k| k.starts_with("dlq_"))
            .collect();
        assert_eq!(dlq_names, ["dlq_replay_count", REPLAY_CONSUMER_GROUP]);

        // Offsets and partitions that hold nothing.
        for (partition, offset) in [(0, 2), (0, 9_999), (0, -1), (7, 0)] {
            let err = admin.replay(partition, offset, true).await.unwrap_err();
            assert!(matches!(err, AdminError::NotFound { .. }), "{partition}/{offset}: {err:?}");
            assert_eq!(err.to_string(), format!("Message not found at offset {offset}"));
        }
        let missing = DlqAdmin::new(
            setup.cluster.clone(),
            setup.producer.clone(),
            DlqAdminConfig::new(&setup.topic, unique("no-dlq")),
        );
        let err = missing.replay(0, 0, false).await.unwrap_err();
        assert!(matches!(err, AdminError::NotFound { .. }), "{err:?}");
        assert_eq!(read_partition(&setup.cluster, &setup.topic, 0).await.len(), 2);
    }));

    trials.push(trial(
        "reads_are_bounded_when_the_broker_is_gone",
        |_ctx| async move {
            let broker = FaultyBroker::start().await;
            let cluster = Cluster::connect(kafka_event_bus::client::ClientConfig::new(&broker.bootstrap))
                .await
                .unwrap();
            let setup = Setup::new(cluster, 1, 2).await;
            fill(&setup, 3).await;
            let admin = DlqAdmin::new(
                setup.cluster.clone(),
                setup.producer.clone(),
                DlqAdminConfig::new(&setup.topic, &setup.dlq_topic).with_read_timeout(Duration::from_secs(1)),
            );
            assert_eq!(admin.messages(10, Duration::from_secs(5)).await.unwrap().len(), 3);
            drop(broker);

            let started = Instant::now();
            let listed = admin.messages(10, Duration::from_secs(1)).await;
            let took = started.elapsed();
            assert!(took < Duration::from_millis(1500), "{took:?}");
            let err = listed.unwrap_err();
            assert!(err.is_retriable(), "{err:?}");

            let started = Instant::now();
            let err = admin.count().await.unwrap_err();
            assert!(
                started.elapsed() < Duration::from_millis(1500),
                "{:?}",
                started.elapsed()
            );
            assert!(err.is_retriable(), "{err:?}");

            let started = Instant::now();
            let err = admin.replay(0, 0, true).await.unwrap_err();
            assert!(
                started.elapsed() < Duration::from_millis(1500),
                "{:?}",
                started.elapsed()
            );
            assert!(err.is_retriable(), "{err:?}");
        },
    ));

    trials.push(trial("sink_failure_is_a_typed_error", |ctx| async move {
        let cluster = ctx.cluster().await;
        let producer = Producer::new(cluster, ProducerConfig::default()).unwrap();
        let sink = DlqSink::new(producer, unique("never-created-dlq"));
        let err = sink
            .send(None, Some(Bytes::from("{}")), &Headers::new(), &dead("t", 0, "g"))
            .await
            .unwrap_err();
        let kafka_event_bus::dlq::SinkError::Send {
            topic,
            original_offset,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(topic, sink.topic());
        assert_eq!(*original_offset, 0);
        assert!(
            !err.is_retriable(),
            "a missing DLQ topic needs an operator: {err}"
        );
    }));
}
