//! [`Assignment`]: the partitions a consume loop holds now, each with a probe of how far its worker
//! got, for the bus's waits (first assignment, caught up).

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use crate::client::{consumer::PartitionProbe, subscription::TopicPartition};

/// The partitions of the main topic this member holds, by number.
#[derive(Debug, Default)]
pub(crate) struct Assignment(Mutex<BTreeMap<i32, PartitionProbe>>);

impl Assignment {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<i32, PartitionProbe>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A partition was assigned (a reassignment replaces the older probe).
    pub(crate) fn assign(&self, probe: PartitionProbe) {
        self.lock().insert(probe.partition(), probe);
    }

    /// These partitions were revoked.
    pub(crate) fn revoke(&self, partitions: &[TopicPartition]) {
        let mut held = self.lock();
        for tp in partitions {
            held.remove(&tp.partition);
        }
    }

    /// The consume loop ended: nothing is held.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// The probes of the partitions held now, in partition order.
    pub(crate) fn probes(&self) -> Vec<PartitionProbe> {
        self.lock().values().cloned().collect()
    }
}
