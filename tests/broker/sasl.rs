//! SASL on every connection.
//!
//! - Always: a SASL/PLAIN-terminating proxy in front of the local broker (Tansu has no PLAIN). It
//!   forwards ApiVersions, answers SaslHandshake and SaslAuthenticate itself, refuses any other request
//!   before authentication (as Kafka does), then pipes the connection through. The broker advertises
//!   the proxy's port, so every connection the client opens (bootstrap and broker) goes through it.
//! - Gated: SCRAM against a real broker that has SCRAM users (Tansu needs persistent storage for that;
//!   see `../shared/reference/test-broker.md`). Set `KAFKA_SASL_SCRAM_BOOTSTRAP`,
//!   `KAFKA_SASL_SCRAM_USERNAME`, `KAFKA_SASL_SCRAM_PASSWORD` and optionally
//!   `KAFKA_SASL_SCRAM_MECHANISM` (default `SCRAM-SHA-512`); without them the tests are reported as
//!   ignored.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_event_bus::{
    bus::KafkaEventBusConfig,
    client::{
        Cluster, NewTopic,
        cluster::Error as ClusterError,
        connection::{Error, SaslError, SaslMechanism},
        producer::{Producer, ProducerRecord},
    },
    testing::LocalBroker,
};
use kafka_protocol::{
    messages::{
        ApiKey, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
        SaslHandshakeResponse,
    },
    protocol::{Decodable, Encodable, HeaderVersion, StrBytes, decode_request_header_from_buffer},
};
use libtest_mimic::Trial;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::{support::unique, trial};

const USER: &str = "orders-svc";
const PASSWORD: &str = "correct horse battery staple";

/// What the proxy does with wrong credentials.
#[derive(Clone, Copy)]
enum OnWrongPassword {
    /// Answer SASL_AUTHENTICATION_FAILED, as Kafka does.
    Refuse,
    /// Close the connection, as Tansu does.
    HangUp,
}

#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    authenticated: AtomicUsize,
}

struct SaslBroker {
    bootstrap: String,
    counts: Arc<Counts>,
    _broker: LocalBroker,
    proxy: JoinHandle<()>,
}

impl Drop for SaslBroker {
    fn drop(&mut self) {
        self.proxy.abort();
    }
}

async fn start_plain_proxy(on_wrong: OnWrongPassword) -> SaslBroker {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = tokio::task::spawn_blocking(move || LocalBroker::start_behind(port))
        .await
        .unwrap()
        .unwrap();
    let upstream = format!("127.0.0.1:{}", broker.port());
    let counts = Arc::new(Counts::default());
    let proxy_counts = Arc::clone(&counts);
    let proxy = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            proxy_counts.connections.fetch_add(1, Ordering::SeqCst);
            let (upstream, counts) = (upstream.clone(), Arc::clone(&proxy_counts));
            tokio::spawn(async move {
                let _ = serve(client, &upstream, on_wrong, &counts).await;
            });
        }
    });
    SaslBroker {
        bootstrap: format!("127.0.0.1:{port}"),
        counts,
        _broker: broker,
        proxy,
    }
}

async fn read_frame<R: AsyncRead + Unpin>(io: &mut R) -> std::io::Result<Bytes> {
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let mut buf = BytesMut::zeroed(i32::from_be_bytes(prefix) as usize);
    io.read_exact(&mut buf).await?;
    Ok(buf.freeze())
}

async fn respond<T: Encodable + HeaderVersion + Sync>(
    io: &mut TcpStream,
    correlation_id: i32,
    version: i16,
    body: &T,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, T::header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    io.write_all(&buf).await
}

/// One client connection: ApiVersions passes through, SASL is answered here, anything else before
/// authentication closes the connection; afterwards bytes flow both ways untouched.
async fn serve(
    mut client: TcpStream,
    upstream: &str,
    on_wrong: OnWrongPassword,
    counts: &Counts,
) -> std::io::Result<()> {
    let mut broker = TcpStream::connect(upstream).await?;
    loop {
        let frame = read_frame(&mut client).await?;
        let mut body = frame.clone();
        let header = decode_request_header_from_buffer(&mut body).unwrap();
        let (id, version) = (header.correlation_id, header.request_api_version);
        match ApiKey::try_from(header.request_api_key) {
            Ok(ApiKey::ApiVersions) => {
                broker.write_all(&(frame.len() as i32).to_be_bytes()).await?;
                broker.write_all(&frame).await?;
                let answer = read_frame(&mut broker).await?;
                client.write_all(&(answer.len() as i32).to_be_bytes()).await?;
                client.write_all(&answer).await?;
            }
            Ok(ApiKey::SaslHandshake) => {
                let request = SaslHandshakeRequest::decode(&mut body, version).unwrap();
                let code = if request.mechanism.as_str() == "PLAIN" {
                    0
                } else {
                    33
                };
                let response = SaslHandshakeResponse::default()
                    .with_error_code(code)
                    .with_mechanisms(vec![StrBytes::from_static_str("PLAIN")]);
                respond(&mut client, id, version, &response).await?;
            }
            Ok(ApiKey::SaslAuthenticate) => {
                let request = SaslAuthenticateRequest::decode(&mut body, version).unwrap();
                let expected = format!("\0{USER}\0{PASSWORD}");
                if request.auth_bytes == expected.as_bytes() {
                    counts.authenticated.fetch_add(1, Ordering::SeqCst);
                    respond(&mut client, id, version, &SaslAuthenticateResponse::default()).await?;
                    break;
                }
                match on_wrong {
                    OnWrongPassword::HangUp => return Ok(()),
                    OnWrongPassword::Refuse => {
                        let response = SaslAuthenticateResponse::default()
                            .with_error_code(58)
                            .with_error_message(Some(StrBytes::from_static_str(
                                "Authentication failed: Invalid username or password",
                            )));
                        respond(&mut client, id, version, &response).await?;
                    }
                }
            }
            // Kafka allows nothing else before authentication.
            _ => return Ok(()),
        }
    }
    tokio::io::copy_bidirectional(&mut client, &mut broker).await?;
    Ok(())
}

fn sasl_config(
    bootstrap: &str,
    protocol: &str,
    mechanism: &str,
    user: &str,
    password: &str,
) -> KafkaEventBusConfig {
    KafkaEventBusConfig::builder()
        .bootstrap_servers(bootstrap)
        .topic_prefix(unique("sasl"))
        .security_protocol(protocol)
        .sasl_mechanism(mechanism)
        .sasl_username(user)
        .sasl_password(password)
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

pub(crate) fn trials(trials: &mut Vec<Trial>) {
    trials.push(trial(
        "sasl::plain_authenticates_every_connection",
        |_ctx| async move {
            let broker = start_plain_proxy(OnWrongPassword::Refuse).await;
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
        "sasl::a_refused_password_is_a_clear_authentication_error",
        |_ctx| async move {
            let broker = start_plain_proxy(OnWrongPassword::Refuse).await;
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
        "sasl::a_broker_hanging_up_on_a_wrong_password_is_an_authentication_error",
        |_ctx| async move {
            let broker = start_plain_proxy(OnWrongPassword::HangUp).await;
            let config = sasl_config(
                &broker.bootstrap,
                "SASL_PLAINTEXT",
                "PLAIN",
                USER,
                "wrong-password",
            );
            let err = connect(&config).await.unwrap_err();
            let (_, source) = authentication_error(&err);
            assert!(matches!(source, SaslError::ClosedDuringAuthentication), "{err}");
        },
    ));

    trials.push(trial(
        "sasl::a_mechanism_the_broker_lacks_is_named_in_the_error",
        |_ctx| async move {
            let broker = start_plain_proxy(OnWrongPassword::Refuse).await;
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

    let gated = scram_env();
    let ignored = gated.is_none();
    let env = gated.clone();
    trials.push(
        trial("sasl::scram_against_a_real_broker", move |_ctx| async move {
            let (bootstrap, mechanism, user, password) = env.unwrap();
            let config = sasl_config(&bootstrap, "SASL_PLAINTEXT", &mechanism, &user, &password);
            let cluster = connect(&config).await.unwrap();
            produce_round_trip(cluster, &config).await;
        })
        .with_ignored_flag(ignored),
    );
    trials.push(
        trial(
            "sasl::scram_with_a_wrong_password_against_a_real_broker",
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
