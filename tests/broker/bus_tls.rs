//! The whole bus over TLS and mTLS: publish, group join, consume and commit through the TLS-terminating
//! proxy, configured the eventsource-py way (`security_protocol = "SSL"` and the `ssl_*` files), or with
//! ready TLS settings (`ssl_context`) on each crypto provider usable here.

use std::{sync::Arc, time::Duration};

use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus, KafkaEventBusConfig},
    client::connection::{TlsConfig, TlsProvider},
    event::DomainEvent,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    support::OrderCreated,
    support::unique,
    tls_proxy::{fixture, start},
    trial,
};

/// How the bus gets its TLS settings.
#[derive(Clone, Copy)]
enum Settings {
    /// `ssl_cafile`, plus `ssl_certfile` and `ssl_keyfile` when mutual.
    Files { mutual: bool },
    /// `ssl_context` built in code on this provider, no `ssl_*` file.
    Ready(TlsProvider),
}

async fn round_trip(settings: Settings) {
    let mutual = matches!(settings, Settings::Files { mutual: true });
    let broker = start("server", mutual).await;
    let prefix = unique("bustls");
    let mut builder = KafkaEventBusConfig::builder()
        .bootstrap_servers(broker.bootstrap.clone())
        .topic_prefix(prefix.clone())
        .consumer_group(prefix.clone())
        .session_timeout_ms(6_000)
        .heartbeat_interval_ms(500)
        .security_protocol("SSL");
    match settings {
        Settings::Files { mutual } => {
            builder = builder.ssl_cafile(fixture("ca.pem"));
            if mutual {
                builder = builder
                    .ssl_certfile(fixture("client.pem"))
                    .ssl_keyfile(fixture("client.key"));
            }
        }
        Settings::Ready(provider) => {
            let tls = TlsConfig::builder()
                .ca_file(fixture("ca.pem"))
                .provider(provider)
                .build()
                .unwrap();
            builder = builder.ssl_context(tls);
        }
    }
    let bus = KafkaEventBus::new(builder.build().unwrap()).unwrap();
    bus.connect().await.unwrap();
    bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(2))
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
        let _ = tx.send(e.payload.customer_id.clone());
        std::future::ready(Ok(()))
    })
    .unwrap();
    let consuming = bus.start_consuming_in_background().unwrap();
    for i in 0..10 {
        let event = DomainEvent::new(
            Uuid::new_v4(),
            1,
            OrderCreated {
                customer_id: format!("c{i}"),
            },
        );
        bus.publish_event(event).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 10 {
        got.push(
            tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    got.sort();
    assert_eq!(got.len(), 10);
    bus.shutdown(Duration::from_secs(10)).await.unwrap();
    consuming.wait().await.unwrap();
    assert_eq!(bus.stats().events_processed_success, 10);
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial("publish_join_and_consume_over_tls", |_ctx| {
        round_trip(Settings::Files { mutual: false })
    }));
    trials.push(trial("publish_join_and_consume_over_mtls", |_ctx| {
        round_trip(Settings::Files { mutual: true })
    }));
    // Each provider this machine can run, through a ready `ssl_context` (the files are not set).
    for provider in [TlsProvider::Graviola, TlsProvider::RustCrypto] {
        if provider.unusable().is_none() {
            let name = format!("publish_join_and_consume_with_a_ready_{provider}_ssl_context");
            trials.push(trial(&name, move |_ctx| round_trip(Settings::Ready(provider))));
        }
    }
}
