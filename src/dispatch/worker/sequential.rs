//! The sequential worker: one record at a time, in offset order.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Settled, corrupt::settle_corrupt, lag::LagProbe, settle::settle};
use crate::{client::consumer::PartitionStream, client::producer::SplitMix64, dispatch::Dispatcher};

pub(super) async fn run(dispatcher: Arc<Dispatcher>, mut stream: PartitionStream, stop: CancellationToken) {
    let progress = stream.progress();
    let mut handlers = dispatcher.handlers.view();
    let mut rng = SplitMix64::from_entropy();
    let mut lag = LagProbe::default();
    loop {
        // A record already fetched is taken without waiting (and without registering for `stop`).
        let ready = if stop.is_cancelled() {
            break;
        } else {
            stream.next_ready()
        };
        let record = match ready {
            Some(record) => record,
            None => tokio::select! {
                biased;
                () = stop.cancelled() => break,
                record = stream.try_next() => match record {
                    Some(Ok(record)) => record,
                    Some(Err(e)) => match settle_corrupt(&dispatcher, &mut stream, e, &stop).await {
                        Settled::Yes => continue,
                        Settled::Interrupted => break,
                    },
                    None => break, // revoked
                },
            },
        };
        let handlers = handlers.current(&dispatcher.handlers);
        match settle(&dispatcher, handlers, &record, &stop, &mut rng).await {
            Settled::Yes => progress.mark_done(record.offset),
            Settled::Interrupted => break,
        }
        lag.record(&dispatcher, &stream, &record);
    }
}
