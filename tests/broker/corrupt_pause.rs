//! A partition whose stream stopped at a record batch that cannot be decoded (the `stop` policy, or a
//! dead letter of the batch the DLQ refuses for good) is paused: the member stays in the group past
//! `max_poll_interval` and its other partitions flow.

use std::time::Duration;

use kafka_event_bus::bus::{EventBus, KafkaEventBus};

use crate::{
    bus::{config, warm_up},
    corrupt_batch::{event_batch, flipped},
    group_support::{eventually, produce_batch},
    spec_bugs::{Calls, other_partitions_flow, record_calls, start},
    support::{Ctx, unique},
    trial,
};

/// A bus (`corrupt_batch_policy` = `policy`, `max_in_flight_per_partition` = `in_flight`,
/// `max_poll_interval` 8 s, the DLQ topic created when `dlq`) that met a corrupt batch on partition 0
/// of its topic.
async fn bus_stopped_at_a_corrupt_batch(
    ctx: &'static Ctx,
    name: &str,
    (policy, in_flight): (&str, usize),
    dlq: bool,
) -> (KafkaEventBus, Calls) {
    let prefix = unique(name);
    let mut cfg = config(ctx, &prefix, &prefix);
    cfg.corrupt_batch_policy = policy.into();
    cfg.max_poll_interval_ms = 8_000;
    cfg.max_in_flight_per_partition = in_flight;
    let bus = start(cfg, dlq).await;
    let calls = record_calls(&bus, |_, _| false);
    warm_up(&bus).await;
    let cluster = ctx.cluster().await;
    let topic = format!("{prefix}.stream");
    produce_batch(&cluster, &topic, 0, flipped(&event_batch("B"))).await;
    eventually("the corrupt batch counted", Duration::from_secs(20), || {
        bus.stats().corrupt_batches == 1
    })
    .await;
    (bus, calls)
}

/// Past `max_poll_interval` the member is still in the group and its other partitions flow.
async fn assert_the_group_unaffected(bus: &KafkaEventBus, calls: &Calls) {
    // Past max_poll_interval (8 s): a stalled partition would have made the member leave by now.
    tokio::time::sleep(Duration::from_secs(10)).await;
    other_partitions_flow(bus, calls).await;
    let s = bus.stats();
    assert_eq!(s.rebalance_count, 0, "the member left the group: {s:?}");
    assert_eq!((s.corrupt_batches, s.messages_sent_to_dlq), (1, 0), "{s:?}");
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "a_stop_at_a_corrupt_batch_pauses_the_partition_not_the_group",
        |ctx| async move {
            let (bus, calls) = bus_stopped_at_a_corrupt_batch(ctx, "cp-stop", ("stop", 1), true).await;
            assert_the_group_unaffected(&bus, &calls).await;
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
        },
    ));
    for (name, in_flight) in [
        (
            "a_corrupt_batch_the_dlq_refuses_pauses_the_partition",
            1,
        ),
        (
            "the_keyed_worker_pauses_at_a_corrupt_batch_the_dlq_refuses",
            4,
        ),
    ] {
        trials.push(trial(name, move |ctx| async move {
            // The main topic only: the DLQ topic does not exist (and the client never auto-creates).
            let (bus, calls) =
                bus_stopped_at_a_corrupt_batch(ctx, "cp-nodlq", ("dead_letter", in_flight), false).await;
            eventually("the DLQ failure counted", Duration::from_secs(20), || {
                bus.stats().dead_letter_failures == 1
            })
            .await;
            assert_the_group_unaffected(&bus, &calls).await;
            assert_eq!(
                bus.stats().dead_letter_failures,
                1,
                "the refused batch was sent again"
            );
            bus.shutdown(Duration::from_secs(10)).await.unwrap();
        }));
    }
}
