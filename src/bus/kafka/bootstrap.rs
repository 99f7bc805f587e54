//! The bus's first contact with the cluster, bounded by `bootstrap_timeout`.
//!
//! [`Cluster::connect`] retries the bootstrap servers (each failure logged at INFO), gives each attempt
//! a share of the time left, and stops at the client's `bootstrap_timeout`: a server that stalls (a
//! black-holed address, a TLS handshake that never ends) neither holds `connect()` past the setting
//! nor keeps the other servers from being tried.

use crate::{
    bus::{Error, KafkaEventBusConfig},
    client::{ClientConfig, Cluster, cluster},
};

/// Connects to the cluster within `config.bootstrap_timeout`.
///
/// # Errors
///
/// [`Error::BootstrapTimeout`] when no bootstrap server answered in time, [`Error::Cluster`] for any
/// other failure (a refused SASL login, a malformed address).
pub(super) async fn connect_cluster(
    config: &KafkaEventBusConfig,
    client: ClientConfig,
) -> Result<Cluster, Error> {
    let exhausted = |source| Error::BootstrapTimeout {
        bootstrap_servers: config.bootstrap_servers.clone(),
        timeout: config.bootstrap_timeout,
        source: Box::new(source),
    };
    match Cluster::connect(client).await {
        Ok(cluster) => Ok(cluster),
        Err(e @ (cluster::Error::NoBrokerReachable { .. } | cluster::Error::Timeout { .. })) => {
            Err(exhausted(e))
        }
        Err(source) => Err(Error::Cluster { source }),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::{Duration, Instant},
    };

    use tracing::Level;

    use super::*;
    use crate::bus::log_capture::LogCapture;

    /// A local port nothing listens on: bound, then released.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn an_unreachable_bootstrap_fails_within_the_bootstrap_timeout() {
        let config = KafkaEventBusConfig::builder()
            .bootstrap_servers(format!("127.0.0.1:{}", closed_port()))
            .bootstrap_timeout(Duration::from_millis(1500))
            .build()
            .unwrap();
        let (logs, _guard) = LogCapture::install();
        let started = Instant::now();
        let err = connect_cluster(&config, config.client_config().unwrap())
            .await
            .unwrap_err();
        let took = started.elapsed();
        // Every failed attempt is an INFO line naming the server and the cause.
        let retries = logs.matching(Level::INFO, "bootstrap server unreachable");
        assert!(retries.len() >= 2, "{:?}", logs.events());
        for retry in &retries {
            assert!(retry.text.contains(&config.bootstrap_servers), "{}", retry.text);
            assert!(retry.text.contains("error="), "{}", retry.text);
        }
        assert!(took < Duration::from_secs(3), "took {took:?}");
        match &err {
            Error::BootstrapTimeout { timeout, source, .. } => {
                assert_eq!(*timeout, Duration::from_millis(1500));
                assert!(
                    matches!(**source, cluster::Error::NoBrokerReachable { .. }),
                    "{source}"
                );
            }
            other => panic!("not a BootstrapTimeout: {other}"),
        }
        assert!(err.to_string().contains("127.0.0.1:"), "{err}");
        assert!(err.is_retriable());
    }

    #[tokio::test]
    async fn a_stalled_bootstrap_is_cut_at_the_bootstrap_timeout() {
        // A listener that accepts and never answers: the Metadata request waits for request_timeout
        // (30 s) unless the bootstrap timeout cuts it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let config = KafkaEventBusConfig::builder()
            .bootstrap_servers(address.to_string())
            .bootstrap_timeout(Duration::from_millis(800))
            .build()
            .unwrap();
        let started = Instant::now();
        let err = connect_cluster(&config, config.client_config().unwrap())
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        // The attempts end with the hard cut, and their error (naming each server) is the one kept.
        match &err {
            Error::BootstrapTimeout { source, .. } => assert!(
                matches!(**source, cluster::Error::NoBrokerReachable { .. }),
                "{source}"
            ),
            other => panic!("not a BootstrapTimeout: {other}"),
        }
        held.abort();
    }

    #[tokio::test]
    async fn a_stalled_first_server_leaves_time_for_the_second() {
        // Server 1 accepts and never answers; server 2 counts the connections it gets.
        let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stalled_address = stalled.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = stalled.accept().await {
                open.push(socket);
            }
        });
        let second = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let second_address = second.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let counted = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = second.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                open.push(socket);
            }
        });
        let config = KafkaEventBusConfig::builder()
            .bootstrap_servers(format!("{stalled_address},{second_address}"))
            .request_timeout(Duration::from_secs(3))
            .bootstrap_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let started = Instant::now();
        let err = connect_cluster(&config, config.client_config().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BootstrapTimeout { .. }), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            hits.load(Ordering::SeqCst) >= 1,
            "the second server was never tried"
        );
        held.abort();
        counted.abort();
    }
}
