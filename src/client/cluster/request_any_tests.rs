//! `request_any` against two in-process brokers: the one that sorts first by id accepts connections
//! and never answers (a black-holed host), the other answers. A broker the cluster already has a live
//! connection to is asked first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::time::{Duration, Instant};

use kafka_protocol::{
    messages::{
        ApiKey, ApiVersionsResponse, BrokerId, InitProducerIdRequest, InitProducerIdResponse,
        MetadataResponse, ProducerId, api_versions_response::ApiVersion,
        metadata_response::MetadataResponseBroker,
    },
    protocol::StrBytes,
};
use tokio::net::TcpListener;

use super::*;
use crate::client::connection::fake_peer::FakePeer;

/// A broker that answers ApiVersions, Metadata (listing `silent` as broker 1 and itself as broker 2)
/// and InitProducerId; returns its address.
async fn answering(silent: std::net::SocketAddr) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut peer = FakePeer::new(socket);
                while let Some((header, _)) = peer.read_request().await {
                    let (id, version) = (header.correlation_id, header.request_api_version);
                    match ApiKey::try_from(header.request_api_key) {
                        Ok(ApiKey::ApiVersions) => {
                            let keys = [
                                (ApiKey::ApiVersions, 3),
                                (ApiKey::Metadata, 12),
                                (ApiKey::InitProducerId, 4),
                            ]
                            .map(|(api, max)| {
                                ApiVersion::default()
                                    .with_api_key(api as i16)
                                    .with_min_version(0)
                                    .with_max_version(max)
                            });
                            let body = ApiVersionsResponse::default().with_api_keys(keys.to_vec());
                            peer.respond(id, version, &body).await;
                        }
                        Ok(ApiKey::Metadata) => {
                            let broker = |id: i32, at: std::net::SocketAddr| {
                                MetadataResponseBroker::default()
                                    .with_node_id(BrokerId(id))
                                    .with_host(StrBytes::from_string(at.ip().to_string()))
                                    .with_port(i32::from(at.port()))
                            };
                            let body = MetadataResponse::default()
                                .with_controller_id(BrokerId(2))
                                .with_brokers(vec![broker(1, silent), broker(2, address)]);
                            peer.respond(id, version, &body).await;
                        }
                        Ok(ApiKey::InitProducerId) => {
                            let body = InitProducerIdResponse::default()
                                .with_producer_id(ProducerId(42))
                                .with_producer_epoch(0);
                            peer.respond(id, version, &body).await;
                        }
                        _ => return,
                    }
                }
            });
        }
    });
    address.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_with_a_live_connection_is_asked_before_a_silent_one() {
    // Accepts connections (the kernel's backlog) and never reads or answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = answering(silent.local_addr().unwrap()).await;
    let config = crate::client::ClientConfig::new(&address)
        .with_connect_timeout(Duration::from_secs(3))
        .with_request_timeout(Duration::from_secs(3));
    let cluster = Cluster::connect(config).await.unwrap();
    let started = Instant::now();
    let (_, response) = cluster
        .request_any(&InitProducerIdRequest::default().with_producer_id(ProducerId(-1)))
        .await
        .unwrap();
    assert_eq!(response.producer_id, ProducerId(42));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "waited {took:?}: the silent broker was asked before the live connection"
    );
    drop(silent);
}
