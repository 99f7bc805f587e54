//! `KafkaEventBus::wait_for_assignment` and `wait_caught_up` against the broker: the quick start's
//! sequence (topics from `TopicOptions`, consume, publish, wait) with no sleeps.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use kafka_event_bus::{
    bus::{Error, EventBus, KafkaEventBus, TopicOptions},
    event::DomainEvent,
};
use uuid::Uuid;

use crate::{
    bus::config,
    support::{OrderCreated, unique},
    trial,
};

const EVENTS: u64 = 200;
/// Events a round of the `latest` trial publishes.
const LATEST_EVENTS: u64 = 30;

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "waits_for_assignment_then_until_every_published_event_is_handled",
        |ctx| waits_until_every_published_event_is_handled(ctx, 1),
    ));
    trials.push(trial(
        "waits_until_every_published_event_is_handled_with_8_in_flight_per_partition",
        |ctx| waits_until_every_published_event_is_handled(ctx, 8),
    ));
    trials.push(trial(
        "with_latest_reset_an_event_published_after_the_assignment_is_handled",
        |ctx| async move {
            let prefix = unique("wait-latest");
            // Earlier records: "latest" must start past them, and after the assignment wait returns.
            let seed = KafkaEventBus::new(config(ctx, &prefix, &unique("seed"))).unwrap();
            seed.connect().await.unwrap();
            seed.ensure_topics(TopicOptions::new().partitions(6).replication_factor(1))
                .await
                .unwrap();
            seed.publish((0..LATEST_EVENTS).map(order).collect())
                .await
                .unwrap();
            seed.shutdown(Duration::from_secs(5)).await.unwrap();
            for round in 1..=8 {
                let mut cfg = config(ctx, &prefix, &unique("latest"));
                cfg.auto_offset_reset = "latest".into();
                let bus = KafkaEventBus::new(cfg).unwrap();
                bus.connect().await.unwrap();
                let handled = Arc::new(AtomicU64::new(0));
                let count = handled.clone();
                bus.subscribe(move |_: Arc<DomainEvent<OrderCreated>>| {
                    let count = count.clone();
                    async move {
                        count.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                })
                .unwrap();
                // A warm producer: the publish below takes one round trip, as quick as it gets.
                bus.publish(vec![order(0)]).await.unwrap();
                let consuming = bus.start_consuming_in_background().unwrap();
                bus.wait_for_assignment(Duration::from_secs(30)).await.unwrap();
                // Spread over the partitions: one whose start is not known yet would skip its share.
                bus.publish((round..round + LATEST_EVENTS).map(order).collect())
                    .await
                    .unwrap();
                bus.wait_caught_up(Duration::from_secs(30)).await.unwrap();
                assert_eq!(handled.load(Ordering::Relaxed), LATEST_EVENTS, "round {round}");
                bus.shutdown(Duration::from_secs(10)).await.unwrap();
                consuming.wait().await.unwrap();
            }
        },
    ));
    trials.push(trial(
        "waits_fail_at_once_when_the_bus_is_not_consuming_even_without_a_time_limit",
        |ctx| async move {
            let prefix = unique("wait-stopped");
            let bus = KafkaEventBus::new(config(ctx, &prefix, &prefix)).unwrap();
            bus.connect().await.unwrap();
            // The default replication factor (-1, the broker's default) is accepted.
            bus.ensure_topics(TopicOptions::new().partitions(1))
                .await
                .unwrap();
            let err = at_once(bus.wait_for_assignment(Duration::MAX)).await.unwrap_err();
            assert!(matches!(err, Error::NotConsuming), "{err}");
            assert!(!err.is_retriable());
            let err = at_once(bus.wait_caught_up(Duration::MAX)).await.unwrap_err();
            assert!(matches!(err, Error::NotConsuming), "{err}");

            bus.subscribe(|_: Arc<DomainEvent<OrderCreated>>| async { Ok(()) })
                .unwrap();
            let consuming = bus.start_consuming_in_background().unwrap();
            assert_eq!(bus.wait_for_assignment(Duration::MAX).await.unwrap(), [0]);
            bus.publish(vec![order(1)]).await.unwrap();
            bus.wait_caught_up(Duration::MAX).await.unwrap();

            bus.stop_consuming();
            consuming.wait().await.unwrap();
            let err = at_once(bus.wait_caught_up(Duration::MAX)).await.unwrap_err();
            assert!(matches!(err, Error::NotConsuming), "{err}");
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));
    trials.push(trial(
        "wait_caught_up_reports_a_missing_topic_as_the_cluster_says",
        |ctx| async move {
            let prefix = unique("wait-missing");
            let bus = KafkaEventBus::new(config(ctx, &prefix, &prefix)).unwrap();
            bus.connect().await.unwrap();
            bus.subscribe(|_: Arc<DomainEvent<OrderCreated>>| async { Ok(()) })
                .unwrap();
            // No ensure_topics: the main topic does not exist.
            let consuming = bus.start_consuming_in_background().unwrap();
            let err = tokio::time::timeout(Duration::from_secs(60), bus.wait_caught_up(Duration::MAX))
                .await
                .expect("the wait should end")
                .unwrap_err();
            assert!(matches!(err, Error::LogEnds { .. }), "{err:?}");
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
            let _ = consuming.wait().await;
        },
    ));
}

/// The wait's result, which must come at once (well within 30 s, whatever the wait's own timeout).
async fn at_once<T>(wait: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the wait should fail at once")
}

fn order(i: u64) -> kafka_event_bus::event::AnyEvent {
    let order = OrderCreated {
        customer_id: format!("c-{i}"),
    };
    DomainEvent::new(Uuid::new_v4(), 1, order).into_any().unwrap()
}

/// The quick start's sequence; `in_flight` records per partition handled at once (above 1, the keyed
/// worker settles them out of order).
async fn waits_until_every_published_event_is_handled(ctx: &'static crate::support::Ctx, in_flight: usize) {
    let prefix = unique("wait");
    let mut cfg = config(ctx, &prefix, &prefix);
    cfg.max_in_flight_per_partition = in_flight;
    let bus = KafkaEventBus::new(cfg).unwrap();
    bus.connect().await.unwrap();
    bus.ensure_topics(TopicOptions::new().partitions(3).replication_factor(1))
        .await
        .unwrap();
    // Not consuming: nothing is ever assigned, and the wait says so at once.
    let err = bus
        .wait_for_assignment(Duration::from_secs(600))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotConsuming), "{err}");

    let handled = Arc::new(AtomicU64::new(0));
    let open = Arc::new(AtomicBool::new(false));
    let (count, gate) = (handled.clone(), open.clone());
    bus.subscribe(move |_: Arc<DomainEvent<OrderCreated>>| {
        let (count, gate) = (count.clone(), gate.clone());
        async move {
            while !gate.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            count.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    })
    .unwrap();
    let consuming = bus.start_consuming_in_background().unwrap();
    let mut partitions = bus.wait_for_assignment(Duration::from_secs(30)).await.unwrap();
    partitions.sort_unstable();
    assert_eq!(partitions, [0, 1, 2]);

    let events = (0..EVENTS).map(order).collect();
    bus.publish(events).await.unwrap();

    // The handlers are held: the wait gives up and says which partitions are behind.
    let err = bus.wait_caught_up(Duration::from_millis(500)).await.unwrap_err();
    assert!(matches!(err, Error::WaitTimeout { .. }), "{err}");
    assert!(err.to_string().contains("partition"), "{err}");

    open.store(true, Ordering::Release);
    bus.wait_caught_up(Duration::from_secs(60)).await.unwrap();
    // No sleep, no polling: every event published before the wait was handled.
    assert_eq!(handled.load(Ordering::Relaxed), EVENTS);
    let stats = bus.stats();
    assert_eq!(stats.events_processed_success, EVENTS, "{stats}");

    // Caught up already: returns at once.
    bus.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    bus.shutdown(Duration::from_secs(10)).await.unwrap();
    consuming.wait().await.unwrap();
}
