//! `serde::Deserialize` for [`KafkaEventBusConfig`] (feature `serde`): configuration files in any
//! format with a serde crate.
//!
//! The keys are the field names, which are also the `KAFKA_*` variable names lower-cased without the
//! prefix (`bootstrap_servers`, `session_timeout_ms`, ...); `batch_size` is accepted for
//! `producer_max_batch_bytes`, as eventsource-py 0.8.1 named it. Missing keys keep their default,
//! unknown keys are an error, and durations are seconds (decimals allowed, as a number or a numeric
//! string), as in the environment.
//! `ssl_context` cannot be read from a file. A deserialized config is not validated yet: call
//! [`KafkaEventBusConfig::validate`] (the bus does when it is built).

#[cfg(doc)]
use super::KafkaEventBusConfig;

/// A [`Duration`](std::time::Duration) as a non-negative number of seconds, written as a number or as
/// a string holding one (`1.5` or `"1.5"`).
pub(super) mod seconds {
    use std::{fmt, time::Duration};

    use serde::{Deserializer, de};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(Seconds)
    }

    struct Seconds;

    impl de::Visitor<'_> for Seconds {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative number of seconds")
        }

        fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(secs))
        }

        fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
            u64::try_from(secs)
                .map(Duration::from_secs)
                .map_err(|_| E::invalid_value(de::Unexpected::Signed(secs), &self))
        }

        fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Duration, E> {
            Duration::try_from_secs_f64(secs)
                .map_err(|_| E::invalid_value(de::Unexpected::Float(secs), &self))
        }

        /// A number written as a string (`"1.5"`), as in the environment.
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            text.parse::<f64>()
                .ok()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::bus::KafkaEventBusConfig;

    fn parse(json: &str) -> Result<KafkaEventBusConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn a_minimal_document_keeps_every_other_default() {
        let c = parse(r#"{"bootstrap_servers": "kafka:9092"}"#).unwrap();
        let mut expected = KafkaEventBusConfig {
            bootstrap_servers: "kafka:9092".into(),
            ..KafkaEventBusConfig::default()
        };
        expected.consumer_name = c.consumer_name.clone();
        assert_eq!(c, expected);
        c.validate().unwrap();
        let empty = parse("{}").unwrap();
        assert_eq!(empty.bootstrap_servers, "localhost:9092");
        assert!(empty.consumer_name.len() > 9, "drawn as by Default");
    }

    #[test]
    fn a_full_document_sets_every_field() {
        let c = parse(
            r#"{
                "bootstrap_servers": "kafka-1:9093,kafka-2:9093",
                "topic_prefix": "orders",
                "consumer_group": "billing",
                "consumer_name": "billing-1",
                "acks": "1",
                "compression_type": null,
                "batch_size": 65536,
                "linger_ms": 20,
                "auto_offset_reset": "latest",
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
                "max_poll_interval_ms": 60000,
                "fetch_max_bytes": 1000000,
                "max_partition_fetch_bytes": 500000,
                "max_retries": 2,
                "retry_base_delay": 0.5,
                "retry_max_delay": 4,
                "retry_jitter": 0.2,
                "enable_dlq": false,
                "dead_letter_unknown_types": true,
                "corrupt_batch_policy": "stop",
                "max_uncompressed_batch_bytes": 1048576,
                "dlq_topic_suffix": ".dead",
                "dlq_consumer_group": "dlq-readers",
                "dlq_max_replay_attempts": 5,
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_username": "billing",
                "sasl_password": "s3cret",
                "ssl_cafile": "/etc/kafka/ca.pem",
                "ssl_certfile": "/etc/kafka/client.pem",
                "ssl_keyfile": "/etc/kafka/client.key",
                "ssl_check_hostname": false,
                "enable_tracing": false,
                "enable_metrics": false,
                "shutdown_timeout": 10,
                "max_in_flight_per_partition": 8,
                "group_instance_id": "billing-static-1",
                "fetch_max_wait": 0.1,
                "delivery_timeout": 90,
                "buffer_memory": 16777216,
                "request_timeout": 15,
                "enable_idempotence": false,
                "partition_assignment_strategy": "cooperative-sticky",
                "bootstrap_timeout": 5,
                "commit_interval": 1.5
            }"#,
        )
        .unwrap();
        c.validate().unwrap();
        // Every field differs from its default, so a key that was not read would show here.
        let defaults = KafkaEventBusConfig::default();
        let shown = format!("{c:?}");
        let default_shown = format!("{defaults:?}");
        let fields = |s: &str| -> Vec<String> {
            let body = s
                .trim_start_matches("KafkaEventBusConfig { ")
                .trim_end_matches(" }");
            body.split(", ").map(str::to_owned).collect()
        };
        let unchanged: Vec<_> = fields(&shown)
            .into_iter()
            .filter(|f| fields(&default_shown).contains(f))
            .filter(|f| !f.starts_with("ssl_context"))
            .collect();
        assert!(unchanged.is_empty(), "not read: {unchanged:?}");
        assert_eq!(c.producer_max_batch_bytes, 65_536);
        assert_eq!(c.retry_base_delay, Duration::from_millis(500));
        assert_eq!(c.fetch_max_wait, Duration::from_millis(100));
        assert_eq!(c.bootstrap_timeout, Duration::from_secs(5));
        assert_eq!(c.commit_interval, Duration::from_millis(1_500));
        assert_eq!(c.enable_idempotence, Some(false));
        assert_eq!(c.compression_type, None);
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_errors() {
        let err = parse(r#"{"bootstrap.servers": "kafka:9092"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `bootstrap.servers`"),
            "{err}"
        );
        for bad in [
            r#"{"shutdown_timeout": -1}"#,
            r#"{"shutdown_timeout": -0.5}"#,
            r#"{"shutdown_timeout": "30s"}"#,
            r#"{"ssl_context": null}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_may_be_numeric_strings() {
        for (text, expected) in [
            ("1.5", Duration::from_millis(1500)),
            ("30", Duration::from_secs(30)),
            ("0.25", Duration::from_millis(250)),
        ] {
            let c = parse(&format!(r#"{{"shutdown_timeout": "{text}"}}"#)).unwrap();
            assert_eq!(c.shutdown_timeout, expected, "{text}");
        }
        for bad in ["-1", "NaN", "inf", "", "1.5s"] {
            let doc = format!(r#"{{"shutdown_timeout": "{bad}"}}"#);
            assert!(parse(&doc).is_err(), "{doc}");
        }
    }
}
