//! Runs a throwaway local broker (Tansu, in-memory) reachable only through TLS, until Ctrl-C or SIGTERM.
//!
//! ```text
//! cargo run --example tls_broker -- --port 9093
//! KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9093 KAFKA_SECURITY_PROTOCOL=SSL \
//!     KAFKA_SSL_CAFILE=tests/fixtures/tls/ca.pem cargo run --example quickstart
//! ```
//!
//! A TLS-terminating proxy on `--port` presents `tests/fixtures/tls/server.pem` (signed by the test CA
//! `ca.pem`, valid for `localhost` and `127.0.0.1`) and forwards to the broker, which advertises the
//! proxy's port: clients built for other targets (`.ci/cross.sh`) use it to test TLS end to end.

use std::{error::Error, path::PathBuf, sync::Arc};

use kafka_event_bus::{client::connection::TlsConfig, testing::LocalBroker};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let port = match (args.next().as_deref(), args.next()) {
        (Some("--port"), Some(port)) => port.parse::<u16>()?,
        (None, _) => 9093,
        _ => return Err("usage: tls_broker [--port PORT]".into()),
    };
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    // The server side runs on the crypto provider the client side would pick on this machine.
    let client = TlsConfig::builder().ca_file(fixtures.join("ca.pem")).build()?;
    let provider = Arc::clone(client.rustls().crypto_provider());
    let chain = CertificateDer::pem_file_iter(fixtures.join("server.pem"))?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(fixtures.join("server.key"))?;
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let broker = LocalBroker::start_behind(port)?;
    let upstream = format!("127.0.0.1:{}", broker.port());
    println!(
        "TLS broker listening on 127.0.0.1:{port} (provider {:?}, CA {}); Ctrl-C stops it",
        client.provider(),
        fixtures.join("ca.pem").display()
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, _) = accepted?;
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                tokio::spawn(async move {
                    // A failed handshake just closes the connection, as a real TLS listener does.
                    let Ok(mut tls) = acceptor.accept(socket).await else { return };
                    let Ok(mut plain) = TcpStream::connect(&upstream).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    drop(broker);
    println!("TLS broker stopped");
    Ok(())
}
