//! Dispatching consumed events to handlers: per-partition ordered workers, retries in place, and the
//! progress that decides which offsets may be committed.
//!
//! - [`RetryPolicy`]: exponential backoff with jitter, never above the maximum delay.
//! - [`PartitionProgress`]: which offsets of a partition were handled (or dead-lettered and
//!   acknowledged), and so the one offset that may be committed: everything before it is done.
//!
//! Both are pure (no I/O, no clock) and unit-tested; the workers that use them sit on the consumer.

mod progress;
mod retry;

pub use progress::PartitionProgress;
pub use retry::{RetryPolicy, RetryPolicyError};
