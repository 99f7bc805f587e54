//! The fetcher and the consumer API against a real broker: codecs, backpressure, pause/resume,
//! `auto_offset_reset=latest`, commits of stored offsets and the poll timeout.

use std::time::Duration;

use kafka_event_bus::{
    client::{
        consumer::{Consumer, ConsumerEvent, PartitionStream},
        group::LeaveReason,
        OffsetReset, TopicPartition,
    },
    protocol::Compression,
};

use crate::{
    group_support::{create_topic, eventually, fast_config, produce, produce_batch},
    support::unique,
    trial,
};

const WAIT: Duration = Duration::from_secs(30);

/// Waits for the first assignment and returns its streams sorted by partition.
async fn assigned(consumer: &mut Consumer) -> Vec<PartitionStream> {
    match tokio::time::timeout(WAIT, consumer.next_event()).await.unwrap() {
        Some(ConsumerEvent::Assigned(mut streams)) => {
            streams.sort_by_key(|s| s.topic_partition().partition);
            streams
        }
        Some(other) => panic!("unexpected {other:?}"),
        None => panic!("consumer stopped"),
    }
}

/// Reads `stream` in chunks (marking them done) until `count` reaches `target`.
async fn read_to(target: usize, stream: &mut PartitionStream, mut count: usize) -> usize {
    while count < target {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next_chunk())
            .await
            .unwrap()
            .unwrap();
        count += chunk.len();
        stream.store_offset(chunk.last().unwrap().offset + 1);
    }
    count
}

async fn next(stream: &mut PartitionStream) -> Option<kafka_event_bus::client::consumer::ConsumerRecord> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a record within 10 s")
}

/// The long poll of the lane trials: far longer than anything they wait for.
const LONG_POLL: Duration = Duration::from_secs(10);

/// 100 records of ~1 KB, tagged with `batch`.
fn kilobyte_records(batch: usize) -> Vec<String> {
    let payload = "x".repeat(1000);
    (0..100).map(|i| format!("{batch}-{i}-{payload}")).collect()
}

/// A 2-partition topic with `batches` of [`kilobyte_records`] on partition 0 and none on partition 1,
/// and a consumer of it with one-chunk buffers and a [`LONG_POLL`]: (consumer, partition 0, partition 1).
async fn beside_an_idle_partition(
    cluster: &kafka_event_bus::client::Cluster,
    name: &str,
    batches: std::ops::Range<usize>,
) -> (Consumer, PartitionStream, PartitionStream) {
    let (topic, group) = (unique(name), unique(&format!("{name}-g")));
    create_topic(cluster, &topic, 2).await;
    for b in batches {
        produce(cluster, &topic, 0, &kilobyte_records(b), Compression::None).await;
    }
    let mut config = fast_config(&group, &topic);
    config.fetch.fetch_max_wait = LONG_POLL;
    config.fetch.max_buffered_fetches = 1;
    let mut consumer = Consumer::connect(cluster, config).unwrap();
    let mut streams = assigned(&mut consumer).await;
    let idle = streams.pop().unwrap();
    let busy = streams.pop().unwrap();
    assert_eq!(busy.topic_partition().partition, 0);
    (consumer, busy, idle)
}

/// Reads `records` from `stream`, each chunk within half the [`LONG_POLL`] and all of them within it:
/// no chunk waited for a long poll. Returns how long it took.
async fn read_before_the_long_poll_ends(stream: &mut PartitionStream, records: usize) -> Duration {
    let started = std::time::Instant::now();
    let mut read = 0;
    while read < records {
        let chunk = tokio::time::timeout(LONG_POLL / 2, stream.next_chunk())
            .await
            .expect("the next chunk before the idle partition's long poll ends")
            .unwrap();
        read += chunk.len();
    }
    let took = started.elapsed();
    assert!(took < LONG_POLL, "{took:?}: a chunk waited for the long poll");
    took
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    throughput_trial(trials);
    fault_trials(trials);
    trials.push(trial(
        "every_codec_round_trips_with_headers",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("codecs"), unique("codecs-g"));
            create_topic(&cluster, &topic, 1).await;
            let codecs = [
                Compression::None,
                Compression::Gzip,
                Compression::Snappy,
                Compression::Lz4,
                Compression::Zstd,
            ];
            let mut expected = Vec::new();
            for codec in codecs {
                let values: Vec<String> = (0..20).map(|i| format!("{codec:?}-{i}")).collect();
                produce(&cluster, &topic, 0, &values, codec).await;
                expected.extend(values);
            }
            let mut consumer = Consumer::connect(&cluster, fast_config(&group, &topic)).unwrap();
            let mut streams = assigned(&mut consumer).await;
            let stream = &mut streams[0];
            for (i, want) in expected.iter().enumerate() {
                let r = next(stream).await.unwrap();
                assert_eq!(r.offset, i64::try_from(i).unwrap());
                assert_eq!(r.value.as_deref(), Some(want.as_bytes()));
                assert_eq!(r.key.as_deref(), Some(want.as_bytes()));
                assert_eq!(r.headers.get_str("value"), Some(want.as_str()));
                stream.store_offset(r.offset + 1);
            }
            assert_eq!(stream.high_watermark(), Some(100));
            assert_eq!(stream.lag(), Some(0));
            drop(streams);
            consumer.close().await;
        },
    ));

    trials.push(trial(
        "unread_partition_stops_growing_while_others_flow_and_pause_resume",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("backpressure"), unique("backpressure-g"));
            create_topic(&cluster, &topic, 2).await;
            // 2 × 4,000 records of ~1 KB (Tansu ignores the partition byte limit, so a chunk can be large).
            let payload = "x".repeat(1000);
            for p in 0..2 {
                for b in 0..40 {
                    let values: Vec<String> = (0..100).map(|i| format!("{p}-{b}-{i}-{payload}")).collect();
                    produce(&cluster, &topic, p, &values, Compression::None).await;
                }
            }
            let mut config = fast_config(&group, &topic);
            config.fetch.max_partition_fetch_bytes = 16 * 1024;
            config.fetch.max_buffered_fetches = 2;
            let mut consumer = Consumer::connect(&cluster, config).unwrap();
            let mut streams = assigned(&mut consumer).await;
            let mut flowing = streams.pop().unwrap();
            let mut idle = streams.pop().unwrap();
            let idle_tp = idle.topic_partition().clone();
            assert_eq!(idle_tp.partition, 0);

            // Partition 1 is read to the end while partition 0 is never read.
            assert_eq!(read_to(4000, &mut flowing, 0).await, 4000);
            assert!(consumer.buffered_chunks(&idle_tp) <= 2);
            let position = consumer.position(&idle_tp).unwrap();
            // More data for both: the reader keeps flowing, the unread partition is not fetched at all.
            for p in 0..2 {
                for b in 40..60 {
                    let values: Vec<String> = (0..100).map(|i| format!("{p}-{b}-{i}-{payload}")).collect();
                    produce(&cluster, &topic, p, &values, Compression::None).await;
                }
            }
            assert_eq!(read_to(6000, &mut flowing, 4000).await, 6000);
            assert_eq!(
                consumer.position(&idle_tp),
                Some(position),
                "no fetching while its buffer is full"
            );
            assert!(consumer.buffered_chunks(&idle_tp) <= 2);
            eprintln!("[backpressure] unread partition held at position {position} of 6000, 2 chunks");

            // Explicit pause: once the buffered chunks are drained, nothing more arrives.
            idle.pause();
            let mut seen = 0;
            while let Ok(Some(chunk)) =
                tokio::time::timeout(Duration::from_millis(800), idle.next_chunk()).await
            {
                seen += chunk.len();
            }
            let paused_at = consumer.position(&idle_tp).unwrap();
            assert_eq!(
                i64::try_from(seen).unwrap(),
                paused_at,
                "everything fetched was delivered, then silence"
            );
            idle.resume();
            let mut total = seen;
            while total < 6000 {
                total += tokio::time::timeout(Duration::from_secs(10), idle.next_chunk())
                    .await
                    .unwrap()
                    .unwrap()
                    .len();
            }
            assert_eq!(total, 6000);
            drop((idle, flowing));
            consumer.close().await;
        },
    ));

    trials.push(trial(
        "records_waiting_never_wait_behind_an_idle_partitions_long_poll",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            // A backlog of 40 batches on partition 0; partition 1 stays empty.
            let (consumer, mut backlog, idle) = beside_an_idle_partition(&cluster, "lanes", 0..40).await;
            let tp = backlog.topic_partition().clone();
            // Both partitions start without a known end; the empty one must not hold the first look
            // at the other for its long poll. Then partition 0's buffer fills while nobody reads, so
            // the fetcher's next Fetch can only be the idle partition's long poll.
            let first = eventually("a chunk buffered", LONG_POLL / 2, || {
                consumer.buffered_chunks(&tp) == 1
            })
            .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let held_at = consumer.position(&tp).unwrap();
            assert!(
                held_at < 4000,
                "records are left to fetch after the first ({held_at})"
            );
            // Each chunk taken makes room for the next; with one Fetch per broker the next one would
            // leave only when the idle partition's 10 s long poll ends.
            let took = read_before_the_long_poll_ends(&mut backlog, 4000).await;
            eprintln!("[lanes] first chunk after {first:?}; 4000 records in {took:?}");
            drop((idle, backlog));
            consumer.close().await;
        },
    ));

    trials.push(trial(
        "records_that_arrive_while_a_full_buffer_waits_are_fetched_once_it_drains",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (consumer, mut refilled, idle) = beside_an_idle_partition(&cluster, "refill", 0..1).await;
            let tp = refilled.topic_partition().clone();
            // Partition 0 is fetched to its end and its one-chunk buffer is full; partition 1 (empty)
            // sits in a 10 s long poll. Then partition 0 gets 4,000 more records.
            eventually("partition 0 at its end", LONG_POLL / 2, || {
                consumer.position(&tp) == Some(100) && consumer.buffered_chunks(&tp) == 1
            })
            .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            for b in 1..=40 {
                produce(&cluster, &tp.topic, 0, &kilobyte_records(b), Compression::None).await;
            }
            // Its end as last fetched is stale: once the buffer drains, it must be looked at again, not
            // put behind the idle partition's long poll.
            let took = read_before_the_long_poll_ends(&mut refilled, 4100).await;
            eprintln!("[refill] the first 100 and 4,000 new records in {took:?}");
            drop((idle, refilled));
            consumer.close().await;
        },
    ));

    trials.push(trial(
        "latest_reset_skips_existing_records_multi_record_batches",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("latest"), unique("latest-g"));
            create_topic(&cluster, &topic, 1).await;
            // Multi-record batches: exactly where Tansu's ListOffsets(latest) answers wrongly (11, not 20).
            let old: Vec<String> = (0..10).map(|i| format!("old{i}")).collect();
            produce(&cluster, &topic, 0, &old, Compression::None).await;
            produce(&cluster, &topic, 0, &old, Compression::None).await;
            let mut consumer = Consumer::connect(
                &cluster,
                fast_config(&group, &topic).with_auto_offset_reset(OffsetReset::Latest),
            )
            .unwrap();
            let mut streams = assigned(&mut consumer).await;
            let tp = TopicPartition::new(&topic, 0);
            eventually("position found", WAIT, || consumer.position(&tp).is_some()).await;
            assert_eq!(consumer.position(&tp), Some(20), "latest = the true log end");
            produce(&cluster, &topic, 0, &["new".to_owned()], Compression::None).await;
            let r = next(&mut streams[0]).await.unwrap();
            assert_eq!((r.offset, r.value.as_deref()), (20, Some(&b"new"[..])));
            drop(streams);
            consumer.close().await;
        },
    ));

    trials.push(trial(
        "latest_reset_on_an_empty_partition",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("latest-empty"), unique("latest-empty-g"));
            create_topic(&cluster, &topic, 1).await;
            let mut consumer = Consumer::connect(
                &cluster,
                fast_config(&group, &topic).with_auto_offset_reset(OffsetReset::Latest),
            )
            .unwrap();
            let mut streams = assigned(&mut consumer).await;
            let tp = TopicPartition::new(&topic, 0);
            eventually("position found", WAIT, || consumer.position(&tp).is_some()).await;
            assert_eq!(consumer.position(&tp), Some(0));
            produce(&cluster, &topic, 0, &["first".to_owned()], Compression::None).await;
            assert_eq!(next(&mut streams[0]).await.unwrap().offset, 0);
            drop(streams);
            consumer.close().await;
        },
    ));

    trials.push(trial(
        "only_stored_offsets_are_committed",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("done"), unique("done-g"));
            create_topic(&cluster, &topic, 1).await;
            let values: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
            produce(&cluster, &topic, 0, &values, Compression::None).await;
            let tp = TopicPartition::new(&topic, 0);

            let mut consumer = Consumer::connect(&cluster, fast_config(&group, &topic)).unwrap();
            let mut streams = assigned(&mut consumer).await;
            for _ in 0..10 {
                next(&mut streams[0]).await.unwrap();
            }
            // Handed out 10, but only 0..=3 are handled: 4 is stored.
            streams[0].store_offset(4);
            eventually("periodic commit", WAIT, || consumer.committed(&tp) == Some(4)).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(consumer.committed(&tp), Some(4));
            drop(streams);
            // Close with the stream dropped: the revocation does not wait, and commits nothing more.
            consumer.close().await;

            let mut again = Consumer::connect(&cluster, fast_config(&group, &topic)).unwrap();
            let mut streams = assigned(&mut again).await;
            let r = next(&mut streams[0]).await.unwrap();
            assert_eq!(r.offset, 4, "resumes at the last stored offset");
            drop(streams);
            again.close().await;
        },
    ));

    trials.push(trial(
        "consumer_and_partition_streams_are_streams",
        |ctx| async move {
            use futures::StreamExt;

            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("streams"), unique("streams-g"));
            create_topic(&cluster, &topic, 1).await;
            let values: Vec<String> = (0..3).map(|i| format!("v{i}")).collect();
            produce(&cluster, &topic, 0, &values, Compression::None).await;
            let tp = TopicPartition::new(&topic, 0);

            let mut consumer = Consumer::connect(&cluster, fast_config(&group, &topic)).unwrap();
            let event = tokio::time::timeout(WAIT, StreamExt::next(&mut consumer))
                .await
                .unwrap();
            let Some(ConsumerEvent::Assigned(mut streams)) = event else {
                panic!("expected an assignment, got {event:?}");
            };
            let stream = &mut streams[0];
            let records: Vec<_> =
                tokio::time::timeout(WAIT, StreamExt::take(&mut *stream, 3).collect::<Vec<_>>())
                    .await
                    .unwrap();
            let values: Vec<_> = records
                .into_iter()
                .map(|r| String::from_utf8(r.unwrap().value.unwrap().to_vec()).unwrap())
                .collect();
            assert_eq!(values, ["v0", "v1", "v2"]);
            stream.store_offset(3);
            eventually("periodic commit", WAIT, || consumer.committed(&tp) == Some(3)).await;
            drop(streams);
            consumer.close().await;
        },
    ));

    trials.push(trial(
        "stalled_handler_leaves_the_group_then_rejoins",
        |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("stall"), unique("stall-g"));
            create_topic(&cluster, &topic, 1).await;
            produce(
                &cluster,
                &topic,
                0,
                &["a".to_owned(), "b".to_owned()],
                Compression::None,
            )
            .await;
            let config = fast_config(&group, &topic)
                .with_max_poll_interval(Duration::from_secs(3))
                .with_revoke_timeout(Duration::from_millis(500));
            let mut consumer = Consumer::connect(&cluster, config).unwrap();
            let mut streams = assigned(&mut consumer).await;
            // Take one record and never finish it: the handler is stuck.
            let stuck = next(&mut streams[0]).await.unwrap();
            let left = tokio::time::timeout(WAIT, async {
                loop {
                    match consumer.next_event().await {
                        Some(ConsumerEvent::Left(reason)) => return reason,
                        Some(_) => {}
                        None => panic!("stopped"),
                    }
                }
            })
            .await
            .unwrap();
            assert_eq!(left, LeaveReason::PollTimeout);
            assert!(streams[0].is_revoked());
            // The handler recovers: it finishes its record and drops the stream; the member rejoins.
            streams[0].store_offset(stuck.offset + 1);
            drop(streams);
            let mut streams = assigned(&mut consumer).await;
            let r = next(&mut streams[0]).await.unwrap();
            // It was not done when the member left, so nothing was committed: it comes again.
            assert_eq!(r.offset, stuck.offset, "only done offsets are committed");
            drop(streams);
            consumer.close().await;
        },
    ));
}

/// A rough consume-throughput probe (not the benchmark): `cargo test --release --test broker --
/// --ignored consumer::throughput --nocapture`.
fn throughput_trial(trials: &mut crate::Trials<'_>) {
    trials.push(
        trial("throughput_probe", |ctx| async move {
            let cluster = ctx.cluster().await;
            let (topic, group) = (unique("tput"), unique("tput-g"));
            create_topic(&cluster, &topic, 6).await;
            // The benchmark's shape, roughly: ~400 B JSON value, a short key, 7 small headers.
            let body = "y".repeat(340);
            let mut headers = kafka_event_bus::protocol::Headers::new();
            for h in [
                "event_type",
                "event_id",
                "aggregate_id",
                "aggregate_type",
                "version",
                "timestamp",
                "traceparent",
            ] {
                headers.insert(h, "0123456789abcdef");
            }
            for p in 0..6 {
                for b in 0..67 {
                    let mut builder = kafka_event_bus::protocol::RecordBatchBuilder::new(Compression::None);
                    for i in 0..500 {
                        let value = format!("{{\"p\":{p},\"b\":{b},\"i\":{i},\"x\":\"{body}\"}}");
                        let key = format!("agg-{}", i % 1000);
                        builder
                            .append(
                                1_700_000_000_000,
                                Some(key.as_bytes()),
                                Some(value.as_bytes()),
                                &headers,
                            )
                            .unwrap();
                    }
                    produce_batch(&cluster, &topic, p, builder.finish().unwrap()).await;
                }
            }
            let total = 6 * 67 * 500;
            let mut consumer = Consumer::connect(&cluster, fast_config(&group, &topic)).unwrap();
            let streams = assigned(&mut consumer).await;
            let start = std::time::Instant::now();
            let mut workers = Vec::new();
            for mut stream in streams {
                workers.push(tokio::spawn(async move {
                    let mut n = 0usize;
                    let mut bytes = 0usize;
                    while n < total / 6 {
                        let Some(chunk) = stream.next_chunk().await else {
                            break;
                        };
                        for r in &chunk {
                            bytes += r.value.as_ref().map_or(0, |v| v.len());
                        }
                        n += chunk.len();
                        stream.store_offset(chunk.last().unwrap().offset + 1);
                    }
                    (n, bytes)
                }));
            }
            let mut n = 0;
            for w in workers {
                n += w.await.unwrap().0;
            }
            let elapsed = start.elapsed();
            eprintln!(
                "{{\"records\":{n},\"seconds\":{:.3},\"records_per_s\":{:.0}}}",
                elapsed.as_secs_f64(),
                n as f64 / elapsed.as_secs_f64()
            );
            assert_eq!(n, total);
            consumer.close().await;
        })
        .with_ignored_flag(true),
    );
}

/// Connection loss and a coordinator that forgets the group: the broker is stopped and restarted
/// (memory storage: it comes back empty). The consumer reconnects, rediscovers the coordinator, rejoins
/// and reads the new log from the start.
fn fault_trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial("survives_a_broker_restart", |_ctx| async move {
        let mut broker = tokio::task::spawn_blocking(kafka_event_bus::testing::LocalBroker::start)
            .await
            .unwrap()
            .unwrap();
        let config = kafka_event_bus::client::ClientConfig::new(broker.bootstrap_servers())
            .with_reconnect_deadline(Duration::from_secs(2))
            .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
            .with_request_timeout(Duration::from_secs(5));
        let cluster = kafka_event_bus::client::Cluster::connect(config).await.unwrap();
        let (topic, group) = (unique("restart-broker"), unique("restart-broker-g"));
        create_topic(&cluster, &topic, 2).await;
        for p in 0..2 {
            let values: Vec<String> = (0..10).map(|i| format!("before-{p}-{i}")).collect();
            produce(&cluster, &topic, p, &values, Compression::None).await;
        }
        let member = crate::group_support::TestMember::start(&cluster, fast_config(&group, &topic));
        eventually("first records", WAIT, || member.records().len() >= 20).await;

        tokio::task::block_in_place(|| broker.stop());
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| broker.restart()).unwrap();
        let restarted = std::time::Instant::now();
        create_topic(&cluster, &topic, 2).await;
        for p in 0..2 {
            let values: Vec<String> = (0..5).map(|i| format!("after-{p}-{i}")).collect();
            produce(&cluster, &topic, p, &values, Compression::None).await;
        }
        eventually("records of the new log", Duration::from_secs(60), || {
            member
                .records()
                .iter()
                .filter(|(_, _, v)| v.starts_with("after-"))
                .count()
                >= 10
        })
        .await;
        eprintln!(
            "[broker restart] consuming again {:?} after the restart",
            restarted.elapsed()
        );
        let after: Vec<_> = member
            .records()
            .into_iter()
            .filter(|(_, _, v)| v.starts_with("after-"))
            .collect();
        let mut offsets: Vec<(i32, i64)> = after.iter().map(|(tp, o, _)| (tp.partition, *o)).collect();
        offsets.sort_unstable();
        offsets.dedup();
        assert_eq!(
            offsets.len(),
            10,
            "every new record, from offset 0 of the new log: {offsets:?}"
        );
        member.close().await;
    }));
}
