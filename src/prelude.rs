//! One import for a service's handler and wiring code: `use kafka_event_bus::prelude::*;`.
//!
//! It brings the bus trait and its implementations, the event types, the handler traits and their
//! result and error types, and (feature `client`) [`KafkaEventBus`] with its [`RecordContext`] and
//! [`BusStats`]: what a publisher, a subscriber and a handler test name. Names that could clash with
//! an application's own (`Error`, `Config`) are left out; reach them through their modules.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use kafka_event_bus::prelude::*;
//!
//! #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
//! struct OrderPlaced { order_id: String }
//!
//! impl Event for OrderPlaced {
//!     const EVENT_TYPE: &'static str = "OrderPlaced";
//!     const AGGREGATE_TYPE: &'static str = "Order";
//! }
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = InMemoryEventBus::new();
//! bus.subscribe(|event: Arc<DomainEvent<OrderPlaced>>| async move {
//!     println!("placed {}", event.payload.order_id);
//!     HandlerResult::Ok(())
//! })?;
//! let event = DomainEvent::new(uuid::Uuid::new_v4(), 1, OrderPlaced { order_id: "o-1".into() });
//! bus.publish_event(event).await?;
//! # Ok(()) }
//! ```

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use crate::bus::{BusStats, KafkaEventBus, RecordContext, TopicOptions};
pub use crate::bus::{
    EventBus, Handler, HandlerError, HandlerResult, InMemoryEventBus, KafkaEventBusConfig, PermanentError,
    PublishOptions, Subscriber,
};
pub use crate::event::{AnyEvent, DomainEvent, Event, EventMeta};
