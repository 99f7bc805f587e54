//! Everything that talks to brokers over sockets (feature `client`, on by default).
//!
//! - [`connection`]: one broker socket; framing, ApiVersions, pipelined requests, reconnects.
//!
//! [`ClientConfig`] holds the settings every layer here reads.

mod config;
pub mod connection;

pub use config::ClientConfig;
