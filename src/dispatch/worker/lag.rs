//! The consumer-lag gauge, fed from the worker.

use crate::{
    client::consumer::{ConsumerRecord, PartitionStream},
    dispatch::Dispatcher,
};

/// Feeds the consumer-lag gauge every 64 settled records.
#[derive(Default)]
pub(super) struct LagProbe(u32);

impl LagProbe {
    pub(super) fn record(
        &mut self,
        dispatcher: &Dispatcher,
        stream: &PartitionStream,
        record: &ConsumerRecord,
    ) {
        let metrics = dispatcher.telemetry.metrics();
        self.0 += 1;
        // A revoked partition's lag is removed; a late record must not report it again.
        if metrics.is_enabled() && self.0 >= 64 && !stream.is_revoked() {
            self.0 = 0;
            if let Some(high_watermark) = stream.high_watermark() {
                metrics.set_lag(&record.topic, record.partition, high_watermark, record.offset.saturating_add(1));
            }
        }
    }
}
