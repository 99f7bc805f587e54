//! Which connection errors a new connection may cure, by cause.

use std::{io, sync::Arc, time::Duration};

use kafka_protocol::messages::ApiKey;
use rustls::{AlertDescription, CertificateError, Error as Tls, InvalidMessage};

use super::*;
use kafka_protocol::protocol::VersionRange;

const BROKER: &str = "b:9092";

fn tls(kind: io::ErrorKind, inner: Option<Tls>) -> Error {
    let source = match inner {
        Some(tls) => io::Error::new(kind, tls),
        None => io::Error::from(kind),
    };
    Error::Tls {
        broker: BROKER.into(),
        source: Arc::new(source),
    }
}

fn authentication(source: SaslError) -> Error {
    Error::Authentication {
        broker: BROKER.into(),
        mechanism: SaslMechanism::ScramSha512,
        username: "u".into(),
        source,
    }
}

fn protocol(source: protocol::Error) -> Error {
    Error::Protocol {
        broker: BROKER.into(),
        source: Arc::new(source),
    }
}

#[test]
fn a_connection_closed_during_authentication_is_retriable() {
    assert!(authentication(SaslError::ClosedDuringAuthentication).is_retriable());
}

#[test]
fn an_authentication_answer_from_the_broker_is_not_retriable() {
    let refused = crate::protocol::ServerError::from_code(58, Some("Invalid username or password"));
    for source in [
        SaslError::Rejected {
            error: refused.unwrap(),
        },
        SaslError::AuthenticationFailed {
            message: "unknown-user".into(),
        },
        SaslError::MechanismNotEnabled {
            enabled: vec!["PLAIN".into()],
        },
        SaslError::ServerSignatureMismatch,
    ] {
        let err = authentication(source);
        assert!(!err.is_retriable(), "{err}");
    }
}

#[test]
fn a_response_that_does_not_decode_is_retriable() {
    let decode = protocol::frame::decode_response::<kafka_protocol::messages::MetadataRequest>(
        bytes::Bytes::from_static(&[0, 0, 0, 1, 0xff]),
        12,
    )
    .unwrap_err();
    assert!(matches!(decode, protocol::Error::Decode { .. }), "{decode}");
    for source in [
        decode,
        protocol::Error::TrailingBytes {
            api: ApiKey::Metadata,
            version: 12,
            remaining: 3,
        },
        protocol::Error::FrameSize { size: -5, max: 100 },
        protocol::Error::ShortFrame { len: 2 },
    ] {
        let err = protocol(source);
        assert!(err.is_retriable(), "{err}");
    }
}

#[test]
fn no_common_api_version_is_not_retriable() {
    let err = protocol(protocol::Error::UnsupportedVersion {
        api: ApiKey::Fetch,
        client: VersionRange { min: 4, max: 17 },
        broker: None,
    });
    assert!(!err.is_retriable(), "{err}");
}

#[test]
fn tls_certificate_and_negotiation_failures_are_not_retriable() {
    for inner in [
        Tls::InvalidCertificate(CertificateError::UnknownIssuer),
        Tls::InvalidCertificate(CertificateError::NotValidForName),
        Tls::InvalidCertificate(CertificateError::Expired),
        Tls::NoCertificatesPresented,
        Tls::AlertReceived(AlertDescription::CertificateRequired),
        Tls::AlertReceived(AlertDescription::BadCertificate),
        Tls::AlertReceived(AlertDescription::UnknownCA),
        Tls::AlertReceived(AlertDescription::HandshakeFailure),
        Tls::AlertReceived(AlertDescription::ProtocolVersion),
        Tls::General("no usable key".into()),
    ] {
        let err = tls(io::ErrorKind::InvalidData, Some(inner));
        assert!(!err.is_retriable(), "{err}");
    }
}

#[test]
fn tls_io_failures_and_corrupt_records_are_retriable() {
    for err in [
        tls(io::ErrorKind::UnexpectedEof, None),
        tls(io::ErrorKind::ConnectionReset, None),
        tls(io::ErrorKind::InvalidData, Some(Tls::DecryptError)),
        tls(
            io::ErrorKind::InvalidData,
            Some(Tls::InvalidMessage(InvalidMessage::InvalidContentType)),
        ),
        tls(
            io::ErrorKind::InvalidData,
            Some(Tls::AlertReceived(AlertDescription::BadRecordMac)),
        ),
        tls(io::ErrorKind::InvalidData, None),
    ] {
        assert!(err.is_retriable(), "{err}");
    }
}

#[test]
fn connection_losses_and_timeouts_are_retriable() {
    let broker = || BROKER.to_owned();
    for err in [
        Error::Disconnected { broker: broker() },
        Error::RequestTimeout {
            broker: broker(),
            api: ApiKey::Produce,
            timeout: Duration::from_secs(1),
        },
        Error::UnexpectedCorrelationId {
            broker: broker(),
            correlation_id: 7,
        },
        Error::Io {
            broker: broker(),
            source: Arc::new(io::Error::from(io::ErrorKind::TimedOut)),
        },
    ] {
        assert!(err.is_retriable(), "{err}");
    }
    assert!(!Error::Closed { broker: broker() }.is_retriable());
}
