//! The attributes of one partition's consume metrics, built once per partition worker, event type and
//! handler instead of once per record: [`ConsumeLabels`].
//!
//! Invariants: a set's attributes are a pure function of its key (topic, partition and consumer group
//! for the worker; the event type; the handler's name), so a cached set never goes stale; a worker
//! keeps at most [`MAX_TYPES`] event types and [`MAX_HANDLERS`] handlers per type, replacing the oldest
//! beyond that, so records with ever new event types cannot grow it without bound.

use opentelemetry::{KeyValue, StringValue};

/// Event types a partition worker keeps attributes for.
pub(crate) const MAX_TYPES: usize = 32;
/// Handlers per event type a partition worker keeps attributes for.
pub(crate) const MAX_HANDLERS: usize = 32;

/// The consume-metric attributes of one partition: built by
/// [`BusMetrics::consume_labels`](super::BusMetrics::consume_labels), empty when metrics are off.
#[derive(Debug, Default)]
pub(crate) struct ConsumeLabels {
    /// `None` when metrics are off.
    partition: Option<PartitionLabels>,
    types: Vec<TypeLabels>,
    /// The entry replaced next once `types` is full.
    oldest: usize,
}

/// What every record of the partition shares.
#[derive(Debug)]
pub(super) struct PartitionLabels {
    pub(super) topic: StringValue,
    pub(super) partition: i32,
    pub(super) group: StringValue,
    /// `messaging.process.duration` of a record handled without error.
    pub(super) process_semconv: [KeyValue; 4],
    /// `kafka.eventbus.consume.duration`.
    pub(super) process_reference: [KeyValue; 1],
}

/// The attributes of one event type on one partition, and of its handlers.
#[derive(Debug)]
pub(crate) struct TypeLabels {
    event_type: StringValue,
    /// `messaging.client.consumed.messages`.
    pub(super) consumed_semconv: [KeyValue; 6],
    /// `kafka.eventbus.messages.consumed`.
    pub(super) consumed_reference: [KeyValue; 4],
    handlers: Vec<(StringValue, [KeyValue; 2])>,
    oldest: usize,
}

impl ConsumeLabels {
    /// The labels of a partition whose shared attributes are `partition` (`None`: metrics off).
    pub(super) fn new(partition: Option<PartitionLabels>) -> Self {
        Self {
            partition,
            types: Vec::new(),
            oldest: 0,
        }
    }

    /// What every record of the partition shares; `None` when metrics are off.
    pub(super) fn partition(&self) -> Option<&PartitionLabels> {
        self.partition.as_ref()
    }

    /// The attributes of `event_type` on this partition (`label` makes its value when first seen);
    /// `None` when metrics are off.
    pub(crate) fn event_type(
        &mut self,
        event_type: &str,
        label: impl FnOnce() -> StringValue,
    ) -> Option<&mut TypeLabels> {
        let partition = self.partition.as_ref()?;
        let at = match self
            .types
            .iter()
            .position(|t| t.event_type.as_str() == event_type)
        {
            Some(at) => at,
            None => {
                let made = TypeLabels::new(partition, label());
                if self.types.len() < MAX_TYPES {
                    self.types.push(made);
                    self.types.len() - 1
                } else {
                    let at = self.oldest;
                    self.oldest = (at + 1) % MAX_TYPES;
                    if let Some(slot) = self.types.get_mut(at) {
                        *slot = made;
                    }
                    at
                }
            }
        };
        self.types.get_mut(at)
    }
}

impl TypeLabels {
    fn new(p: &PartitionLabels, event_type: StringValue) -> Self {
        Self {
            consumed_semconv: super::metrics::consumed_semconv_attrs(
                p.topic.clone(),
                p.partition,
                p.group.clone(),
                event_type.clone(),
            ),
            consumed_reference: super::metrics::consumed_reference_attrs(
                p.topic.clone(),
                p.partition,
                event_type.clone(),
            ),
            event_type,
            handlers: Vec::new(),
            oldest: 0,
        }
    }

    /// The attributes of `handler`'s calls for this event type (`label` makes the handler's label
    /// when first seen).
    pub(crate) fn handler(&mut self, handler: &str, label: impl FnOnce() -> StringValue) -> &[KeyValue; 2] {
        let at = match self
            .handlers
            .iter()
            .position(|(name, _)| name.as_str() == handler)
        {
            Some(at) => at,
            None => {
                let name = label();
                let attrs = super::metrics::handler_attrs(name.clone(), self.event_type.clone());
                if self.handlers.len() < MAX_HANDLERS {
                    self.handlers.push((name, attrs));
                    self.handlers.len() - 1
                } else {
                    let at = self.oldest;
                    self.oldest = (at + 1) % MAX_HANDLERS;
                    if let Some(slot) = self.handlers.get_mut(at) {
                        *slot = (name, attrs);
                    }
                    at
                }
            }
        };
        // `at` is in bounds: found, pushed, or replaced.
        &self.handlers[at].1
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::telemetry::BusMetrics;

    #[test]
    fn a_worker_keeps_a_bounded_number_of_types_and_handlers() {
        let metrics = BusMetrics::new(&opentelemetry::global::meter("labels-test"), "billing");
        let mut labels = metrics.consume_labels("orders.stream", 3);
        for i in 0..(3 * MAX_TYPES) {
            let name = format!("Type{i}");
            let t = labels.event_type(&name, || name.clone().into()).unwrap();
            for h in 0..(2 * MAX_HANDLERS) {
                let handler = format!("h{h}");
                let attrs = t.handler(&handler, || handler.clone().into());
                assert_eq!(attrs[0].value.as_str(), handler.as_str());
                assert_eq!(attrs[1].value.as_str(), name.as_str());
            }
            assert_eq!(t.handlers.len(), MAX_HANDLERS);
        }
        assert_eq!(labels.types.len(), MAX_TYPES);
        // A type seen again after it was replaced is built again, with its own name.
        let t = labels.event_type("Type0", || "Type0".into()).unwrap();
        assert_eq!(t.consumed_reference[3].value.as_str(), "Type0");
        assert_eq!(t.consumed_reference[2].value, opentelemetry::Value::I64(3));
    }
}
