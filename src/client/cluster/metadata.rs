//! The cluster as a Metadata response describes it: brokers, topics, partitions and their leaders.
//!
//! Pure data and pure functions: turning a response into a [`ClusterMetadata`] and merging a partial
//! refresh into a cached one are unit-tested without a broker.

use std::collections::BTreeMap;

use kafka_protocol::messages::MetadataResponse;

use crate::protocol::{ResponseError, ServerError};

/// A snapshot of the cluster's layout.
///
/// Snapshots are immutable and shared (`Arc`); a refresh builds a new one with a higher
/// [`generation`](Self::generation), so a task can tell whether the snapshot it acted on is stale.
///
/// # Example
///
/// ```no_run
/// # async fn example(cluster: kafka_event_bus::client::Cluster) {
/// let metadata = cluster.metadata();
/// for broker in metadata.brokers.values() {
///     println!("broker {} at {}", broker.id, broker.address());
/// }
/// if let Some(topic) = metadata.topics.get("orders.stream") {
///     println!("{} partitions", topic.partitions.len());
/// }
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ClusterMetadata {
    /// The cluster id, when the broker reports one.
    pub cluster_id: Option<String>,
    /// The controller's node id, when known.
    pub controller_id: Option<i32>,
    /// Brokers by node id.
    pub brokers: BTreeMap<i32, BrokerMetadata>,
    /// Topics by name (only the topics that have been asked about, or all after a full refresh).
    pub topics: BTreeMap<String, TopicMetadata>,
    /// Incremented by every refresh.
    pub generation: u64,
}

/// One broker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerMetadata {
    /// The node id.
    pub id: i32,
    /// The advertised host.
    pub host: String,
    /// The advertised port.
    pub port: i32,
    /// The rack, if configured.
    pub rack: Option<String>,
}

impl BrokerMetadata {
    /// `host:port`, with IPv6 hosts in brackets.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TopicMetadata {
    /// The topic's name.
    pub name: String,
    /// Whether it is one of Kafka's internal topics.
    pub is_internal: bool,
    /// Its partitions, sorted by partition index.
    pub partitions: Vec<PartitionMetadata>,
    /// A topic-level error the broker reported (e.g. LEADER_NOT_AVAILABLE while it is being created).
    pub error: Option<ServerError>,
}

impl TopicMetadata {
    /// Whether every partition has a leader (a topic just created may not yet).
    pub fn is_ready(&self) -> bool {
        self.error.is_none()
            && !self.partitions.is_empty()
            && self.partitions.iter().all(|p| p.leader.is_some())
    }

    /// The partition with index `partition`.
    pub fn partition(&self, partition: i32) -> Option<&PartitionMetadata> {
        self.partitions
            .binary_search_by_key(&partition, |p| p.partition)
            .ok()
            .map(|i| &self.partitions[i])
    }
}

/// One partition.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PartitionMetadata {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id; `None` while there is no leader.
    pub leader: Option<i32>,
    /// The leader epoch (-1 when unknown).
    pub leader_epoch: i32,
    /// The replicas' node ids.
    pub replicas: Vec<i32>,
    /// The in-sync replicas' node ids.
    pub isr: Vec<i32>,
    /// A partition-level error (e.g. LEADER_NOT_AVAILABLE).
    pub error: Option<ServerError>,
}

/// What a Metadata response says, before it is merged into the cache.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetadataUpdate {
    pub(crate) cluster_id: Option<String>,
    pub(crate) controller_id: Option<i32>,
    pub(crate) brokers: BTreeMap<i32, BrokerMetadata>,
    /// Topics that exist (possibly still without leaders).
    pub(crate) topics: Vec<TopicMetadata>,
    /// Topics the broker does not know.
    pub(crate) unknown_topics: Vec<String>,
}

impl MetadataUpdate {
    /// Reads a Metadata response.
    pub(crate) fn from_response(response: MetadataResponse) -> Self {
        let brokers = response
            .brokers
            .into_iter()
            .map(|b| {
                let id = b.node_id.0;
                let broker = BrokerMetadata {
                    id,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                };
                (id, broker)
            })
            .collect();
        let mut topics = Vec::new();
        let mut unknown_topics = Vec::new();
        for topic in response.topics {
            let Some(name) = topic.name.map(|n| n.0.to_string()) else {
                continue;
            };
            let error = ServerError::from_code(topic.error_code, None);
            if matches!(
                error,
                Some(ServerError {
                    code: ResponseError::UnknownTopicOrPartition | ResponseError::InvalidTopicException,
                    ..
                })
            ) {
                unknown_topics.push(name);
                continue;
            }
            let mut partitions: Vec<_> = topic
                .partitions
                .into_iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: Some(p.leader_id.0).filter(|&id| id >= 0),
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.into_iter().map(|id| id.0).collect(),
                    isr: p.isr_nodes.into_iter().map(|id| id.0).collect(),
                    error: ServerError::from_code(p.error_code, None),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            topics.push(TopicMetadata {
                name,
                is_internal: topic.is_internal,
                partitions,
                error,
            });
        }
        Self {
            cluster_id: response.cluster_id.map(|c| c.to_string()),
            controller_id: Some(response.controller_id.0).filter(|&id| id >= 0),
            brokers,
            topics,
            unknown_topics,
        }
    }
}

impl ClusterMetadata {
    /// The snapshot after `update`. A full refresh (`all_topics`) replaces the topic list; a partial one
    /// replaces only the topics it names (and drops those the broker no longer knows).
    pub(crate) fn merged(&self, update: MetadataUpdate, all_topics: bool) -> Self {
        let mut topics = if all_topics {
            BTreeMap::new()
        } else {
            self.topics.clone()
        };
        for name in &update.unknown_topics {
            topics.remove(name);
        }
        for topic in update.topics {
            topics.insert(topic.name.clone(), topic);
        }
        Self {
            cluster_id: update.cluster_id.or_else(|| self.cluster_id.clone()),
            controller_id: update.controller_id.or(self.controller_id),
            brokers: if update.brokers.is_empty() {
                self.brokers.clone()
            } else {
                update.brokers
            },
            topics,
            generation: self.generation + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::{
        messages::{
            BrokerId, TopicName,
            metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
        },
        protocol::StrBytes,
    };

    use super::*;

    fn topic(name: &str, error_code: i16, leaders: &[i32]) -> MetadataResponseTopic {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
            .with_error_code(error_code)
            .with_partitions(
                leaders
                    .iter()
                    .enumerate()
                    .rev() // brokers need not sort partitions
                    .map(|(i, &leader)| {
                        MetadataResponsePartition::default()
                            .with_partition_index(i as i32)
                            .with_leader_id(BrokerId(leader))
                            .with_replica_nodes(vec![BrokerId(leader)])
                    })
                    .collect(),
            )
    }

    fn response(topics: Vec<MetadataResponseTopic>) -> MetadataResponse {
        MetadataResponse::default()
            .with_cluster_id(Some(StrBytes::from_static_str("c1")))
            .with_controller_id(BrokerId(1))
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("::1"))
                    .with_port(9092),
            ])
            .with_topics(topics)
    }

    #[test]
    fn reads_brokers_topics_and_leaders() {
        let update = MetadataUpdate::from_response(response(vec![
            topic("ready", 0, &[1, 1, 1]),
            topic("electing", 0, &[1, -1]),
            topic("missing", 3, &[]),
        ]));
        assert_eq!(update.unknown_topics, ["missing"]);
        let metadata = ClusterMetadata::default().merged(update, true);
        assert_eq!(metadata.generation, 1);
        assert_eq!(metadata.cluster_id.as_deref(), Some("c1"));
        assert_eq!(metadata.controller_id, Some(1));
        assert_eq!(metadata.brokers[&1].address(), "[::1]:9092");
        let ready = &metadata.topics["ready"];
        assert!(ready.is_ready());
        assert_eq!(
            ready.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(ready.partition(2).unwrap().leader, Some(1));
        assert!(ready.partition(3).is_none());
        let electing = &metadata.topics["electing"];
        assert!(!electing.is_ready());
        assert_eq!(electing.partition(1).unwrap().leader, None);
        assert!(!metadata.topics.contains_key("missing"));
    }

    #[test]
    fn partial_refreshes_merge_and_full_ones_replace() {
        let first = ClusterMetadata::default().merged(
            MetadataUpdate::from_response(response(vec![topic("a", 0, &[1]), topic("b", 0, &[1])])),
            true,
        );
        // A partial refresh of "b" that says it is gone keeps "a".
        let second = first.merged(
            MetadataUpdate::from_response(response(vec![topic("b", 3, &[])])),
            false,
        );
        assert!(second.topics.contains_key("a"));
        assert!(!second.topics.contains_key("b"));
        assert_eq!(second.generation, 2);
        // A full refresh forgets what it does not list.
        let third = second.merged(
            MetadataUpdate::from_response(response(vec![topic("c", 0, &[1])])),
            true,
        );
        assert_eq!(third.topics.keys().collect::<Vec<_>>(), ["c"]);
    }
}
