//! Record headers as an OpenTelemetry carrier: the trace context of an event travels in its record's
//! `traceparent`, `tracestate` and `baggage` headers.
//!
//! The impl lives here, above both `protocol` (which owns [`Headers`]) and `telemetry` (a leaf that
//! owns the trait), so neither of those depends on the other.

use crate::{protocol::Headers, telemetry::HeaderCarrier};

/// `telemetry` reads and writes `traceparent`, `tracestate` and `baggage` through this; setting a
/// header replaces every earlier value of that key.
impl HeaderCarrier for Headers {
    fn text(&self, key: &str) -> Option<&str> {
        self.get_str(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.iter().map(|h| h.key).collect()
    }

    fn set_text(&mut self, key: &str, value: String) {
        self.remove(key);
        self.insert(key, value);
    }
}
