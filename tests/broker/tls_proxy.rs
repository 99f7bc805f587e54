//! A TLS-terminating proxy in front of a local broker (Tansu's own TLS does not work): rustls on the
//! same pure-Rust provider as the client, so the tests need nothing installed.

use std::{path::PathBuf, sync::Arc};

use kafka_event_bus::testing::LocalBroker;
use rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_rustls::TlsAcceptor;

pub(crate) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A broker reachable only through TLS: the broker advertises the proxy's port.
pub(crate) struct TlsBroker {
    pub(crate) bootstrap: String,
    _broker: LocalBroker,
    proxy: JoinHandle<()>,
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        self.proxy.abort();
    }
}

/// Starts a broker behind a TLS proxy presenting `cert` (a fixture name without `.pem`); with
/// `require_client_cert`, clients must present a certificate signed by the test CA (mTLS).
pub(crate) async fn start(cert: &str, require_client_cert: bool) -> TlsBroker {
    let provider = Arc::new(rustls_graviola::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture(&format!("{cert}.pem")))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture(&format!("{cert}.key"))).unwrap();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let acceptor = TlsAcceptor::from(Arc::new(builder.with_single_cert(chain, key).unwrap()));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = tokio::task::spawn_blocking(move || LocalBroker::start_behind(port))
        .await
        .unwrap()
        .unwrap();
    let upstream = format!("127.0.0.1:{}", broker.port());
    let proxy = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                // A failed handshake just closes the connection, as a real TLS listener does.
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    TlsBroker {
        bootstrap: format!("127.0.0.1:{port}"),
        _broker: broker,
        proxy,
    }
}
