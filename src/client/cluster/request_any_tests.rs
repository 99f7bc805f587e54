//! `request_any` against two in-process brokers: the one that sorts first by id accepts connections
//! and never answers (a black-holed host), the other answers. A broker the cluster already has a live
//! connection to is asked first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use kafka_protocol::{
    messages::{
        ApiVersionsResponse, BrokerId, InitProducerIdRequest, InitProducerIdResponse, MetadataResponse,
        ProducerId, ResponseHeader, api_versions_response::ApiVersion,
        metadata_response::MetadataResponseBroker,
    },
    protocol::{Encodable, HeaderVersion, StrBytes},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;

/// A broker that answers ApiVersions, Metadata (listing `silent` as broker 1 and itself as broker 2)
/// and InitProducerId; returns its address.
async fn answering(silent: std::net::SocketAddr) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                loop {
                    let mut prefix = [0u8; 4];
                    if socket.read_exact(&mut prefix).await.is_err() {
                        return;
                    }
                    let mut request = vec![0u8; i32::from_be_bytes(prefix) as usize];
                    if socket.read_exact(&mut request).await.is_err() {
                        return;
                    }
                    let api = i16::from_be_bytes([request[0], request[1]]);
                    let version = i16::from_be_bytes([request[2], request[3]]);
                    let id = i32::from_be_bytes([request[4], request[5], request[6], request[7]]);
                    let mut out = BytesMut::new();
                    let header = ResponseHeader::default().with_correlation_id(id);
                    let broker = |id: i32, at: std::net::SocketAddr| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(id))
                            .with_host(StrBytes::from_string(at.ip().to_string()))
                            .with_port(i32::from(at.port()))
                    };
                    match api {
                        18 => {
                            let api = |key: i16, max: i16| {
                                ApiVersion::default()
                                    .with_api_key(key)
                                    .with_min_version(0)
                                    .with_max_version(max)
                            };
                            let body = ApiVersionsResponse::default().with_api_keys(vec![
                                api(18, 3),
                                api(3, 12),
                                api(22, 4),
                            ]);
                            header
                                .encode(&mut out, ApiVersionsResponse::header_version(version))
                                .unwrap();
                            body.encode(&mut out, version).unwrap();
                        }
                        3 => {
                            let body = MetadataResponse::default()
                                .with_controller_id(BrokerId(2))
                                .with_brokers(vec![broker(1, silent), broker(2, address)]);
                            header
                                .encode(&mut out, MetadataResponse::header_version(version))
                                .unwrap();
                            body.encode(&mut out, version).unwrap();
                        }
                        22 => {
                            let body = InitProducerIdResponse::default()
                                .with_producer_id(ProducerId(42))
                                .with_producer_epoch(0);
                            header
                                .encode(&mut out, InitProducerIdResponse::header_version(version))
                                .unwrap();
                            body.encode(&mut out, version).unwrap();
                        }
                        _ => return,
                    }
                    let mut frame = BytesMut::new();
                    frame.put_i32(out.len() as i32);
                    frame.extend_from_slice(&out);
                    if socket.write_all(&frame).await.is_err() {
                        return;
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
