//! [`Dispatcher`]: what every partition worker of one consume loop shares.

use std::{sync::Arc, time::Duration};

use super::{Assignment, DispatchConfig, HandlerTable, deadline::StopDeadline, stats::Stats};
use crate::{dlq::DlqSink, telemetry::Telemetry};

/// The settings, subscriptions, counters, telemetry and DLQ sink the workers share.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    pub(crate) config: DispatchConfig,
    pub(crate) handlers: Arc<HandlerTable>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) telemetry: Telemetry,
    /// Where dead letters go (acknowledged before the original is marked done).
    pub(crate) dlq: DlqSink,
    /// Set by a shutdown: stopping must be done by then.
    pub(crate) deadline: Arc<StopDeadline>,
    /// The partitions held now (kept by the consume loop, read by the bus's waits).
    pub(crate) assignment: Arc<Assignment>,
}

impl Dispatcher {
    /// How long a handler still running when its worker is told to stop may go on: the drain timeout
    /// (the consumer's revoke timeout), or less when a shutdown's deadline is nearer.
    pub(crate) fn grace(&self) -> Duration {
        self.deadline.remaining(self.config.drain_timeout)
    }
}
