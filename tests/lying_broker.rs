//! A fake broker on loopback that lies: huge counts, an oversize size prefix, a frame cut mid-way, a
//! frame that stalls. The client must answer each with a typed error within its timeouts, never abort
//! or hang. The huge-count cases run in a child process (this test binary, re-run on one test), so a
//! regression aborts the child, and this suite reports it instead of dying.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{BufMut, BytesMut};
use kafka_event_bus::{
    client::{
        ClientConfig, Cluster,
        connection::{BrokerConnection, Error as ConnectionError},
    },
    protocol::{self, ApiKey, Violation},
};
use kafka_protocol::{
    messages::{ApiVersionsResponse, MetadataRequest, ResponseHeader, api_versions_response::ApiVersion},
    protocol::{Encodable, HeaderVersion},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What the fake broker does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lie {
    /// ApiVersions answered with an `api_keys` count of 0xFFFFFFFF (compact) or i32::MAX (classic) and
    /// nothing after it: the user's 15-byte answer.
    HugeApiVersions,
    /// An honest handshake, then Metadata answered with a brokers count of 0xFFFFFFFF.
    HugeMetadata,
    /// ApiVersions answered with a size prefix far above the client's maximum.
    OversizeFrame,
    /// An honest handshake, then a Metadata frame cut after 10 of its 64 bytes, and the socket closed.
    CutFrame,
    /// An honest handshake, then a Metadata frame that stops after 10 of its 64 bytes; the socket stays
    /// open.
    StalledFrame,
}

/// The broker's address, and whether the client closed a connection to it.
struct FakeBroker {
    address: String,
    client_closed: Arc<AtomicBool>,
}

async fn fake_broker(lie: Lie) -> FakeBroker {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let client_closed = Arc::new(AtomicBool::new(false));
    let closed = Arc::clone(&client_closed);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let closed = Arc::clone(&closed);
            tokio::spawn(async move {
                serve(socket, lie).await;
                closed.store(true, Ordering::SeqCst);
            });
        }
    });
    FakeBroker {
        address,
        client_closed,
    }
}

/// Answers requests until the client hangs up (or the lie says to hang up).
async fn serve(mut socket: TcpStream, lie: Lie) {
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
        match (api, lie) {
            (18, Lie::HugeApiVersions) => {
                // Header v0 (ApiVersions always), error code 0, then the count alone.
                out.put_i32(id);
                out.put_i16(0);
                if version >= 3 {
                    out.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
                } else {
                    out.put_i32(i32::MAX);
                }
                if version >= 3 {
                    assert_eq!(out.len() + 4, 15, "the reported answer is 15 bytes");
                }
            }
            (18, Lie::OversizeFrame) => {
                socket.write_all(&0x7fff_fff0_i32.to_be_bytes()).await.unwrap();
                socket.write_all(&[0; 64]).await.ok();
                continue;
            }
            (18, _) => {
                let body = ApiVersionsResponse::default().with_api_keys(vec![
                    ApiVersion::default()
                        .with_api_key(18)
                        .with_min_version(0)
                        .with_max_version(3),
                    ApiVersion::default()
                        .with_api_key(3)
                        .with_min_version(0)
                        .with_max_version(12),
                ]);
                ResponseHeader::default()
                    .with_correlation_id(id)
                    .encode(&mut out, ApiVersionsResponse::header_version(version))
                    .unwrap();
                body.encode(&mut out, version).unwrap();
            }
            (3, Lie::HugeMetadata) => {
                assert_eq!(version, 12);
                out.put_i32(id);
                out.put_u8(0); // header v1: no tagged fields
                out.put_i32(0); // throttle time
                out.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // brokers: 0xFFFFFFFF - 1
            }
            (3, Lie::CutFrame | Lie::StalledFrame) => {
                socket.write_all(&64i32.to_be_bytes()).await.unwrap();
                socket.write_all(&id.to_be_bytes()).await.unwrap();
                socket.write_all(&[0; 6]).await.unwrap();
                if lie == Lie::CutFrame {
                    return;
                }
                // Hold the connection open, sending nothing, until the client hangs up.
                let mut rest = Vec::new();
                socket.read_to_end(&mut rest).await.ok();
                return;
            }
            _ => return,
        }
        let mut frame = BytesMut::new();
        frame.put_i32(out.len() as i32);
        frame.put_slice(&out);
        if socket.write_all(&frame).await.is_err() {
            return;
        }
    }
}

fn config(address: &str) -> ClientConfig {
    ClientConfig::new(address)
        .with_connect_timeout(Duration::from_secs(1))
        .with_request_timeout(Duration::from_secs(1))
        .with_reconnect_deadline(Duration::from_secs(2))
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(100))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The malformed-response error inside a connection error, if that is what it is.
fn malformed(err: &ConnectionError) -> Option<(ApiKey, i16, &'static str, Violation)> {
    match err {
        ConnectionError::Protocol { source, .. } => match &**source {
            protocol::Error::Malformed {
                api,
                version,
                field,
                violation,
                ..
            } => Some((*api, *version, field, violation.clone())),
            _ => None,
        },
        _ => None,
    }
}

const CHILD: &str = "LYING_BROKER_CHILD";

/// Runs one lie in a child process (this binary, on `child_process` only) and returns its stdout; the
/// child must exit cleanly.
fn in_child(lie: &str) -> String {
    let started = Instant::now();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process", "--nocapture", "--test-threads=1"])
        .env(CHILD, lie)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child for {lie} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "child for {lie} took {:?}",
        started.elapsed()
    );
    stdout
}

/// The child's side: runs the lie named in the environment (nothing without it).
#[test]
fn child_process() {
    let Ok(lie) = std::env::var(CHILD) else {
        return;
    };
    runtime().block_on(async {
        match lie.as_str() {
            "HugeApiVersions" => {
                let broker = fake_broker(Lie::HugeApiVersions).await;
                let connection = BrokerConnection::new(&broker.address, config(&broker.address).into());
                let err = connection.messenger().await.unwrap_err();
                let (api, version, field, violation) = malformed(&err).unwrap_or_else(|| panic!("{err}"));
                // v3 first, then the v0 fallback: both lie, the second error is the one returned.
                assert_eq!((api, version, field), (ApiKey::ApiVersions, 0, "api_keys"));
                assert!(
                    matches!(violation, Violation::CountTooLarge { .. }),
                    "{violation}"
                );
                println!("outcome: {err}");
            }
            "HugeMetadata" => {
                let broker = fake_broker(Lie::HugeMetadata).await;
                let err = Cluster::connect(config(&broker.address)).await.unwrap_err();
                println!("outcome: {err}");
                let connection = BrokerConnection::new(&broker.address, config(&broker.address).into());
                let err = connection.request(&MetadataRequest::default()).await.unwrap_err();
                let (api, version, field, violation) = malformed(&err).unwrap_or_else(|| panic!("{err}"));
                assert_eq!((api, version, field), (ApiKey::Metadata, 12, "brokers"));
                assert!(
                    matches!(violation, Violation::CountTooLarge { .. }),
                    "{violation}"
                );
                println!("outcome: {err}");
            }
            other => panic!("unknown lie {other}"),
        }
    });
}

#[test]
fn a_huge_api_versions_count_is_a_typed_error_not_an_abort() {
    let stdout = in_child("HugeApiVersions");
    assert!(stdout.contains("malformed ApiVersions v0 response"), "{stdout}");
    assert!(stdout.contains("count 2147483647 cannot fit"), "{stdout}");
}

#[test]
fn a_huge_metadata_count_is_a_typed_error_not_an_abort() {
    let stdout = in_child("HugeMetadata");
    assert!(stdout.contains("malformed Metadata v12 response"), "{stdout}");
    assert!(
        stdout.contains("(brokers): count 4294967294 cannot fit"),
        "{stdout}"
    );
}

#[test]
fn an_oversize_size_prefix_is_a_typed_error() {
    runtime().block_on(async {
        let broker = fake_broker(Lie::OversizeFrame).await;
        let started = Instant::now();
        let connection = BrokerConnection::new(&broker.address, config(&broker.address).into());
        let err = connection.messenger().await.unwrap_err();
        assert!(
            matches!(&err, ConnectionError::Protocol { source, .. }
                if matches!(**source, protocol::Error::FrameSize { size: 0x7fff_fff0, .. })),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        drop(connection);
        wait_for(|| broker.client_closed.load(Ordering::SeqCst)).await;
    });
}

#[test]
fn a_frame_cut_mid_way_is_a_disconnect() {
    runtime().block_on(async {
        let broker = fake_broker(Lie::CutFrame).await;
        let started = Instant::now();
        let connection = BrokerConnection::new(&broker.address, config(&broker.address).into());
        let err = connection.request(&MetadataRequest::default()).await.unwrap_err();
        assert!(matches!(err, ConnectionError::Disconnected { .. }), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    });
}

#[test]
fn a_frame_stalled_mid_way_times_out() {
    runtime().block_on(async {
        let broker = fake_broker(Lie::StalledFrame).await;
        let started = Instant::now();
        let connection = BrokerConnection::new(&broker.address, config(&broker.address).into());
        let err = connection.request(&MetadataRequest::default()).await.unwrap_err();
        assert!(
            matches!(
                err,
                ConnectionError::RequestTimeout {
                    api: ApiKey::Metadata,
                    ..
                }
            ),
            "{err}"
        );
        let elapsed = started.elapsed();
        assert!(
            (Duration::from_millis(900)..Duration::from_secs(5)).contains(&elapsed),
            "{elapsed:?}"
        );
        // Dropping the client closes the socket.
        drop(connection);
        wait_for(|| broker.client_closed.load(Ordering::SeqCst)).await;
    });
}

async fn wait_for(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "condition not met in 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
