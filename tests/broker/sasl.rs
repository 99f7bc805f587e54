//! SASL on every connection.
//!
//! - Always: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 through the SASL-terminating proxy of
//!   `sasl_proxy.rs` in front of the local broker, over plaintext and over TLS (SASL_SSL), with a
//!   wrong password refused (Kafka's way) or hung up on (Tansu's way).
//! - Gated: SCRAM against a real broker that has SCRAM users (Tansu needs persistent storage for that;
//!   see `../shared/reference/test-broker.md`). Set `KAFKA_SASL_SCRAM_BOOTSTRAP`,
//!   `KAFKA_SASL_SCRAM_USERNAME`, `KAFKA_SASL_SCRAM_PASSWORD` and optionally
//!   `KAFKA_SASL_SCRAM_MECHANISM` (default `SCRAM-SHA-512`); without them the tests are reported as
//!   ignored.

use std::{sync::atomic::Ordering, time::Duration};

use kafka_event_bus::{
    bus::{KafkaEventBusConfig, KafkaEventBusConfigBuilder},
    client::{
        Cluster, NewTopic,
        cluster::Error as ClusterError,
        connection::{Error, SaslError, SaslMechanism},
        producer::{Producer, ProducerRecord},
    },
};

use crate::{
    sasl_proxy::{OnWrongPassword, Options, PASSWORD, USER, start},
    support::unique,
    tls_proxy::fixture,
    trial,
};

fn sasl_builder(
    bootstrap: &str,
    protocol: &str,
    mechanism: &str,
    user: &str,
    password: &str,
) -> KafkaEventBusConfigBuilder {
    KafkaEventBusConfig::builder()
        .bootstrap_servers(bootstrap)
        .topic_prefix(unique("sasl"))
        .security_protocol(protocol)
        .sasl_mechanism(mechanism)
        .sasl_username(user)
        .sasl_password(password)
}

fn sasl_config(
    bootstrap: &str,
    protocol: &str,
    mechanism: &str,
    user: &str,
    password: &str,
) -> KafkaEventBusConfig {
    sasl_builder(bootstrap, protocol, mechanism, user, password)
        .build()
        .unwrap()
}

async fn connect(config: &KafkaEventBusConfig) -> Result<Cluster, ClusterError> {
    let client = config
        .client_config()
        .unwrap()
        .with_reconnect_deadline(Duration::from_secs(3));
    Cluster::connect(client).await
}

/// The authentication error inside a failed connect: it must not be retried, so it surfaces at once.
fn authentication_error(err: &ClusterError) -> (&Error, &SaslError) {
    match err {
        ClusterError::Connection {
            source: e @ Error::Authentication { source, .. },
            ..
        } => {
            assert!(!e.is_retriable() && !err.is_retriable(), "{err}");
            (e, source)
        }
        other => panic!("expected an authentication error, got {other}"),
    }
}

/// Creates a topic and produces to it: bootstrap, metadata and the partition leader's connection.
async fn produce_round_trip(cluster: Cluster, config: &KafkaEventBusConfig) {
    let topic = config.topic_name();
    cluster
        .ensure_topics(&[NewTopic::new(&topic, 2, 1)])
        .await
        .unwrap();
    let producer = Producer::new(cluster, config.producer_config().unwrap()).unwrap();
    for partition in 0..2 {
        let written = producer
            .send_and_wait(
                ProducerRecord::new(&topic)
                    .with_partition(partition)
                    .with_value("authenticated"),
            )
            .await
            .unwrap();
        assert_eq!(written.partition, partition);
    }
    producer.close().await;
}

/// The gated SCRAM broker: (bootstrap, mechanism, user, password).
fn scram_env() -> Option<(String, String, String, String)> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    Some((
        var("KAFKA_SASL_SCRAM_BOOTSTRAP")?,
        var("KAFKA_SASL_SCRAM_MECHANISM").unwrap_or_else(|| "SCRAM-SHA-512".into()),
        var("KAFKA_SASL_SCRAM_USERNAME")?,
        var("KAFKA_SASL_SCRAM_PASSWORD")?,
    ))
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "plain_authenticates_every_connection",
        |_ctx| async move {
            let broker = start(Options::default()).await;
            let config = sasl_config(&broker.bootstrap, "SASL_PLAINTEXT", "PLAIN", USER, PASSWORD);
            let cluster = connect(&config).await.unwrap();
            produce_round_trip(cluster, &config).await;
            let connections = broker.counts.connections.load(Ordering::SeqCst);
            let authenticated = broker.counts.authenticated.load(Ordering::SeqCst);
            assert!(connections >= 1);
            // The proxy closes any connection that skips SASL, so the round trip above could only
            // succeed on authenticated connections; every connection opened did authenticate.
            assert_eq!(authenticated, connections);
        },
    ));

    trials.push(trial(
        "a_refused_password_is_a_clear_authentication_error",
        |_ctx| async move {
            let broker = start(Options::default()).await;
            let config = sasl_config(
                &broker.bootstrap,
                "SASL_PLAINTEXT",
                "PLAIN",
                USER,
                "wrong-password",
            );
            let err = connect(&config).await.unwrap_err();
            let (e, source) = authentication_error(&err);
            assert!(
                matches!(source, SaslError::Rejected { error } if error.code.code() == 58),
                "{e}"
            );
            let shown = format!("{err} {err:?}");
            assert!(shown.contains(USER) && shown.contains("PLAIN"), "{shown}");
            assert!(!shown.contains("wrong-password"), "{shown}");
            assert_eq!(broker.counts.authenticated.load(Ordering::SeqCst), 0);
        },
    ));

    trials.push(trial(
        "a_broker_hanging_up_on_a_wrong_password_is_retried_until_the_deadline",
        |_ctx| async move {
            let broker = start(Options {
                on_wrong: OnWrongPassword::HangUp,
                ..Options::default()
            })
            .await;
            let config = sasl_config(
                &broker.bootstrap,
                "SASL_PLAINTEXT",
                "PLAIN",
                USER,
                "wrong-password",
            );
            // A hang-up cannot be told from a broker restarting mid-exchange: it is retried, and the
            // deadline's error names the authentication that kept failing.
            let err = connect(&config).await.unwrap_err();
            let ClusterError::NoBrokerReachable { attempts, .. } = &err else {
                panic!("expected the reconnect deadline, got {err}");
            };
            assert!(
                attempts.iter().all(|e| matches!(
                    e,
                    Error::Authentication {
                        source: SaslError::ClosedDuringAuthentication,
                        ..
                    }
                )),
                "{err}"
            );
            assert!(!attempts.is_empty());
            assert!(broker.counts.connections.load(Ordering::SeqCst) >= 2, "{err}");
            assert!(!err.to_string().contains("wrong-password"), "{err}");
        },
    ));

    trials.push(trial(
        "a_broker_closing_during_authentication_is_reconnected",
        |_ctx| async move {
            // The first two connections are closed mid-exchange, as by a broker restarting.
            let broker = start(Options {
                hang_up_first: 2,
                ..Options::default()
            })
            .await;
            for mechanism in ["PLAIN", "SCRAM-SHA-256"] {
                let config = sasl_config(&broker.bootstrap, "SASL_PLAINTEXT", mechanism, USER, PASSWORD);
                let cluster = connect(&config).await.unwrap();
                produce_round_trip(cluster, &config).await;
            }
            assert!(broker.counts.connections.load(Ordering::SeqCst) >= 3);
            assert!(broker.counts.authenticated.load(Ordering::SeqCst) >= 2);
        },
    ));

    trials.push(trial(
        "a_mechanism_the_broker_lacks_is_named_in_the_error",
        |_ctx| async move {
            let broker = start(Options {
                mechanisms: &["PLAIN"],
                ..Options::default()
            })
            .await;
            let config = sasl_config(
                &broker.bootstrap,
                "SASL_PLAINTEXT",
                "SCRAM-SHA-256",
                USER,
                PASSWORD,
            );
            let err = connect(&config).await.unwrap_err();
            let (e, source) = authentication_error(&err);
            assert!(
                matches!(source, SaslError::MechanismNotEnabled { enabled } if enabled == &["PLAIN"]),
                "{e}"
            );
            assert!(matches!(
                e,
                Error::Authentication {
                    mechanism: SaslMechanism::ScramSha256,
                    ..
                }
            ));
        },
    ));

    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        trials.push(trial(
            &format!("{}_authenticates_every_connection",
                mechanism.to_lowercase().replace('-', "_")
            ),
            move |_ctx| async move {
                let broker = start(Options::default()).await;
                let config = sasl_config(&broker.bootstrap, "SASL_PLAINTEXT", mechanism, USER, PASSWORD);
                let cluster = connect(&config).await.unwrap();
                produce_round_trip(cluster, &config).await;
                let connections = broker.counts.connections.load(Ordering::SeqCst);
                assert!(connections >= 1);
                assert_eq!(broker.counts.authenticated.load(Ordering::SeqCst), connections);

                // The server's proof check is real: a wrong password fails it.
                let wrong = sasl_config(&broker.bootstrap, "SASL_PLAINTEXT", mechanism, USER, "pencil");
                let err = connect(&wrong).await.unwrap_err();
                let (_, source) = authentication_error(&err);
                assert!(matches!(source, SaslError::Rejected { .. }), "{err}");
                assert!(!format!("{err} {err:?}").contains("pencil"));
            },
        ));
    }

    trials.push(trial("sasl_ssl_runs_scram_inside_tls", |_ctx| async move {
        let broker = start(Options {
            tls: true,
            ..Options::default()
        })
        .await;
        let config = sasl_builder(&broker.bootstrap, "SASL_SSL", "SCRAM-SHA-512", USER, PASSWORD)
            .ssl_cafile(fixture("ca.pem"))
            .build()
            .unwrap();
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());
        let cluster = connect(&config).await.unwrap();
        produce_round_trip(cluster, &config).await;
        let connections = broker.counts.connections.load(Ordering::SeqCst);
        assert_eq!(broker.counts.authenticated.load(Ordering::SeqCst), connections);

        // SASL_PLAINTEXT against the TLS listener never gets to authenticate.
        let plain = sasl_config(
            &broker.bootstrap,
            "SASL_PLAINTEXT",
            "SCRAM-SHA-512",
            USER,
            PASSWORD,
        );
        assert!(connect(&plain).await.is_err());
        assert_eq!(broker.counts.authenticated.load(Ordering::SeqCst), connections);
    }));

    let gated = scram_env();
    let ignored = gated.is_none();
    let env = gated.clone();
    trials.push(
        trial("scram_against_a_real_broker", move |_ctx| async move {
            let (bootstrap, mechanism, user, password) = env.unwrap();
            let config = sasl_config(&bootstrap, "SASL_PLAINTEXT", &mechanism, &user, &password);
            let cluster = connect(&config).await.unwrap();
            produce_round_trip(cluster, &config).await;
        })
        .with_ignored_flag(ignored),
    );
    trials.push(
        trial(
            "scram_with_a_wrong_password_against_a_real_broker",
            move |_ctx| async move {
                let (bootstrap, mechanism, user, password) = gated.unwrap();
                let wrong = format!("{password}-wrong");
                let config = sasl_config(&bootstrap, "SASL_PLAINTEXT", &mechanism, &user, &wrong);
                let err = connect(&config).await.unwrap_err();
                let (e, source) = authentication_error(&err);
                // Kafka answers SASL_AUTHENTICATION_FAILED; Tansu hangs up.
                assert!(
                    matches!(
                        source,
                        SaslError::Rejected { .. } | SaslError::ClosedDuringAuthentication
                    ),
                    "{e}"
                );
                assert!(!format!("{err} {err:?}").contains(&wrong));
            },
        )
        .with_ignored_flag(ignored),
    );
}
