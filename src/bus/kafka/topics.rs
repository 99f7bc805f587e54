//! [`TopicOptions`] and [`KafkaEventBus::ensure_topics`]: creating the bus's topics from the service.

use snafu::ResultExt;

use super::KafkaEventBus;
use crate::bus::{ClusterSnafu, Error, KafkaEventBusConfig};
use crate::client::{NewTopic, TopicCreation};

/// How [`KafkaEventBus::ensure_topics`] creates the main topic and the DLQ topic when they are
/// missing: named settings instead of three integers that are easy to swap.
///
/// The defaults: 6 partitions for the main topic, 1 for the DLQ, replication factor -1 (the broker's
/// own `default.replication.factor`, KIP-464: 1 on a single local broker, what the cluster's
/// operators chose on a production one), no topic configs.
///
/// # Example
///
/// ```
/// use kafka_event_bus::bus::TopicOptions;
///
/// let options = TopicOptions::new()
///     .partitions(12)
///     .dlq_partitions(3)
///     .replication_factor(3)
///     .config("retention.ms", "604800000") // the main topic keeps a week
///     .dlq_config("retention.ms", "2592000000"); // the DLQ keeps 30 days
/// assert_eq!((options.partitions, options.dlq_partitions, options.replication_factor), (12, 3, 3));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicOptions {
    /// Partitions of the main topic: the most consumers of a group that get work.
    pub partitions: i32,
    /// Partitions of the DLQ topic (created only with `enable_dlq`).
    pub dlq_partitions: i32,
    /// Replicas of every partition of both topics; -1 leaves it to the broker's
    /// `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic configs of the main topic (`retention.ms`, `cleanup.policy`, ...).
    pub configs: Vec<(String, String)>,
    /// Topic configs of the DLQ topic (the main topic's are not copied to it).
    pub dlq_configs: Vec<(String, String)>,
}

impl Default for TopicOptions {
    fn default() -> Self {
        Self {
            partitions: 6,
            dlq_partitions: 1,
            replication_factor: -1,
            configs: Vec::new(),
            dlq_configs: Vec::new(),
        }
    }
}

impl TopicOptions {
    /// The defaults (see the type's docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Partitions of the main topic.
    #[must_use]
    pub fn partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions;
        self
    }

    /// Partitions of the DLQ topic.
    #[must_use]
    pub fn dlq_partitions(mut self, partitions: i32) -> Self {
        self.dlq_partitions = partitions;
        self
    }

    /// Replicas of every partition; -1 (the default) for the broker's `default.replication.factor`.
    #[must_use]
    pub fn replication_factor(mut self, replicas: i16) -> Self {
        self.replication_factor = replicas;
        self
    }

    /// Adds a topic config of the main topic (only: the DLQ topic's are [`dlq_config`](Self::dlq_config)).
    #[must_use]
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }

    /// Adds a topic config of the DLQ topic.
    #[must_use]
    pub fn dlq_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.dlq_configs.push((key.into(), value.into()));
        self
    }

    /// The topics to ensure for `config`: the main topic, then the DLQ topic when `enable_dlq`.
    fn topics(&self, config: &KafkaEventBusConfig) -> Vec<NewTopic> {
        let mut main = NewTopic::new(config.topic_name(), self.partitions, self.replication_factor);
        for (key, value) in &self.configs {
            main = main.with_config(key.as_str(), value.as_str());
        }
        let mut topics = vec![main];
        if config.enable_dlq {
            let mut dlq = NewTopic::new(
                config.dlq_topic_name(),
                self.dlq_partitions,
                self.replication_factor,
            );
            for (key, value) in &self.dlq_configs {
                dlq = dlq.with_config(key.as_str(), value.as_str());
            }
            topics.push(dlq);
        }
        topics
    }
}

impl KafkaEventBus {
    /// Creates the main topic and the DLQ topic (with `enable_dlq`) if they are missing, as `options`
    /// say (existing topics are left alone and reported as such), and waits until they have leaders.
    /// The bus never lets a broker create a topic on its own, so a service that does not create its
    /// topics some other way calls this after [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// [`Error::NotConnected`], or the broker's refusal.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn example(bus: kafka_event_bus::bus::KafkaEventBus) -> Result<(), kafka_event_bus::bus::Error> {
    /// use kafka_event_bus::bus::TopicOptions;
    ///
    /// bus.connect().await?;
    /// bus.ensure_topics(TopicOptions::new().partitions(6).replication_factor(1)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn ensure_topics(&self, options: TopicOptions) -> Result<Vec<TopicCreation>, Error> {
        let connection = self.connected()?;
        connection
            .cluster
            .ensure_topics(&options.topics(&self.inner.config))
            .await
            .context(ClusterSnafu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_count_goes_to_its_own_topic() {
        let mut config = KafkaEventBusConfig {
            topic_prefix: "orders".into(),
            ..KafkaEventBusConfig::default()
        };
        let options = TopicOptions::new()
            .partitions(12)
            .dlq_partitions(3)
            .replication_factor(2)
            .config("retention.ms", "1000")
            .dlq_config("retention.ms", "2000")
            .dlq_config("cleanup.policy", "delete");
        let topics = options.topics(&config);
        let shape: Vec<_> = topics
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.num_partitions,
                    t.replication_factor,
                    t.configs.len(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [("orders.stream", 12, 2, 1), ("orders.stream.dlq", 3, 2, 2)]
        );

        config.enable_dlq = false;
        assert_eq!(TopicOptions::new().topics(&config).len(), 1);
        assert_eq!(TopicOptions::new().topics(&config)[0].num_partitions, 6);
        assert_eq!(TopicOptions::new().topics(&config)[0].replication_factor, -1);
    }
}
