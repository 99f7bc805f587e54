//! The SASL driver against a scripted broker over an in-memory pipe: the RFC 7677 SCRAM exchange,
//! PLAIN, and every way a broker can refuse.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::{
    messages::{
        ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
        SaslHandshakeResponse,
    },
    protocol::{Decodable, StrBytes},
};

use super::*;
use crate::client::connection::fake_peer::FakePeer as Peer;
use crate::client::connection::sasl::ScramClient;

const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

/// The SASL steps of the scripted broker.
trait SaslPeer {
    async fn api_versions(&mut self);
    async fn handshake(&mut self, expect: &str, error_code: i16, offered: &[&str]);
    async fn authenticate(&mut self) -> Option<(RequestHeader, Bytes)>;
    async fn answer(&mut self, header: &RequestHeader, error: Option<(i16, &str)>, bytes: &[u8]);
}

impl SaslPeer for Peer {
    async fn api_versions(&mut self) {
        self.answer_api_versions(&[
            (ApiKey::ApiVersions, 3),
            (ApiKey::SaslHandshake, 1),
            (ApiKey::SaslAuthenticate, 2),
        ])
        .await;
    }

    /// Reads SaslHandshake, checks the mechanism and answers with `error_code`.
    async fn handshake(&mut self, expect: &str, error_code: i16, offered: &[&str]) {
        let (header, mut body) = self.read_request().await.unwrap();
        assert_eq!(header.request_api_key, ApiKey::SaslHandshake as i16);
        assert_eq!(header.request_api_version, 1);
        let request = SaslHandshakeRequest::decode(&mut body, 1).unwrap();
        assert_eq!(request.mechanism.as_str(), expect);
        let mechanisms = offered
            .iter()
            .map(|m| StrBytes::from_string((*m).to_owned()))
            .collect();
        let response = SaslHandshakeResponse::default()
            .with_error_code(error_code)
            .with_mechanisms(mechanisms);
        self.respond(header.correlation_id, header.request_api_version, &response)
            .await;
    }

    /// Reads one SaslAuthenticate and returns its header and auth bytes.
    async fn authenticate(&mut self) -> Option<(RequestHeader, Bytes)> {
        let (header, mut body) = self.read_request().await?;
        assert_eq!(header.request_api_key, ApiKey::SaslAuthenticate as i16);
        assert_eq!(header.request_api_version, 2);
        let request = SaslAuthenticateRequest::decode(&mut body, 2).unwrap();
        Some((header, request.auth_bytes))
    }

    async fn answer(&mut self, header: &RequestHeader, error: Option<(i16, &str)>, bytes: &[u8]) {
        let mut response = SaslAuthenticateResponse::default()
            .with_auth_bytes(Bytes::copy_from_slice(bytes))
            .with_session_lifetime_ms(0);
        if let Some((code, message)) = error {
            response = response
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message.to_owned())));
        }
        self.respond(header.correlation_id, header.request_api_version, &response)
            .await;
    }
}

/// A handshaken messenger and the broker's end of the pipe.
async fn connect() -> (Messenger, Peer) {
    let (client, server) = tokio::io::duplex(1 << 16);
    let mut peer = Peer { io: server };
    let timeout = Duration::from_secs(5);
    let (messenger, ()) = tokio::join!(
        Messenger::handshake(
            Box::new(client),
            "sasl:9092".into(),
            None,
            timeout,
            timeout,
            1 << 20
        ),
        peer.api_versions()
    );
    (messenger.unwrap(), peer)
}

fn scram256() -> SaslClient {
    SaslClient::Scram(ScramClient::with_nonce(
        Mechanism::ScramSha256,
        "user",
        "pencil",
        NONCE,
    ))
}

fn auth_source(err: &Error) -> &SaslError {
    match err {
        Error::Authentication { broker, source, .. } => {
            assert_eq!(broker, "sasl:9092");
            // Only a hang-up may be a broker restarting: everything else is a refusal.
            let closed = matches!(source, SaslError::ClosedDuringAuthentication);
            assert_eq!(err.is_retriable(), closed, "{err}");
            source
        }
        other => panic!("expected an authentication error, got {other}"),
    }
}

#[tokio::test]
async fn scram_sha256_runs_the_rfc7677_exchange() {
    let (messenger, mut peer) = connect().await;
    let broker = async {
        peer.handshake("SCRAM-SHA-256", 0, &["SCRAM-SHA-256"]).await;
        let (header, first) = peer.authenticate().await.unwrap();
        assert_eq!(first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO".as_bytes());
        peer.answer(&header, None, SERVER_FIRST.as_bytes()).await;
        let (header, last) = peer.authenticate().await.unwrap();
        assert_eq!(last, CLIENT_FINAL.as_bytes());
        peer.answer(&header, None, SERVER_FINAL.as_bytes()).await;
    };
    let (result, ()) = tokio::join!(run(&messenger, scram256(), "user"), broker);
    result.unwrap();
}

#[tokio::test]
async fn a_forged_server_signature_fails_authentication() {
    let (messenger, mut peer) = connect().await;
    let broker = async {
        peer.handshake("SCRAM-SHA-256", 0, &[]).await;
        let (header, _) = peer.authenticate().await.unwrap();
        peer.answer(&header, None, SERVER_FIRST.as_bytes()).await;
        let (header, _) = peer.authenticate().await.unwrap();
        peer.answer(&header, None, b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .await;
    };
    let (result, ()) = tokio::join!(run(&messenger, scram256(), "user"), broker);
    let err = result.unwrap_err();
    assert!(
        matches!(auth_source(&err), SaslError::ServerSignatureMismatch),
        "{err}"
    );
}

#[tokio::test]
async fn plain_sends_the_credentials_and_a_refusal_names_user_and_mechanism_only() {
    let (messenger, mut peer) = connect().await;
    let config = SaslConfig::new(Mechanism::Plain, "alice", "hunter2-secret");
    let broker = async {
        peer.handshake("PLAIN", 0, &["PLAIN"]).await;
        let (header, token) = peer.authenticate().await.unwrap();
        assert_eq!(token, b"\0alice\0hunter2-secret".as_slice());
        peer.answer(
            &header,
            Some((58, "Authentication failed: Invalid username or password")),
            b"",
        )
        .await;
    };
    let (result, ()) = tokio::join!(authenticate(&messenger, &config), broker);
    let err = result.unwrap_err();
    match auth_source(&err) {
        SaslError::Rejected { error } => assert_eq!(error.code.code(), 58),
        other => panic!("{other}"),
    }
    let shown = err.to_string();
    for part in ["PLAIN", "\"alice\"", "sasl:9092", "Invalid username or password"] {
        assert!(shown.contains(part), "{part} missing from {shown}");
    }
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!format!("{err:?}").contains("hunter2"));
}

#[tokio::test]
async fn plain_succeeds_when_the_broker_accepts() {
    let (messenger, mut peer) = connect().await;
    let config = SaslConfig::new(Mechanism::Plain, "alice", "pw");
    let broker = async {
        peer.handshake("PLAIN", 0, &["PLAIN"]).await;
        let (header, _) = peer.authenticate().await.unwrap();
        peer.answer(&header, None, b"").await;
    };
    let (result, ()) = tokio::join!(authenticate(&messenger, &config), broker);
    result.unwrap();
    assert!(!messenger.is_poisoned());
}

#[tokio::test]
async fn a_mechanism_the_broker_does_not_enable_lists_what_it_offers() {
    let (messenger, mut peer) = connect().await;
    let config = SaslConfig::new(Mechanism::Plain, "alice", "pw");
    let broker = peer.handshake("PLAIN", 33, &["SCRAM-SHA-512", "OAUTHBEARER"]);
    let (result, ()) = tokio::join!(authenticate(&messenger, &config), broker);
    let err = result.unwrap_err();
    match auth_source(&err) {
        SaslError::MechanismNotEnabled { enabled } => {
            assert_eq!(enabled, &["SCRAM-SHA-512", "OAUTHBEARER"]);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("SCRAM-SHA-512"), "{err}");
}

#[tokio::test]
async fn an_illegal_sasl_state_is_an_authentication_error() {
    let (messenger, mut peer) = connect().await;
    let broker = peer.handshake("SCRAM-SHA-256", 34, &[]);
    let (result, ()) = tokio::join!(run(&messenger, scram256(), "user"), broker);
    let err = result.unwrap_err();
    match auth_source(&err) {
        SaslError::Rejected { error } => assert_eq!(error.code.code(), 34),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_broker_closing_mid_exchange_is_a_retriable_authentication_error() {
    let (messenger, mut peer) = connect().await;
    let broker = async {
        peer.handshake("SCRAM-SHA-256", 0, &[]).await;
        let (header, _) = peer.authenticate().await.unwrap();
        peer.answer(&header, None, SERVER_FIRST.as_bytes()).await;
        // Tansu's answer to a wrong password: it hangs up.
        let _ = peer.authenticate().await.unwrap();
        drop(peer);
    };
    let (result, ()) = tokio::join!(run(&messenger, scram256(), "user"), broker);
    let err = result.unwrap_err();
    assert!(
        matches!(auth_source(&err), SaslError::ClosedDuringAuthentication),
        "{err}"
    );
    assert!(err.to_string().contains("wrong user or password"), "{err}");
    assert!(
        err.is_retriable(),
        "a broker restarting mid-exchange looks the same: {err}"
    );
}

#[tokio::test]
async fn a_scram_error_attribute_is_an_authentication_error() {
    let (messenger, mut peer) = connect().await;
    let broker = async {
        peer.handshake("SCRAM-SHA-256", 0, &[]).await;
        let (header, _) = peer.authenticate().await.unwrap();
        peer.answer(&header, None, b"e=unknown-user").await;
    };
    let (result, ()) = tokio::join!(run(&messenger, scram256(), "user"), broker);
    let err = result.unwrap_err();
    assert!(
        matches!(auth_source(&err), SaslError::AuthenticationFailed { message } if message == "unknown-user"),
        "{err}"
    );
}
