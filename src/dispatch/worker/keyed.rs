//! The keyed worker: records of different keys concurrently (up to `max_in_flight_per_partition`),
//! records of one key in offset order. The committed offset only passes records that are all settled
//! ([`PartitionProgress`]).

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Settled, corrupt::settle_corrupt, lag::LagProbe, settle::settle};
use crate::{
    client::{
        consumer::{ConsumerRecord, PartitionStream, Progress},
        producer::SplitMix64,
    },
    dispatch::{Dispatcher, PartitionProgress},
};

pub(super) async fn run(dispatcher: Arc<Dispatcher>, mut stream: PartitionStream, stop: CancellationToken) {
    let limit = dispatcher.config.max_in_flight_per_partition;
    let progress = stream.progress();
    let mut tracked: Option<PartitionProgress> = None;
    let mut lag = LagProbe::default();
    // Keys with a record running; each with the records of that key waiting behind it.
    let mut busy: HashMap<Option<Bytes>, VecDeque<ConsumerRecord>> = HashMap::new();
    let mut waiting = 0usize;
    let mut running: JoinSet<(ConsumerRecord, Settled)> = JoinSet::new();
    let mut view = dispatcher.handlers.view();
    let mut spawn = |running: &mut JoinSet<(ConsumerRecord, Settled)>, record: ConsumerRecord| {
        let (dispatcher, stop) = (Arc::clone(&dispatcher), stop.clone());
        let handlers = Arc::clone(view.current(&dispatcher.handlers));
        running.spawn(async move {
            let mut rng = SplitMix64::from_entropy();
            let settled = settle(&dispatcher, &handlers, &record, &stop, &mut rng).await;
            (record, settled)
        });
    };
    let mut interrupted = false;
    loop {
        let room = running.len() + waiting < limit;
        tokio::select! {
            biased;
            () = stop.cancelled(), if !interrupted => interrupted = true,
            Some(done) = running.join_next(), if !running.is_empty() => {
                let Ok((record, settled)) = done else { interrupted = true; continue };
                if settled == Settled::Interrupted {
                    interrupted = true;
                    continue;
                }
                mark_settled(&mut tracked, &progress, record.offset);
                lag.record(&dispatcher, &stream, &record);
                // The key's next record, if one waits; else the key is free.
                let next = busy.get_mut(&record.key).and_then(VecDeque::pop_front);
                match next {
                    Some(next) if !interrupted => {
                        waiting -= 1;
                        spawn(&mut running, next);
                    }
                    Some(_) => waiting -= 1,
                    None => {
                        busy.remove(&record.key);
                    }
                }
            }
            record = stream.try_next(), if room && !interrupted => {
                let record = match record {
                    Some(Ok(record)) => record,
                    Some(Err(e)) => {
                        if settle_corrupt(&dispatcher, &mut stream, e, &stop).await == Settled::Interrupted {
                            interrupted = true;
                        }
                        continue;
                    }
                    None => break, // revoked
                };
                tracked.get_or_insert_with(|| PartitionProgress::new(record.offset)).track(record.offset);
                match busy.get_mut(&record.key) {
                    Some(queue) => {
                        queue.push_back(record);
                        waiting += 1;
                    }
                    None => {
                        busy.insert(record.key.clone(), VecDeque::new());
                        spawn(&mut running, record);
                    }
                }
            }
            else => break,
        }
        if interrupted && running.is_empty() {
            break;
        }
    }
    // Revoked: let the records already running settle (their offsets may still be committed).
    while let Some(Ok((record, Settled::Yes))) = running.join_next().await {
        mark_settled(&mut tracked, &progress, record.offset);
    }
}

/// Records that `offset` (tracked when it was taken from the stream) is settled, and hands the consumer
/// the new committable position when it moved.
fn mark_settled(tracked: &mut Option<PartitionProgress>, progress: &Progress, offset: i64) {
    if let Some(tracked) = tracked.as_mut() {
        tracked.complete(offset);
        if let Some(next) = tracked.committable() {
            progress.mark_done(next - 1);
        }
    }
}
