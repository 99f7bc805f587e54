//! Reconnecting against a fake broker on loopback.

use std::sync::atomic::AtomicUsize;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, api_versions_response::ApiVersion};
use tokio::net::TcpListener;

use super::*;
use crate::client::connection::fake_peer::FakePeer;

/// A broker whose first connection answers ApiVersions with bytes that do not decode, and whose later
/// connections answer properly.
async fn corrupt_first_connection(corrupt: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((io, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut peer = FakePeer::new(io);
                while let Some((header, _)) = peer.read_request().await {
                    let id = header.correlation_id;
                    if n < corrupt {
                        // The right correlation id, then a body cut short.
                        let mut frame = BytesMut::new();
                        frame.put_i32(6);
                        frame.put_i32(id);
                        frame.put_u16(0xffff);
                        peer.write(&frame).await;
                    } else {
                        let body = ApiVersionsResponse::default().with_api_keys(vec![
                            ApiVersion::default()
                                .with_api_key(ApiKey::ApiVersions as i16)
                                .with_min_version(0)
                                .with_max_version(3),
                        ]);
                        peer.respond(id, header.request_api_version, &body).await;
                    }
                }
            });
        }
    });
    (address, accepted)
}

fn config(address: &str) -> Arc<ClientConfig> {
    ClientConfig::new(address)
        .with_connect_timeout(Duration::from_secs(2))
        .with_reconnect_deadline(Duration::from_secs(10))
        .with_reconnect_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .into()
}

#[tokio::test]
async fn a_handshake_that_does_not_decode_is_retried_on_one_new_connection() {
    let (address, accepted) = corrupt_first_connection(1).await;
    let broker = BrokerConnection::new(address.clone(), config(&address));
    let messenger = broker.messenger().await.unwrap();
    assert!(!messenger.is_poisoned());
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_broker_that_never_decodes_gets_its_error_back_after_one_retry() {
    let (address, accepted) = corrupt_first_connection(usize::MAX).await;
    let broker = BrokerConnection::new(address.clone(), config(&address));
    let started = std::time::Instant::now();
    let err = broker.messenger().await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
