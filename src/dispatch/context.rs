//! [`RecordContext`]: where the event a handler runs for came from, readable inside the handler.

use std::{future::Future, sync::Arc};

tokio::task_local! {
    static CURRENT: RecordContext;
}

/// Where the event a handler is running for came from: available to handlers of a
/// [`KafkaEventBus`](crate::bus::KafkaEventBus) through [`RecordContext::current`].
///
/// # Example
///
/// ```no_run
/// # fn wire(bus: &kafka_event_bus::bus::KafkaEventBus) -> Result<(), kafka_event_bus::bus::Error> {
/// use kafka_event_bus::bus::{EventBus, RecordContext};
///
/// bus.subscribe_to_all_events(|event| async move {
///     if let Some(at) = RecordContext::current() {
///         println!("{} from {}/{} at {}", event.type_name(), at.topic, at.partition, at.offset);
///     }
///     Ok(())
/// })?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordContext {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The record's timestamp (ms since the epoch).
    pub timestamp: i64,
    /// How many times the handlers have been retried for this record (0 on the first attempt).
    pub retries: u32,
}

impl RecordContext {
    /// The record the calling handler runs for; `None` outside a Kafka bus handler (e.g. on the
    /// in-memory bus, or in a task the handler spawned).
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `work` with `self` as the current context.
    pub(crate) async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }
}
