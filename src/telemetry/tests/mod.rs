//! Telemetry against the OpenTelemetry SDK's in-memory exporters: every instrument's name, kind, unit,
//! attributes and value ([`metrics`]); the spans' parentage, attributes and status through record
//! headers ([`spans`]).

use std::collections::BTreeMap;

use opentelemetry::{KeyValue, Value};

mod metrics;
mod spans;

/// Attributes as a sorted map.
pub(super) fn attrs<'a>(it: impl Iterator<Item = &'a KeyValue>) -> BTreeMap<String, Value> {
    it.map(|kv| (kv.key.as_str().to_owned(), kv.value.clone()))
        .collect()
}

/// A string attribute value.
pub(super) fn s(v: &str) -> Value {
    Value::from(v.to_owned())
}
