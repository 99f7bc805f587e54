//! One broker socket: connect, negotiate versions, pipeline requests, reconnect.
//!
//! - `Messenger`: a connected, version-negotiated socket with many requests in flight, matched by
//!   correlation id. It fails fast and for good when the socket breaks (it is *poisoned*).
//! - `BrokerConnection`: the long-lived handle to one broker. It owns at most one messenger, opens it
//!   on first use and replaces it after it is poisoned, with backoff and a deadline.
//!
//! - [`TlsConfig`]: TLS on rustls with a pure-Rust crypto provider chosen at run time ([`TlsProvider`]:
//!   graviola or RustCrypto), the application's process-wide one, or a rustls config of your own.
//! - SASL ([`SaslMechanism`]: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512): every new connection authenticates
//!   right after the ApiVersions handshake when [`ClientConfig::sasl`](crate::client::ClientConfig::sasl)
//!   is set, so bootstrap, broker and coordinator connections alike.
//!
//! This layer uses only [`crate::protocol`] and the [`ClientConfig`](crate::client::ClientConfig).

#[cfg_attr(not(feature = "unstable"), allow(unreachable_pub, dead_code))]
mod broker;
mod error;
#[cfg(test)]
pub(crate) mod fake_peer;
#[cfg_attr(not(feature = "unstable"), allow(unreachable_pub, dead_code))]
mod messenger;
pub(crate) mod sasl;
mod tls;
mod transport;

unstable! { pub use broker::BrokerConnection; }
pub use error::Error;
unstable! { pub use messenger::Messenger; }
pub use sasl::{Error as SaslError, Mechanism as SaslMechanism, SaslConfig};
pub use tls::{TlsConfig, TlsConfigBuilder, TlsConfigError, TlsProvider};
pub(crate) use transport::split_host_port;
