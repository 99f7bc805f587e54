//! One broker socket: connect, negotiate versions, pipeline requests, reconnect.
//!
//! - [`Messenger`]: a connected, version-negotiated socket with many requests in flight, matched by
//!   correlation id. It fails fast and for good when the socket breaks (it is *poisoned*).
//! - [`BrokerConnection`]: the long-lived handle to one broker. It owns at most one messenger, opens it
//!   on first use and replaces it after it is poisoned, with backoff and a deadline.
//!
//! - [`TlsConfig`]: TLS on rustls with the pure-Rust graviola crypto provider (or a rustls config of
//!   your own).
//!
//! This layer uses only [`crate::protocol`] and the [`ClientConfig`](crate::client::ClientConfig).

mod broker;
mod error;
mod messenger;
#[allow(dead_code, reason = "SASL is wired into the connection handshake next")]
pub(crate) mod sasl;
mod tls;
mod transport;

pub use broker::BrokerConnection;
pub use error::Error;
pub use messenger::Messenger;
pub use tls::{TlsConfig, TlsConfigBuilder, TlsConfigError};
pub(crate) use transport::split_host_port;
