//! [`PartitionSet`]: a set of partitions looked up by topic, then partition number.

use std::collections::{BTreeMap, BTreeSet};

use crate::client::TopicPartition;

/// Partitions by topic, then partition number: a walk over the assignment (in topic order) looks a
/// topic up once and its partitions by number, with no name copied or hashed per partition.
#[derive(Debug, Default)]
pub(crate) struct PartitionSet(BTreeMap<String, BTreeSet<i32>>);

impl PartitionSet {
    /// The partitions of `topic` in the set, if any.
    pub(crate) fn topic(&self, topic: &str) -> Option<&BTreeSet<i32>> {
        self.0.get(topic)
    }

    /// Adds `tp`; returns whether it was not there yet.
    pub(crate) fn insert(&mut self, tp: &TopicPartition) -> bool {
        match self.0.get_mut(tp.topic.as_str()) {
            Some(partitions) => partitions.insert(tp.partition),
            None => {
                self.0.insert(tp.topic.clone(), BTreeSet::from([tp.partition]));
                true
            }
        }
    }

    /// Removes `tp` (a topic left with no partition goes too).
    pub(crate) fn remove(&mut self, tp: &TopicPartition) {
        if let Some(partitions) = self.0.get_mut(tp.topic.as_str()) {
            partitions.remove(&tp.partition);
            if partitions.is_empty() {
                self.0.remove(tp.topic.as_str());
            }
        }
    }

    /// Whether `tp` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, tp: &TopicPartition) -> bool {
        self.topic(tp.topic.as_str())
            .is_some_and(|partitions| partitions.contains(&tp.partition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_added_found_and_removed_by_topic_then_number() {
        let mut set = PartitionSet::default();
        let (a0, a1, b0) = (
            TopicPartition::new("a", 0),
            TopicPartition::new("a", 1),
            TopicPartition::new("b", 0),
        );
        assert!(set.insert(&a0) && set.insert(&a1) && set.insert(&b0));
        assert!(!set.insert(&a1), "already there");
        assert!(set.contains(&a1) && !set.contains(&TopicPartition::new("b", 1)));
        set.remove(&a0);
        set.remove(&a1);
        assert!(set.topic("a").is_none(), "no partition left: the topic goes");
        assert_eq!(set.topic("b").map(BTreeSet::len), Some(1));
    }
}
