//! An idempotent Produce request written by the client that never reaches the broker (the proxy
//! swallows it) while the delivery timeout is short: its batch expires with its sequence numbers taken,
//! unresolved. Later publishes to the same partition are still acknowledged (no error, no stall), even
//! when the next one's first attempt goes unanswered too; a retry of another partition's batch that
//! the broker wrote but whose answer was lost is neither failed by the identity change nor written
//! twice; other partitions keep being acknowledged while the new identity is being taken; and reading
//! the partitions back finds the records in order, once, and the expired record nowhere.

use std::time::Duration;

use kafka_event_bus::client::{
    ClientConfig, Cluster, NewTopic,
    producer::{Error, Producer, ProducerConfig, ProducerRecord},
};

use kafka_protocol::messages::MetadataRequest;

use crate::{fault_proxy::FaultyBroker, read_back::read_partition, support::unique, trial};

/// Produce's API key.
const PRODUCE: i16 = 0;

/// A proxied broker, a client through it, a fresh topic of `partitions` partitions, and an
/// idempotent producer whose requests time out after 1 s.
struct Setup {
    broker: FaultyBroker,
    cluster: Cluster,
    topic: String,
    producer: Producer,
}

async fn setup(
    name: &str,
    partitions: i32,
    delivery_timeout: Duration,
    retry_backoff: Duration,
) -> Setup {
    let broker = FaultyBroker::start().await;
    let config = ClientConfig::new(&broker.bootstrap)
        .with_reconnect_backoff(Duration::from_millis(5), Duration::from_millis(50));
    let cluster = Cluster::connect(config).await.unwrap();
    let topic = unique(name);
    cluster
        .ensure_topics(&[NewTopic::new(&topic, partitions, 1)])
        .await
        .unwrap();
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig::default()
            .with_idempotence(true)
            .with_linger(Duration::from_millis(1))
            .with_request_timeout(Duration::from_secs(1))
            .with_delivery_timeout(delivery_timeout)
            .with_retry_backoff(retry_backoff),
    )
    .unwrap();
    Setup { broker, cluster, topic, producer }
}

/// The values of a partition's records, read back, as strings.
async fn values(cluster: &Cluster, topic: &str, partition: i32) -> Vec<String> {
    read_partition(cluster, topic, partition)
        .await
        .into_iter()
        .map(|(_, r)| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect()
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "a_swallowed_batch_that_expired_does_not_block_its_partition",
        |_ctx| async move {
            let Setup { broker, cluster, topic, producer } =
                setup("seqgap", 1, Duration::from_secs(3), Duration::from_millis(10)).await;
            let record = |value: String| ProducerRecord::new(&topic).with_partition(0).with_value(value);
            for i in 0..5 {
                producer.send_and_wait(record(format!("a{i}"))).await.unwrap();
            }

            broker.swallow(PRODUCE, 1);
            let lost = producer.send_and_wait(record("lost".into())).await.unwrap_err();
            assert_eq!(broker.left_to_swallow(), 0, "the request was not swallowed");
            assert!(
                matches!(lost, Error::DeliveryTimeout { .. } | Error::DeliveryUncertain { .. }),
                "{lost}"
            );

            let later: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
            let records: Vec<ProducerRecord> = later.iter().cloned().map(record).collect();
            let results = tokio::time::timeout(Duration::from_secs(30), producer.send_all(records))
            .await
            .expect("later publishes stalled");
            for (value, result) in later.iter().zip(&results) {
                assert!(result.is_ok(), "{value}: {result:?}");
            }
            let offsets: Vec<i64> = results.iter().map(|r| r.as_ref().unwrap().offset).collect();
            assert!(offsets.windows(2).all(|w| w[1] > w[0]), "offsets {offsets:?}");

            let read = values(&cluster, &topic, 0).await;
            let expected: Vec<String> = (0..5).map(|i| format!("a{i}")).chain(later).collect();
            assert_eq!(read, expected);
            producer.close().await;
        },
    ));
    trials.push(trial(
        "an_unanswered_batch_survives_another_partitions_sequence_gap",
        |_ctx| async move {
            // A Produce request goes unanswered for request_timeout + 5 s = 6 s; a batch expires 5 s
            // after its first record; a retry waits 1 s.
            let Setup { broker, cluster, topic, producer } =
                setup("seqgap2", 2, Duration::from_secs(5), Duration::from_secs(1)).await;
            let record = |partition: i32, value: &str| {
                ProducerRecord::new(&topic)
                    .with_partition(partition)
                    .with_value(value.to_owned())
            };
            producer.send_and_wait(record(0, "a")).await.unwrap();
            producer.send_and_wait(record(1, "a")).await.unwrap();

            // t = 0: x (partition 0) is swallowed. t = 3: y (partition 1) reaches the broker, which
            // writes it, but its answer is lost; b0 waits behind x. t = 6: x's request times out
            // and the connection with it: x expires (its sequence unresolved) and the producer takes
            // a new identity, y goes back for a retry at t = 7, b0 goes at sequence 0 under the new
            // identity.
            broker.swallow(PRODUCE, 1);
            let x = producer.send(record(0, "x")).await.unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(broker.left_to_swallow(), 0, "x's request was not swallowed");
            broker.lose_answers(PRODUCE, 1);
            let y = producer.send(record(1, "y")).await.unwrap();
            let b0 = producer.send(record(0, "b0")).await.unwrap();
            let x = x.await.unwrap_err();
            assert!(matches!(x, Error::DeliveryTimeout { .. }), "x: {x}");
            assert_eq!(broker.answers_left_to_lose(), 0, "y's answer was not lost");
            let b0 = b0.await;
            let y = y.await;
            assert!(b0.is_ok(), "b0: {b0:?}");
            // y's partition kept its sequences: the broker recognises its retry as the batch it
            // already wrote (read back below: y once), and it is not failed.
            assert!(y.is_ok(), "y: {y:?}");

            let later = vec![record(0, "b1"), record(1, "z"), record(0, "b2")];
            for result in producer.send_all(later).await {
                result.unwrap();
            }
            assert_eq!(values(&cluster, &topic, 0).await, ["a", "b0", "b1", "b2"]);
            assert_eq!(values(&cluster, &topic, 1).await, ["a", "y", "z"]);
            producer.close().await;
        },
    ));

    trials.push(trial(
        "the_batch_after_an_expired_unanswered_one_survives_a_cut",
        |_ctx| async move {
            let Setup { broker, cluster, topic, producer } =
                setup("seqgap3", 1, Duration::from_secs(5), Duration::from_millis(10)).await;
            let record = |value: &str| {
                ProducerRecord::new(&topic)
                    .with_partition(0)
                    .with_value(value.to_owned())
            };
            producer.send_and_wait(record("a")).await.unwrap();
            broker.swallow(PRODUCE, 1);
            let lost = producer.send_and_wait(record("lost")).await.unwrap_err();
            assert!(matches!(lost, Error::DeliveryTimeout { .. }), "{lost}");

            // The connection the timed-out request poisoned is replaced now, so that the next Produce
            // request is written at once (not held behind a handshake).
            let (_, leader) = cluster.leader(&topic, 0).await.unwrap();
            leader.request(&MetadataRequest::default()).await.unwrap();
            // The next batch's first request is held in the proxy, then its connection is cut: had it
            // gone out under the identity whose sequences the expired batch left unresolved, its
            // attempt would be in doubt, and its retry refused (the gap) and failed as uncertain.
            broker.freeze(true);
            let produced = broker.requests(PRODUCE);
            let next = producer.send(record("next")).await.unwrap();
            for _ in 0..100 {
                if broker.requests(PRODUCE) > produced {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            broker.cut();
            broker.freeze(false);
            let next = tokio::time::timeout(Duration::from_secs(20), next)
                .await
                .expect("the next publish stalled");
            assert!(next.is_ok(), "{next:?}");
            producer.send_and_wait(record("last")).await.unwrap();

            let read = values(&cluster, &topic, 0).await;
            assert_eq!(read, ["a", "next", "last"]);
            producer.close().await;
        },
    ));
}
