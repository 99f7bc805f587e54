//! One test per eventsource-py bug that no other test already covers, each proving
//! `KafkaEventBus` does not have it. `docs/spec-bugs.md` maps every bug to its test.
//!
//! A test that shows the bug is still present is registered as ignored, with a comment saying why
//! (`spec_bugs_more.rs`: the cancelled consume loop).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kafka_event_bus::{
    bus::{Error, EventBus, KafkaEventBus, KafkaEventBusConfig},
    client::{
        Cluster, NewTopic,
        producer::{Producer, ProducerConfig, ProducerRecord},
    },
    event::{DomainEvent, Event},
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    bus::config,
    group_support::eventually,
    read_back::read_partition,
    sasl_proxy,
    support::OrderCreated,
    support::{Ctx, unique},
    tls_proxy, trial,
};

/// A type the consuming groups of these tests never subscribe to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderShipped {
    carrier: String,
}

impl Event for OrderShipped {
    const EVENT_TYPE: &'static str = "OrderShipped";
    const AGGREGATE_TYPE: &'static str = "Order";
}

pub(crate) fn order(aggregate: Uuid, version: u64, customer: &str) -> DomainEvent<OrderCreated> {
    DomainEvent::new(
        aggregate,
        version,
        OrderCreated {
            customer_id: customer.into(),
        },
    )
}

/// A connected bus consuming in the background. `dlq`: whether to create the DLQ topic too.
pub(crate) async fn start(config: KafkaEventBusConfig, dlq: bool) -> KafkaEventBus {
    let bus = KafkaEventBus::new(config).unwrap();
    bus.connect().await.unwrap();
    if dlq {
        bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(3))
            .await
            .unwrap();
    } else {
        create_main_topic(&bus).await;
    }
    bus.start_consuming_in_background().unwrap();
    bus
}

async fn create_main_topic(bus: &KafkaEventBus) {
    let cluster = Cluster::connect(bus.config().client_config().unwrap())
        .await
        .unwrap();
    cluster
        .ensure_topics(&[NewTopic::new(bus.config().topic_name(), 3, 1)])
        .await
        .unwrap();
}

/// Waits until `bus` handles an event it published, i.e. it owns the partition of that event.
pub(crate) use crate::bus::warm_up;

/// Every customer id a handler saw, in call order (retries included).
pub(crate) type Calls = Arc<Mutex<Vec<String>>>;

/// Subscribes a handler that records each call and fails for the customers `fails` says.
pub(crate) fn record_calls(
    bus: &KafkaEventBus,
    fails: impl Fn(&str, usize) -> bool + Send + Sync + 'static,
) -> Calls {
    let calls: Calls = Arc::default();
    let c = Arc::clone(&calls);
    bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
        let mut calls = c.lock().unwrap();
        let customer = e.payload.customer_id.clone();
        let before = calls.iter().filter(|c| **c == customer).count();
        calls.push(customer.clone());
        let fail = fails(&customer, before);
        std::future::ready(if fail {
            Err(format!("{customer} fails").into())
        } else {
            Ok(())
        })
    })
    .unwrap();
    calls
}

/// Publishes 30 events on fresh aggregates (customers `other-0`..) and waits until at least 10 were
/// handled: the partitions other than a stopped one still flow.
pub(crate) async fn other_partitions_flow(bus: &KafkaEventBus, calls: &Calls) {
    let others: Vec<_> = (0..30)
        .map(|i| {
            order(Uuid::new_v4(), 1, &format!("other-{i}"))
                .into_any()
                .unwrap()
        })
        .collect();
    bus.publish(others).await.unwrap();
    eventually("the other partitions to flow", Duration::from_secs(20), || {
        calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("other-"))
            .count()
            >= 10
    })
    .await;
}

pub(crate) fn count(calls: &Calls, customer: &str) -> usize {
    calls.lock().unwrap().iter().filter(|c| *c == customer).count()
}

/// Publishes an `OrderShipped` (a type `bus` has no subscription for) and then, for the same aggregate,
/// an `OrderCreated` for customer "after"; returns once the latter was handled (nothing stalled).
async fn publish_unknown_type_then_handled_event(bus: &KafkaEventBus, calls: &Calls) {
    let aggregate = Uuid::new_v4();
    let shipped = DomainEvent::new(
        aggregate,
        1,
        OrderShipped {
            carrier: "ups".into(),
        },
    );
    bus.publish(vec![
        shipped.into_any().unwrap(),
        order(aggregate, 2, "after").into_any().unwrap(),
    ])
    .await
    .unwrap();
    eventually("the event behind it", Duration::from_secs(20), || {
        count(calls, "after") == 1
    })
    .await;
}

/// How many records of `topic` (3 partitions) carry the `event_id` header `id`.
async fn copies(ctx: &Ctx, topic: &str, id: Uuid) -> usize {
    let cluster = ctx.cluster().await;
    let id = id.to_string();
    let mut n = 0;
    for p in 0..3 {
        n += read_partition(&cluster, topic, p)
            .await
            .iter()
            .filter(|(_, r)| r.headers.get_str("event_id") == Some(id.as_str()))
            .count();
    }
    n
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    // eventsource-py bugs 1 (a message "left uncommitted" is committed by the next success) and 2 (commit before the
    // DLQ record is acknowledged): the DLQ topic is missing, so the DLQ send fails. The record behind it
    // must not be handled, and after a restart the failed record must come back.
    trials.push(trial(
        "an_unacknowledged_dlq_record_is_never_committed_past",
        |ctx| async move {
            let prefix = unique("sb-unretained");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.max_retries = 0;
            let first = start(cfg.clone(), false).await;
            let calls = record_calls(&first, |c, _| c == "doomed");
            warm_up(&first).await;
            let aggregate = Uuid::new_v4();
            first
                .publish(vec![
                    order(aggregate, 1, "doomed").into_any().unwrap(),
                    order(aggregate, 2, "next").into_any().unwrap(),
                ])
                .await
                .unwrap();
            eventually("the doomed handler", Duration::from_secs(20), || {
                count(&calls, "doomed") == 1
            })
            .await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(count(&calls, "next"), 0, "handled past an unsettled record");
            assert_eq!(first.stats().messages_sent_to_dlq, 0);
            let started = Instant::now();
            first.shutdown(Duration::from_secs(10)).await.unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );

            // Restart with the DLQ in place: the doomed record is delivered again, then dead-lettered.
            let second = KafkaEventBus::new(cfg).unwrap();
            second.connect().await.unwrap();
            second
                .ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(3))
                .await
                .unwrap();
            let again = record_calls(&second, |c, _| c == "doomed");
            second.start_consuming_in_background().unwrap();
            eventually("next, on the restarted bus", Duration::from_secs(30), || {
                count(&again, "next") == 1
            })
            .await;
            assert_eq!(*again.lock().unwrap(), ["doomed", "next"]);
            second.shutdown(Duration::from_secs(10)).await.unwrap();
            assert_eq!(second.stats().messages_sent_to_dlq, 1);
        },
    ));

    // eventsource-py bugs 1 (a delayed retry is committed past) and 9 (stop waits on retry timers without a
    // timeout): shut down while a record waits for its retry; the next record was not handled, shutdown
    // is prompt, and a restarted consumer gets the record again.
    trials.push(trial(
        "a_record_waiting_for_its_retry_is_not_committed_past_nor_holds_shutdown",
        |ctx| async move {
            let prefix = unique("sb-retry");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.max_retries = 3;
            cfg.retry_base_delay = Duration::from_secs(5);
            cfg.retry_max_delay = Duration::from_secs(5);
            let first = start(cfg.clone(), true).await;
            let calls = record_calls(&first, |c, _| c == "flaky");
            warm_up(&first).await;
            let aggregate = Uuid::new_v4();
            first
                .publish(vec![
                    order(aggregate, 1, "flaky").into_any().unwrap(),
                    order(aggregate, 2, "next").into_any().unwrap(),
                ])
                .await
                .unwrap();
            eventually("the first attempt", Duration::from_secs(20), || {
                count(&calls, "flaky") == 1
            })
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(
                count(&calls, "next"),
                0,
                "handled past a record waiting for its retry"
            );
            let started = Instant::now();
            first.shutdown(Duration::from_secs(10)).await.unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "shutdown waited for the retry: {:?}",
                started.elapsed()
            );

            let second = start(cfg, true).await;
            let again = record_calls(&second, |_, _| false);
            eventually(
                "both records on the restarted bus",
                Duration::from_secs(30),
                || count(&again, "next") == 1,
            )
            .await;
            assert_eq!(*again.lock().unwrap(), ["flaky", "next"]);
            second.shutdown(Duration::from_secs(10)).await.unwrap();
            assert_eq!(second.stats().messages_sent_to_dlq, 0);
        },
    ));

    // eventsource-py bug 3: retries go through the shared main topic, so every other group gets a duplicate. Here group
    // a retries twice; group b must see the event once and the topic must hold it once.
    trials.push(trial(
        "retries_stay_in_place_and_never_reach_other_groups",
        |ctx| async move {
            let prefix = unique("sb-groups");
            let a = start(config(ctx, &prefix, &unique("a")), true).await;
            let b = start(config(ctx, &prefix, &unique("b")), true).await;
            let a_calls = record_calls(&a, |_, before| before < 2);
            let b_calls = record_calls(&b, |_, _| false);
            warm_up(&a).await;
            warm_up(&b).await;
            let event = order(Uuid::new_v4(), 1, "retried");
            let id = event.meta.event_id;
            a.publish_event(event).await.unwrap();
            eventually(
                "a to succeed on its third attempt",
                Duration::from_secs(20),
                || count(&a_calls, "retried") == 3,
            )
            .await;
            eventually("b", Duration::from_secs(20), || count(&b_calls, "retried") >= 1).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(count(&b_calls, "retried"), 1, "b got a retry copy");
            assert_eq!(count(&a_calls, "retried"), 3);
            assert_eq!(copies(ctx, &format!("{prefix}.stream"), id).await, 1);
            for bus in [&a, &b] {
                bus.shutdown(Duration::from_secs(10)).await.unwrap();
            }
            assert_eq!(b.stats().handler_errors, 0);
            assert_eq!(a.stats().handler_errors, 2);
        },
    ));

    // eventsource-py bug 5: a group that subscribes to only some of the types on the topic must not dead-letter the
    // others (they are counted as consumed and handled by nobody) nor stall behind them.
    trials.push(trial(
        "types_nobody_subscribed_to_are_skipped_not_dead_lettered",
        |ctx| async move {
            let prefix = unique("sb-unknown");
            let bus = start(config(ctx, &prefix, &prefix), true).await;
            let calls = record_calls(&bus, |_, _| false);
            warm_up(&bus).await;
            let before = bus.stats();
            publish_unknown_type_then_handled_event(&bus, &calls).await;
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
            let after = bus.stats();
            assert_eq!(after.messages_sent_to_dlq, 0);
            assert_eq!(after.events_processed_failed, 0);
            // Both records are consumed and count as processed. A rebalance (rare on a busy test
            // broker) may legitimately redeliver what was not committed yet, the warm-up included.
            let consumed = after.events_consumed - before.events_consumed;
            let rebalanced = after.rebalance_count > before.rebalance_count;
            assert!(
                consumed == 2 || (rebalanced && consumed > 2),
                "{consumed} consumed; before {before:?}, after {after:?}"
            );
            assert_eq!(
                after.events_processed_success - before.events_processed_success,
                consumed
            );
            let reader = KafkaEventBus::new(config(ctx, &prefix, &unique("r"))).unwrap();
            reader.connect().await.unwrap();
            assert_eq!(reader.get_dlq_message_count().await.unwrap(), 0);
            reader.shutdown(Duration::from_secs(5)).await.unwrap();
        },
    ));

    // The other unknown-type policy (issue 7): `dead_letter_unknown_types` sends them to the DLQ the way
    // eventsource-py does, and the partition goes on.
    trials.push(trial(
        "unknown_types_are_dead_lettered_when_asked",
        |ctx| async move {
            let prefix = unique("sb-unknown-dlq");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.dead_letter_unknown_types = true;
            let bus = start(cfg, true).await;
            let calls = record_calls(&bus, |_, _| false);
            warm_up(&bus).await;
            let before = bus.stats();
            publish_unknown_type_then_handled_event(&bus, &calls).await;
            eventually("the DLQ record", Duration::from_secs(20), || {
                bus.stats().messages_sent_to_dlq > before.messages_sent_to_dlq
            })
            .await;
            let entries = bus.get_dlq_messages(10, Duration::from_secs(5)).await.unwrap();
            assert_eq!(entries.len(), 1);
            let letter = entries[0].dead_letter().unwrap();
            assert_eq!(letter.reason.as_str(), "deserialization_error");
            assert_eq!(letter.error_type, "DeserializationError");
            assert_eq!(letter.error_message, "Unknown event type: OrderShipped");
            assert_eq!(entries[0].headers.get_str("event_type"), Some("OrderShipped"));
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
            let after = bus.stats();
            assert_eq!(after.events_processed_failed - before.events_processed_failed, 1);
            assert_eq!(
                after.events_processed_success - before.events_processed_success,
                1
            );
        },
    ));

    // eventsource-py bug 6: the rebalance listener is never attached (no commit on revoke, count stays 0). A second
    // member joins right after the first handled a batch (well inside the 5 s commit interval): the
    // first counts the rebalance, and the second gets none of the batch again.
    trials.push(trial(
        "rebalances_are_counted_and_commit_what_was_handled",
        |ctx| async move {
            let prefix = unique("sb-rebalance");
            let a = start(config(ctx, &prefix, &prefix), true).await;
            let a_calls = record_calls(&a, |_, _| false);
            warm_up(&a).await;
            let batch: Vec<_> = (0..30)
                .map(|i| {
                    order(Uuid::new_v4(), 1, &format!("first-{i}"))
                        .into_any()
                        .unwrap()
                })
                .collect();
            a.publish(batch).await.unwrap();
            eventually("a to handle the batch", Duration::from_secs(20), || {
                a_calls.lock().unwrap().len() == 30
            })
            .await;
            let joined = Instant::now();
            let b = start(config(ctx, &prefix, &prefix), true).await;
            let b_calls = record_calls(&b, |_, _| false);
            eventually("a to count the rebalance", Duration::from_secs(30), || {
                a.stats().rebalance_count >= 1
            })
            .await;
            eprintln!(
                "rebalanced {:?} after the second member started",
                joined.elapsed()
            );
            let batch: Vec<_> = (0..30)
                .map(|i| {
                    order(Uuid::new_v4(), 1, &format!("second-{i}"))
                        .into_any()
                        .unwrap()
                })
                .collect();
            a.publish(batch).await.unwrap();
            let second = |calls: &Calls| {
                calls
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|c| c.starts_with("second-"))
                    .count()
            };
            eventually("the second batch", Duration::from_secs(30), || {
                second(&a_calls) + second(&b_calls) >= 30
            })
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(second(&a_calls) + second(&b_calls), 30);
            assert!(second(&b_calls) > 0, "b got no partition");
            let redelivered: Vec<String> = b_calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.starts_with("first-"))
                .cloned()
                .collect();
            assert!(redelivered.is_empty(), "not committed on revoke: {redelivered:?}");
            for bus in [&a, &b] {
                bus.shutdown(Duration::from_secs(10)).await.unwrap();
            }
        },
    ));

    // eventsource-py bug 7: SSL and SASL_SSL configs cannot connect, and the string acks "0"/"1" are refused. The
    // whole bus (connect, publish, consume) over TLS with acks "1", and over SASL_SSL with acks "0".
    trials.push(trial(
        "the_bus_runs_over_ssl_and_sasl_ssl_with_string_acks",
        |_ctx| async move {
            let broker = tls_proxy::start("server", false).await;
            let prefix = unique("sb-ssl");
            let cfg = KafkaEventBusConfig::builder()
                .bootstrap_servers(broker.bootstrap.clone())
                .topic_prefix(&prefix)
                .consumer_group(&prefix)
                .session_timeout_ms(6_000)
                .heartbeat_interval_ms(500)
                .security_protocol("SSL")
                .ssl_cafile(tls_proxy::fixture("ca.pem"))
                .acks("1")
                .build()
                .unwrap();
            let bus = start(cfg, true).await;
            let calls = record_calls(&bus, |_, _| false);
            warm_up(&bus).await;
            bus.publish_event(order(Uuid::new_v4(), 1, "over-tls"))
                .await
                .unwrap();
            eventually("the event over TLS", Duration::from_secs(20), || {
                count(&calls, "over-tls") == 1
            })
            .await;
            bus.shutdown(Duration::from_secs(10)).await.unwrap();

            let broker = sasl_proxy::start(sasl_proxy::Options {
                tls: true,
                ..sasl_proxy::Options::default()
            })
            .await;
            let prefix = unique("sb-sasl-ssl");
            let cfg = KafkaEventBusConfig::builder()
                .bootstrap_servers(broker.bootstrap.clone())
                .topic_prefix(&prefix)
                .security_protocol("SASL_SSL")
                .sasl_mechanism("SCRAM-SHA-256")
                .sasl_username(sasl_proxy::USER)
                .sasl_password(sasl_proxy::PASSWORD)
                .ssl_cafile(tls_proxy::fixture("ca.pem"))
                .acks("0")
                .build()
                .unwrap();
            let client = cfg.client_config().unwrap();
            let bus = KafkaEventBus::new(cfg).unwrap();
            bus.connect().await.unwrap();
            bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(1))
                .await
                .unwrap();
            let event = order(Uuid::new_v4(), 1, "over-sasl-ssl");
            let id = event.meta.event_id.to_string();
            bus.publish_event(event).await.unwrap();
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
            let cluster = Cluster::connect(client).await.unwrap();
            let records = read_partition(&cluster, &format!("{prefix}.stream"), 0).await;
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].1.headers.get_str("event_id"), Some(id.as_str()));
            assert!(
                broker
                    .counts
                    .authenticated
                    .load(std::sync::atomic::Ordering::SeqCst)
                    > 0
            );
        },
    ));
}

/// A raw producer on the shared broker.
pub(crate) async fn raw_producer(ctx: &Ctx) -> Producer {
    Producer::new(ctx.cluster().await, ProducerConfig::default()).unwrap()
}

/// `event` as the bus would write it, with `key` as the record key and `extra` headers after its own.
pub(crate) fn raw_record(
    topic: &str,
    key: &str,
    event: DomainEvent<OrderCreated>,
    extra: &[(&str, &[u8])],
) -> ProducerRecord {
    let mut record = event.into_any().unwrap().to_record();
    for (name, value) in extra {
        record.headers.insert(*name, value.to_vec());
    }
    ProducerRecord::new(topic)
        .with_key(key.to_owned())
        .with_value(record.value)
        .with_headers(record.headers)
}

/// Lets a test hold a handler until it says so.
pub(crate) type Gate = Arc<Notify>;

/// What a cancelled or failed consume loop leaves behind.
pub(crate) fn is_already_consuming(e: &Error) -> bool {
    matches!(e, Error::AlreadyConsuming)
}
