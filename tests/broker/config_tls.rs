//! TLS and mTLS configured the eventsource-py way: a `KafkaEventBusConfig` with `security_protocol =
//! "SSL"` and the `ssl_*` files, turned into the client's settings, against a real broker behind the
//! TLS-terminating proxy.

use std::time::Duration;

use kafka_event_bus::{
    bus::{ConfigError, KafkaEventBusConfig, KafkaEventBusConfigBuilder},
    client::{
        ClientConfig, Cluster, NewTopic,
        cluster::Error as ClusterError,
        connection::Error,
        producer::{Producer, ProducerRecord},
    },
};

use crate::{
    support::unique,
    tls_proxy::{fixture, start},
    trial,
};

fn ssl(bootstrap: &str) -> KafkaEventBusConfigBuilder {
    KafkaEventBusConfig::builder()
        .bootstrap_servers(bootstrap)
        .topic_prefix(unique("cfgtls"))
        .security_protocol("SSL")
        .ssl_cafile(fixture("ca.pem"))
}

fn client(config: &KafkaEventBusConfig) -> ClientConfig {
    config
        .client_config()
        .unwrap()
        .with_reconnect_deadline(Duration::from_secs(2))
}

/// Whether a failed connect failed on TLS (directly or among the bootstrap attempts).
fn is_tls_failure(err: &ClusterError) -> bool {
    match err {
        ClusterError::Connection { source, .. } => matches!(source, Error::Tls { .. }),
        ClusterError::NoBrokerReachable { attempts, .. } => {
            attempts.iter().any(|e| matches!(e, Error::Tls { .. }))
        }
        _ => false,
    }
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "ssl_config_creates_topics_and_produces_over_tls",
        |_ctx| async move {
            let broker = start("server", false).await;
            let config = ssl(&broker.bootstrap).acks("all").build().unwrap();
            let cluster = Cluster::connect(client(&config)).await.unwrap();
            let topic = config.topic_name();
            cluster
                .ensure_topics(&[NewTopic::new(&topic, 1, 1)])
                .await
                .unwrap();
            let producer = Producer::new(cluster, config.producer_config().unwrap()).unwrap();
            let first = producer
                .send_and_wait(ProducerRecord::new(&topic).with_key("k").with_value("over tls"))
                .await
                .unwrap();
            let second = producer
                .send_and_wait(ProducerRecord::new(&topic).with_key("k").with_value("again"))
                .await
                .unwrap();
            assert_eq!(second.offset, first.offset + 1);
            producer.close().await;
        },
    ));

    trials.push(trial(
        "mtls_config_presents_the_client_certificate",
        |_ctx| async move {
            let broker = start("server", true).await;
            let without = ssl(&broker.bootstrap).build().unwrap();
            let err = Cluster::connect(client(&without)).await.unwrap_err();
            assert!(is_tls_failure(&err), "{err}");

            let with = ssl(&broker.bootstrap)
                .ssl_certfile(fixture("client.pem"))
                .ssl_keyfile(fixture("client.key"))
                .build()
                .unwrap();
            let cluster = Cluster::connect(client(&with)).await.unwrap();
            let topic = with.topic_name();
            cluster
                .ensure_topics(&[NewTopic::new(&topic, 1, 1)])
                .await
                .unwrap();
            // Half a pair never gets as far as a connection.
            let half = ssl(&broker.bootstrap).ssl_certfile(fixture("client.pem")).build();
            assert!(matches!(half, Err(ConfigError::SslKeyfileRequired)));
        },
    ));

    trials.push(trial(
        "ssl_check_hostname_false_accepts_another_name_but_not_another_ca",
        |_ctx| async move {
            let broker = start("wrong-name", false).await;
            let strict = ssl(&broker.bootstrap).build().unwrap();
            let err = Cluster::connect(client(&strict)).await.unwrap_err();
            assert!(is_tls_failure(&err), "{err}");

            let lax = ssl(&broker.bootstrap).ssl_check_hostname(false).build().unwrap();
            assert!(lax.warnings().iter().any(|w| w.contains("MITM")));
            let cluster = Cluster::connect(client(&lax)).await.unwrap();
            assert!(!cluster.metadata().brokers.is_empty());

            let untrusted = ssl(&broker.bootstrap)
                .ssl_cafile(fixture("other-ca.pem"))
                .ssl_check_hostname(false)
                .build()
                .unwrap();
            let err = Cluster::connect(client(&untrusted)).await.unwrap_err();
            assert!(is_tls_failure(&err), "{err}");
        },
    ));
}
