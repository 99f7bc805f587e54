//! Dispatching consumed events to handlers: the subscriptions, per-partition ordered workers, retries
//! in place, the DLQ hand-off, and the progress that decides which offsets may be committed.
//!
//! Sits behind [`crate::client`], [`crate::event`] and [`crate::dlq`] (and may use
//! [`crate::telemetry`]); [`crate::bus`] builds on it and re-exports what users name
//! ([`PermanentError`], [`ErasedHandler`], [`RecordContext`], ...). It never uses `bus`.
//!
//! - [`ErasedHandler`], [`HandlerError`], [`PermanentError`], [`Target`], [`SubscriptionId`]: what a
//!   handler and a subscription are.
//! - The handler table: subscriptions, and the lock-free snapshot the workers read.
//! - [`RetryPolicy`]: exponential backoff with jitter, never above the maximum delay.
//! - [`PartitionProgress`]: which offsets of a partition were handled (or dead-lettered and
//!   acknowledged), and so the one offset that may be committed: everything before it is done.
//! - With feature `client`: the consume loop, one worker per assigned partition (sequential or keyed),
//!   settling a record (handlers, retries, DLQ), [`RecordContext`] and the bus's counters
//!   ([`BusStats`]).
//!
//! Users reach what they name through [`crate::bus`]; this module is public only with the `unstable`
//! feature.
//!
//! [`RetryPolicy`] and [`PartitionProgress`] are pure (no I/O, no clock) and unit-tested.

mod handler;
mod isolate;
#[cfg_attr(not(feature = "unstable"), allow(unreachable_pub, dead_code))]
mod progress;
mod retry;
mod table;

#[cfg(feature = "client")]
mod assignment;
#[cfg(feature = "client")]
mod config;
#[cfg(feature = "client")]
mod consume;
#[cfg(feature = "client")]
mod context;
#[cfg(feature = "client")]
mod deadline;
#[cfg(feature = "client")]
mod dispatcher;
#[cfg(feature = "testing")]
pub(crate) mod fault;
#[cfg(feature = "client")]
pub(crate) mod stats;
#[cfg(feature = "client")]
mod worker;

pub use handler::{
    BoxFuture, ErasedHandler, HandlerError, HandlerResult, PermanentError, SubscriptionId, Target,
};
pub(crate) use isolate::run_isolated;
unstable! { pub use progress::PartitionProgress; }
pub use retry::{RetryPolicy, RetryPolicyError};
pub(crate) use table::HandlerTable;

#[cfg(feature = "client")]
pub(crate) use assignment::Assignment;
#[cfg(feature = "client")]
pub(crate) use config::{CorruptBatches, DispatchConfig};
#[cfg(feature = "client")]
pub(crate) use consume::consume;
#[cfg(feature = "client")]
pub use context::RecordContext;
#[cfg(feature = "client")]
pub(crate) use deadline::StopDeadline;
#[cfg(feature = "client")]
pub(crate) use dispatcher::Dispatcher;
#[cfg(feature = "client")]
pub use stats::BusStats;
