//! A SASL-terminating proxy in front of a local broker (Tansu has no PLAIN, and its SCRAM needs
//! persistent storage): it forwards ApiVersions, answers SaslHandshake and SaslAuthenticate itself
//! (PLAIN, and SCRAM-SHA-256/512 as an RFC 5802 server written here from the RFC's formulas), refuses
//! any other request before authentication (as Kafka does), then pipes the connection through.
//! Optionally it terminates TLS first (SASL_SSL). The broker advertises the proxy's port, so every
//! connection the client opens goes through it.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use bytes::{Bytes, BytesMut};
use hmac::{Hmac, KeyInit, Mac};
use kafka_event_bus::testing::LocalBroker;
use kafka_protocol::{
    messages::{
        ApiKey, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
        SaslHandshakeResponse,
    },
    protocol::{Decodable, Encodable, HeaderVersion, StrBytes, decode_request_header_from_buffer},
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use sha2::{Digest, Sha256, Sha512};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;

use crate::tls_proxy::fixture;

/// The one user the proxy knows.
pub(crate) const USER: &str = "orders-svc";
/// Its password (with spaces, as SCRAM allows).
pub(crate) const PASSWORD: &str = "correct horse battery staple";
const SALT: &[u8] = b"kafka-event-bus-test-salt";
const ITERATIONS: u32 = 4096;

/// Every mechanism the proxy can serve.
pub(crate) const ALL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// How the proxy behaves.
#[derive(Clone, Copy)]
pub(crate) struct Options {
    /// What it does with wrong credentials.
    pub(crate) on_wrong: OnWrongPassword,
    /// Whether it terminates TLS first (SASL_SSL), with the test CA's server certificate.
    pub(crate) tls: bool,
    /// The mechanisms it enables.
    pub(crate) mechanisms: &'static [&'static str],
    /// How many connections, first come, it closes at their first SaslAuthenticate whatever the
    /// credentials (a broker restarting mid-exchange).
    pub(crate) hang_up_first: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            on_wrong: OnWrongPassword::Refuse,
            tls: false,
            mechanisms: ALL_MECHANISMS,
            hang_up_first: 0,
        }
    }
}

/// What the proxy does with wrong credentials.
#[derive(Clone, Copy)]
pub(crate) enum OnWrongPassword {
    /// Answer SASL_AUTHENTICATION_FAILED, as Kafka does.
    Refuse,
    /// Close the connection, as Tansu does.
    HangUp,
}

#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) connections: AtomicUsize,
    pub(crate) authenticated: AtomicUsize,
}

pub(crate) struct SaslBroker {
    pub(crate) bootstrap: String,
    pub(crate) counts: Arc<Counts>,
    _broker: LocalBroker,
    proxy: JoinHandle<()>,
}

impl Drop for SaslBroker {
    fn drop(&mut self) {
        self.proxy.abort();
    }
}

fn tls_acceptor() -> TlsAcceptor {
    let provider = Arc::new(rustls_graviola::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// Starts a broker behind the proxy (clients of a TLS proxy trust `ca.pem`).
pub(crate) async fn start(options: Options) -> SaslBroker {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = tokio::task::spawn_blocking(move || LocalBroker::start_behind(port))
        .await
        .unwrap()
        .unwrap();
    let upstream = format!("127.0.0.1:{}", broker.port());
    let counts = Arc::new(Counts::default());
    let proxy_counts = Arc::clone(&counts);
    let acceptor = options.tls.then(tls_acceptor);
    let proxy = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let index = proxy_counts.connections.fetch_add(1, Ordering::SeqCst);
            let hang_up = index < options.hang_up_first;
            let (upstream, counts, acceptor) =
                (upstream.clone(), Arc::clone(&proxy_counts), acceptor.clone());
            tokio::spawn(async move {
                let _ = match acceptor {
                    None => serve(client, &upstream, options, hang_up, &counts).await,
                    Some(acceptor) => match acceptor.accept(client).await {
                        Ok(tls) => serve(tls, &upstream, options, hang_up, &counts).await,
                        Err(e) => Err(e),
                    },
                };
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

async fn write_frame<W: AsyncWrite + Unpin>(io: &mut W, frame: &[u8]) -> std::io::Result<()> {
    io.write_all(&(frame.len() as i32).to_be_bytes()).await?;
    io.write_all(frame).await?;
    io.flush().await
}

async fn respond<W: AsyncWrite + Unpin, T: Encodable + HeaderVersion + Sync>(
    io: &mut W,
    correlation_id: i32,
    version: i16,
    body: &T,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, T::header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    write_frame(io, &buf).await
}

/// Where one connection's SASL exchange stands.
enum Exchange {
    /// No handshake yet.
    Start,
    Plain,
    /// SCRAM, before client-first.
    ScramFirst {
        sha512: bool,
    },
    /// SCRAM, after server-first.
    ScramFinal {
        sha512: bool,
        nonce: String,
        auth_prefix: String,
    },
}

/// What the proxy answers to one SaslAuthenticate.
enum Answer {
    Continue(Vec<u8>),
    Authenticated(Vec<u8>),
    Wrong,
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    upstream: &str,
    options: Options,
    hang_up: bool,
    counts: &Counts,
) -> std::io::Result<()> {
    let mut broker = TcpStream::connect(upstream).await?;
    let mut exchange = Exchange::Start;
    loop {
        let frame = read_frame(&mut client).await?;
        let mut body = frame.clone();
        let header = decode_request_header_from_buffer(&mut body).unwrap();
        let (id, version) = (header.correlation_id, header.request_api_version);
        match ApiKey::try_from(header.request_api_key) {
            Ok(ApiKey::ApiVersions) => {
                write_frame(&mut broker, &frame).await?;
                let answer = read_frame(&mut broker).await?;
                write_frame(&mut client, &answer).await?;
            }
            Ok(ApiKey::SaslHandshake) => {
                let request = SaslHandshakeRequest::decode(&mut body, version).unwrap();
                let mechanism = request.mechanism.as_str();
                let (code, next) = match mechanism {
                    _ if !options.mechanisms.contains(&mechanism) => (33, Exchange::Start),
                    "PLAIN" => (0, Exchange::Plain),
                    "SCRAM-SHA-256" => (0, Exchange::ScramFirst { sha512: false }),
                    "SCRAM-SHA-512" => (0, Exchange::ScramFirst { sha512: true }),
                    _ => (33, Exchange::Start),
                };
                exchange = next;
                let offered = options.mechanisms.iter().map(|m| StrBytes::from_static_str(m));
                let response = SaslHandshakeResponse::default()
                    .with_error_code(code)
                    .with_mechanisms(offered.collect());
                respond(&mut client, id, version, &response).await?;
            }
            Ok(ApiKey::SaslAuthenticate) => {
                if hang_up {
                    return Ok(());
                }
                let request = SaslAuthenticateRequest::decode(&mut body, version).unwrap();
                let (answer, next) = authenticate(
                    std::mem::replace(&mut exchange, Exchange::Start),
                    &request.auth_bytes,
                );
                exchange = next;
                let (bytes, done) = match answer {
                    Answer::Continue(bytes) => (bytes, false),
                    Answer::Authenticated(bytes) => (bytes, true),
                    Answer::Wrong => match options.on_wrong {
                        OnWrongPassword::HangUp => return Ok(()),
                        OnWrongPassword::Refuse => {
                            let response = SaslAuthenticateResponse::default()
                                .with_error_code(58)
                                .with_error_message(Some(StrBytes::from_static_str(
                                    "Authentication failed: Invalid username or password",
                                )));
                            respond(&mut client, id, version, &response).await?;
                            continue;
                        }
                    },
                };
                let response = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(bytes));
                respond(&mut client, id, version, &response).await?;
                if done {
                    counts.authenticated.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
            // Kafka allows nothing else before authentication.
            _ => return Ok(()),
        }
    }
    tokio::io::copy_bidirectional(&mut client, &mut broker).await?;
    Ok(())
}

/// One SASL step: the answer, and the state after it (`Start` once authenticated or failed).
fn authenticate(exchange: Exchange, token: &[u8]) -> (Answer, Exchange) {
    let text = String::from_utf8_lossy(token);
    match exchange {
        Exchange::Plain if token == format!("\0{USER}\0{PASSWORD}").as_bytes() => {
            (Answer::Authenticated(Vec::new()), Exchange::Start)
        }
        Exchange::ScramFirst { sha512 } => {
            // client-first: "n,,n=<user>,r=<client nonce>"
            let Some(bare) = text.strip_prefix("n,,") else {
                return (Answer::Wrong, Exchange::Start);
            };
            let attrs = attributes(bare);
            if attrs.get("n").map(String::as_str) != Some(USER) {
                return (Answer::Wrong, Exchange::Start);
            }
            let nonce = format!("{}proxy{}", attrs["r"], bare.len());
            let server_first = format!("r={nonce},s={},i={ITERATIONS}", STANDARD.encode(SALT));
            let next = Exchange::ScramFinal {
                sha512,
                nonce,
                auth_prefix: format!("{bare},{server_first}"),
            };
            (Answer::Continue(server_first.into_bytes()), next)
        }
        Exchange::ScramFinal {
            sha512,
            nonce,
            auth_prefix,
        } => {
            // client-final: "c=biws,r=<nonce>,p=<proof>"
            let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
                return (Answer::Wrong, Exchange::Start);
            };
            if without_proof != format!("c=biws,r={nonce}") {
                return (Answer::Wrong, Exchange::Start);
            }
            let auth = format!("{auth_prefix},{without_proof}");
            let proof = STANDARD.decode(proof).unwrap_or_default();
            let signature = if sha512 {
                verify::<Sha512>(&proof, auth.as_bytes())
            } else {
                verify::<Sha256>(&proof, auth.as_bytes())
            };
            match signature {
                Some(signature) => (
                    Answer::Authenticated(format!("v={}", STANDARD.encode(signature)).into_bytes()),
                    Exchange::Start,
                ),
                None => (Answer::Wrong, Exchange::Start),
            }
        }
        Exchange::Plain | Exchange::Start => (Answer::Wrong, Exchange::Start),
    }
}

fn attributes(text: &str) -> std::collections::HashMap<&str, String> {
    text.split(',')
        .filter_map(|part| part.split_once('='))
        .map(|(k, v)| (k, v.to_owned()))
        .collect()
}

fn hmac_of<D>(key: &[u8], data: &[u8]) -> Vec<u8>
where
    D: Digest + hmac::EagerHash,
    Hmac<D>: KeyInit + Mac,
{
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 5802 §3 on the server side: recover ClientKey from the proof and check it against StoredKey;
/// on success, the ServerSignature to send back.
fn verify<D>(proof: &[u8], auth: &[u8]) -> Option<Vec<u8>>
where
    D: Digest + hmac::EagerHash,
    Hmac<D>: KeyInit + Mac,
{
    let mut salted = vec![0u8; <D as Digest>::output_size()];
    pbkdf2::pbkdf2_hmac::<D>(PASSWORD.as_bytes(), SALT, ITERATIONS, &mut salted);
    let stored_key = D::digest(hmac_of::<D>(&salted, b"Client Key")).to_vec();
    let client_signature = hmac_of::<D>(&stored_key, auth);
    if proof.len() != client_signature.len() {
        return None;
    }
    let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
    (D::digest(&client_key).to_vec() == stored_key)
        .then(|| hmac_of::<D>(&hmac_of::<D>(&salted, b"Server Key"), auth))
}
