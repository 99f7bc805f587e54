//! The consumer's side of a rebalance: what the group driver calls when partitions come and go.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, atomic::Ordering},
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

use super::{
    ConsumerEvent,
    stream::{PartitionHandle, PartitionStream},
};
use crate::client::{
    fetcher::FetchShared,
    group::{BoxFuture, LeaveReason, RebalanceListener},
    subscription::{OffsetReset, TopicPartition},
};

/// How often a revocation re-checks whether in-flight work is done.
const REVOKE_POLL: Duration = Duration::from_millis(5);

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) fetch: Arc<FetchShared>,
    /// The live assignment's handles (revoking ones included until the revocation completes).
    pub(crate) partitions: Mutex<HashMap<TopicPartition, Arc<PartitionHandle>>>,
    /// Revoked handles whose work never finished: they still count for the poll timeout.
    pub(crate) zombies: Mutex<Vec<Arc<PartitionHandle>>>,
    pub(crate) events: mpsc::UnboundedSender<ConsumerEvent>,
    pub(crate) revoke_timeout: Duration,
    pub(crate) reset: OffsetReset,
}

impl Shared {
    pub(crate) fn partitions_lock(&self) -> MutexGuard<'_, HashMap<TopicPartition, Arc<PartitionHandle>>> {
        self.partitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn zombies_lock(&self) -> MutexGuard<'_, Vec<Arc<PartitionHandle>>> {
        self.zombies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Done offsets above what is committed.
    fn committable(&self, handles: &[Arc<PartitionHandle>]) -> Vec<(TopicPartition, i64)> {
        let state = self.fetch.lock();
        handles
            .iter()
            .filter_map(|h| {
                let done = h.done.load(Ordering::Acquire);
                let committed = state.subscriptions.get(&h.tp).and_then(|p| p.committed);
                (done >= 0 && committed.is_none_or(|c| done > c)).then(|| (h.tp.clone(), done))
            })
            .collect()
    }
}

/// The [`RebalanceListener`] the group driver reports to.
#[derive(Debug)]
pub(crate) struct Listener(pub(crate) Arc<Shared>);

impl RebalanceListener for Listener {
    fn on_assigned(&self, added: Vec<(TopicPartition, Option<i64>)>) {
        let shared = &self.0;
        let mut streams = Vec::with_capacity(added.len());
        {
            let mut state = shared.fetch.lock();
            let mut partitions = shared.partitions_lock();
            for (tp, committed) in added {
                let epoch = state
                    .subscriptions
                    .assign(tp.clone(), committed, Some(shared.reset));
                let (tx, rx) = mpsc::unbounded_channel();
                state.sinks.insert(tp.clone(), (epoch, tx));
                let handle = Arc::new(PartitionHandle::new(tp.clone(), epoch));
                if let Some(old) = partitions.insert(tp, Arc::clone(&handle)) {
                    old.revoked.cancel();
                }
                streams.push(PartitionStream {
                    handle,
                    rx,
                    current: Vec::new().into_iter(),
                    fetch: Arc::clone(&shared.fetch),
                });
            }
        }
        shared.fetch.wake.notify_one();
        let _ = shared.events.send(ConsumerEvent::Assigned(streams));
    }

    fn on_revoke(
        &self,
        partitions: Vec<TopicPartition>,
        lost: bool,
    ) -> BoxFuture<Vec<(TopicPartition, i64)>> {
        let shared = Arc::clone(&self.0);
        let handles: Vec<Arc<PartitionHandle>> = {
            let mut state = shared.fetch.lock();
            let map = shared.partitions_lock();
            partitions
                .iter()
                .filter_map(|tp| {
                    state.subscriptions.mark_revoking(tp);
                    state.sinks.remove(tp);
                    map.get(tp).cloned()
                })
                .collect()
        };
        for h in &handles {
            h.revoked.cancel();
        }
        Box::pin(async move {
            if lost {
                return Vec::new();
            }
            let deadline = Instant::now() + shared.revoke_timeout;
            while handles.iter().any(|h| h.has_work_in_flight()) && Instant::now() < deadline {
                tokio::time::sleep(REVOKE_POLL).await;
            }
            if let Some(h) = handles.iter().find(|h| h.has_work_in_flight()) {
                tracing::warn!(tp = %h.tp, "revocation timed out with work in flight; committing what is done");
            }
            shared.committable(&handles)
        })
    }

    fn on_revoked(&self, partitions: &[TopicPartition], lost: bool) {
        let shared = &self.0;
        {
            let mut state = shared.fetch.lock();
            let mut map = shared.partitions_lock();
            let mut zombies = shared.zombies_lock();
            for tp in partitions {
                state.subscriptions.remove(tp);
                state.sinks.remove(tp);
                if let Some(h) = map.remove(tp)
                    && h.has_work_in_flight()
                {
                    zombies.push(h);
                }
            }
        }
        let _ = shared.events.send(ConsumerEvent::Revoked {
            partitions: partitions.to_vec(),
            lost,
        });
    }

    fn pending_commits(&self) -> Vec<(TopicPartition, i64)> {
        let handles: Vec<Arc<PartitionHandle>> = self.0.partitions_lock().values().cloned().collect();
        self.0.committable(&handles)
    }

    fn on_committed(&self, offsets: &[(TopicPartition, i64)]) {
        let mut state = self.0.fetch.lock();
        for (tp, offset) in offsets {
            state.subscriptions.set_committed(tp, *offset);
        }
    }

    fn last_progress(&self, now: Instant) -> Instant {
        let shared = &self.0;
        let state = shared.fetch.lock();
        let mut oldest = now;
        for h in shared.partitions_lock().values() {
            if h.dropped.load(Ordering::Acquire) || h.paused.load(Ordering::Acquire) {
                continue;
            }
            let buffered = state.subscriptions.get(&h.tp).is_some_and(|p| p.buffered > 0);
            if buffered || h.has_work_in_flight() {
                oldest = oldest.min(h.last_activity());
            }
        }
        let mut zombies = shared.zombies_lock();
        zombies.retain(|h| h.has_work_in_flight());
        for h in zombies.iter() {
            oldest = oldest.min(h.last_activity());
        }
        oldest
    }

    fn on_left(&self, reason: LeaveReason) {
        let _ = self.0.events.send(ConsumerEvent::Left(reason));
    }

    fn on_fatal(&self, error: String) {
        let _ = self.0.events.send(ConsumerEvent::Fatal(error));
    }
}
