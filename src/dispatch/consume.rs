//! The consume loop: joins the group and runs one worker per assigned partition until stopped.

use std::{sync::Arc, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use super::{Dispatcher, stats::Counter, worker::partition_worker};
use crate::client::{
    Cluster,
    consumer::{Consumer, ConsumerConfig, ConsumerEvent, Error},
};

/// How long a worker may take to exit after its grace period ended (dropping its stream and work).
const WORKER_EXIT: Duration = Duration::from_millis(100);

/// Consumes with `config` until `stop` is cancelled or the consumer fails (it could not start, its
/// group membership failed for good, or it stopped); then lets the workers finish
/// the records they hold (bounded by the drain timeout), commits what is done and leaves the group.
pub(crate) async fn consume(
    dispatcher: Arc<Dispatcher>,
    cluster: &Cluster,
    config: ConsumerConfig,
    stop: CancellationToken,
) -> Result<(), Error> {
    let mut consumer = Consumer::connect(cluster, config)?;
    let settings = &dispatcher.config;
    info!(group = %settings.consumer_group, topic = %settings.topic, "consuming");
    let workers = TaskTracker::new();
    // One halt per worker, a child of its partition's revocation: cancelled by the revocation, or here
    // when consuming stops. No task watches a partition for either.
    let mut halts: Vec<CancellationToken> = Vec::new();
    let result = loop {
        tokio::select! {
            () = stop.cancelled() => break Ok(()),
            event = consumer.next_event() => match event {
                Some(ConsumerEvent::Assigned(streams)) => {
                    halts.retain(|halt| !halt.is_cancelled());
                    for stream in streams {
                        let tp = stream.topic_partition().clone();
                        debug!(?tp, "partition assigned");
                        dispatcher.assignment.assign(stream.probe());
                        let halt = stream.revocation().child_token();
                        halts.push(halt.clone());
                        workers.spawn(partition_worker(Arc::clone(&dispatcher), stream, halt));
                    }
                }
                Some(ConsumerEvent::Revoked { partitions, lost }) => {
                    dispatcher.assignment.revoke(&partitions);
                    dispatcher.stats.add(Counter::RebalanceCount, 1);
                    let metrics = dispatcher.telemetry.metrics();
                    metrics.rebalance(&settings.consumer_group);
                    for tp in &partitions {
                        metrics.remove_lag(&tp.topic, tp.partition);
                    }
                    info!(?partitions, lost, "partitions revoked");
                }
                Some(ConsumerEvent::Left(reason)) => warn!(?reason, "left the group"),
                Some(ConsumerEvent::Fatal(error)) => {
                    dispatcher.telemetry.metrics().connection_error("Fatal");
                    break Err(error);
                }
                None => break Err(Error::Stopped { reason: "its event channel closed".into() }),
            }
        }
    };
    // Workers finish the record they hold (each within the grace period), then stop; the consumer then
    // commits what is done and leaves. A shutdown's deadline bounds all of it.
    for halt in &halts {
        halt.cancel();
    }
    workers.close();
    if tokio::time::timeout(dispatcher.grace() + WORKER_EXIT, workers.wait())
        .await
        .is_err()
    {
        warn!("handlers still running at shutdown; their records stay uncommitted");
    }
    let closing = consumer.close();
    match dispatcher.deadline.get() {
        Some(deadline) => {
            if tokio::time::timeout_at(deadline, closing).await.is_err() {
                warn!("the shutdown deadline passed while leaving the group");
            }
        }
        None => closing.await,
    }
    dispatcher.assignment.clear();
    dispatcher.telemetry.metrics().clear_lag();
    info!(group = %settings.consumer_group, "stopped consuming");
    result
}
