//! The dispatcher's defined outcomes: a dead letter the DLQ refuses for good, a revocation while a
//! handler retries, a worker that dies outside a handler, shutdown's one deadline and its drain of
//! background publishes, and the lag gauge once consuming stops.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus, KafkaEventBusConfig, RecordContext},
    event::DomainEvent,
    telemetry::Telemetry,
};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, PeriodicReader, SdkMeterProvider,
    data::{AggregatedMetrics, MetricData},
};
use uuid::Uuid;

use crate::{
    spec_bugs::other_partitions_flow,
    bus::{config, warm_up},
    group_support::eventually,
    read_back::read_partition,
    spec_bugs::{count, order, raw_producer, raw_record, record_calls, start},
    support::{Ctx, OrderCreated, unique},
    trial,
};

/// A counter of `bus.stats()` by its serialized name (0 when the bus does not have it).
fn stat(bus: &KafkaEventBus, name: &str) -> u64 {
    serde_json::to_value(bus.stats()).unwrap()[name]
        .as_u64()
        .unwrap_or(0)
}

/// A bus that sends a failing record straight to the DLQ and leaves the group when a partition makes no
/// progress for 8 s.
fn dlq_config(ctx: &Ctx, prefix: &str) -> KafkaEventBusConfig {
    let mut config = config(ctx, prefix, prefix);
    config.max_retries = 0;
    config.max_poll_interval_ms = 8_000;
    config
}

/// After a record the DLQ refused for good: its partition is paused (the aggregate's next event waits
/// behind it), the other partitions flow, the record is tried once, and the member stays in the group
/// past `max_poll_interval`.
async fn assert_paused_not_poisoned(
    bus: &KafkaEventBus,
    calls: &crate::spec_bugs::Calls,
    aggregate: Uuid,
    failing: &str,
) {
    eventually("the DLQ failure counted", Duration::from_secs(20), || {
        stat(bus, "dead_letter_failures") == 1
    })
    .await;
    bus.publish_event(order(aggregate, 2, "behind")).await.unwrap();
    // Past max_poll_interval (8 s): a stalled partition would have made the member leave by now.
    tokio::time::sleep(Duration::from_secs(10)).await;
    // The member still holds the other partitions: their events are handled.
    other_partitions_flow(bus, calls).await;
    let s = bus.stats();
    assert_eq!(s.rebalance_count, 0, "the member left the group");
    assert_eq!(count(calls, "behind"), 0, "the paused partition went on");
    assert_eq!(count(calls, failing), 1, "the refused record was tried again");
    assert_eq!(s.messages_sent_to_dlq, 0);
    assert_eq!(stat(bus, "dead_letter_failures"), 1);
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "a_missing_dlq_topic_pauses_the_partition_not_the_group",
        |ctx| async move {
            let prefix = unique("dp-nodlq");
            // The main topic only: the DLQ topic does not exist (and the client never auto-creates).
            let bus = start(dlq_config(ctx, &prefix), false).await;
            let calls = record_calls(&bus, |c, _| c == "poison");
            warm_up(&bus).await;
            let aggregate = Uuid::new_v4();
            bus.publish_event(order(aggregate, 1, "poison")).await.unwrap();
            assert_paused_not_poisoned(&bus, &calls, aggregate, "poison").await;
            let cluster = ctx.cluster().await;
            assert!(
                cluster.partitions(&bus.config().dlq_topic_name()).await.is_err(),
                "the DLQ topic was created"
            );
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));

    trials.push(trial(
        "a_missing_dlq_topic_pauses_a_keyed_partition_too",
        |ctx| async move {
            let prefix = unique("dp-nodlq-keyed");
            let mut cfg = dlq_config(ctx, &prefix);
            cfg.max_in_flight_per_partition = 4;
            let bus = start(cfg, false).await;
            let calls = record_calls(&bus, |c, _| c == "poison");
            warm_up(&bus).await;
            let aggregate = Uuid::new_v4();
            bus.publish_event(order(aggregate, 1, "poison")).await.unwrap();
            assert_paused_not_poisoned(&bus, &calls, aggregate, "poison").await;
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));

    trials.push(trial(
        "a_dead_letter_too_large_pauses_the_partition_not_the_group",
        |ctx| async move {
            let prefix = unique("dp-big");
            let bus = start(dlq_config(ctx, &prefix), true).await;
            let calls = record_calls(&bus, |c, _| c.starts_with("big"));
            warm_up(&bus).await;
            // A record just under the producer's 1 MiB max_request_size: its nine dlq_* headers push
            // the dead letter past it.
            let aggregate = Uuid::new_v4();
            let probe = raw_record(
                &bus.config().topic_name(),
                &aggregate.to_string(),
                order(aggregate, 1, "big"),
                &[],
            );
            let headers: usize = probe
                .headers
                .iter()
                .map(|h| h.key.len() + 10 + h.value.map_or(0, <[u8]>::len))
                .sum();
            let key = probe.key.as_ref().map_or(0, |k| k.len());
            let base = 21 + key + 5 + probe.value.as_ref().map_or(0, |v| v.len()) + 5 + headers;
            let customer = format!("big{}", "x".repeat((1 << 20) - 200 - base));
            let record = raw_record(
                &bus.config().topic_name(),
                &aggregate.to_string(),
                order(aggregate, 1, &customer),
                &[],
            );
            raw_producer(ctx).await.send_and_wait(record).await.unwrap();
            assert_paused_not_poisoned(&bus, &calls, aggregate, &customer).await;
            assert_eq!(bus.get_dlq_message_count().await.unwrap(), 0);
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));

    trials.push(trial(
        "no_retry_runs_after_its_partition_was_revoked",
        |ctx| async move {
            let prefix = unique("dp-revoke");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.max_retries = 20;
            cfg.retry_base_delay = Duration::from_millis(700);
            cfg.retry_max_delay = Duration::from_millis(700);
            cfg.retry_jitter = 0.0;
            cfg.shutdown_timeout = Duration::from_secs(3);
            let a = KafkaEventBus::new(cfg.clone()).unwrap();
            a.connect().await.unwrap();
            a.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(1))
                .await
                .unwrap();
            // Each attempt on `a`: the worker task it ran on, its retry number, and when it started.
            type Attempts = Arc<Mutex<Vec<(Option<tokio::task::Id>, u32, Instant)>>>;
            let attempts: Attempts = Arc::default();
            let seen = Arc::clone(&attempts);
            a.subscribe(move |_: Arc<DomainEvent<OrderCreated>>| {
                let retries = RecordContext::current().map_or(0, |c| c.retries);
                seen.lock()
                    .unwrap()
                    .push((tokio::task::try_id(), retries, Instant::now()));
                async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Err("slow and failing".into())
                }
            })
            .unwrap();
            a.start_consuming_in_background().unwrap();
            a.publish_event(order(Uuid::new_v4(), 1, "slow")).await.unwrap();
            eventually("a to retry", Duration::from_secs(30), || {
                attempts.lock().unwrap().len() >= 2
            })
            .await;
            let b = KafkaEventBus::new(cfg).unwrap();
            b.connect().await.unwrap();
            let b_calls = record_calls(&b, |_, _| false);
            b.start_consuming_in_background().unwrap();
            eventually("a to count the revocation", Duration::from_secs(30), || {
                a.stats().rebalance_count >= 1
            })
            .await;
            let revoked = Instant::now();
            tokio::time::sleep(Duration::from_secs(4)).await;
            let attempts = attempts.lock().unwrap().clone();
            let before: Vec<_> = attempts
                .iter()
                .filter(|(_, _, at)| *at <= revoked)
                .map(|(task, _, _)| *task)
                .collect();
            let late: Vec<_> = attempts
                .iter()
                .filter(|(task, _, at)| *at > revoked && before.contains(task))
                .collect();
            assert!(
                late.is_empty(),
                "the revoked worker went on retrying: {late:?} (all: {attempts:?})"
            );
            eprintln!(
                "attempts on a: {}, calls on b: {}",
                attempts.len(),
                b_calls.lock().unwrap().len()
            );
            for bus in [&a, &b] {
                let _ = bus.shutdown(Duration::from_secs(10)).await;
            }
        },
    ));

    trials.push(trial(
        "a_worker_that_dies_pauses_its_partition_loudly",
        |ctx| async move {
            let prefix = unique("dp-panic");
            let bus = start(config(ctx, &prefix, &prefix), false).await;
            let calls = record_calls(&bus, |_, _| false);
            warm_up(&bus).await;
            kafka_event_bus::testing::inject_worker_panic(&bus.config().topic_name());
            let aggregate = Uuid::new_v4();
            bus.publish_event(order(aggregate, 1, "first")).await.unwrap();
            eventually("the dead worker counted", Duration::from_secs(20), || {
                stat(&bus, "worker_failures") == 1
            })
            .await;
            bus.publish_event(order(aggregate, 2, "second")).await.unwrap();
            other_partitions_flow(&bus, &calls).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(
                count(&calls, "first"),
                0,
                "the record the worker held was handled"
            );
            assert_eq!(count(&calls, "second"), 0, "the paused partition went on");
            assert_eq!(bus.stats().rebalance_count, 0);
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));

    trials.push(trial(
        "shutdown_keeps_its_deadline_and_drains_background_publishes",
        |ctx| async move {
            let prefix = unique("dp-shutdown");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.shutdown_timeout = Duration::from_secs(20);
            let bus = KafkaEventBus::new(cfg).unwrap();
            bus.connect().await.unwrap();
            bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(3))
                .await
                .unwrap();
            let entered = Arc::new(tokio::sync::Notify::new());
            let e = Arc::clone(&entered);
            bus.subscribe(move |event: Arc<DomainEvent<OrderCreated>>| {
                let stuck = event.payload.customer_id == "stuck";
                if stuck {
                    e.notify_one();
                }
                async move {
                    if stuck {
                        std::future::pending::<()>().await;
                    }
                    Ok(())
                }
            })
            .unwrap();
            let consuming = bus.start_consuming_in_background().unwrap();
            warm_up(&bus).await;
            bus.publish_event(order(Uuid::new_v4(), 1, "stuck"))
                .await
                .unwrap();
            tokio::time::timeout(Duration::from_secs(20), entered.notified())
                .await
                .unwrap();
            for i in 0..50 {
                let event = order(Uuid::new_v4(), 1, &format!("bg-{i}")).into_any().unwrap();
                bus.publish_background(vec![event]).await.unwrap();
            }
            let started = Instant::now();
            let result = bus.shutdown(Duration::from_secs(3)).await;
            let took = started.elapsed();
            eprintln!("shutdown(3 s) with a stuck handler: {result:?} after {took:?}");
            assert!(took < Duration::from_millis(4_500), "shutdown(3 s) took {took:?}");
            // The consume loop kept the same deadline: it ends with the shutdown, not a drain later.
            tokio::time::timeout(Duration::from_millis(1_500), consuming.wait())
                .await
                .expect("the consume loop outlived the shutdown's deadline")
                .unwrap();
            // Every background publish made before the shutdown reached the topic.
            let cluster = ctx.cluster().await;
            let mut published = 0;
            for p in 0..3 {
                published += read_partition(&cluster, &bus.config().topic_name(), p)
                    .await
                    .iter()
                    .filter(|(_, r)| {
                        r.value
                            .as_ref()
                            .is_some_and(|v| String::from_utf8_lossy(v).contains("\"bg-"))
                    })
                    .count();
            }
            assert_eq!(published, 50, "background publishes lost at shutdown");
        },
    ));

    trials.push(trial(
        "the_lag_gauge_is_cleared_when_consuming_stops",
        |ctx| async move {
            let exporter = InMemoryMetricExporter::default();
            let provider = SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(exporter.clone()).build())
                .build();
            let prefix = unique("dp-lag");
            let telemetry = Telemetry::builder()
                .meter(provider.meter("eventsource.bus.kafka"))
                .tracing(false)
                .consumer_group(prefix.clone())
                .build();
            let bus = KafkaEventBus::with_telemetry(config(ctx, &prefix, &prefix), telemetry).unwrap();
            bus.connect().await.unwrap();
            bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(3))
                .await
                .unwrap();
            let calls = record_calls(&bus, |_, _| false);
            bus.start_consuming_in_background().unwrap();
            let events: Vec<_> = (0..400)
                .map(|i| order(Uuid::new_v4(), 1, &format!("e-{i}")).into_any().unwrap())
                .collect();
            bus.publish(events).await.unwrap();
            eventually("the events handled", Duration::from_secs(30), || {
                calls.lock().unwrap().len() >= 400
            })
            .await;
            let lag_points = || {
                exporter.reset();
                provider.force_flush().unwrap();
                let mut points = 0;
                for rm in exporter.get_finished_metrics().unwrap() {
                    for sm in rm.scope_metrics() {
                        for m in sm.metrics() {
                            if m.name() != "kafka.eventbus.consumer.lag" {
                                continue;
                            }
                            points += match m.data() {
                                AggregatedMetrics::I64(MetricData::Gauge(g)) => g.data_points().count(),
                                AggregatedMetrics::U64(MetricData::Gauge(g)) => g.data_points().count(),
                                AggregatedMetrics::F64(MetricData::Gauge(g)) => g.data_points().count(),
                                _ => 0,
                            };
                        }
                    }
                }
                points
            };
            assert!(lag_points() > 0, "no lag was reported while consuming");
            bus.stop_consuming();
            eventually("consuming to stop", Duration::from_secs(20), || {
                !bus.is_consuming()
            })
            .await;
            assert_eq!(lag_points(), 0, "lag still reported after consuming stopped");
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));

    trials.push(trial(
        "a_permanent_error_has_its_own_reason_and_a_replay_is_published",
        |ctx| async move {
            let prefix = unique("dp-permanent");
            let bus = start(config(ctx, &prefix, &prefix), true).await;
            bus.subscribe(|event: Arc<DomainEvent<OrderCreated>>| {
                std::future::ready(if event.payload.customer_id == "bad" {
                    Err(kafka_event_bus::bus::PermanentError::new("invalid order").into())
                } else {
                    Ok(())
                })
            })
            .unwrap();
            warm_up(&bus).await;
            bus.publish_event(order(Uuid::new_v4(), 1, "bad")).await.unwrap();
            eventually("the DLQ record", Duration::from_secs(20), || {
                bus.stats().messages_sent_to_dlq == 1
            })
            .await;
            let entries = bus.get_dlq_messages(10, Duration::from_secs(5)).await.unwrap();
            let letter = entries[0].dead_letter().unwrap();
            assert_eq!(letter.reason.as_str(), "permanent_error");
            let published = bus.stats().events_published;
            bus.replay_dlq_message(entries[0].partition, entries[0].offset, false)
                .await
                .unwrap();
            assert_eq!(
                bus.stats().events_published,
                published + 1,
                "the replay was not counted"
            );
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));
}
