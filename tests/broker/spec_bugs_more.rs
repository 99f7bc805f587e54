//! The rest of the eventsource-py bug tests (see `spec_bugs`): lifecycle, poison headers and parallelism.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus},
    event::DomainEvent,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    bus::config,
    fault_proxy::FaultyBroker,
    group_support::eventually,
    spec_bugs::{
        Gate, count, is_already_consuming, order, raw_producer, raw_record, record_calls, start, warm_up,
    },
    support::{OrderCreated, unique},
    trial,
};

/// Subscribes a handler that records calls and blocks on `gate` for the customer "slow".
fn gated(bus: &KafkaEventBus, gate: &Gate) -> Arc<Mutex<Vec<String>>> {
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let (c, gate) = (Arc::clone(&calls), Arc::clone(gate));
    bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
        let (c, gate) = (Arc::clone(&c), Arc::clone(&gate));
        async move {
            c.lock().unwrap().push(e.payload.customer_id.clone());
            if e.payload.customer_id == "slow" {
                gate.notified().await;
            }
            Ok(())
        }
    })
    .unwrap();
    calls
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    // eventsource-py bug 10: the commit after a success sits inside the handler's error handling, so a commit failure
    // re-publishes an already-handled record (a duplicate every group sees). Here the broker is gone
    // right after a success, so the commit at shutdown fails: the record is not retried, counted as
    // failed or dead-lettered (it can only come back by redelivery to this group: at least once).
    trials.push(trial(
        "a_failed_commit_never_retries_or_republishes_a_handled_record",
        |ctx| async move {
            let mut broker = FaultyBroker::start().await;
            let prefix = unique("sb-commit");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.bootstrap_servers = broker.bootstrap.clone();
            let first = KafkaEventBus::new(cfg.clone()).unwrap();
            first.connect().await.unwrap();
            first
                .ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(3))
                .await
                .unwrap();
            let consuming = first.start_consuming_in_background().unwrap();
            let calls = record_calls(&first, |_, _| false);
            warm_up(&first).await;
            let event = order(Uuid::new_v4(), 1, "handled");
            first.publish_event(event).await.unwrap();
            eventually("the handler", Duration::from_secs(20), || {
                count(&calls, "handled") == 1
            })
            .await;
            // The broker goes away before the done offset is committed: every commit attempt fails.
            broker.broker.stop();
            let started = Instant::now();
            let closed = first.shutdown(Duration::from_secs(3)).await;
            // The loop keeps trying to commit in the background (see the report); give it a moment.
            tokio::time::sleep(Duration::from_millis(500)).await;
            eprintln!(
                "shutdown without a broker: {closed:?} after {:?}",
                started.elapsed()
            );
            let stats = first.stats();
            assert_eq!(count(&calls, "handled"), 1);
            assert_eq!(
                (
                    stats.handler_errors,
                    stats.events_processed_failed,
                    stats.messages_sent_to_dlq
                ),
                (0, 0, 0)
            );
            assert_eq!(
                stats.events_processed_success, 2,
                "the warm-up and the handled record"
            );
            drop(consuming);
        },
    ));

    // eventsource-py bug 9: after cancellation `is_consuming` stays true, so a later start is refused or a no-op.
    // Here the `start_consuming` future is dropped (a timeout around it, or a `select!`); a drop guard
    // in `KafkaEventBus::start_consuming` clears the flag however the loop ends.
    trials.push(trial(
        "a_cancelled_consume_loop_does_not_stay_consuming",
        |ctx| async move {
            let prefix = unique("sb-cancel");
            let bus = KafkaEventBus::new(config(ctx, &prefix, &prefix)).unwrap();
            bus.connect().await.unwrap();
            bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(3))
                .await
                .unwrap();
            let cancelled = tokio::time::timeout(Duration::from_millis(500), bus.start_consuming()).await;
            assert!(cancelled.is_err(), "start_consuming returned: {cancelled:?}");
            assert!(!bus.is_consuming(), "still consuming after cancellation");
            assert!(!bus.topic_info().unwrap().consuming);
            match bus.start_consuming_in_background() {
                Ok(_) => {}
                Err(e) => panic!(
                    "cannot start again: {e} (already consuming: {})",
                    is_already_consuming(&e)
                ),
            }
            let calls = record_calls(&bus, |_, _| false);
            warm_up(&bus).await;
            bus.publish_event(order(Uuid::new_v4(), 1, "after-restart"))
                .await
                .unwrap();
            eventually("the restarted loop", Duration::from_secs(20), || {
                count(&calls, "after-restart") == 1
            })
            .await;
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));

    // eventsource-py bug 9: `shutdown(0)` means "the default timeout" (30 s). Here 0 means now, even with a handler
    // busy.
    trials.push(trial(
        "shutdown_zero_returns_at_once",
        |ctx| async move {
            let prefix = unique("sb-zero");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.shutdown_timeout = Duration::from_secs(30);
            let bus = start(cfg, true).await;
            let gate: Gate = Arc::new(Notify::new());
            let calls = gated(&bus, &gate);
            warm_up(&bus).await;
            bus.publish_event(order(Uuid::new_v4(), 1, "slow")).await.unwrap();
            eventually("the slow handler", Duration::from_secs(20), || {
                calls.lock().unwrap().iter().any(|c| c == "slow")
            })
            .await;
            let started = Instant::now();
            let result = bus.shutdown(Duration::ZERO).await;
            let took = started.elapsed();
            assert!(took < Duration::from_millis(500), "shutdown(0) took {took:?}");
            assert!(
                matches!(result, Err(kafka_event_bus::bus::Error::ShutdownTimeout { .. })),
                "{result:?}"
            );
            gate.notify_one();
        },
    ));

    // eventsource-py bug 11: a non-UTF-8 header value (retry_count, retry_after, traceparent) crashes the consume loop
    // forever; `retry_after="inf"` sleeps forever while its offset is committed past; `retry_after` is
    // wall-clock time (clock skew). Valid events carrying such headers are handled at once, in order,
    // and later records of the partition are not held up.
    trials.push(trial(
        "poison_retry_and_trace_headers_never_stall_valid_events",
        |ctx| async move {
            let prefix = unique("sb-headers");
            let bus = start(config(ctx, &prefix, &prefix), true).await;
            let calls = record_calls(&bus, |_, _| false);
            warm_up(&bus).await;
            let topic = format!("{prefix}.stream");
            let key = Uuid::new_v4().to_string(); // one partition: a stall blocks what follows
            let aggregate = Uuid::new_v4();
            let far_future = format!("{}", time::OffsetDateTime::now_utc().unix_timestamp() + 1_000_000);
            let poison: [&[(&str, &[u8])]; 4] = [
                &[("retry_count", b"\xff\xfe"), ("traceparent", b"\xc3\x28")],
                &[("retry_after", b"inf"), ("retry_count", b"1")],
                &[
                    ("retry_after", b"\xff"),
                    ("baggage", b"\xff=\xff"),
                    ("tracestate", b"\x80"),
                ],
                &[("retry_after", far_future.as_bytes()), ("retry_count", b"2")],
            ];
            let producer = raw_producer(ctx).await;
            let mut records: Vec<_> = poison
                .iter()
                .enumerate()
                .map(|(i, extra)| {
                    raw_record(
                        &topic,
                        &key,
                        order(aggregate, i as u64 + 1, &format!("p{i}")),
                        extra,
                    )
                })
                .collect();
            records.push(raw_record(&topic, &key, order(aggregate, 5, "last"), &[]));
            for r in producer.send_all(records).await {
                r.unwrap();
            }
            let started = Instant::now();
            eventually("every event", Duration::from_secs(20), || {
                count(&calls, "last") == 1
            })
            .await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
            assert_eq!(*calls.lock().unwrap(), ["p0", "p1", "p2", "p3", "last"]);
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
            let stats = bus.stats();
            assert_eq!(
                (
                    stats.messages_sent_to_dlq,
                    stats.handler_errors,
                    stats.reconnections
                ),
                (0, 0, 0)
            );
            producer.close().await;
        },
    ));

    // eventsource-py bug 12: `connect()` joins the consumer group, so a publish-only process holds partitions it never
    // polls. Here a connected, publishing bus of the same group holds none: the consuming member gets
    // every partition at once.
    trials.push(trial(
        "a_publish_only_bus_holds_no_partitions",
        |ctx| async move {
            let prefix = unique("sb-pubonly");
            let publisher = KafkaEventBus::new(config(ctx, &prefix, &prefix)).unwrap();
            publisher.connect().await.unwrap();
            publisher
                .ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(3))
                .await
                .unwrap();
            let consumer = start(config(ctx, &prefix, &prefix), true).await;
            let calls = record_calls(&consumer, |_, _| false);
            warm_up(&consumer).await;
            let events: Vec<_> = (0..30)
                .map(|i| order(Uuid::new_v4(), 1, &format!("e{i}")).into_any().unwrap())
                .collect();
            publisher.publish(events).await.unwrap();
            eventually(
                "every event, from every partition",
                Duration::from_secs(20),
                || calls.lock().unwrap().len() == 30,
            )
            .await;
            assert!(!publisher.is_consuming());
            consumer.shutdown(Duration::from_secs(10)).await.unwrap();
            publisher.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));

    // eventsource-py bug 9: after an error with auto_reconnect=False, `is_consuming` stays true (and with it, the loop
    // re-raises and is dead while claiming to consume). Here the group is held by a member whose only
    // protocol (cooperative-sticky) this bus does not offer, so every join fails: the loop keeps
    // rejoining with backoff, counts `reconnections`, says it is still consuming, and reports
    // `consuming = false` after shutdown.
    trials.push(trial(
        "a_failing_consume_loop_retries_and_counts_reconnections",
        |ctx| async move {
            use kafka_event_bus::client::{
                consumer::{Consumer, ConsumerConfig, ConsumerEvent},
                group::assignor::CooperativeStickyAssignor,
            };
            let prefix = unique("sb-fatal");
            let bus = KafkaEventBus::new(config(ctx, &prefix, &prefix)).unwrap();
            bus.connect().await.unwrap();
            bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(3))
                .await
                .unwrap();
            let _calls = record_calls(&bus, |_, _| false);
            let cluster = ctx.cluster().await;
            let other = ConsumerConfig::new(prefix.clone(), [format!("{prefix}.stream")])
                .with_session_timeout(Duration::from_secs(6))
                .with_heartbeat_interval(Duration::from_millis(500))
                .with_assignors(vec![Arc::new(CooperativeStickyAssignor)]);
            let mut other = Consumer::connect(&cluster, other).unwrap();
            let assigned = tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    if let Some(ConsumerEvent::Assigned(_)) = other.next_event().await {
                        break;
                    }
                }
            })
            .await;
            assert!(assigned.is_ok(), "the cooperative member never got partitions");
            let consuming = bus.start_consuming_in_background().unwrap();
            eventually("a counted reconnection", Duration::from_secs(30), || {
                bus.stats().reconnections >= 1
            })
            .await;
            assert!(bus.is_consuming(), "the loop gave up instead of rejoining");
            // (Rejoining once the group is free again is not asserted here: after an inconsistent-
            // protocol join, Tansu kept refusing this group's joins for longer than a test should wait.)
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
            consuming.wait().await.unwrap();
            other.close().await;
            assert!(!bus.is_consuming());
            assert!(!bus.topic_info().is_ok_and(|t| t.consuming));
        },
    ));

    // eventsource-py bug 13: one message at a time across all partitions, so one slow handler blocks everything. Here
    // a handler blocked on one partition does not stop the others.
    trials.push(trial(
        "a_slow_handler_blocks_only_its_partition",
        |ctx| async move {
            let prefix = unique("sb-parallel");
            let bus = start(config(ctx, &prefix, &prefix), true).await;
            let gate: Gate = Arc::new(Notify::new());
            let calls = gated(&bus, &gate);
            warm_up(&bus).await;
            bus.publish_event(order(Uuid::new_v4(), 1, "slow")).await.unwrap();
            eventually("the slow handler", Duration::from_secs(20), || {
                calls.lock().unwrap().iter().any(|c| c == "slow")
            })
            .await;
            let others: Vec<_> = (0..30)
                .map(|i| {
                    order(Uuid::new_v4(), 1, &format!("other-{i}"))
                        .into_any()
                        .unwrap()
                })
                .collect();
            bus.publish(others).await.unwrap();
            // About two thirds of them are on the two other partitions.
            eventually("events of other partitions", Duration::from_secs(20), || {
                calls.lock().unwrap().len() > 5
            })
            .await;
            gate.notify_one();
            eventually("everything once released", Duration::from_secs(20), || {
                calls.lock().unwrap().len() == 31
            })
            .await;
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));
}
