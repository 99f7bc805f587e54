//! The link to the broker blackholed (nothing forwarded, sockets held open) while a bus publishes and
//! consumes, then restored for new connections only: the bus must give up on the silent connections
//! and recover within the request timeout plus the reconnect backoff, losing nothing.

use std::{
    collections::HashMap,
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
    bus::{config, warm_up},
    fault_proxy::FaultyBroker,
    faults_support::fault_trial,
    group_support::eventually,
    support::{OrderCreated, unique},
};

/// The client's request timeout (the bus does not change [`ClientConfig`]'s default of 30 s) plus the
/// longest reconnect backoff (1 s) and a margin for the shared test machine.
///
/// [`ClientConfig`]: kafka_event_bus::client::ClientConfig
const RECOVERY_BOUND: Duration = Duration::from_secs(30 + 1 + 4);
const BLACKHOLED_FOR: Duration = Duration::from_secs(5);
const PER_PHASE: usize = 30;

type Seen = Arc<Mutex<HashMap<String, u32>>>;

fn events(phase: &str) -> Vec<kafka_event_bus::event::AnyEvent> {
    (0..PER_PHASE)
        .map(|i| {
            let e = OrderCreated {
                customer_id: format!("{phase}-{i}"),
            };
            DomainEvent::new(Uuid::new_v4(), 1, e).into_any().unwrap()
        })
        .collect()
}

fn handled(seen: &Seen, phase: &str) -> usize {
    let prefix = format!("{phase}-");
    seen.lock()
        .unwrap()
        .keys()
        .filter(|c| c.starts_with(&prefix))
        .count()
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    // The proxy itself: silent while blackholed, and afterwards new connections work at once. It shows
    // that the trial below fails on the client, not on its fault injector.
    trials.push(fault_trial(
        "the_blackhole_proxy_silences_old_links_and_serves_new_ones",
        |_ctx| async move {
            let proxy = FaultyBroker::start().await;
            let config = || {
                ClientConfig::new(&proxy.bootstrap)
                    .with_client_id("faults-blackhole-proxy")
                    .with_request_timeout(Duration::from_secs(1))
                    .with_connect_timeout(Duration::from_secs(1))
                    .with_reconnect_deadline(Duration::from_secs(3))
            };
            let old = Cluster::connect(config()).await.unwrap();
            old.refresh_metadata().await.unwrap();
            proxy.blackhole();
            let started = Instant::now();
            let through_blackhole = old.refresh_metadata().await;
            let failed_after = started.elapsed();
            assert!(through_blackhole.is_err(), "nothing passes a blackhole");
            assert!(
                failed_after >= Duration::from_millis(900),
                "the request timed out rather than seeing a reset or EOF: {failed_after:?}"
            );
            proxy.forward();
            let resumed_at = Instant::now();
            let fresh = Cluster::connect(config()).await.unwrap();
            fresh.refresh_metadata().await.unwrap();
            let fresh_after = resumed_at.elapsed();
            assert!(fresh_after < Duration::from_secs(2), "{fresh_after:?}");
            let old_then = tokio::time::timeout(Duration::from_secs(5), old.refresh_metadata()).await;
            eprintln!(
                "faults::blackhole_proxy: through the blackhole, refresh_metadata failed after {failed_after:?} \
                 ({:?}); a new cluster worked {fresh_after:?} after resume; the old one then: {}",
                through_blackhole.err().map(|e| e.to_string()),
                match old_then {
                    Ok(Ok(_)) => "recovered".to_owned(),
                    Ok(Err(e)) => format!("failed: {e}"),
                    Err(_) => "no answer in 5 s".to_owned(),
                }
            );
        },
    ));

    // Every connection the bus holds to the broker (producer, metadata, group coordinator, both fetch
    // lanes) goes silent at once. The first request to time out also closes the others that heard
    // nothing since it was sent, so none of them waits out a request timeout of its own afterwards.
    trials.push(
        fault_trial(
            "a_blackholed_link_recovers_within_request_timeout_plus_backoff",
            |ctx| async move {
                let proxy = FaultyBroker::start().await;
                let prefix = unique("faults-blackhole");
                let mut cfg = config(ctx, &prefix, &prefix);
                cfg.bootstrap_servers = proxy.bootstrap.clone();
                let bus = Arc::new(KafkaEventBus::new(cfg).unwrap());
                bus.connect().await.unwrap();
                bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(3)).await.unwrap();
                let seen: Seen = Arc::default();
                let s = Arc::clone(&seen);
                bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
                    *s.lock().unwrap().entry(e.payload.customer_id.clone()).or_default() += 1;
                    std::future::ready(Ok(()))
                })
                .unwrap();
                bus.start_consuming_in_background().unwrap();
                warm_up(&bus).await;

                bus.publish(events("before")).await.unwrap();
                eventually("the events before the blackhole", Duration::from_secs(20), || {
                    handled(&seen, "before") == PER_PHASE
                })
                .await;

                proxy.blackhole();
                let publishing = {
                    let bus = Arc::clone(&bus);
                    tokio::spawn(async move {
                        let result = bus.publish(events("during")).await;
                        (result, Instant::now())
                    })
                };
                tokio::time::sleep(BLACKHOLED_FOR).await;
                assert_eq!(handled(&seen, "during"), 0, "nothing passes a blackhole");
                proxy.forward();
                let resumed_at = Instant::now();

                let (published, published_at) = tokio::time::timeout(RECOVERY_BOUND, publishing)
                    .await
                    .expect("the publish recovers within the request timeout plus backoff")
                    .unwrap();
                published.unwrap();
                // Measured past the bound (up to 55 s) so that a failure says by how much.
                let consumed = tokio::time::timeout(Duration::from_secs(55).saturating_sub(resumed_at.elapsed()), async {
                    while handled(&seen, "during") < PER_PHASE {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
                .await;
                let consumed_after = resumed_at.elapsed();
                let stats = bus.stats();
                eprintln!(
                    "faults::blackhole: blackholed {BLACKHOLED_FOR:?}; publish acknowledged {:?} after forwarding resumed; \
                     {} of {PER_PHASE} events published during the blackhole handled {consumed_after:?} after it \
                     ({} consumed in all); {} reconnections, {} rebalances",
                    published_at - resumed_at,
                    handled(&seen, "during"),
                    stats.events_consumed,
                    stats.reconnections,
                    stats.rebalance_count,
                );
                assert!(
                    consumed.is_ok() && consumed_after <= RECOVERY_BOUND,
                    "consuming recovered {consumed_after:?} after forwarding resumed (bound {RECOVERY_BOUND:?}; \
                     all consumed: {})",
                    consumed.is_ok()
                );

                let after = Instant::now();
                bus.publish(events("after")).await.unwrap();
                eventually("the events after the blackhole", Duration::from_secs(20), || {
                    handled(&seen, "after") == PER_PHASE
                })
                .await;
                let after_latency = after.elapsed();
                bus.shutdown(Duration::from_secs(10)).await.unwrap();
                let duplicates: u32 = seen.lock().unwrap().values().map(|n| n - 1).sum();
                eprintln!(
                    "faults::blackhole: {} events, 0 lost, {duplicates} handled twice; then publish→handled {after_latency:?}",
                    3 * PER_PHASE,
                );
            },
        ),
    );
}
