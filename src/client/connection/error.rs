//! Errors of one broker connection.

use std::{sync::Arc, time::Duration};

use kafka_protocol::messages::ApiKey;
use snafu::Snafu;

use super::sasl::{Error as SaslError, Mechanism as SaslMechanism};
use crate::protocol;

/// A failure on one broker connection. Every variant names the broker (`host:port`, with its node id
/// once known); [`is_retriable`](Self::is_retriable) says whether the same request may succeed on a
/// fresh connection.
///
/// The type is `Clone` because one broken connection fails every request in flight on it with the same
/// cause.
#[derive(Debug, Clone, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The address is not of the form `host:port`.
    #[snafu(display("invalid broker address {address:?}: {reason}"))]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The host name did not resolve to any address.
    #[snafu(display("cannot resolve broker {broker}: {source}"))]
    Resolve {
        /// The broker.
        broker: String,
        /// The resolver's error.
        source: Arc<std::io::Error>,
    },
    /// The TCP connect failed (refused, unreachable, ...).
    #[snafu(display("cannot connect to broker {broker}: {source}"))]
    Connect {
        /// The broker.
        broker: String,
        /// The socket error.
        source: Arc<std::io::Error>,
    },
    /// The TCP connect or the connection handshake did not finish in time.
    #[snafu(display("connecting to broker {broker} timed out after {timeout:?}"))]
    ConnectTimeout {
        /// The broker.
        broker: String,
        /// The limit that was hit.
        timeout: Duration,
    },
    /// Reconnecting kept failing until the reconnect deadline passed; `last` is the final attempt's error.
    #[snafu(display("broker {broker} unreachable for {deadline:?}: {last}"))]
    ReconnectDeadline {
        /// The broker.
        broker: String,
        /// The deadline that passed.
        deadline: Duration,
        /// The last attempt's error.
        last: Box<Error>,
    },
    /// TLS failed: the broker's certificate was not trusted or not valid for its name, a client
    /// certificate was required but not given or refused, the two sides share no protocol version or
    /// cipher suite (none of these is retriable), or the connection broke or carried a corrupt record
    /// (retriable).
    #[snafu(display("TLS handshake with broker {broker} failed: {source}"))]
    Tls {
        /// The broker.
        broker: String,
        /// The handshake's error (rustls' reason inside).
        source: Arc<std::io::Error>,
    },
    /// The broker closed the connection (cleanly or mid-frame). Every request in flight on it fails with
    /// this error; the next request reconnects.
    #[snafu(display("broker {broker} closed the connection"))]
    Disconnected {
        /// The broker.
        broker: String,
    },
    /// Reading from or writing to the socket failed.
    #[snafu(display("i/o error on the connection to broker {broker}: {source}"))]
    Io {
        /// The broker.
        broker: String,
        /// The socket error.
        source: Arc<std::io::Error>,
    },
    /// No response arrived within the request timeout. The connection is closed (the link may be dead
    /// without TCP knowing it), failing the other requests in flight on it with this same error; the
    /// next request reconnects.
    #[snafu(display("{api:?} request to broker {broker} timed out after {timeout:?}"))]
    RequestTimeout {
        /// The broker.
        broker: String,
        /// The API of the request.
        api: ApiKey,
        /// The limit that was hit.
        timeout: Duration,
    },
    /// The broker answered with a correlation id that no request in flight on the connection carries (an
    /// answer to nothing, or a second answer to one request). The answer is not handed to anyone; the
    /// connection is dropped and the requests in flight on it fail with this error (retriable).
    #[snafu(display(
        "broker {broker} answered correlation id {correlation_id}, which no request in flight has"
    ))]
    UnexpectedCorrelationId {
        /// The broker.
        broker: String,
        /// The correlation id of the response.
        correlation_id: i32,
    },
    /// The connection was closed on this side (the client was dropped or shut down).
    #[snafu(display("the connection to broker {broker} was closed by the client"))]
    Closed {
        /// The broker.
        broker: String,
    },
    /// The bytes on the wire were not what the protocol allows: a version mismatch, a corrupt frame, or
    /// a broker speaking something other than Kafka. The connection is dropped. A response that did not
    /// decode is retriable on a new connection (within the caller's deadline); no common version of an
    /// API, or a request that cannot be encoded, is not.
    #[snafu(display("protocol error with broker {broker}: {source}"))]
    Protocol {
        /// The broker.
        broker: String,
        /// What the protocol layer found.
        source: Arc<protocol::Error>,
    },
    /// SASL authentication failed: the broker refused the mechanism or the credentials, closed the
    /// connection mid-exchange (how Tansu answers a wrong password, and what a broker restart looks
    /// like), or failed SCRAM's check of the server. Only the closed connection is retriable; the
    /// password is never shown.
    #[snafu(display(
        "SASL {mechanism} authentication as user {username:?} with broker {broker} failed: {source}"
    ))]
    Authentication {
        /// The broker.
        broker: String,
        /// The mechanism used.
        mechanism: SaslMechanism,
        /// The user name presented.
        username: String,
        /// What went wrong.
        source: SaslError,
    },
    /// The broker answered the ApiVersions handshake with an error code.
    #[snafu(display("broker {broker} rejected the ApiVersions handshake: {source}"))]
    Handshake {
        /// The broker.
        broker: String,
        /// The broker's error.
        source: protocol::ServerError,
    },
}

impl Error {
    /// Whether retrying (on a new connection, after a backoff) may succeed.
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::client::connection::Error;
    ///
    /// # fn check(err: Error) {
    /// if err.is_retriable() {
    ///     // back off and try again
    /// }
    /// # }
    /// ```
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Resolve { .. }
            | Error::Connect { .. }
            | Error::ConnectTimeout { .. }
            | Error::Disconnected { .. }
            | Error::Io { .. }
            | Error::RequestTimeout { .. }
            | Error::UnexpectedCorrelationId { .. } => true,
            Error::Handshake { source, .. } => source.is_retriable(),
            Error::Tls { source, .. } => tls_is_retriable(source),
            // A response that did not decode may be a corrupt stream: a new connection may do better.
            // Encoding and version negotiation fail the same way every time.
            Error::Protocol { source, .. } => !matches!(
                **source,
                protocol::Error::Encode { .. } | protocol::Error::UnsupportedVersion { .. }
            ),
            // A broker that restarts (or drops the link) mid-exchange closes the connection; a broker
            // that refuses the credentials answers with an error code.
            Error::Authentication { source, .. } => {
                matches!(source, SaslError::ClosedDuringAuthentication)
            }
            Error::InvalidAddress { .. } | Error::ReconnectDeadline { .. } | Error::Closed { .. } => false,
        }
    }

    /// The broker the error is about.
    pub fn broker(&self) -> &str {
        match self {
            Error::InvalidAddress { address, .. } => address,
            Error::Resolve { broker, .. }
            | Error::Connect { broker, .. }
            | Error::ConnectTimeout { broker, .. }
            | Error::ReconnectDeadline { broker, .. }
            | Error::Disconnected { broker }
            | Error::Io { broker, .. }
            | Error::RequestTimeout { broker, .. }
            | Error::Closed { broker }
            | Error::UnexpectedCorrelationId { broker, .. }
            | Error::Protocol { broker, .. }
            | Error::Handshake { broker, .. }
            | Error::Authentication { broker, .. }
            | Error::Tls { broker, .. } => broker,
        }
    }
}

/// Whether a TLS failure may go away on a new connection: the socket failing, or a record corrupted on
/// the way (rustls reports those as `InvalidData` too), but not a certificate, a refused client
/// certificate or a protocol version or cipher suite the two sides do not share.
fn tls_is_retriable(error: &std::io::Error) -> bool {
    use rustls::{AlertDescription as Alert, Error as Tls};
    if error.kind() != std::io::ErrorKind::InvalidData {
        return true;
    }
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<Tls>()) else {
        // InvalidData that is not rustls' own: a corrupt stream, not a refusal.
        return true;
    };
    match tls {
        Tls::InvalidMessage(_) | Tls::DecryptError | Tls::PeerSentOversizedRecord => true,
        Tls::AlertReceived(alert) => matches!(
            alert,
            Alert::CloseNotify
                | Alert::UnexpectedMessage
                | Alert::BadRecordMac
                | Alert::RecordOverflow
                | Alert::DecodeError
                | Alert::DecryptError
                | Alert::InternalError
                | Alert::UserCanceled
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
