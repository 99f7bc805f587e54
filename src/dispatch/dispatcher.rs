//! [`Dispatcher`]: what every partition worker of one consume loop shares.

use std::sync::Arc;

use super::{DispatchConfig, HandlerTable, stats::Stats};
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
}
