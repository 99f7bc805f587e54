//! Offset resets of a new group on a topic with many partitions: earliest resolved per leader in a few
//! requests, latest per partition; every partition starts exactly where `auto_offset_reset` says.

use std::time::Duration;

use kafka_event_bus::{
    client::{
        consumer::{Consumer, ConsumerConfig, ConsumerEvent, PartitionStream},
        ClientConfig, Cluster, OffsetReset, TopicPartition,
    },
    protocol::Compression,
};

use crate::{
    fault_proxy::FaultyBroker,
    group_support::{create_topic, eventually, fast_config, produce},
    support::unique,
    trial,
};

const WAIT: Duration = Duration::from_secs(30);
const PARTITIONS: i32 = 64;
/// ListOffsets' API key.
const LIST_OFFSETS: i16 = 2;

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

/// Two batches of `size` records per partition (offsets 0..2×size), each value naming its
/// partition: multi-record batches, where Tansu's ListOffsets(latest) is wrong.
async fn fill(cluster: &Cluster, topic: &str, size: usize, pad: usize) {
    for p in 0..PARTITIONS {
        for b in 0..2 {
            let values: Vec<String> = (0..size)
                .map(|i| format!("p{p}-b{b}-{i}-{}", "x".repeat(pad)))
                .collect();
            produce(cluster, topic, p, &values, Compression::None).await;
        }
    }
}

/// A new group at `reset` on a filled topic: checks every partition's position and first record.
async fn new_group_starts_right(
    cluster: &Cluster,
    topic: &str,
    config: ConsumerConfig,
    reset: OffsetReset,
    log_end: i64,
) {
    let mut consumer = Consumer::connect(cluster, config.with_auto_offset_reset(reset)).unwrap();
    let mut streams = assigned(&mut consumer).await;
    assert_eq!(streams.len(), usize::try_from(PARTITIONS).unwrap());
    let tps: Vec<TopicPartition> = (0..PARTITIONS).map(|p| TopicPartition::new(topic, p)).collect();
    eventually("every position found", WAIT, || {
        tps.iter().all(|tp| consumer.position(tp).is_some())
    })
    .await;
    let start = if reset == OffsetReset::Latest { log_end } else { 0 };
    // Earliest: the fetcher may already have moved past the log start, but only over whole batches
    // fetched from it (each `log_end / 2` records); the first record below shows where it started.
    let possible = if reset == OffsetReset::Latest {
        vec![start]
    } else {
        vec![0, log_end / 2, log_end]
    };
    for tp in &tps {
        assert!(
            consumer.position(tp).is_some_and(|p| possible.contains(&p)),
            "{tp}: position {:?}, expected one of {possible:?}",
            consumer.position(tp)
        );
    }
    if reset == OffsetReset::Latest {
        for p in 0..PARTITIONS {
            produce(cluster, topic, p, &[format!("new{p}")], Compression::None).await;
        }
    }
    for (p, stream) in (0..PARTITIONS).zip(streams.iter_mut()) {
        let r = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a record within 10 s")
            .unwrap();
        assert_eq!(r.partition, p);
        assert_eq!(r.offset, start, "partition {p}'s first record");
        let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
        if reset == OffsetReset::Latest {
            assert_eq!(value, format!("new{p}"));
        } else {
            assert!(value.starts_with(&format!("p{p}-b0-0-")), "{value}");
        }
    }
    drop(streams);
    consumer.close().await;
}

/// A new group at `reset` through a counting proxy: ListOffsets requests its resets sent.
async fn list_offsets_of_a_new_group(reset: OffsetReset) -> usize {
    let broker = FaultyBroker::start().await;
    let cluster = Cluster::connect(ClientConfig::new(&broker.bootstrap)).await.unwrap();
    let (topic, group) = (unique("reset-count"), unique("reset-count-g"));
    create_topic(&cluster, &topic, PARTITIONS).await;
    fill(&cluster, &topic, 10, 0).await;
    let before = broker.requests(LIST_OFFSETS);
    new_group_starts_right(&cluster, &topic, fast_config(&group, &topic), reset, 20).await;
    broker.requests(LIST_OFFSETS) - before
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    // One broker: one ListOffsets for the whole group (a few more only if one fails and is retried),
    // not one per partition.
    trials.push(trial("earliest_lists_offsets_once_per_leader", |_ctx| async move {
        let sent = list_offsets_of_a_new_group(OffsetReset::Earliest).await;
        assert!(sent <= 4, "{sent} ListOffsets for {PARTITIONS} partitions on one broker");
    }));
    // Latest is resolved per partition: its log start (ListOffsets earliest), then a Fetch probe;
    // a second ListOffsets only when the probe's answer leaves the partition out.
    trials.push(trial("latest_lists_offsets_per_partition", |_ctx| async move {
        let sent = list_offsets_of_a_new_group(OffsetReset::Latest).await;
        let partitions = usize::try_from(PARTITIONS).unwrap();
        assert!(
            (partitions..=2 * partitions + 4).contains(&sent),
            "{sent} ListOffsets for {PARTITIONS} partitions resolved one at a time"
        );
    }));

    trials.push(trial("earliest_on_64_partitions", |ctx| async move {
        let cluster = ctx.cluster().await;
        let (topic, group) = (unique("reset-early"), unique("reset-early-g"));
        create_topic(&cluster, &topic, PARTITIONS).await;
        fill(&cluster, &topic, 10, 0).await;
        let config = fast_config(&group, &topic);
        new_group_starts_right(&cluster, &topic, config, OffsetReset::Earliest, 20).await;
    }));

    trials.push(trial("latest_on_64_partitions", |ctx| async move {
        let cluster = ctx.cluster().await;
        let (topic, group) = (unique("reset-late"), unique("reset-late-g"));
        create_topic(&cluster, &topic, PARTITIONS).await;
        fill(&cluster, &topic, 10, 0).await;
        let config = fast_config(&group, &topic);
        new_group_starts_right(&cluster, &topic, config, OffsetReset::Latest, 20).await;
    }));
}
