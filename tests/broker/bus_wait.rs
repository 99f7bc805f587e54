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

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "waits_for_assignment_then_until_every_published_event_is_handled",
        |ctx| async move {
            let prefix = unique("wait");
            let bus = KafkaEventBus::new(config(ctx, &prefix, &prefix)).unwrap();
            bus.connect().await.unwrap();
            bus.ensure_topics(TopicOptions::new().partitions(3).replication_factor(1))
                .await
                .unwrap();
            // Not consuming: nothing is ever assigned.
            let err = bus
                .wait_for_assignment(Duration::from_millis(50))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::WaitTimeout { .. }), "{err}");

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

            let events = (0..EVENTS)
                .map(|i| {
                    let order = OrderCreated {
                        customer_id: format!("c-{i}"),
                    };
                    DomainEvent::new(Uuid::new_v4(), 1, order).into_any().unwrap()
                })
                .collect();
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
        },
    ));
}
