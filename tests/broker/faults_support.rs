//! What the fault trials share: their gate (`KAFKA_EVENT_BUS_FAULTS=1`, `just faults`), a persistent
//! broker started off the runtime's threads, and the group's committed offsets read with a raw
//! OffsetFetch.

use std::{collections::BTreeMap, future::Future};

use kafka_event_bus::{client::Cluster, protocol::StrBytes, testing::PersistentBroker};
use kafka_protocol::messages::{
    GroupId, OffsetFetchRequest, TopicName, offset_fetch_request::OffsetFetchRequestTopic,
};

use crate::support::Ctx;

/// Whether the fault trials run: they take minutes and install the S3 server on first use.
pub(crate) fn enabled() -> bool {
    std::env::var("KAFKA_EVENT_BUS_FAULTS").is_ok_and(|v| v == "1")
}

/// A fault trial: ignored (run with `--include-ignored`) unless `KAFKA_EVENT_BUS_FAULTS=1`.
pub(crate) fn fault_trial<F, Fut>(name: &str, test: F) -> crate::Named
where
    F: FnOnce(&'static Ctx) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    crate::trial(name, test).with_ignored_flag(!enabled())
}

/// Starts a persistent broker (installing it on first use) without blocking the runtime.
pub(crate) async fn persistent_broker() -> PersistentBroker {
    tokio::task::spawn_blocking(PersistentBroker::start)
        .await
        .unwrap()
        .unwrap()
}

/// The offsets `group` committed on `topic`'s `partitions` (absent: nothing committed), or `None` when
/// the broker does not answer (it may be down).
pub(crate) async fn committed(
    cluster: &Cluster,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Option<BTreeMap<i32, i64>> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_indexes((0..partitions).collect()),
        ]));
    let (_, coordinator) = cluster.leader(topic, 0).await.ok()?;
    let response = coordinator.request(&request).await.ok()?;
    if response.error_code != 0 {
        return None;
    }
    let mut out = BTreeMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                return None;
            }
            if p.committed_offset >= 0 {
                out.insert(p.partition_index, p.committed_offset);
            }
        }
    }
    Some(out)
}
