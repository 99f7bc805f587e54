//! `KafkaEventBusConfig` settings that only a real group shows working: the assignment strategy.

use std::{collections::HashSet, sync::Arc, time::Duration};

use kafka_event_bus::{
    bus::{AssignmentStrategy, EventBus, KafkaEventBus},
    event::DomainEvent,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    bus::{config, warm_up},
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
    ));
}
