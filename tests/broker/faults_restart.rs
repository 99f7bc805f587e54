//! The persistent broker killed (`kill -9`) and restarted while a bus consumes with handlers, retries
//! and DLQ writes in flight. Everything is published (and acknowledged) first, so the kill meets no
//! producer write but the bus's own DLQ writes and commits (the kill comes right after a handler gave up
//! on an event, as the bus starts writing it to the DLQ). Every event is handled at least once, and
//! the group's committed offsets, sampled before the kill and all through the recovery, never pass an
//! event that was not settled (handled, or given up on after its last retry).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus},
    client::{ClientConfig, Cluster},
    event::DomainEvent,
};
use uuid::Uuid;

use crate::{
    bus::config,
    faults_support::{committed, fault_trial, persistent_broker},
    group_support::eventually,
    read_idle::read_until_idle,
    support::{OrderCreated, unique},
};

const PARTITIONS: i32 = 3;
const EVENTS: usize = 3000;
const MAX_RETRIES: u32 = 2;
const HANDLER_TIME: Duration = Duration::from_millis(3);

/// Per event id: handler calls, successful ones, and when the last success happened.
#[derive(Default, Clone)]
struct Handled {
    calls: u32,
    ok: u32,
}

type Ledger = Arc<Mutex<HashMap<String, Handled>>>;

fn customer(i: usize) -> String {
    if i % 50 == 7 {
        format!("poison-{i}")
    } else if i % 20 == 3 {
        format!("flaky-{i}")
    } else {
        format!("ok-{i}")
    }
}

/// Settled: handled, or failed its last retry (then the bus dead-letters it).
fn settled(customer: &str, h: &Handled) -> bool {
    if customer.starts_with("poison") {
        h.calls > MAX_RETRIES
    } else {
        h.ok > 0
    }
}

/// The committed offsets never pass an unsettled event. `offsets[p]` is partition p's (offset, event id,
/// customer) list; `ledger` is read after `committed`, so it holds at least what was settled at commit.
fn check_committed(
    committed: &BTreeMap<i32, i64>,
    offsets: &BTreeMap<i32, Vec<(i64, String, String)>>,
    ledger: &Ledger,
    when: &str,
) {
    let ledger = ledger.lock().unwrap().clone();
    for (partition, &commit) in committed {
        for (offset, id, customer) in &offsets[partition] {
            if *offset >= commit {
                break;
            }
            let h = ledger.get(id).cloned().unwrap_or_default();
            assert!(
                settled(customer, &h),
                "{when}: partition {partition} committed at {commit}, past offset {offset} ({customer}, {} calls, {} ok)",
                h.calls,
                h.ok
            );
        }
    }
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(fault_trial(
        "a_broker_killed_mid_consume_loses_nothing_and_commits_only_settled_events",
        |ctx| async move {
            let mut broker = persistent_broker().await;
            let prefix = unique("faults-restart");
            let mut cfg = config(ctx, &prefix, &prefix);
            cfg.bootstrap_servers = broker.bootstrap_servers().to_owned();
            cfg.max_retries = MAX_RETRIES;
            let group = cfg.consumer_group.clone();
            let topic = cfg.topic_name();
            let dlq_topic = cfg.dlq_topic_name();
            let bus = KafkaEventBus::new(cfg).unwrap();
            bus.connect().await.unwrap();
            bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(PARTITIONS)).await.unwrap();

            let events: Vec<_> = (0..EVENTS)
                .map(|i| {
                    let e = OrderCreated { customer_id: customer(i) };
                    DomainEvent::new(Uuid::new_v4(), 1, e).into_any().unwrap()
                })
                .collect();
            bus.publish(events).await.unwrap();

            // Where each event sits, read back until idle (not to the watermark).
            let cluster = Cluster::connect(
                ClientConfig::new(broker.bootstrap_servers()).with_request_timeout(Duration::from_secs(5)),
            )
            .await
            .unwrap();
            let mut offsets = BTreeMap::new();
            let mut stored = 0;
            for p in 0..PARTITIONS {
                let records = read_until_idle(&cluster, &topic, p, Duration::from_secs(2)).await;
                let list: Vec<(i64, String, String)> = records
                    .iter()
                    .map(|(offset, r)| {
                        let id = r.headers.get_str("event_id").unwrap().to_owned();
                        let value: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
                        let customer = value["customer_id"].as_str().unwrap().to_owned();
                        (*offset, id, customer)
                    })
                    .collect();
                stored += list.len();
                offsets.insert(p, list);
            }
            assert_eq!(stored, EVENTS, "every acknowledged event is stored before consuming");

            let ledger: Ledger = Arc::default();
            let l = Arc::clone(&ledger);
            // Told when an always-failing event fails its last retry: its DLQ write comes next.
            let (gave_up_tx, mut gave_up) = tokio::sync::mpsc::unbounded_channel();
            bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
                let l = Arc::clone(&l);
                let gave_up_tx = gave_up_tx.clone();
                async move {
                    tokio::time::sleep(HANDLER_TIME).await;
                    let customer = &e.payload.customer_id;
                    let mut ledger = l.lock().unwrap();
                    let h = ledger.entry(e.meta.event_id.to_string()).or_default();
                    h.calls += 1;
                    let fail = customer.starts_with("poison") || (customer.starts_with("flaky") && h.calls == 1);
                    if fail {
                        if customer.starts_with("poison") && h.calls > MAX_RETRIES {
                            let _ = gave_up_tx.send(());
                        }
                        Err(format!("{customer} fails").into())
                    } else {
                        h.ok += 1;
                        Ok(())
                    }
                }
            })
            .unwrap();
            bus.start_consuming_in_background().unwrap();

            let settled_count = |ledger: &Ledger| {
                let ledger = ledger.lock().unwrap();
                offsets
                    .values()
                    .flatten()
                    .filter(|(_, id, c)| ledger.get(id).is_some_and(|h| settled(c, h)))
                    .count()
            };
            eventually("a third of the events handled", Duration::from_secs(60), || {
                settled_count(&ledger) >= EVENTS / 3
            })
            .await;
            let before = committed(&cluster, &group, &topic, PARTITIONS).await.unwrap();
            check_committed(&before, &offsets, &ledger, "before the kill");

            // Kill right after a handler gave up on an event, so that its DLQ write is in flight.
            while gave_up.try_recv().is_ok() {}
            tokio::time::timeout(Duration::from_secs(20), gave_up.recv())
                .await
                .expect("an event given up on")
                .unwrap();
            broker.kill();
            let killed_at = Instant::now();
            let settled_at_kill = settled_count(&ledger);
            tokio::time::sleep(Duration::from_secs(3)).await;
            let calls_at_restart: u32 = ledger.lock().unwrap().values().map(|h| h.calls).sum();
            tokio::task::block_in_place(|| broker.restart()).unwrap();
            let restarted_at = Instant::now();

            // Sample the committed offsets all through the recovery.
            let mut samples = 0;
            let mut first_call_after = None;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if first_call_after.is_none()
                    && ledger.lock().unwrap().values().map(|h| h.calls).sum::<u32>() > calls_at_restart
                {
                    first_call_after = Some(restarted_at.elapsed());
                }
                if let Some(c) = committed(&cluster, &group, &topic, PARTITIONS).await {
                    check_committed(&c, &offsets, &ledger, "after the restart");
                    samples += 1;
                }
                if settled_count(&ledger) == EVENTS {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} of {EVENTS} settled 60 s after the restart; broker log:\n{}",
                    settled_count(&ledger),
                    broker.log()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let all_settled_after = restarted_at.elapsed();

            // The commits catch up with everything handled (none is stuck behind the restart).
            let ends: BTreeMap<i32, i64> = offsets
                .iter()
                .map(|(p, list)| (*p, list.last().map_or(0, |(o, _, _)| o + 1)))
                .collect();
            let mut last = BTreeMap::new();
            let catch_up = Instant::now();
            while catch_up.elapsed() < Duration::from_secs(20) {
                if let Some(c) = committed(&cluster, &group, &topic, PARTITIONS).await {
                    check_committed(&c, &offsets, &ledger, "catching up");
                    last = c;
                    if last == ends {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert_eq!(last, ends, "the commits reach the end of every partition");
            bus.shutdown(Duration::from_secs(10)).await.unwrap();

            // Figures: redeliveries, and how many given-up events the DLQ holds (the broker may lose a DLQ
            // write in flight at the kill, so this is reported, not asserted).
            let ledger = ledger.lock().unwrap().clone();
            let redelivered_ok: u32 = ledger.values().map(|h| h.ok.saturating_sub(1)).sum();
            let poison: HashSet<&str> = offsets
                .values()
                .flatten()
                .filter(|(_, _, c)| c.starts_with("poison"))
                .map(|(_, id, _)| id.as_str())
                .collect();
            let poison_calls: u32 = poison.iter().map(|id| ledger[*id].calls).sum();
            let (mut in_dlq, mut dlq_records) = (HashSet::new(), 0);
            // The DLQ topic has one partition.
            for (_, r) in read_until_idle(&cluster, &dlq_topic, 0, Duration::from_secs(2)).await {
                dlq_records += 1;
                if let Some(id) = r.headers.get_str("event_id") {
                    in_dlq.insert(id.to_owned());
                }
            }
            let poison_in_dlq = poison.iter().filter(|id| in_dlq.contains(**id)).count();
            eprintln!(
                "faults::restart: {EVENTS} events ({} poison), 0 lost; {settled_at_kill} settled at the kill; \
                 down {:?}; first handler call {:?} after the restart, all settled {all_settled_after:?} after it; \
                 {redelivered_ok} handled twice or more; poison handler calls {poison_calls} (minimum {}); \
                 DLQ holds {poison_in_dlq} of {} poison events in {dlq_records} records; {samples} commit samples checked",
                poison.len(),
                restarted_at - killed_at,
                first_call_after,
                poison.len() * (MAX_RETRIES as usize + 1),
                poison.len(),
            );
        },
    ));
}
