//! The sequential worker: one record at a time, in offset order.

use tokio_util::sync::CancellationToken;

use super::{
    Ended, Settled, corrupt::settle_corrupt, halt::bounded, injected_fault, lag::LagProbe, settle::settle,
};
use crate::{client::consumer::PartitionStream, client::producer::SplitMix64, dispatch::Dispatcher};

pub(super) async fn run(
    dispatcher: &Dispatcher,
    stream: &mut PartitionStream,
    halt: &CancellationToken,
) -> Ended {
    let progress = stream.progress();
    let mut handlers = dispatcher.handlers.view();
    let mut rng = SplitMix64::from_entropy();
    let mut lag = LagProbe::default();
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
        injected_fault(&record.topic);
        let handlers = handlers.current(&dispatcher.handlers);
        let settling = std::pin::pin!(settle(dispatcher, handlers, &record, halt, &mut rng));
        match bounded(dispatcher, settling, halt, record.offset).await {
            Settled::Yes => progress.store_offset(record.offset.saturating_add(1)),
            Settled::Interrupted => return Ended::Halted,
            Settled::Stuck => return Ended::Stuck,
        }
        lag.record(dispatcher, stream, &record);
    }
}
