//! `KafkaEventBusConfig` settings that only a real group shows working: the assignment strategy and the
//! commit interval.

use std::{collections::HashSet, sync::Arc, time::Duration};

use kafka_event_bus::{
    bus::{AssignmentStrategy, EventBus, KafkaEventBus},
    event::DomainEvent,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    bus::{config, start, warm_up},
    faults_support::committed,
    support::{OrderCreated, unique},
    trial,
};

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "cooperative_sticky_members_share_a_topic",
        |ctx| async move {
            // Two buses of one group that offer only cooperative-sticky: the second joins while the
            // first consumes, gets partitions, and together they handle every event.
            let prefix = unique("coop");
            let group = unique("coop");
            let mut cfg = config(ctx, &prefix, &group);
            cfg.partition_assignment_strategy = "cooperative-sticky".into();
            assert_eq!(
                cfg.assignment_strategies().unwrap(),
                [AssignmentStrategy::CooperativeSticky]
            );
            let (tx, mut rx) = mpsc::unbounded_channel();
            let start = |tx: mpsc::UnboundedSender<String>| {
                let cfg = cfg.clone();
                async move {
                    let bus = KafkaEventBus::new(cfg).unwrap();
                    bus.connect().await.unwrap();
                    bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(3))
                        .await
                        .unwrap();
                    bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
                        let _ = tx.send(e.payload.customer_id.clone());
                        std::future::ready(Ok(()))
                    })
                    .unwrap();
                    bus.start_consuming_in_background().unwrap();
                    bus
                }
            };
            let a = start(tx.clone()).await;
            warm_up(&a).await;
            let b = start(tx).await;
            // Publish in rounds until the second member handles some: the group handed it
            // partitions while the first kept its others.
            let order = |i: usize| {
                DomainEvent::new(
                    Uuid::new_v4(),
                    1,
                    OrderCreated {
                        customer_id: format!("c{i}"),
                    },
                )
                .into_any()
                .unwrap()
            };
            let mut published = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while b.stats().events_consumed == 0 {
                assert!(tokio::time::Instant::now() < deadline, "b never got a partition");
                let round: Vec<_> = (published..published + 12).map(order).collect();
                a.publish(round).await.unwrap();
                published += 12;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let mut seen = HashSet::new();
            while seen.len() < published {
                match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                    Ok(Some(customer)) => {
                        seen.insert(customer);
                    }
                    _ => panic!("only {} of {published} events arrived", seen.len()),
                }
            }
            assert!(a.stats().events_consumed > 1, "a handled only its warm-up");
            for bus in [&a, &b] {
                bus.shutdown(Duration::from_secs(10)).await.unwrap();
                let stats = bus.stats();
                assert_eq!(stats.events_processed_success, stats.events_consumed);
            }
        },
    ));    trials.push(trial(
        "commit_interval_sets_how_soon_settled_offsets_are_committed",
        |ctx| async move {
            let cluster = kafka_event_bus::client::Cluster::connect(ctx.config())
                .await
                .unwrap();
            // A commit only on the interval (no revocation or shutdown here): with 60 s nothing is
            // committed for seconds after the warm-up event was handled...
            let prefix = unique("commitint");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.commit_interval = Duration::from_secs(60);
            let topic = cfg.topic_name();
            let bus = start(cfg).await;
            warm_up(&bus).await;
            let quiet = tokio::time::Instant::now() + Duration::from_secs(3);
            while tokio::time::Instant::now() < quiet {
                let offsets = committed(&cluster, &prefix, &topic, 3).await.unwrap();
                assert!(offsets.is_empty(), "committed before the interval: {offsets:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
            // ...and with 200 ms each handled event is committed within a second, five times in a row
            // (the 5 s default would make that a 1-in-3,000 chance).
            let prefix = unique("commitint");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.commit_interval = Duration::from_millis(200);
            let topic = cfg.topic_name();
            let bus = start(cfg).await;
            for round in 1..=5_i64 {
                warm_up(&bus).await;
                let handled = tokio::time::Instant::now();
                loop {
                    let offsets = committed(&cluster, &prefix, &topic, 3).await.unwrap();
                    if offsets.values().sum::<i64>() == round {
                        break;
                    }
                    assert!(
                        handled.elapsed() < Duration::from_secs(1),
                        "round {round}: not committed within 1 s: {offsets:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));
}
