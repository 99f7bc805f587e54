//! What an assigned partition costs the bus at rest: one worker task, and nothing that wakes it while
//! the partition has no records.

use std::time::Duration;

use kafka_event_bus::bus::{EventBus, KafkaEventBus, TopicOptions};
use libtest_mimic::Failed;

use crate::{bus::config, support::unique};

/// Partitions of the topic: enough that a second task per partition stands out from the consumer's own.
const PARTITIONS: i32 = 64;

/// The tasks the consumer itself may add whatever the partition count (group, fetcher, connections).
const CONSUMER_TASKS: usize = 32;

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(crate::sync_trial("an_assigned_partition_costs_one_task", || {
        let ctx = crate::support::ctx()?;
        // A runtime of its own: its task count is this bus's alone.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(90), async {
                let prefix = unique("fp-tasks");
                let bus = KafkaEventBus::new(config(ctx, &prefix, &prefix)).map_err(|e| e.to_string())?;
                bus.connect().await.map_err(|e| e.to_string())?;
                bus.ensure_topics(TopicOptions::new().partitions(PARTITIONS))
                    .await
                    .map_err(|e| e.to_string())?;
                let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
                let before = tasks();
                let consuming = bus.start_consuming_in_background().map_err(|e| e.to_string())?;
                let held = bus
                    .wait_for_assignment(Duration::from_secs(60))
                    .await
                    .map_err(|e| e.to_string())?;
                if held.len() != PARTITIONS as usize {
                    return Err(format!("held {} of {PARTITIONS} partitions", held.len()));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                let added = tasks().saturating_sub(before);
                bus.shutdown(Duration::from_secs(10)).await.map_err(|e| e.to_string())?;
                consuming.wait().await.map_err(|e| e.to_string())?;
                // The workers end with the consume loop; give the runtime a moment to drop them.
                let mut left = tasks().saturating_sub(before);
                for _ in 0..50 {
                    if left == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    left = tasks().saturating_sub(before);
                }
                if added > PARTITIONS as usize + CONSUMER_TASKS {
                    return Err(format!(
                        "{added} tasks for {PARTITIONS} partitions: more than one per partition"
                    ));
                }
                if left > 0 {
                    return Err(format!("{left} tasks still alive after the shutdown"));
                }
                eprintln!("{added} tasks for {PARTITIONS} partitions");
                Ok(())
            })
            .await
            .map_err(|_| "timed out".to_owned())?
        })
        .map_err(Failed::from)
    }));
}
