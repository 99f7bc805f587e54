//! Telemetry tests against the OpenTelemetry SDK in-memory exporters.
