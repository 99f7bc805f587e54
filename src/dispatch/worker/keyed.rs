//! The keyed worker: records of different keys concurrently (up to `max_in_flight_per_partition`),
//! records of one key in offset order. The committed offset only passes records that are all settled
//! ([`PartitionProgress`]).

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::Arc,
};

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{
    Ended, Settled, corrupt::settle_corrupt, halt::bounded, injected_fault, lag::LagProbe, settle::settle,
};
use crate::{
    client::{
        consumer::{ConsumerRecord, PartitionStream, Progress},
        producer::SplitMix64,
    },
    dispatch::{Dispatcher, PartitionProgress, table::Snapshot},
};

type Running = JoinSet<(ConsumerRecord, Settled)>;

/// Settling a record batch that cannot be decoded ([`settle_corrupt`]).
type Corrupt<'a> = Pin<Box<dyn Future<Output = Settled> + Send + 'a>>;

/// Resolves with `corrupt`'s outcome; never when there is none.
async fn settling_corrupt(corrupt: &mut Option<Corrupt<'_>>) -> Settled {
    match corrupt.as_mut() {
        Some(settling) => settling.await,
        None => std::future::pending().await,
    }
}

/// Settles `record` on its own task, bounded once `halt` is cancelled.
fn spawn(
    running: &mut Running,
    dispatcher: &Arc<Dispatcher>,
    handlers: Arc<Snapshot>,
    record: ConsumerRecord,
    halt: &CancellationToken,
) {
    let (dispatcher, halt) = (Arc::clone(dispatcher), halt.clone());
    running.spawn(async move {
        let mut rng = SplitMix64::from_entropy();
        let settled = {
            let settling = std::pin::pin!(settle(&dispatcher, &handlers, &record, &halt, &mut rng));
            bounded(&dispatcher, settling, &halt, record.offset).await
        };
        (record, settled)
    });
}

pub(super) async fn run(
    dispatcher: &Arc<Dispatcher>,
    stream: &mut PartitionStream,
    halt: &CancellationToken,
) -> Ended {
    let limit = dispatcher.config.max_in_flight_per_partition;
    let progress = stream.progress();
    let mut tracked: Option<PartitionProgress> = None;
    let mut lag = LagProbe::default();
    // Keys with a record running; each with the records of that key waiting behind it.
    let mut busy: HashMap<Option<Bytes>, VecDeque<ConsumerRecord>> = HashMap::new();
    let mut waiting = 0usize;
    let mut running = Running::new();
    let mut view = dispatcher.handlers.view();
    // Set once no more records may start: halted, or a record is stuck.
    let mut ended: Option<Ended> = None;
    // The record batch the stream stopped at, while its dead letter is being sent.
    let mut corrupt: Option<Corrupt<'_>> = None;
    loop {
        let room = running.len() + waiting < limit;
        tokio::select! {
            biased;
            () = halt.cancelled(), if ended.is_none() => ended = Some(Ended::Halted),
            Some(done) = running.join_next(), if !running.is_empty() => {
                let (record, settled) = match done {
                    Ok(done) => done,
                    // A settle task that panicked outside a handler: the worker's own failure.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => { ended.get_or_insert(Ended::Halted); continue }
                };
                match settled {
                    Settled::Yes => {}
                    Settled::Interrupted => { ended.get_or_insert(Ended::Halted); continue }
                    Settled::Stuck => { ended = Some(Ended::Stuck); continue }
                }
                mark_settled(&mut tracked, &progress, record.offset);
                lag.record(dispatcher, stream, &record);
                // The key's next record, if one waits; else the key is free.
                let next = busy.get_mut(&record.key).and_then(VecDeque::pop_front);
                match next {
                    Some(next) if ended.is_none() => {
                        waiting -= 1;
                        let handlers = Arc::clone(view.current(&dispatcher.handlers));
                        spawn(&mut running, dispatcher, handlers, next, halt);
                    }
                    Some(_) => waiting -= 1,
                    None => {
                        busy.remove(&record.key);
                    }
                }
            }
            settled = settling_corrupt(&mut corrupt), if corrupt.is_some() => {
                corrupt = None;
                match settled {
                    // A batch the stream cannot pass stays where it stopped: the partition pauses.
                    Settled::Yes if stream.skip_failed_batch() => {}
                    Settled::Yes => ended = Some(Ended::Stuck),
                    Settled::Interrupted => { ended.get_or_insert(Ended::Halted); }
                    Settled::Stuck => ended = Some(Ended::Stuck),
                }
            }
            record = stream.try_next(), if room && ended.is_none() && corrupt.is_none() => {
                let record = match record {
                    Some(Ok(record)) => record,
                    Some(Err(e)) => {
                        // Settled beside the running records, which go on being joined meanwhile.
                        corrupt = Some(Box::pin(settle_corrupt(dispatcher, e, halt)));
                        continue;
                    }
                    None => { ended = Some(Ended::Halted); continue } // revoked
                };
                injected_fault(&record.topic);
                tracked.get_or_insert_with(|| PartitionProgress::new(record.offset)).track(record.offset);
                match busy.get_mut(&record.key) {
                    Some(queue) => {
                        queue.push_back(record);
                        waiting += 1;
                    }
                    None => {
                        busy.insert(record.key.clone(), VecDeque::new());
                        let handlers = Arc::clone(view.current(&dispatcher.handlers));
                        spawn(&mut running, dispatcher, handlers, record, halt);
                    }
                }
            }
            else => break,
        }
        if ended.is_some() && running.is_empty() && corrupt.is_none() {
            break;
        }
    }
    ended.unwrap_or(Ended::Halted)
}

/// Records that `offset` (tracked when it was taken from the stream) is settled, and hands the consumer
/// the new committable position when it moved.
fn mark_settled(tracked: &mut Option<PartitionProgress>, progress: &Progress, offset: i64) {
    if let Some(tracked) = tracked.as_mut() {
        tracked.complete(offset);
        if let Some(next) = tracked.committable() {
            progress.store_offset(next);
        }
    }
}
