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

    /// Stored offsets above what is committed.
    fn committable(handles: &[Arc<PartitionHandle>]) -> Vec<(TopicPartition, i64)> {
        handles
            .iter()
            .filter_map(|h| Some((h.tp.clone(), h.offsets.to_commit()?)))
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
            let mut partitions = shared.partitions_lock();
            for (tp, committed) in added {
                let (epoch, rx) = shared.fetch.assign(&tp, committed, shared.reset);
                let handle = Arc::new(PartitionHandle::new(tp.clone(), epoch, committed));
                if let Some(old) = partitions.insert(tp, Arc::clone(&handle)) {
                    old.revoked.cancel();
                }
                streams.push(PartitionStream {
                    handle,
                    rx,
                    current: Vec::new().into_iter(),
                    batches: None,
                    fetch: Arc::clone(&shared.fetch),
                    failure: None,
                    stopped: false,
                    revoked_wait: None,
                });
            }
        }
        shared.fetch.wake();
        let _ = shared.events.send(ConsumerEvent::Assigned(streams));
    }

    fn on_revoke(
        &self,
        partitions: Vec<TopicPartition>,
        lost: bool,
    ) -> BoxFuture<Vec<(TopicPartition, i64)>> {
        let shared = Arc::clone(&self.0);
        let handles: Vec<Arc<PartitionHandle>> = {
            let map = shared.partitions_lock();
            partitions
                .iter()
                .filter_map(|tp| {
                    shared.fetch.revoke(tp);
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
            let deadline = tokio::time::Instant::now() + shared.revoke_timeout;
            while handles.iter().any(|h| h.has_work_in_flight()) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(REVOKE_POLL).await;
            }
            if let Some(h) = handles.iter().find(|h| h.has_work_in_flight()) {
                tracing::warn!(tp = %h.tp, "revocation timed out with work in flight; committing what is done");
            }
            Shared::committable(&handles)
        })
    }

    fn on_revoked(&self, partitions: &[TopicPartition], lost: bool) {
        let shared = &self.0;
        {
            let mut map = shared.partitions_lock();
            let mut zombies = shared.zombies_lock();
            for tp in partitions {
                shared.fetch.revoked(tp);
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
        Shared::committable(&handles)
    }

    fn on_committed(&self, offsets: &[(TopicPartition, i64)]) {
        let partitions = self.0.partitions_lock();
        for (tp, offset) in offsets {
            if let Some(h) = partitions.get(tp) {
                h.offsets.acknowledge_commit(*offset);
            }
        }
    }

    fn last_progress(&self, now: Instant) -> Instant {
        let shared = &self.0;
        let mut oldest = now;
        for h in shared.partitions_lock().values() {
            if h.dropped.load(Ordering::Acquire) || h.paused.load(Ordering::Acquire) {
                continue;
            }
            let buffered = shared.fetch.buffered_chunks(&h.tp) > 0;
            if buffered || h.has_work_in_flight() {
                oldest = oldest.min(h.last_activity(now));
            }
        }
        let mut zombies = shared.zombies_lock();
        zombies.retain(|h| h.has_work_in_flight());
        for h in zombies.iter() {
            oldest = oldest.min(h.last_activity(now));
        }
        oldest
    }

    fn on_left(&self, reason: LeaveReason) {
        let _ = self.0.events.send(ConsumerEvent::Left(reason));
    }

    fn on_fatal(&self, error: String) {
        let _ = self
            .0
            .events
            .send(ConsumerEvent::Fatal(super::Error::GroupFailed { reason: error }));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::protocol::{
        Compression,
        records::{Record, RecordBatch},
    };

    fn shared(revoke_timeout: Duration) -> (Arc<Shared>, mpsc::UnboundedReceiver<ConsumerEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            fetch: Arc::new(FetchShared::new(2)),
            partitions: Mutex::new(HashMap::new()),
            zombies: Mutex::new(Vec::new()),
            events: tx,
            revoke_timeout,
            reset: OffsetReset::Earliest,
        });
        (shared, rx)
    }

    /// Plays the fetcher: `n` records from offset 0 into the partition's sink.
    fn deliver(shared: &Shared, tp: &TopicPartition, n: usize) {
        shared.fetch.deliver_for_tests(tp, multi_batch_chunk(&[(0, n)]));
    }

    async fn stream(rx: &mut mpsc::UnboundedReceiver<ConsumerEvent>) -> PartitionStream {
        match rx.recv().await {
            Some(ConsumerEvent::Assigned(mut s)) => s.remove(0),
            other => panic!("{other:?}"),
        }
    }

    /// A listener with partition t-0 assigned from `position`, and its stream.
    async fn one_partition(
        revoke_timeout: Duration,
        position: Option<i64>,
    ) -> (
        Arc<Shared>,
        mpsc::UnboundedReceiver<ConsumerEvent>,
        Listener,
        TopicPartition,
        PartitionStream,
    ) {
        let (shared, mut rx) = shared(revoke_timeout);
        let listener = Listener(Arc::clone(&shared));
        let tp = TopicPartition::new("t", 0);
        listener.on_assigned(vec![(tp.clone(), position)]);
        let s = stream(&mut rx).await;
        (shared, rx, listener, tp, s)
    }

    /// One chunk of record batches, each `(base offset, records)`.
    fn multi_batch_chunk(bases: &[(i64, usize)]) -> bytes::Bytes {
        let mut buf = bytes::BytesMut::new();
        for &(base, n) in bases {
            let b = RecordBatch {
                base_offset: base,
                compression: Compression::None,
                last_offset_delta: i32::try_from(n).unwrap() - 1,
                records: (0..n)
                    .map(|i| Record {
                        offset_delta: i32::try_from(i).unwrap(),
                        value: Some(bytes::Bytes::from(format!("v{i}"))),
                        ..Record::default()
                    })
                    .collect(),
                ..RecordBatch::default()
            };
            b.encode(&mut buf).unwrap();
        }
        buf.freeze()
    }

    /// Records of a multi-batch chunk come out once each, in order, whatever mix of
    /// next_ready, a cancelled try_next and next_chunk takes them.
    #[tokio::test]
    async fn records_of_a_chunk_come_out_once_in_order_whatever_takes_them() {
        let (shared, _rx, _listener, tp, mut s) = one_partition(Duration::from_secs(5), Some(0)).await;
        // A try_next polled once and dropped while nothing is fetched.
        assert!(
            tokio::time::timeout(Duration::from_millis(5), s.try_next())
                .await
                .is_err()
        );
        shared
            .fetch
            .deliver_for_tests(&tp, multi_batch_chunk(&[(0, 3), (3, 2), (5, 4)]));
        let mut seen = Vec::new();
        seen.push(s.next_ready().unwrap().offset); // 0
        seen.push(s.next_ready().unwrap().offset); // 1
        seen.push(s.try_next().await.unwrap().unwrap().offset); // 2
        seen.extend(s.next_chunk().await.unwrap().iter().map(|r| r.offset)); // 3,4
        seen.push(s.next_ready().unwrap().offset); // 5
        seen.extend(s.next_chunk().await.unwrap().iter().map(|r| r.offset)); // 6..8
        assert!(s.next_ready().is_none());
        assert!(!s.holds_decoded_records());
        assert!(
            tokio::time::timeout(Duration::from_millis(5), s.try_next())
                .await
                .is_err()
        );
        assert_eq!(seen, (0..9).collect::<Vec<i64>>());
        assert_eq!(shared.partitions_lock()[&tp].delivered.load(Ordering::Acquire), 9);
        assert_eq!(
            shared.fetch.buffered_chunks(&tp),
            0,
            "the chunk counted as consumed"
        );
    }

    /// A stream whose batch's last record went out through `next` and that then waits in
    /// `next_chunk` holds no records buffer (the freeing in `fill`).
    #[tokio::test]
    async fn a_stream_waiting_for_a_chunk_holds_no_used_up_records() {
        let (shared, _rx, _listener, tp, mut s) = one_partition(Duration::from_secs(5), Some(0)).await;
        deliver(&shared, &tp, 3);
        for _ in 0..3 {
            s.next().await.unwrap();
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(20), s.next_chunk())
                .await
                .is_err()
        );
        assert!(!s.holds_decoded_records(), "next_chunk");
    }

    #[tokio::test]
    async fn next_ready_takes_only_what_was_fetched_and_nothing_after_a_revoke() {
        let (shared, _rx, _listener, tp, mut s) = one_partition(Duration::from_secs(5), Some(0)).await;
        assert!(s.next_ready().is_none(), "nothing fetched yet");
        deliver(&shared, &tp, 3);
        let offsets: Vec<i64> = (0..2).filter_map(|_| s.next_ready()).map(|r| r.offset).collect();
        assert_eq!(offsets, [0, 1]);
        assert_eq!(shared.partitions_lock()[&tp].delivered.load(Ordering::Acquire), 2);
        s.handle.revoked.cancel();
        assert!(
            s.next_ready().is_none(),
            "revoked: nothing more, though offset 2 was fetched"
        );
    }

    /// A partition waiting for records holds no decoded ones: the records buffer of the batch it handed
    /// out last is freed once used up, not kept until the next batch (with many partitions, each idle
    /// one held its last batch's records for as long as it stayed idle).
    #[tokio::test]
    async fn a_used_up_batch_leaves_no_records_buffer_behind() {
        let (shared, mut rx) = shared(Duration::from_secs(5));
        let listener = Listener(Arc::clone(&shared));
        let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
        listener.on_assigned(vec![(a.clone(), Some(0)), (b.clone(), Some(0))]);
        let (mut sa, mut sb) = match rx.recv().await {
            Some(ConsumerEvent::Assigned(mut s)) => {
                let second = s.pop().unwrap();
                let first = s.pop().unwrap();
                if first.topic_partition() == &a {
                    (first, second)
                } else {
                    (second, first)
                }
            }
            other => panic!("{other:?}"),
        };
        deliver(&shared, &a, 3);
        deliver(&shared, &b, 3);
        assert_eq!((0..3).filter_map(|_| sa.next_ready()).count(), 3);
        assert!(sa.next_ready().is_none());
        assert!(!sa.holds_decoded_records(), "next_ready");
        for _ in 0..3 {
            sb.next().await.unwrap();
        }
        let waited = tokio::time::timeout(Duration::from_millis(20), sb.next()).await;
        assert!(waited.is_err(), "nothing more fetched");
        assert!(!sb.holds_decoded_records(), "next");
    }

    #[tokio::test]
    async fn revocation_waits_for_in_flight_work_then_commits_only_what_is_done() {
        let (shared, mut rx, listener, tp, mut s) = one_partition(Duration::from_secs(5), Some(0)).await;
        deliver(&shared, &tp, 3);
        assert_eq!(s.next().await.unwrap().offset, 0);
        assert_eq!(s.next().await.unwrap().offset, 1);
        s.store_offset(1);
        assert_eq!(listener.pending_commits(), vec![(tp.clone(), 1)]);

        let revoke = tokio::spawn(listener.on_revoke(vec![tp.clone()], false));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!revoke.is_finished(), "record 1 is still being handled");
        assert!(
            s.next().await.is_none(),
            "the stream ends at once; record 2 is never handed out"
        );
        s.store_offset(2);
        let offsets = tokio::time::timeout(Duration::from_secs(1), revoke)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(offsets, vec![(tp.clone(), 2)]);
        listener.on_revoked(std::slice::from_ref(&tp), false);
        assert!(matches!(
            rx.recv().await,
            Some(ConsumerEvent::Revoked { lost: false, .. })
        ));
        assert!(shared.partitions_lock().is_empty());
    }

    #[tokio::test]
    async fn revocation_is_bounded_and_a_stuck_handler_counts_as_no_progress() {
        let (shared, _rx, listener, tp, mut s) = one_partition(Duration::from_millis(300), None).await;
        deliver(&shared, &tp, 2);
        let stuck = s.next().await.unwrap();
        let handed_out = std::time::Instant::now();
        // Idle streams report "now"; a stream with work in flight reports its last activity, dated by
        // the check that first saw it (the driver checks periodically).
        assert_eq!(listener.last_progress(handed_out), handed_out);
        assert_eq!(
            listener.last_progress(handed_out + Duration::from_secs(60)),
            handed_out
        );

        let started = tokio::time::Instant::now();
        let offsets = listener.on_revoke(vec![tp.clone()], false).await;
        assert!(offsets.is_empty(), "nothing was done, nothing is committed");
        assert!(started.elapsed() >= Duration::from_millis(300));
        listener.on_revoked(std::slice::from_ref(&tp), false);
        // Still stuck after the revocation: it keeps counting against the poll timeout...
        let later = std::time::Instant::now() + Duration::from_secs(120);
        assert!(listener.last_progress(later) < later);
        // ...until the handler finishes.
        s.store_offset(stuck.offset + 1);
        assert_eq!(listener.last_progress(later), later);
    }

    #[tokio::test]
    async fn lost_partitions_commit_nothing() {
        let (shared, _rx, listener, tp, mut s) = one_partition(Duration::from_secs(5), Some(0)).await;
        deliver(&shared, &tp, 1);
        s.next().await.unwrap();
        s.store_offset(1);
        assert!(listener.on_revoke(vec![tp.clone()], true).await.is_empty());
    }

    #[tokio::test]
    async fn a_fatal_membership_is_a_typed_retriable_error() {
        let (shared, mut rx) = shared(Duration::from_secs(5));
        Listener(shared).on_fatal("fenced".into());
        match rx.recv().await {
            Some(ConsumerEvent::Fatal(e @ super::super::Error::GroupFailed { .. })) => {
                assert!(e.is_retriable());
                assert_eq!(e.to_string(), "group membership failed: fenced");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_stream_trait_yields_the_records_in_order_and_ends_on_revoke() {
        use futures::StreamExt;

        let (shared, _rx, _listener, tp, mut s) = one_partition(Duration::from_secs(5), Some(0)).await;
        deliver(&shared, &tp, 3);
        let first: Vec<i64> = StreamExt::take(&mut s, 2)
            .map(|r| r.unwrap().offset)
            .collect()
            .await;
        assert_eq!(first, [0, 1]);
        assert_eq!(StreamExt::next(&mut s).await.unwrap().unwrap().offset, 2);
        // Nothing more fetched: a poll waits, and the revocation wakes it with the end.
        let waiting = tokio::spawn(async move { StreamExt::next(&mut s).await.is_none() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "waits for records");
        shared.partitions_lock()[&tp].revoked.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(ended, "the stream ends when the partition is revoked");
    }
}
