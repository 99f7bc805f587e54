//! The persistent broker frozen (`SIGSTOP`) for longer than the Produce request timeout in the middle
//! of an idempotent publish, then thawed: every record is acknowledged, and reading the topic back until
//! it is idle finds exactly the records sent, none twice, none missing, each key's in order.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use kafka_event_bus::client::{
    ClientConfig, Cluster, NewTopic,
    producer::{Producer, ProducerConfig, ProducerRecord},
};
use tokio::sync::Mutex;

use crate::{
    faults_support::{fault_trial, persistent_broker},
    read_idle::read_until_idle,
    support::unique,
};

const PARTITIONS: i32 = 4;
const KEYS: usize = 8;
const RECORDS: usize = 12_000;
const _: () = assert!(
    RECORDS.is_multiple_of(KEYS),
    "every key gets the same number of records"
);
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(2);
const FROZEN_FOR: Duration = Duration::from_secs(6);

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(fault_trial(
        "a_frozen_broker_neither_loses_nor_duplicates_an_idempotent_publish",
        |_ctx| async move {
            let broker = Arc::new(Mutex::new(persistent_broker().await));
            let bootstrap = broker.lock().await.bootstrap_servers().to_owned();
            let cluster = Cluster::connect(
                ClientConfig::new(&bootstrap)
                    .with_client_id("faults-freeze")
                    .with_request_timeout(Duration::from_secs(5)),
            )
            .await
            .unwrap();
            let topic = unique("faults-freeze");
            cluster
                .ensure_topics(&[NewTopic::new(&topic, PARTITIONS, 1)])
                .await
                .unwrap();
            let producer = Producer::new(
                cluster.clone(),
                ProducerConfig::default()
                    .with_idempotence(true)
                    .with_linger(Duration::from_millis(5))
                    .with_batch_size(16 << 10)
                    .with_request_timeout(PRODUCE_TIMEOUT)
                    .with_retry_backoff(Duration::from_millis(100)),
            )
            .unwrap();

            // Records go out at a steady pace (~4,000/s); the broker is frozen a third of the way in.
            let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
            let sender = {
                let producer = producer.clone();
                let topic = topic.clone();
                tokio::spawn(async move {
                    let mut next = [0usize; KEYS];
                    for i in 0..RECORDS {
                        let key = i % KEYS;
                        let seq = next[key];
                        next[key] += 1;
                        let record = ProducerRecord::new(&topic)
                            .with_key(format!("key-{key}"))
                            .with_value(format!("key-{key}/{seq}"));
                        let delivery = producer.send(record).await.unwrap();
                        let acked_tx = acked_tx.clone();
                        let sent_at = Instant::now();
                        tokio::spawn(async move {
                            let result = delivery.await;
                            let _ = acked_tx.send((sent_at, Instant::now(), result.map(|_| ())));
                        });
                        if i % 40 == 39 {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                })
            };
            tokio::time::sleep(Duration::from_millis(1000)).await;
            broker.lock().await.freeze();
            let frozen_at = Instant::now();
            tokio::time::sleep(FROZEN_FOR).await;
            broker.lock().await.thaw();
            let thawed_at = Instant::now();
            sender.await.unwrap();

            let mut failed = Vec::new();
            let mut recovered_at = thawed_at;
            let mut sent_before_freeze_pending = 0;
            for _ in 0..RECORDS {
                let (sent_at, acked_at, result) =
                    tokio::time::timeout(Duration::from_secs(60), acked_rx.recv())
                        .await
                        .expect("every send settles")
                        .unwrap();
                if let Err(e) = result {
                    failed.push(e.to_string());
                }
                if sent_at < thawed_at && acked_at > frozen_at {
                    sent_before_freeze_pending += 1;
                    recovered_at = recovered_at.max(acked_at);
                }
            }
            assert!(failed.is_empty(), "{} sends failed: {:?}", failed.len(), &failed[..failed.len().min(3)]);

            let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            let mut total = 0;
            for partition in 0..PARTITIONS {
                for (_, record) in read_until_idle(&cluster, &topic, partition, Duration::from_secs(3)).await {
                    let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned();
                    let (key, seq) = value.split_once('/').unwrap();
                    by_key.entry(key.to_owned()).or_default().push(seq.parse().unwrap());
                    total += 1;
                }
            }
            let mut duplicates = 0;
            let mut missing = 0;
            for (key, seqs) in &by_key {
                let expected = RECORDS / KEYS;
                let mut sorted = seqs.clone();
                sorted.sort_unstable();
                sorted.dedup();
                duplicates += seqs.len() - sorted.len();
                missing += expected - sorted.len();
                assert!(
                    seqs.windows(2).all(|w| w[0] < w[1]),
                    "{key} out of order or repeated: first offending pair {:?}",
                    seqs.windows(2).find(|w| w[0] >= w[1])
                );
            }
            eprintln!(
                "faults::freeze: {RECORDS} sent, {total} read back, {duplicates} duplicates, {missing} missing; \
                 frozen {:?}; {sent_before_freeze_pending} sends waited on the freeze; all acknowledged {:?} after the thaw",
                FROZEN_FOR,
                recovered_at - thawed_at
            );
            assert_eq!((total, duplicates, missing), (RECORDS, 0, 0));
            producer.close().await;
        },
    ));
}
