//! Everything that talks to brokers over sockets (feature `client`, on by default).
//!
//! - [`connection`]: one broker socket; framing, ApiVersions, pipelined requests, reconnects.
//! - [`cluster`]: bootstrap, metadata, one shared connection per broker, admin operations.
//! - [`group`]: consumer groups: membership, assignors, committed offsets.
//! - [`fetcher`]: per broker, one Fetch for partitions with records waiting and one long poll for
//!   caught-up ones, decoded into record chunks.
//! - [`consumer`]: group + fetcher as per-partition record streams; commits the offsets the
//!   application stores.
//! - `subscription` (feature `unstable`): assigned partitions and their fetch positions (Java's
//!   `SubscriptionState`).
//! - [`producer`]: partitioning, batching and sending records.
//!
//! [`ClientConfig`] holds the settings every layer here reads.

pub mod cluster;
mod config;
pub mod connection;
pub mod consumer;
pub mod fetcher;
pub mod group;
pub mod producer;
mod topic_partition;
unstable! { pub mod subscription; }

pub use cluster::{Cluster, ClusterMetadata, NewTopic, TopicCreation};
pub use config::ClientConfig;
pub use subscription::OffsetReset;
pub use topic_partition::TopicPartition;
