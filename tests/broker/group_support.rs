//! Helpers for the group and consumer tests: raw produce, a test member that logs what it consumes.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kafka_event_bus::{
    client::{
        Cluster, NewTopic, TopicPartition,
        consumer::{Consumer, ConsumerConfig, ConsumerEvent},
    },
    protocol::{Compression, Headers, RecordBatchBuilder},
};
use kafka_protocol::messages::{
    ProduceRequest, TopicName,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use tokio::{sync::oneshot, task::JoinHandle};

pub(crate) async fn create_topic(cluster: &Cluster, name: &str, partitions: i32) {
    cluster
        .ensure_topics(&[NewTopic::new(name, partitions, 1)])
        .await
        .unwrap();
}

/// Produces `values` to one partition as one batch (acks=-1) through the leader.
pub(crate) async fn produce(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    values: &[String],
    compression: Compression,
) {
    let mut builder = RecordBatchBuilder::new(compression);
    for v in values {
        let mut headers = Headers::new();
        headers.insert("value", v.clone());
        builder
            .append(
                1_700_000_000_000,
                Some(v.as_bytes()),
                Some(v.as_bytes()),
                &headers,
            )
            .unwrap();
    }
    produce_batch(cluster, topic, partition, builder.finish().unwrap()).await;
}

/// Produces one encoded batch (acks=-1) through the leader.
pub(crate) async fn produce_batch(cluster: &Cluster, topic: &str, partition: i32, batch: bytes::Bytes) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(kafka_event_bus::protocol::StrBytes::from_string(
                    topic.to_owned(),
                )))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                ]),
        ]);
    let (_, conn) = cluster.leader(topic, partition).await.unwrap();
    let response = conn.request(&request).await.unwrap();
    let code = response.responses[0].partition_responses[0].error_code;
    assert_eq!(code, 0, "produce to {topic}/{partition} failed with {code}");
}

/// `per_partition` records to every partition of `topic`, in batches of `batch`; values are
/// `"{tag}-{partition}-{i}"`.
pub(crate) async fn produce_all(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    per_partition: usize,
    tag: &str,
) {
    for p in 0..partitions {
        let values: Vec<String> = (0..per_partition).map(|i| format!("{tag}-{p}-{i}")).collect();
        for chunk in values.chunks(50) {
            produce(cluster, topic, p, chunk, Compression::None).await;
        }
    }
}

/// Fast group settings for Tansu.
pub(crate) fn fast_config(group: &str, topic: &str) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(group, [topic])
        .with_session_timeout(Duration::from_secs(6))
        .with_heartbeat_interval(Duration::from_millis(500))
        .with_commit_interval(Duration::from_millis(200))
        .with_revoke_timeout(Duration::from_secs(5));
    config.fetch.fetch_max_wait = Duration::from_millis(100);
    config
}

#[derive(Debug, Default)]
pub(crate) struct MemberLog {
    pub(crate) assignment: BTreeSet<TopicPartition>,
    /// (partition, offset, value)
    pub(crate) records: Vec<(TopicPartition, i64, String)>,
    pub(crate) assigned_events: Vec<Vec<TopicPartition>>,
    pub(crate) revoked_events: Vec<Vec<TopicPartition>>,
    /// Committed offsets known to the consumer when it was killed.
    pub(crate) committed_at_kill: BTreeMap<TopicPartition, i64>,
}

/// A consumer in a task: every record is logged, then marked done.
pub(crate) struct TestMember {
    pub(crate) log: Arc<Mutex<MemberLog>>,
    stop: Option<oneshot::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl TestMember {
    pub(crate) fn start(cluster: &Cluster, config: ConsumerConfig) -> Self {
        let log = Arc::new(Mutex::new(MemberLog::default()));
        let mut consumer = Consumer::connect(cluster, config).unwrap();
        let (stop, mut stopped) = oneshot::channel::<bool>();
        let task_log = Arc::clone(&log);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    graceful = &mut stopped => {
                        if graceful.unwrap_or(false) {
                            consumer.close().await;
                        } else {
                            let mut log = task_log.lock().unwrap();
                            for tp in log.assignment.clone() {
                                if let Some(c) = consumer.committed(&tp) {
                                    log.committed_at_kill.insert(tp, c);
                                }
                            }
                            drop(log);
                            drop(consumer);
                        }
                        return;
                    }
                    event = consumer.next_event() => match event {
                        Some(ConsumerEvent::Assigned(streams)) => {
                            let mut log = task_log.lock().unwrap();
                            log.assigned_events.push(streams.iter().map(|s| s.topic_partition().clone()).collect());
                            for mut stream in streams {
                                log.assignment.insert(stream.topic_partition().clone());
                                let worker_log = Arc::clone(&task_log);
                                tokio::spawn(async move {
                                    let tp = stream.topic_partition().clone();
                                    while let Some(r) = stream.next().await {
                                        let value = String::from_utf8(r.value.clone().unwrap_or_default().to_vec()).unwrap();
                                        worker_log.lock().unwrap().records.push((tp.clone(), r.offset, value));
                                        stream.store_offset(r.offset + 1);
                                    }
                                });
                            }
                        }
                        Some(ConsumerEvent::Revoked { partitions, .. }) => {
                            let mut log = task_log.lock().unwrap();
                            for tp in &partitions {
                                log.assignment.remove(tp);
                            }
                            log.revoked_events.push(partitions);
                        }
                        Some(ConsumerEvent::Fatal(e)) => panic!("fatal: {e}"),
                        Some(_) => {}
                        None => return,
                    }
                }
            }
        });
        Self {
            log,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(crate) fn assignment(&self) -> BTreeSet<TopicPartition> {
        self.log.lock().unwrap().assignment.clone()
    }

    /// (assigned events, revoked events) seen so far.
    pub(crate) fn event_counts(&self) -> (usize, usize) {
        let log = self.log.lock().unwrap();
        (log.assigned_events.len(), log.revoked_events.len())
    }

    pub(crate) fn records(&self) -> Vec<(TopicPartition, i64, String)> {
        self.log.lock().unwrap().records.clone()
    }

    /// Graceful: commit and LeaveGroup.
    pub(crate) async fn close(mut self) -> Arc<Mutex<MemberLog>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        Arc::clone(&self.log)
    }

    /// Like a crash: no commit, no LeaveGroup.
    pub(crate) async fn kill(mut self) -> Arc<Mutex<MemberLog>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(false);
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        Arc::clone(&self.log)
    }
}

/// Waits until `check` holds, polling every 50 ms, failing after `timeout` with `what`.
pub(crate) async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Every (partition, offset) consumed by `logs`, with how often.
pub(crate) fn counts(records: &[(TopicPartition, i64, String)]) -> BTreeMap<(TopicPartition, i64), usize> {
    let mut out = BTreeMap::new();
    for (tp, offset, _) in records {
        *out.entry((tp.clone(), *offset)).or_insert(0) += 1;
    }
    out
}
