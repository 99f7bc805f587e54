//! A batch's answer, shared by its records: one allocation per batch rather than a channel per
//! record, and a record's [`RecordMetadata`] built when its caller asks for it.
//!
//! The batch settles once ([`BatchDelivery::settle`]); each record's [`Delivery`] reads the outcome
//! and its own offset from it (the batch's base offset plus its place in the batch). A batch dropped
//! unsettled (the producer went away with it) answers its records with [`Error::Closed`].

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    task::{Context, Poll, Waker},
};

use super::{Error, RecordMetadata};

/// How a batch ended: its partition and base offset (-1 when unknown), or the error.
type Outcome = Result<(i32, i64), Error>;

#[derive(Debug)]
struct Shared {
    topic: Arc<str>,
    outcome: OnceLock<Outcome>,
    /// The tasks waiting; a [`Delivery`] keeps one slot, so there are at most as many as records.
    wakers: Mutex<Vec<Waker>>,
}

impl Shared {
    fn wakers(&self) -> MutexGuard<'_, Vec<Waker>> {
        self.wakers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The batch's side: hands out its records' [`Delivery`]s and settles them all at once.
#[derive(Debug)]
pub(crate) struct BatchDelivery {
    shared: Arc<Shared>,
    records: usize,
}

impl BatchDelivery {
    pub(crate) fn new(topic: Arc<str>) -> Self {
        Self {
            shared: Arc::new(Shared {
                topic,
                outcome: OnceLock::new(),
                wakers: Mutex::new(Vec::new()),
            }),
            records: 0,
        }
    }

    /// The delivery of the record appended next, written at `timestamp`.
    pub(crate) fn add(&mut self, timestamp: i64) -> Delivery {
        let index = self.records;
        self.records += 1;
        Delivery {
            shared: Arc::clone(&self.shared),
            index,
            timestamp,
            slot: None,
        }
    }

    /// How many records it answers.
    pub(crate) fn len(&self) -> usize {
        self.records
    }

    /// Answers every record: written at `partition` from `base_offset` (or -1), or the error. Only
    /// the first answer counts.
    pub(crate) fn settle(&self, partition: i32, result: Result<i64, Error>) {
        let _ = self.shared.outcome.set(result.map(|base| (partition, base)));
        let wakers = std::mem::take(&mut *self.shared.wakers());
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Drop for BatchDelivery {
    fn drop(&mut self) {
        if self.shared.outcome.get().is_none() {
            self.settle(-1, Err(Error::Closed));
        }
    }
}

/// One record's answer: resolves once its batch is settled.
#[derive(Debug)]
pub(crate) struct Delivery {
    shared: Arc<Shared>,
    /// Its place in the batch (its offset's distance from the base offset).
    index: usize,
    timestamp: i64,
    /// Its waker's place in `Shared::wakers`, once it registered one.
    slot: Option<usize>,
}

impl Delivery {
    /// The record's answer, if its batch is settled.
    pub(crate) fn try_recv(&self) -> Option<Result<RecordMetadata, Error>> {
        let outcome = self.shared.outcome.get()?;
        Some(match outcome {
            Ok((partition, base)) => Ok(RecordMetadata {
                topic: self.shared.topic.to_string(),
                partition: *partition,
                // Unknown (-1) when the broker gave none, or one past what an offset can be.
                offset: i64::try_from(self.index)
                    .ok()
                    .and_then(|index| base.checked_add(index))
                    .filter(|_| *base >= 0)
                    .unwrap_or(-1),
                timestamp: self.timestamp,
            }),
            Err(e) => Err(e.clone()),
        })
    }
}

impl Drop for Delivery {
    /// Gives its waker back while its batch is unsettled: a dropped future (a timeout, a lost
    /// `select!` branch) does not keep its task alive until the batch's answer.
    fn drop(&mut self) {
        if let Some(slot) = self.slot
            && self.shared.outcome.get().is_none()
            && let Some(waker) = self.shared.wakers().get_mut(slot)
        {
            *waker = Waker::noop().clone();
        }
    }
}

impl Future for Delivery {
    type Output = Result<RecordMetadata, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(answer) = this.try_recv() {
            return Poll::Ready(answer);
        }
        let mut wakers = this.shared.wakers();
        // Settled meanwhile: `settle` sets the outcome before it takes the wakers.
        if let Some(answer) = this.try_recv() {
            return Poll::Ready(answer);
        }
        match this.slot.and_then(|slot| wakers.get_mut(slot)) {
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                this.slot = Some(wakers.len());
                wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::task::Wake;

    use super::*;

    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn records_get_consecutive_offsets_and_one_waker_each() {
        let mut batch = BatchDelivery::new(Arc::from("t"));
        let mut deliveries: Vec<Delivery> = (0..3).map(|i| batch.add(100 + i)).collect();
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..4 {
            for d in &mut deliveries {
                assert!(Pin::new(d).poll(&mut cx).is_pending());
            }
        }
        assert_eq!(batch.shared.wakers().len(), 3, "a re-poll keeps its slot");
        batch.settle(4, Ok(70));
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 3);
        for (i, d) in deliveries.iter_mut().enumerate() {
            let Poll::Ready(Ok(meta)) = Pin::new(d).poll(&mut cx) else {
                panic!("settled");
            };
            assert_eq!((meta.topic.as_str(), meta.partition), ("t", 4));
            assert_eq!((meta.offset, meta.timestamp), (70 + i as i64, 100 + i as i64));
        }
        batch.settle(4, Err(Error::Closed));
        assert!(
            deliveries[0].try_recv().unwrap().is_ok(),
            "only the first answer counts"
        );
    }

    #[test]
    fn unknown_or_extreme_offsets_do_not_overflow() {
        let mut batch = BatchDelivery::new(Arc::from("t"));
        let (first, second) = (batch.add(0), batch.add(0));
        batch.settle(0, Ok(i64::MAX));
        assert_eq!(first.try_recv().unwrap().unwrap().offset, i64::MAX);
        // Past the largest offset: unknown, not a second record at i64::MAX.
        assert_eq!(second.try_recv().unwrap().unwrap().offset, -1);
        let mut batch = BatchDelivery::new(Arc::from("t"));
        let unknown = [batch.add(0), batch.add(0)];
        batch.settle(0, Ok(-1));
        assert!(
            unknown
                .iter()
                .all(|d| d.try_recv().unwrap().unwrap().offset == -1)
        );
    }

    #[test]
    fn a_dropped_delivery_gives_its_waker_back() {
        let mut batch = BatchDelivery::new(Arc::from("t"));
        let (mut dropped, mut kept) = (batch.add(0), batch.add(0));
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut dropped).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut kept).poll(&mut cx).is_pending());
        assert_eq!(
            Arc::strong_count(&count),
            4,
            "ours, the waker and a clone per future"
        );
        drop(dropped);
        assert_eq!(
            Arc::strong_count(&count),
            3,
            "the dropped future's waker is released"
        );
        batch.settle(0, Ok(5));
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(kept.try_recv().unwrap().unwrap().offset, 6);
    }

    #[test]
    fn a_batch_dropped_unsettled_answers_closed() {
        let mut batch = BatchDelivery::new(Arc::from("t"));
        let delivery = batch.add(0);
        assert!(delivery.try_recv().is_none());
        drop(batch);
        assert!(matches!(delivery.try_recv(), Some(Err(Error::Closed))));
    }
}
