//! `KafkaEventBus` against a real broker: the shared conformance suite, consumer groups, retries, the
//! DLQ, poison records, statistics and shutdown.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus, KafkaEventBusConfig},
    client::producer::{Producer, ProducerConfig, ProducerRecord},
    dlq::DeadLetter,
    event::{DomainEvent, Event},
    protocol::Headers,
    testing::conformance,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    group_support::eventually,
    read_back::read_partition,
    support::OrderCreated,
    support::{Ctx, unique},
    trial,
};

/// Used to wait until a fresh bus owns its partitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WarmUp {}

impl Event for WarmUp {
    const EVENT_TYPE: &'static str = "WarmUp";
    const AGGREGATE_TYPE: &'static str = "Test";
}

/// A config for a fresh prefix and group on the test broker (short session timeout: Tansu holds a
/// group's first join for half of it).
pub(crate) fn config(ctx: &Ctx, prefix: &str, group: &str) -> KafkaEventBusConfig {
    KafkaEventBusConfig::builder()
        .bootstrap_servers(ctx.bootstrap.clone())
        .topic_prefix(prefix)
        .consumer_group(group)
        .session_timeout_ms(6_000)
        .heartbeat_interval_ms(500)
        .retry_base_delay(Duration::from_millis(20))
        .retry_max_delay(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A connected bus with its topics, consuming, and (after `warm_up`) owning its partitions.
pub(crate) async fn start(config: KafkaEventBusConfig) -> KafkaEventBus {
    let bus = KafkaEventBus::new(config).unwrap();
    bus.connect().await.unwrap();
    bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(3))
        .await
        .unwrap();
    bus.start_consuming_in_background().unwrap();
    bus
}

/// Publishes a warm-up event and waits until this bus handled it and counted it (the handler runs before
/// the outcome is counted, so tests that compare stats before and after start from a settled count).
pub(crate) async fn warm_up(bus: &KafkaEventBus) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = bus
        .subscribe(move |_: Arc<DomainEvent<WarmUp>>| {
            let _ = tx.send(());
            std::future::ready(Ok(()))
        })
        .unwrap();
    bus.publish_event(DomainEvent::new(Uuid::new_v4(), 1, WarmUp {}))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap();
    eventually("the warm-up counted", Duration::from_secs(10), || {
        let s = bus.stats();
        s.events_processed_success + s.events_processed_failed >= s.events_consumed
    })
    .await;
    bus.unsubscribe(id);
}

struct Factory(&'static Ctx);

impl conformance::BusFactory for Factory {
    type Bus = KafkaEventBus;

    async fn create_bus(&self) -> KafkaEventBus {
        let prefix = unique("conf");
        let mut config = config(self.0, &prefix, &prefix);
        config.max_retries = 0;
        let bus = start(config).await;
        warm_up(&bus).await;
        bus
    }
}

fn order(customer: &str) -> DomainEvent<OrderCreated> {
    DomainEvent::new(
        Uuid::new_v4(),
        1,
        OrderCreated {
            customer_id: customer.into(),
        },
    )
}

/// Collects the customer ids a bus handles.
fn recorder(bus: &KafkaEventBus) -> mpsc::UnboundedReceiver<(String, i64)> {
    let (tx, rx) = mpsc::unbounded_channel();
    bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
        let _ = tx.send((e.payload.customer_id.clone(), 0));
        std::future::ready(Ok(()))
    })
    .unwrap();
    rx
}

async fn collect(rx: &mut mpsc::UnboundedReceiver<(String, i64)>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some((c, _))) => out.push(c),
            _ => panic!("only {} of {n} events arrived: {out:?}", out.len()),
        }
    }
    out
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    for (name, case) in conformance::cases::<Factory>() {
        trials.push(trial(
            &format!("conformance::{name}"),
            move |ctx| async move {
                let factory = Factory(ctx);
                if let Err(failure) = case(&factory).await {
                    panic!("{failure}");
                }
            },
        ));
    }

    trials.push(trial(
        "two_groups_each_get_every_event_once",
        |ctx| async move {
            let prefix = unique("groups");
            let a = start(config(ctx, &prefix, &unique("a"))).await;
            let b = start(config(ctx, &prefix, &unique("b"))).await;
            let (mut ra, mut rb) = (recorder(&a), recorder(&b));
            warm_up(&a).await;
            warm_up(&b).await;
            let events: Vec<_> = (0..60)
                .map(|i| order(&format!("c{i}")).into_any().unwrap())
                .collect();
            a.publish(events).await.unwrap();
            for rx in [&mut ra, &mut rb] {
                let got = collect(rx, 60).await;
                let unique: HashSet<_> = got.iter().collect();
                assert_eq!(unique.len(), 60, "duplicates in {got:?}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                ra.try_recv().is_err() && rb.try_recv().is_err(),
                "an event arrived twice"
            );
            for bus in [&a, &b] {
                bus.shutdown(Duration::from_secs(10)).await.unwrap();
                let stats = bus.stats();
                assert_eq!(stats.events_processed_success, stats.events_consumed);
            }
        },
    ));

    trials.push(trial(
        "failed_handlers_are_retried_in_place_then_dead_lettered",
        |ctx| async move {
            let prefix = unique("retry");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.max_retries = 2;
            let bus = start(cfg).await;
            let calls = Arc::new(Mutex::new(Vec::<String>::new()));
            let (ok_tx, mut ok_rx) = mpsc::unbounded_channel();
            // "flaky" fails twice per event then succeeds; "broken" always fails for customer "poison";
            // "steady" always succeeds and must run once per event (only failed handlers are re-run).
            let c = Arc::clone(&calls);
            bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
                let c = Arc::clone(&c);
                async move {
                    let mut calls = c.lock().unwrap();
                    let key = format!("flaky:{}", e.payload.customer_id);
                    let n = calls.iter().filter(|k| **k == key).count();
                    calls.push(key);
                    if n < 2 { Err("flaky".into()) } else { Ok(()) }
                }
            })
            .unwrap();
            let c = Arc::clone(&calls);
            bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
                c.lock()
                    .unwrap()
                    .push(format!("steady:{}", e.payload.customer_id));
                let _ = ok_tx.send(e.payload.customer_id.clone());
                std::future::ready(Ok(()))
            })
            .unwrap();
            bus.subscribe(|e: Arc<DomainEvent<OrderCreated>>| {
                let poison = e.payload.customer_id == "poison";
                std::future::ready(if poison {
                    Err("cannot ship to poison".into())
                } else {
                    Ok(())
                })
            })
            .unwrap();
            warm_up(&bus).await;
            let aggregate = Uuid::new_v4();
            let first = DomainEvent::new(
                aggregate,
                1,
                OrderCreated {
                    customer_id: "poison".into(),
                },
            );
            let second = DomainEvent::new(
                aggregate,
                2,
                OrderCreated {
                    customer_id: "fine".into(),
                },
            );
            let first_id = first.meta.event_id;
            bus.publish(vec![first.into_any().unwrap(), second.into_any().unwrap()])
                .await
                .unwrap();
            // Same aggregate: the second is handled after the first settled (in the DLQ).
            let order: Vec<String> = vec![ok_rx.recv().await.unwrap(), ok_rx.recv().await.unwrap()];
            assert_eq!(order, ["poison", "fine"]);
            // "fine" is settled once flaky's third call succeeds.
            let count = |key: &str| calls.lock().unwrap().iter().filter(|c| *c == key).count();
            let deadline = Instant::now() + Duration::from_secs(10);
            while count("flaky:fine") < 3 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let calls = calls.lock().unwrap().clone();
            assert_eq!(
                calls.iter().filter(|c| *c == "steady:poison").count(),
                1,
                "{calls:?}"
            );
            assert_eq!(
                calls.iter().filter(|c| *c == "steady:fine").count(),
                1,
                "{calls:?}"
            );
            assert_eq!(
                calls.iter().filter(|c| *c == "flaky:fine").count(),
                3,
                "{calls:?}"
            );
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
            let stats = bus.stats();
            assert_eq!(stats.messages_sent_to_dlq, 1);
            assert_eq!(stats.events_processed_failed, 1);
            // The DLQ record: the original, plus eventsource-py's dlq_* headers.
            let cluster = kafka_event_bus::client::Cluster::connect(ctx.config())
                .await
                .unwrap();
            let dlq = read_partition(&cluster, &format!("{prefix}.stream.dlq"), 0).await;
            assert_eq!(dlq.len(), 1);
            let headers = &dlq[0].1.headers;
            let letter = DeadLetter::from_headers(headers).unwrap();
            assert_eq!(letter.reason.as_str(), "max_retries_exceeded");
            assert_eq!(letter.retry_count, 2);
            assert_eq!(letter.consumer_group, prefix);
            assert!(
                letter.error_message.contains("cannot ship to poison"),
                "{}",
                letter.error_message
            );
            assert_eq!(headers.get_str("event_id"), Some(first_id.to_string().as_str()));
        },
    ));

    trials.push(trial(
        "poison_records_go_to_the_dlq_and_never_stall",
        |ctx| async move {
            let prefix = unique("poison");
            let bus = start(config(ctx, &prefix, &prefix)).await;
            let mut rx = recorder(&bus);
            warm_up(&bus).await;
            let cluster = kafka_event_bus::client::Cluster::connect(ctx.config())
                .await
                .unwrap();
            let raw = Producer::new(cluster.clone(), ProducerConfig::default()).unwrap();
            let topic = format!("{prefix}.stream");
            let key = "same-key"; // one partition: a stall would block the good event behind them
            let mut bad_type = Headers::new();
            bad_type.insert("event_type", vec![0xff, 0xfe]);
            let mut unknown = Headers::new();
            unknown.insert("event_type", "NoSuchEvent");
            let mut json = Headers::new();
            json.insert("event_type", "OrderCreated");
            let poison = [
                ProducerRecord::new(&topic)
                    .with_key(key)
                    .with_value(vec![0u8, 159, 146, 150]),
                ProducerRecord::new(&topic)
                    .with_key(key)
                    .with_value("{}")
                    .with_headers(bad_type),
                ProducerRecord::new(&topic)
                    .with_key(key)
                    .with_value("{}")
                    .with_headers(unknown),
                ProducerRecord::new(&topic)
                    .with_key(key)
                    .with_value("{not json")
                    .with_headers(json),
            ];
            for r in raw.send_all(poison).await {
                r.unwrap();
            }
            let good = order("after-poison");
            let event = good.into_any().unwrap();
            let mut record = event.to_record();
            record.key = key.into();
            raw.send_and_wait(
                ProducerRecord::new(&topic)
                    .with_key(record.key)
                    .with_value(record.value)
                    .with_headers(record.headers),
            )
            .await
            .unwrap();
            assert_eq!(collect(&mut rx, 1).await, ["after-poison"]);
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
            assert_eq!(bus.stats().messages_sent_to_dlq, 4);
            let mut reasons = Vec::new();
            for record in read_partition(&cluster, &format!("{prefix}.stream.dlq"), 0).await {
                reasons.push(
                    DeadLetter::from_headers(&record.1.headers)
                        .unwrap()
                        .reason
                        .as_str()
                        .to_owned(),
                );
            }
            assert_eq!(reasons, ["deserialization_error"; 4]);
            raw.close().await;
        },
    ));

    trials.push(trial(
        "disabled_dlq_drops_loudly_and_counts",
        |ctx| async move {
            let prefix = unique("nodlq");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.enable_dlq = false;
            cfg.max_retries = 0;
            let bus = start(cfg).await;
            let mut rx = recorder(&bus);
            bus.subscribe(|e: Arc<DomainEvent<OrderCreated>>| {
                std::future::ready(if e.payload.customer_id == "bad" {
                    Err("no".into())
                } else {
                    Ok(())
                })
            })
            .unwrap();
            warm_up(&bus).await;
            let aggregate = Uuid::new_v4();
            let bad = DomainEvent::new(
                aggregate,
                1,
                OrderCreated {
                    customer_id: "bad".into(),
                },
            );
            let good = DomainEvent::new(
                aggregate,
                2,
                OrderCreated {
                    customer_id: "good".into(),
                },
            );
            bus.publish(vec![bad.into_any().unwrap(), good.into_any().unwrap()])
                .await
                .unwrap();
            assert_eq!(collect(&mut rx, 2).await, ["bad", "good"]);
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
            let stats = bus.stats();
            assert_eq!((stats.events_dropped, stats.messages_sent_to_dlq), (1, 0));
        },
    ));

    trials.push(trial(
        "stats_are_exact_under_concurrency",
        |ctx| async move {
            let prefix = unique("stats");
            let bus = start(config(ctx, &prefix, &prefix)).await;
            let mut rx = recorder(&bus);
            warm_up(&bus).await;
            let before = bus.stats();
            const N: usize = 500;
            let publishers: Vec<_> = (0..5)
                .map(|p| {
                    let bus = bus.clone();
                    tokio::spawn(async move {
                        let events = (0..N / 5)
                            .map(|i| order(&format!("{p}-{i}")).into_any().unwrap())
                            .collect();
                        bus.publish(events).await.unwrap();
                    })
                })
                .collect();
            for p in publishers {
                p.await.unwrap();
            }
            assert_eq!(collect(&mut rx, N).await.len(), N);
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
            let after = bus.stats();
            assert_eq!(after.events_published - before.events_published, N as u64);
            assert_eq!(after.events_consumed - before.events_consumed, N as u64);
            assert_eq!(
                after.events_processed_success - before.events_processed_success,
                N as u64
            );
            assert!(
                after.last_publish_at.is_some()
                    && after.last_consume_at.is_some()
                    && after.connected_at.is_some()
            );
            let json = serde_json::to_value(&after).unwrap();
            for key in [
                "events_published",
                "events_consumed",
                "events_processed_success",
                "events_processed_failed",
                "messages_sent_to_dlq",
                "handler_errors",
                "reconnections",
                "rebalance_count",
                "last_publish_at",
                "last_consume_at",
                "last_error_at",
                "connected_at",
            ] {
                assert!(json.get(key).is_some(), "missing {key}");
            }
            assert!(json["connected_at"].as_str().unwrap().ends_with("+00:00"));
        },
    ));

    trials.push(trial(
        "an_idle_consumer_shuts_down_at_once",
        |ctx| async move {
            let prefix = unique("idle");
            let bus = start(config(ctx, &prefix, &prefix)).await;
            warm_up(&bus).await;
            let started = Instant::now();
            bus.shutdown(Duration::from_secs(30)).await.unwrap();
            assert!(
                started.elapsed() < Duration::from_millis(1000),
                "took {:?}",
                started.elapsed()
            );
            assert!(!bus.is_consuming());
            let err = bus.publish_event(order("late")).await.unwrap_err();
            assert!(matches!(err, kafka_event_bus::bus::Error::ShutDown), "{err}");
        },
    ));

    trials.push(trial(
        "publish_only_processes_never_join_and_errors_name_events",
        |ctx| async move {
            let prefix = unique("pubonly");
            let bus = KafkaEventBus::new(config(ctx, &prefix, &prefix)).unwrap();
            let err = bus.publish_event(order("x")).await.unwrap_err();
            assert_eq!(err.to_string(), "Not connected to Kafka. Call connect() first.");
            bus.connect().await.unwrap();
            let info = bus.topic_info().unwrap();
            assert!(info.connected && !info.consuming);
            // No topic yet (the bus does not create topics unless asked): a typed error naming the event.
            let event = order("x");
            let id = event.meta.event_id;
            let err = bus.publish_event(event).await.unwrap_err();
            match &err {
                kafka_event_bus::bus::Error::Publish { failed, total } => {
                    assert_eq!(*total, 1);
                    assert_eq!(failed[0].0, id);
                }
                other => panic!("{other}"),
            }
            bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(2))
                .await
                .unwrap();
            bus.publish_event(order("y")).await.unwrap();
            assert_eq!(bus.topic_info().unwrap().partitions, [0, 1]);
            bus.shutdown(Duration::from_secs(5)).await.unwrap();
        },
    ));

    trials.push(trial(
        "dlq_admin_lists_counts_and_replays_to_the_failing_group_only",
        |ctx| async move {
            let prefix = unique("replay");
            let (group_a, group_b) = (unique("a"), unique("b"));
            let mut cfg = config(ctx, &prefix, &group_a);
            cfg.max_retries = 0;
            let a = start(cfg).await;
            let b = start(config(ctx, &prefix, &group_b)).await;
            let fail = Arc::new(Mutex::new(true));
            let (a_tx, mut a_rx) = mpsc::unbounded_channel();
            let f = Arc::clone(&fail);
            a.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
                let failing = *f.lock().unwrap();
                if !failing {
                    let _ = a_tx.send(e.payload.customer_id.clone());
                }
                std::future::ready(if failing { Err("a is down".into()) } else { Ok(()) })
            })
            .unwrap();
            let mut rb = recorder(&b);
            warm_up(&a).await;
            warm_up(&b).await;
            assert_eq!(a.get_dlq_message_count().await.unwrap(), 0);
            assert!(
                a.get_dlq_messages(10, Duration::from_secs(5))
                    .await
                    .unwrap()
                    .is_empty()
            );

            a.publish_event(order("replayed")).await.unwrap();
            assert_eq!(collect(&mut rb, 1).await, ["replayed"]); // b handles it once
            // a gives up on it: one DLQ record.
            let deadline = Instant::now() + Duration::from_secs(30);
            while a.get_dlq_message_count().await.unwrap() < 1 {
                assert!(Instant::now() < deadline, "nothing reached the DLQ");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let entries = a.get_dlq_messages(10, Duration::from_secs(5)).await.unwrap();
            assert_eq!(entries.len(), 1);
            let letter = entries[0].dead_letter().unwrap();
            assert_eq!(letter.consumer_group, group_a);

            // a recovers; the replay reaches a, and b (which handled the event already) skips it.
            *fail.lock().unwrap() = false;
            a.replay_dlq_message(entries[0].partition, entries[0].offset, false)
                .await
                .unwrap();
            assert_eq!(
                tokio::time::timeout(Duration::from_secs(30), a_rx.recv())
                    .await
                    .unwrap()
                    .unwrap(),
                "replayed"
            );
            b.publish_event(order("barrier")).await.unwrap();
            assert_eq!(collect(&mut rb, 1).await, ["barrier"], "b must skip the replay");
            for bus in [&a, &b] {
                bus.shutdown(Duration::from_secs(10)).await.unwrap();
            }
        },
    ));

    trials.push(trial(
        "per_key_concurrency_keeps_each_aggregate_in_order",
        |ctx| async move {
            let prefix = unique("keyed");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.max_in_flight_per_partition = 8;
            let bus = KafkaEventBus::new(cfg.clone()).unwrap();
            bus.connect().await.unwrap();
            bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(1))
                .await
                .unwrap(); // one partition: everything shares it
            bus.start_consuming_in_background().unwrap();
            let log = Arc::new(Mutex::new(Vec::<String>::new()));
            let (done_tx, mut done_rx) = mpsc::unbounded_channel();
            let l = Arc::clone(&log);
            bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
                let (l, done_tx) = (Arc::clone(&l), done_tx.clone());
                async move {
                    let name = e.payload.customer_id.clone();
                    if name.starts_with("slow") {
                        tokio::time::sleep(Duration::from_millis(400)).await;
                    }
                    l.lock().unwrap().push(name.clone());
                    let _ = done_tx.send(name);
                    Ok(())
                }
            })
            .unwrap();
            warm_up(&bus).await;
            let (slow, fast) = (Uuid::new_v4(), Uuid::new_v4());
            let mut events = vec![];
            for i in 0..3 {
                events.push(DomainEvent::new(
                    slow,
                    i + 1,
                    OrderCreated {
                        customer_id: format!("slow-{i}"),
                    },
                ));
            }
            for i in 0..5 {
                events.push(DomainEvent::new(
                    fast,
                    i + 1,
                    OrderCreated {
                        customer_id: format!("fast-{i}"),
                    },
                ));
            }
            bus.publish(events.into_iter().map(|e| e.into_any().unwrap()).collect())
                .await
                .unwrap();
            for _ in 0..8 {
                tokio::time::timeout(Duration::from_secs(30), done_rx.recv())
                    .await
                    .unwrap();
            }
            let log = log.lock().unwrap().clone();
            let position = |name: &str| log.iter().position(|n| n == name).unwrap();
            // The fast aggregate did not wait behind the slow one...
            assert!(position("fast-4") < position("slow-0"), "{log:?}");
            // ...and each aggregate kept its order.
            assert!(
                position("slow-0") < position("slow-1") && position("slow-1") < position("slow-2"),
                "{log:?}"
            );
            assert!(
                (0..4).all(|i| position(&format!("fast-{i}")) < position(&format!("fast-{}", i + 1))),
                "{log:?}"
            );
            bus.shutdown(Duration::from_secs(10)).await.unwrap();

            // Everything was committed: a new member of the group gets nothing again (handled one by one,
            // so a redelivered event would arrive before the warm-up event behind it).
            cfg.max_in_flight_per_partition = 1;
            let again = start(cfg).await;
            let mut rx = recorder(&again);
            warm_up(&again).await;
            assert!(rx.try_recv().is_err(), "a settled event was redelivered");
            again.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));

    trials.push(trial(
        "permanent_errors_skip_retries_and_scoped_shuts_down",
        |ctx| async move {
            let prefix = unique("permanent");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.max_retries = 3;
            let calls = Arc::new(Mutex::new(0u32));
            let c = Arc::clone(&calls);
            let (bus, stats) = KafkaEventBus::scoped(cfg, |bus| async move {
                bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(1))
                    .await
                    .unwrap();
                bus.subscribe(move |_: Arc<DomainEvent<OrderCreated>>| {
                    *c.lock().unwrap() += 1;
                    std::future::ready(Err(
                        kafka_event_bus::bus::PermanentError::new("invalid order").into()
                    ))
                })
                .unwrap();
                bus.start_consuming_in_background().unwrap();
                warm_up(&bus).await;
                bus.publish_event(order("bad")).await.unwrap();
                let deadline = Instant::now() + Duration::from_secs(30);
                while bus.stats().messages_sent_to_dlq < 1 {
                    assert!(Instant::now() < deadline, "the event never reached the DLQ");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let stats = bus.stats();
                (bus, stats)
            })
            .await
            .unwrap();
            assert_eq!(*calls.lock().unwrap(), 1, "a permanent error is not retried");
            assert_eq!(stats.handler_errors, 1);
            // scoped() shut the bus down on the way out.
            assert!(!bus.is_connected() && !bus.is_consuming());
            let entries = {
                let again = KafkaEventBus::new(config(ctx, &prefix, &unique("reader"))).unwrap();
                again.connect().await.unwrap();
                again.get_dlq_messages(10, Duration::from_secs(5)).await.unwrap()
            };
            let letter = entries[0].dead_letter().unwrap();
            assert_eq!(
                (letter.retry_count, letter.error_message.as_str()),
                (0, "invalid order")
            );
        },
    ));
}
