//! TLS and mTLS against a real broker behind a TLS-terminating proxy.

use std::time::Duration;

use kafka_event_bus::client::{
    ClientConfig, Cluster, NewTopic,
    cluster::Error as ClusterError,
    connection::{Error, TlsConfig},
};

use crate::{
    support::unique,
    tls_proxy::{fixture, start},
    trial,
};

fn config(bootstrap: &str, tls: TlsConfig) -> ClientConfig {
    ClientConfig::new(bootstrap)
        .with_tls(tls)
        .with_reconnect_deadline(Duration::from_secs(2))
}

fn trusting_test_ca() -> kafka_event_bus::client::connection::TlsConfigBuilder {
    TlsConfig::builder().ca_file(fixture("ca.pem"))
}

/// The TLS error inside a failed connect, wherever it sits.
fn tls_error(err: &ClusterError) -> String {
    match err {
        ClusterError::Connection {
            source: e @ Error::Tls { .. },
            ..
        } => {
            assert!(!e.is_retriable(), "{e}");
            e.to_string()
        }
        ClusterError::NoBrokerReachable { attempts, .. } => {
            let tls: Vec<_> = attempts
                .iter()
                .filter(|e| matches!(e, Error::Tls { .. }))
                .collect();
            assert!(!tls.is_empty(), "no TLS error in {err}");
            tls[0].to_string()
        }
        other => panic!("expected a TLS error, got {other}"),
    }
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial("admin_and_metadata_over_tls", |_ctx| async move {
        let broker = start("server", false).await;
        let cluster = Cluster::connect(config(&broker.bootstrap, trusting_test_ca().build().unwrap()))
            .await
            .unwrap();
        // Every broker the metadata names is the proxy: all traffic goes through TLS.
        let metadata = cluster.metadata();
        assert!(
            metadata.brokers.values().all(|b| b.address() == broker.bootstrap),
            "{metadata:?}"
        );
        let topic = unique("tls");
        cluster
            .ensure_topics(&[NewTopic::new(&topic, 2, 1)])
            .await
            .unwrap();
        assert_eq!(cluster.partitions(&topic).await.unwrap(), [0, 1]);
    }));

    trials.push(trial(
        "an_untrusted_ca_is_a_clear_error",
        |_ctx| async move {
            let broker = start("server", false).await;
            let tls = TlsConfig::builder()
                .ca_file(fixture("other-ca.pem"))
                .build()
                .unwrap();
            let err = Cluster::connect(config(&broker.bootstrap, tls))
                .await
                .unwrap_err();
            let message = tls_error(&err);
            assert!(message.contains("UnknownIssuer"), "{message}");
        },
    ));

    trials.push(trial(
        "a_certificate_for_another_host_is_refused_unless_allowed",
        |_ctx| async move {
            let broker = start("wrong-name", false).await;
            let err = Cluster::connect(config(&broker.bootstrap, trusting_test_ca().build().unwrap()))
                .await
                .unwrap_err();
            let message = tls_error(&err);
            assert!(message.contains("not valid for name"), "{message}");

            // ssl_check_hostname = false: the chain is still checked, the name is not.
            let lax = trusting_test_ca().check_hostname(false).build().unwrap();
            let cluster = Cluster::connect(config(&broker.bootstrap, lax)).await.unwrap();
            assert!(!cluster.metadata().brokers.is_empty());
            // ...but an untrusted chain still fails with the name check off.
            let untrusted = TlsConfig::builder()
                .ca_file(fixture("other-ca.pem"))
                .check_hostname(false)
                .build()
                .unwrap();
            let err = Cluster::connect(config(&broker.bootstrap, untrusted))
                .await
                .unwrap_err();
            assert!(tls_error(&err).contains("UnknownIssuer"), "{err}");
        },
    ));

    trials.push(trial(
        "mutual_tls_requires_the_client_certificate",
        |_ctx| async move {
            let broker = start("server", true).await;
            let err = Cluster::connect(config(&broker.bootstrap, trusting_test_ca().build().unwrap()))
                .await
                .unwrap_err();
            let message = tls_error(&err);
            assert!(message.contains("CertificateRequired"), "{message}");

            let mtls = trusting_test_ca()
                .client_cert(fixture("client.pem"), fixture("client.key"))
                .build()
                .unwrap();
            let cluster = Cluster::connect(config(&broker.bootstrap, mtls)).await.unwrap();
            let topic = unique("mtls");
            cluster
                .ensure_topics(&[NewTopic::new(&topic, 1, 1)])
                .await
                .unwrap();
        },
    ));

    trials.push(trial("bad_files_are_config_errors", |_ctx| async move {
        let err = TlsConfig::builder()
            .ca_file("/nonexistent/ca.pem")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        // A key that does not belong to the certificate.
        let err = trusting_test_ca()
            .client_cert(fixture("client.pem"), fixture("server.key"))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("invalid TLS settings"), "{err}");
        // Debug output never shows key material.
        let tls = trusting_test_ca()
            .client_cert(fixture("client.pem"), fixture("client.key"))
            .build()
            .unwrap();
        let debug = format!("{tls:?}");
        assert!(!debug.contains("PRIVATE") && debug.len() < 200, "{debug}");
    }));
}
