//! Everything that talks to brokers over sockets (feature `client`, on by default).
//!
//! - [`connection`]: one broker socket; framing, ApiVersions, pipelined requests, reconnects.
//! - [`cluster`]: bootstrap, metadata, one shared connection per broker, admin operations.
//! - [`group`]: consumer-group assignors and the consumer embedded protocol.
//! - [`producer`]: partitioning, batching and sending records.
//!
//! [`ClientConfig`] holds the settings every layer here reads.

pub mod cluster;
mod config;
pub mod connection;
pub mod group;
pub mod producer;

pub use cluster::{Cluster, ClusterMetadata, NewTopic, TopicCreation};
pub use config::ClientConfig;
