//! The sequential worker: one record at a time, in offset order.
//!
//! An idle worker waits for its partition's next record and holds nothing else: the records already
//! fetched are settled in a future of their own, allocated when a record arrives and freed once none
//! is ready. Settling (decoding, handlers, retries, the grace period) is most of a worker's state, and
//! with thousands of partitions most workers are idle at any moment.

use tokio_util::sync::CancellationToken;

use super::{
    Ended, Settled, corrupt::settle_corrupt, halt::bounded, injected_fault, lag::LagProbe, settle::settle,
};
use crate::{
    client::{
        consumer::{ConsumerRecord, PartitionStream, Progress},
        producer::SplitMix64,
    },
    dispatch::{Dispatcher, table::HandlerView},
};

/// What a worker keeps from one record to the next.
struct Carried {
    progress: Progress,
    handlers: HandlerView,
    rng: SplitMix64,
    lag: LagProbe,
}

pub(super) async fn run(
    dispatcher: &Dispatcher,
    stream: &mut PartitionStream,
    halt: &CancellationToken,
) -> Ended {
    let mut carried = Carried {
        progress: stream.progress(),
        handlers: dispatcher.handlers.view(),
        rng: SplitMix64::from_entropy(),
        lag: LagProbe::default(),
    };
    loop {
        // A record already fetched is taken without waiting (and without registering for `halt`).
        let ready = if halt.is_cancelled() {
            return Ended::Halted;
        } else {
            stream.next_ready()
        };
        let record = match ready {
            Some(record) => record,
            None => tokio::select! {
                biased;
                () = halt.cancelled() => return Ended::Halted,
                record = stream.try_next() => match record {
                    Some(Ok(record)) => record,
                    // Boxed: a rare path whose future would otherwise take room in every worker's.
                    Some(Err(e)) => match Box::pin(settle_corrupt(dispatcher, e, halt)).await {
                        // A batch the stream cannot pass stays where it stopped: the partition pauses.
                        Settled::Yes if stream.skip_failed_batch() => continue,
                        Settled::Yes => return Ended::Stuck,
                        Settled::Interrupted => return Ended::Halted,
                        Settled::Stuck => return Ended::Stuck,
                    },
                    None => return Ended::Halted, // revoked
                },
            },
        };
        // Boxed: one allocation for every record fetched by now, freed before the worker waits again.
        if let Some(ended) = Box::pin(settle_ready(dispatcher, stream, halt, &mut carried, record)).await {
            return ended;
        }
    }
}

/// Settles `first`, then each record already fetched after it, in order; `None` once no record is
/// ready (all settled and stored), or how the worker ends.
async fn settle_ready(
    dispatcher: &Dispatcher,
    stream: &mut PartitionStream,
    halt: &CancellationToken,
    carried: &mut Carried,
    first: ConsumerRecord,
) -> Option<Ended> {
    let mut record = first;
    loop {
        injected_fault(&record.topic);
        let settled = {
            let handlers = carried.handlers.current(&dispatcher.handlers);
            let settling = std::pin::pin!(settle(dispatcher, handlers, &record, halt, &mut carried.rng));
            bounded(dispatcher, settling, halt, record.offset).await
        };
        match settled {
            Settled::Yes => carried.progress.store_offset(record.offset.saturating_add(1)),
            Settled::Interrupted => return Some(Ended::Halted),
            Settled::Stuck => return Some(Ended::Stuck),
        }
        carried.lag.record(dispatcher, stream, &record);
        if halt.is_cancelled() {
            return Some(Ended::Halted);
        }
        record = stream.next_ready()?;
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;
    use crate::{client::consumer::ConsumerRecord, dispatch::table::Snapshot};

    fn worker_size<'a, F: Future>(
        _: fn(&'a Dispatcher, &'a mut PartitionStream, &'a CancellationToken) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    fn either_size<'a, F: Future>(
        _: fn(&'a std::sync::Arc<Dispatcher>, &'a mut PartitionStream, &'a CancellationToken) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    fn settle_size<'a, F: Future>(
        _: fn(
            &'a Dispatcher,
            &'a Snapshot,
            &'a ConsumerRecord,
            &'a CancellationToken,
            &'a mut SplitMix64,
        ) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every assigned partition has a worker, most of them idle: the state of settling a record
    /// (decoding, handlers, retries, the grace period) is not part of the future that waits, of
    /// either kind of worker (what `partition_worker` boxes).
    #[test]
    fn an_idle_worker_holds_no_settling_state() {
        let settling = settle_size(settle);
        for (kind, worker) in [("sequential", worker_size(run)), ("either", either_size(super::super::run))] {
            assert!(
                worker < 1024 && worker < settling,
                "the {kind} worker's future ({worker} bytes) holds a record's settling ({settling} bytes)"
            );
        }
    }
}
