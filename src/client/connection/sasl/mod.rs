//! SASL authentication of a broker connection: PLAIN and SCRAM-SHA-256/512.
//!
//! Owns [`Mechanism`], [`SaslClient`], [`ScramClient`] (I/O-free state machines), the SASL [`Error`],
//! and [`authenticate`], which drives a state machine over a [`Messenger`](super::Messenger) right
//! after the ApiVersions handshake. May use RustCrypto (`sha2`, `hmac`, `pbkdf2`), `base64`,
//! `getrandom`, the messenger and [`crate::protocol`]. The driver sends SaslHandshake v1 (the
//! mechanism's [`Mechanism::name`]) and one SaslAuthenticate per message:
//!
//! ```text
//! client                                    broker
//!   SaslHandshake(name)                 ->
//!   SaslAuthenticate(initial_response)  ->  <- auth_bytes (SCRAM: server-first)
//!   SaslAuthenticate(response)          ->  <- auth_bytes (SCRAM: server-final)   until Done
//! ```
//!
//! # Invariants
//!
//! - The state machines do no I/O and read no clock; their only outside input is the nonce from
//!   `getrandom`. Only `authenticate.rs` talks to the network.
//! - Server messages are untrusted: anything malformed is an [`Error`], never a panic; the server
//!   signature is checked (in constant time) before SCRAM reports success.
//! - `Debug` output never contains the password or key material.

mod authenticate;
mod password;
mod scram;

use std::fmt;
use std::str::FromStr;

use snafu::Snafu;

use crate::protocol::ServerError;

pub(crate) use authenticate::authenticate;
pub(crate) use password::Password;
pub(crate) use scram::ScramClient;

/// Why SASL authentication failed. Only [`ClosedDuringAuthentication`](Self::ClosedDuringAuthentication)
/// is retriable (a broker restarting mid-exchange looks like that); for every other error the
/// credentials, the mechanism or the broker's settings must change first. The password is never part of
/// an error.
///
/// It reaches callers inside
/// [`connection::Error::Authentication`](crate::client::connection::Error::Authentication), which names
/// the broker, the mechanism and the user.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::connection::{SaslError, SaslMechanism};
///
/// let err = "GSSAPI".parse::<SaslMechanism>().unwrap_err();
/// assert!(matches!(err, SaslError::UnknownMechanism { .. }));
/// assert!(!err.is_retriable());
/// ```
#[derive(Debug, Clone, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// `sasl_mechanism` names no mechanism this client implements.
    #[snafu(display("unsupported SASL mechanism {name:?}: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))]
    UnknownMechanism {
        /// What was configured.
        name: String,
    },
    /// The broker does not enable the configured mechanism (UNSUPPORTED_SASL_MECHANISM).
    #[snafu(display("the broker does not enable this mechanism; it offers {enabled:?}"))]
    MechanismNotEnabled {
        /// The mechanisms the broker offers.
        enabled: Vec<String>,
    },
    /// The broker answered SaslHandshake or SaslAuthenticate with an error code:
    /// SASL_AUTHENTICATION_FAILED (wrong user or password), ILLEGAL_SASL_STATE, ...
    #[snafu(display("the broker refused: {error}"))]
    Rejected {
        /// The broker's error code and message.
        error: ServerError,
    },
    /// The broker closed the connection in the middle of the exchange. Some brokers (Tansu among them)
    /// reject a wrong user or password this way instead of answering SASL_AUTHENTICATION_FAILED.
    #[snafu(display("the broker closed the connection during authentication (wrong user or password?)"))]
    ClosedDuringAuthentication,
    /// The exchange did not finish within the allowed number of round trips.
    #[snafu(display("the broker kept the exchange going past {rounds} round trips"))]
    TooManyRounds {
        /// The limit.
        rounds: usize,
    },
    /// The server rejected the credentials (SCRAM `e=`); the broker's reason is kept.
    #[snafu(display("SASL authentication failed: {message}"))]
    AuthenticationFailed {
        /// The server's reason.
        message: String,
    },
    /// A server message that does not follow the mechanism's grammar.
    #[snafu(display("malformed SASL server message: {reason}"))]
    MalformedServerMessage {
        /// What was wrong.
        reason: String,
    },
    /// The server's nonce does not extend the client's: a replay or a man in the middle.
    #[snafu(display("SCRAM server nonce does not start with the client nonce"))]
    NonceMismatch,
    /// The server's iteration count is outside what this client accepts.
    #[snafu(display("SCRAM iteration count {iterations} is outside {min}..={max}"))]
    IterationCount {
        /// What the server asked for.
        iterations: u64,
        /// The least accepted (Kafka's minimum).
        min: u32,
        /// The most accepted (a guard against a server making the client spin).
        max: u32,
    },
    /// The server's signature is wrong: it does not know the password (or is not the server).
    #[snafu(display("SCRAM server signature does not verify: the server is not who it claims"))]
    ServerSignatureMismatch,
    /// A message was handed to the state machine at the wrong step.
    #[snafu(display("SASL message out of order: expected {expected}"))]
    OutOfOrder {
        /// What the state machine was waiting for.
        expected: &'static str,
    },
    /// The operating system's random source failed.
    #[snafu(display("cannot generate a SCRAM nonce: {message}"))]
    Random {
        /// What `getrandom` said.
        message: String,
    },
}

impl Error {
    /// Whether a new connection may succeed: only when the broker closed the connection mid-exchange
    /// (a restart, a dropped link, or a broker that answers wrong credentials by hanging up, in which
    /// case retrying ends at the reconnect deadline). Refusals do not go away by retrying.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::ClosedDuringAuthentication)
    }
}

/// A SASL mechanism, by its Kafka `sasl.mechanism` name.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::connection::SaslMechanism;
///
/// let m: SaslMechanism = "SCRAM-SHA-512".parse()?;
/// assert_eq!(m, SaslMechanism::ScramSha512);
/// assert_eq!(m.to_string(), "SCRAM-SHA-512");
/// assert!("scram-sha-512".parse::<SaslMechanism>().is_err()); // Kafka's names are case-sensitive
/// # Ok::<(), kafka_event_bus::client::connection::SaslError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616): the password in the clear; use only over TLS.
    Plain,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl Mechanism {
    /// Every mechanism, in the order eventsource-py lists them.
    pub const ALL: [Mechanism; 3] = [Self::Plain, Self::ScramSha256, Self::ScramSha512];

    /// The name sent in SaslHandshake and used in Kafka configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mechanism {
    type Err = Error;

    /// Parses a Kafka mechanism name; case-sensitive, as Kafka is.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "PLAIN" => Ok(Self::Plain),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            _ => Err(Error::UnknownMechanism { name: s.to_owned() }),
        }
    }
}

/// SASL credentials for every broker connection (`security_protocol` SASL_PLAINTEXT or SASL_SSL).
///
/// `Debug` shows the mechanism and the user, never the password. The password is overwritten with
/// zeros when the last copy of the configuration is dropped.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::ClientConfig;
/// use kafka_event_bus::client::connection::{SaslConfig, SaslMechanism};
///
/// let sasl = SaslConfig::new(SaslMechanism::ScramSha512, "orders", "s3cret");
/// assert!(!format!("{sasl:?}").contains("s3cret"));
/// let config = ClientConfig::new("kafka:9093").with_sasl(sasl);
/// assert_eq!(config.sasl.as_ref().map(|s| s.username.as_str()), Some("orders"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaslConfig {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The user name.
    pub username: String,
    password: Password,
}

// Every field that holds a secret wipes itself on drop.
impl zeroize::ZeroizeOnDrop for SaslConfig {}

impl SaslConfig {
    /// Credentials for `mechanism`.
    pub fn new(mechanism: Mechanism, username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            mechanism,
            username: username.into(),
            password: Password::new(password.into()),
        }
    }

    /// The password (kept out of `Debug`).
    pub fn password(&self) -> &str {
        self.password.as_str()
    }
}

impl fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// The PLAIN initial response: `authzid \0 user \0 password` with an empty authzid.
pub(crate) fn plain_initial_response(username: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(username.len() + password.len() + 2);
    out.push(0);
    out.extend_from_slice(username.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

/// What the connection does next.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send these bytes in another SaslAuthenticate.
    Respond(Vec<u8>),
    /// Authenticated.
    Done,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A response may carry a password (PLAIN) or a proof: show only its size.
            Self::Respond(bytes) => write!(f, "Respond({} bytes)", bytes.len()),
            Self::Done => f.write_str("Done"),
        }
    }
}

/// Any mechanism behind one interface: `initial_response`, then `handle_challenge` for each server
/// message until it returns [`Step::Done`].
pub(crate) enum SaslClient {
    /// PLAIN: one message, then done when the broker accepts it.
    Plain {
        /// The initial response (holds the password; wiped on drop).
        initial: zeroize::Zeroizing<Vec<u8>>,
        /// Whether the initial response was taken.
        sent: bool,
    },
    /// SCRAM-SHA-256/512.
    Scram(ScramClient),
}

impl SaslClient {
    /// A client for `mechanism` with these credentials.
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if no nonce can be drawn (SCRAM).
    pub(crate) fn new(mechanism: Mechanism, username: &str, password: &str) -> Result<Self, Error> {
        Ok(match mechanism {
            Mechanism::Plain => Self::Plain {
                initial: zeroize::Zeroizing::new(plain_initial_response(username, password)),
                sent: false,
            },
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                Self::Scram(ScramClient::new(mechanism, username, password)?)
            }
        })
    }

    /// The mechanism.
    pub(crate) fn mechanism(&self) -> Mechanism {
        match self {
            Self::Plain { .. } => Mechanism::Plain,
            Self::Scram(s) => s.mechanism(),
        }
    }

    /// The first SaslAuthenticate payload.
    pub(crate) fn initial_response(&mut self) -> Vec<u8> {
        match self {
            Self::Plain { initial, sent } => {
                *sent = true;
                initial.to_vec()
            }
            Self::Scram(s) => s.client_first(),
        }
    }

    /// Handles the `auth_bytes` of a SaslAuthenticate response.
    ///
    /// # Errors
    ///
    /// Whatever the mechanism finds wrong with the server's message; PLAIN accepts any reply
    /// (the broker signals failure through the response's error code).
    pub(crate) fn handle_challenge(&mut self, challenge: &[u8]) -> Result<Step, Error> {
        match self {
            Self::Plain { sent: false, .. } => Err(Error::OutOfOrder {
                expected: "initial response first",
            }),
            Self::Plain { .. } => Ok(Step::Done),
            Self::Scram(s) => s.handle(challenge),
        }
    }
}

impl fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain { sent, .. } => f
                .debug_struct("Plain")
                .field("sent", sent)
                .finish_non_exhaustive(),
            Self::Scram(s) => s.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names_round_trip() {
        for m in [Mechanism::Plain, Mechanism::ScramSha256, Mechanism::ScramSha512] {
            assert_eq!(m.name().parse::<Mechanism>().unwrap(), m);
            assert_eq!(m.to_string(), m.name());
        }
        let err = "scram-sha-256".parse::<Mechanism>().unwrap_err();
        assert!(matches!(err, Error::UnknownMechanism { ref name } if name == "scram-sha-256"));
        assert!(!err.is_retriable());
        assert!("GSSAPI".parse::<Mechanism>().is_err());
    }

    #[test]
    fn plain_sends_nul_separated_credentials_once() {
        assert_eq!(plain_initial_response("alice", "s3cret"), b"\0alice\0s3cret");
        let mut c = SaslClient::new(Mechanism::Plain, "alice", "s3cret").unwrap();
        assert!(matches!(c.handle_challenge(b""), Err(Error::OutOfOrder { .. })));
        assert_eq!(c.initial_response(), b"\0alice\0s3cret");
        assert_eq!(c.handle_challenge(b"").unwrap(), Step::Done);
        assert_eq!(c.mechanism(), Mechanism::Plain);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let mut plain = SaslClient::new(Mechanism::Plain, "alice", "hunter2-secret").unwrap();
        assert!(!format!("{plain:?}").contains("hunter2"));
        let step = Step::Respond(plain.initial_response());
        assert!(!format!("{step:?}").contains("hunter2"));
        let scram = SaslClient::new(Mechanism::ScramSha512, "alice", "hunter2-secret").unwrap();
        let shown = format!("{scram:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice"));
    }
}
