//! [`TopicPartition`]: the name of one partition, shared by every layer of the client.

use std::fmt;

/// A topic and a partition number; ordered by topic, then partition.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::TopicPartition;
///
/// assert!(TopicPartition::new("a", 9) < TopicPartition::new("b", 0));
/// assert_eq!(TopicPartition::new("a", 1).to_string(), "a-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic-partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}
