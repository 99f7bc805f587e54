//! [`KafkaEventBusConfig::from_properties`]: a config from Java client / librdkafka style dotted keys
//! (`bootstrap.servers`, `linger.ms`, ...), for services migrating a `.properties` file or a
//! librdkafka config map.
//!
//! Each known key is translated to the `KAFKA_*` variable of its field (milliseconds to seconds where
//! the field is a duration, librdkafka's synonyms to ours) and the result goes through
//! [`KafkaEventBusConfig::from_lookup`], so parsing and validation are the environment's. The bus's own
//! field names (`topic_prefix`, `max_retries`, ...) are accepted as keys too. Keys that match nothing
//! are returned to the caller, never dropped silently.

use std::collections::HashMap;

use super::{ConfigError, KafkaEventBusConfig};

/// How a property's value becomes the variable's value.
#[derive(Debug, Clone, Copy)]
enum Value {
    /// As it is.
    Same,
    /// Upper-cased (`sasl_ssl` → `SASL_SSL`, as librdkafka writes protocols and mechanisms).
    Upper,
    /// Milliseconds to seconds (for the fields that are durations).
    MillisToSeconds,
    /// Kibibytes to bytes (librdkafka's `queue.buffering.max.kbytes`).
    KibToBytes,
    /// librdkafka's `smallest`/`beginning` and `largest`/`end` to `earliest`/`latest`.
    OffsetReset,
    /// `ssl.endpoint.identification.algorithm`: `https` checks the host name, empty or `none` does not.
    EndpointIdentification,
}

/// Dotted key → the variable it sets and how its value converts. Java's names first, then
/// librdkafka's synonyms.
const KEYS: &[(&str, &str, Value)] = &[
    ("bootstrap.servers", "KAFKA_BOOTSTRAP_SERVERS", Value::Same),
    ("metadata.broker.list", "KAFKA_BOOTSTRAP_SERVERS", Value::Same),
    ("group.id", "KAFKA_CONSUMER_GROUP", Value::Same),
    ("client.id", "KAFKA_CONSUMER_NAME", Value::Same),
    ("group.instance.id", "KAFKA_GROUP_INSTANCE_ID", Value::Same),
    ("acks", "KAFKA_ACKS", Value::Same),
    ("request.required.acks", "KAFKA_ACKS", Value::Same),
    ("compression.type", "KAFKA_COMPRESSION_TYPE", Value::Same),
    ("compression.codec", "KAFKA_COMPRESSION_TYPE", Value::Same),
    ("batch.size", "KAFKA_PRODUCER_MAX_BATCH_BYTES", Value::Same),
    ("linger.ms", "KAFKA_LINGER_MS", Value::Same),
    ("queue.buffering.max.ms", "KAFKA_LINGER_MS", Value::Same),
    ("enable.idempotence", "KAFKA_ENABLE_IDEMPOTENCE", Value::Same),
    (
        "delivery.timeout.ms",
        "KAFKA_DELIVERY_TIMEOUT",
        Value::MillisToSeconds,
    ),
    (
        "message.timeout.ms",
        "KAFKA_DELIVERY_TIMEOUT",
        Value::MillisToSeconds,
    ),
    (
        "request.timeout.ms",
        "KAFKA_REQUEST_TIMEOUT",
        Value::MillisToSeconds,
    ),
    ("buffer.memory", "KAFKA_BUFFER_MEMORY", Value::Same),
    (
        "queue.buffering.max.kbytes",
        "KAFKA_BUFFER_MEMORY",
        Value::KibToBytes,
    ),
    ("auto.offset.reset", "KAFKA_AUTO_OFFSET_RESET", Value::OffsetReset),
    ("session.timeout.ms", "KAFKA_SESSION_TIMEOUT_MS", Value::Same),
    (
        "heartbeat.interval.ms",
        "KAFKA_HEARTBEAT_INTERVAL_MS",
        Value::Same,
    ),
    ("max.poll.interval.ms", "KAFKA_MAX_POLL_INTERVAL_MS", Value::Same),
    ("fetch.max.bytes", "KAFKA_FETCH_MAX_BYTES", Value::Same),
    (
        "max.partition.fetch.bytes",
        "KAFKA_MAX_PARTITION_FETCH_BYTES",
        Value::Same,
    ),
    (
        "fetch.max.wait.ms",
        "KAFKA_FETCH_MAX_WAIT",
        Value::MillisToSeconds,
    ),
    (
        "fetch.wait.max.ms",
        "KAFKA_FETCH_MAX_WAIT",
        Value::MillisToSeconds,
    ),
    (
        "partition.assignment.strategy",
        "KAFKA_PARTITION_ASSIGNMENT_STRATEGY",
        Value::Same,
    ),
    (
        "auto.commit.interval.ms",
        "KAFKA_COMMIT_INTERVAL",
        Value::MillisToSeconds,
    ),
    ("security.protocol", "KAFKA_SECURITY_PROTOCOL", Value::Upper),
    ("sasl.mechanism", "KAFKA_SASL_MECHANISM", Value::Upper),
    ("sasl.mechanisms", "KAFKA_SASL_MECHANISM", Value::Upper),
    ("sasl.username", "KAFKA_SASL_USERNAME", Value::Same),
    ("sasl.password", "KAFKA_SASL_PASSWORD", Value::Same),
    ("ssl.ca.location", "KAFKA_SSL_CAFILE", Value::Same),
    ("ssl.certificate.location", "KAFKA_SSL_CERTFILE", Value::Same),
    ("ssl.key.location", "KAFKA_SSL_KEYFILE", Value::Same),
    (
        "ssl.endpoint.identification.algorithm",
        "KAFKA_SSL_CHECK_HOSTNAME",
        Value::EndpointIdentification,
    ),
];

/// The variable and conversion of `key`: a dotted key, or a field name of the bus.
fn variable(key: &str) -> Option<(String, Value)> {
    if let Some((_, name, value)) = KEYS.iter().find(|(k, _, _)| *k == key) {
        return Some(((*name).to_owned(), *value));
    }
    let name = format!("KAFKA_{}", key.to_ascii_uppercase());
    let own = !key.contains('.') && KafkaEventBusConfig::ENV_VARIABLES.contains(&name.as_str());
    own.then_some((name, Value::Same))
}

fn convert(key: &str, raw: &str, how: Value) -> Result<String, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidProperty {
        key: key.to_owned(),
        reason,
    };
    let trimmed = raw.trim();
    Ok(match how {
        Value::Same => raw.to_owned(),
        Value::Upper => trimmed.to_ascii_uppercase(),
        Value::MillisToSeconds => {
            let ms: u64 = trimmed
                .parse()
                .map_err(|_| invalid(format!("{trimmed:?} is not a number of milliseconds")))?;
            format!("{}.{:03}", ms / 1000, ms % 1000)
        }
        Value::KibToBytes => {
            let kib: u64 = trimmed
                .parse()
                .map_err(|_| invalid(format!("{trimmed:?} is not a number of kibibytes")))?;
            kib.checked_mul(1024)
                .ok_or_else(|| invalid(format!("{trimmed:?} kibibytes is too large")))?
                .to_string()
        }
        Value::OffsetReset => match trimmed {
            "smallest" | "beginning" => "earliest".to_owned(),
            "largest" | "end" => "latest".to_owned(),
            other => other.to_owned(),
        },
        Value::EndpointIdentification => match trimmed.to_ascii_lowercase().as_str() {
            "https" => "true".to_owned(),
            "" | "none" => "false".to_owned(),
            other => return Err(invalid(format!("{other:?} is not https, none or empty"))),
        },
    })
}

impl KafkaEventBusConfig {
    /// A config from Java-client or librdkafka style properties: the defaults overridden by each
    /// known key, validated, plus the keys that were not used (for the caller to log or refuse).
    ///
    /// Known keys: `bootstrap.servers` (`metadata.broker.list`), `group.id`, `client.id` (the
    /// `consumer_name`), `group.instance.id`, `acks` (`request.required.acks`), `compression.type`
    /// (`compression.codec`), `batch.size` (bytes, as in Java, librdkafka and eventsource-py 0.8.1),
    /// `linger.ms` (`queue.buffering.max.ms`), `enable.idempotence`, `delivery.timeout.ms`
    /// (`message.timeout.ms`), `request.timeout.ms`, `buffer.memory` (`queue.buffering.max.kbytes`),
    /// `auto.offset.reset` (`smallest`/`largest` too), `session.timeout.ms`, `heartbeat.interval.ms`,
    /// `max.poll.interval.ms`, `fetch.max.bytes`, `max.partition.fetch.bytes`, `fetch.max.wait.ms`
    /// (`fetch.wait.max.ms`), `partition.assignment.strategy` (protocol or Java class names),
    /// `auto.commit.interval.ms`,
    /// `security.protocol`, `sasl.mechanism` (`sasl.mechanisms`), `sasl.username`, `sasl.password`,
    /// `ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location` and
    /// `ssl.endpoint.identification.algorithm` (`https` or empty). The bus's own settings are taken by
    /// their field names (`topic_prefix`, `max_retries`, `retry_base_delay` in seconds, ...), as the
    /// `KAFKA_*` variables without the prefix. A key given twice keeps its last value.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidProperty`] naming the key whose value does not parse (never showing the
    /// password), or what [`validate`](Self::validate) finds.
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::bus::KafkaEventBusConfig;
    ///
    /// let (config, unused) = KafkaEventBusConfig::from_properties([
    ///     ("bootstrap.servers", "kafka-1:9092,kafka-2:9092"),
    ///     ("group.id", "billing"),
    ///     ("linger.ms", "20"),
    ///     ("delivery.timeout.ms", "60000"),
    ///     ("topic_prefix", "orders"),
    ///     ("key.deserializer", "org.apache.kafka.common.serialization.StringDeserializer"),
    /// ])?;
    /// assert_eq!(config.consumer_group, "billing");
    /// assert_eq!(config.delivery_timeout, std::time::Duration::from_secs(60));
    /// assert_eq!(config.topic_name(), "orders.stream");
    /// assert_eq!(unused, ["key.deserializer"]);
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn from_properties<K, V>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(Self, Vec<String>), ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut variables: HashMap<String, (String, String)> = HashMap::new();
        let mut unused = Vec::new();
        for (key, value) in properties {
            let key = key.as_ref().trim();
            match variable(key) {
                Some((name, how)) => {
                    let value = convert(key, value.as_ref(), how)?;
                    variables.insert(name, (key.to_owned(), value));
                }
                None => unused.push(key.to_owned()),
            }
        }
        let config =
            Self::from_lookup(|name| variables.get(name).map(|(_, v)| v.clone())).map_err(|e| match e {
                ConfigError::InvalidEnv { name, reason } => match variables.get(&name) {
                    Some((key, _)) => ConfigError::InvalidProperty {
                        key: key.clone(),
                        reason,
                    },
                    None => ConfigError::InvalidEnv { name, reason },
                },
                other => other,
            })?;
        Ok((config, unused))
    }
}

#[cfg(test)]
mod tests {
    use std::{path::PathBuf, time::Duration};

    use super::*;
    use crate::bus::AssignmentStrategy;

    #[test]
    fn every_listed_key_sets_its_field() {
        let (c, unused) = KafkaEventBusConfig::from_properties([
            ("bootstrap.servers", "kafka-1:9093,kafka-2:9093"),
            ("group.id", "billing"),
            ("client.id", "billing-1"),
            ("group.instance.id", "billing-static-1"),
            ("acks", "all"),
            ("compression.type", "zstd"),
            ("batch.size", "65536"),
            ("linger.ms", "20"),
            ("enable.idempotence", "true"),
            ("delivery.timeout.ms", "90000"),
            ("request.timeout.ms", "15500"),
            ("buffer.memory", "16777216"),
            ("auto.offset.reset", "latest"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "1000"),
            ("max.poll.interval.ms", "60000"),
            ("fetch.max.bytes", "1000000"),
            ("max.partition.fetch.bytes", "500000"),
            ("fetch.max.wait.ms", "100"),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("auto.commit.interval.ms", "1500"),
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "billing"),
            ("sasl.password", "s3cret"),
            ("ssl.ca.location", "/etc/kafka/ca.pem"),
            ("ssl.certificate.location", "/etc/kafka/client.pem"),
            ("ssl.key.location", "/etc/kafka/client.key"),
            ("ssl.endpoint.identification.algorithm", ""),
        ])
        .unwrap();
        assert!(unused.is_empty(), "{unused:?}");
        assert_eq!(c.bootstrap_servers, "kafka-1:9093,kafka-2:9093");
        assert_eq!(c.consumer_group, "billing");
        assert_eq!(c.consumer_name, "billing-1");
        assert_eq!(c.group_instance_id.as_deref(), Some("billing-static-1"));
        assert_eq!(c.acks, "all");
        assert_eq!(c.compression_type.as_deref(), Some("zstd"));
        assert_eq!(c.producer_max_batch_bytes, 65_536);
        assert_eq!(c.linger_ms, 20);
        assert_eq!(c.enable_idempotence, Some(true));
        assert_eq!(c.delivery_timeout, Duration::from_secs(90));
        assert_eq!(c.request_timeout, Duration::from_millis(15_500));
        assert_eq!(c.commit_interval, Duration::from_millis(1_500));
        assert_eq!(c.buffer_memory, 16 << 20);
        assert_eq!(c.auto_offset_reset, "latest");
        assert_eq!(
            (
                c.session_timeout_ms,
                c.heartbeat_interval_ms,
                c.max_poll_interval_ms
            ),
            (6_000, 1_000, 60_000)
        );
        assert_eq!(
            (c.fetch_max_bytes, c.max_partition_fetch_bytes),
            (1_000_000, 500_000)
        );
        assert_eq!(c.fetch_max_wait, Duration::from_millis(100));
        assert_eq!(
            c.assignment_strategies().unwrap(),
            [AssignmentStrategy::CooperativeSticky]
        );
        assert_eq!(c.security_protocol, "SASL_SSL");
        assert_eq!(c.sasl_mechanism.as_deref(), Some("SCRAM-SHA-512"));
        assert_eq!(c.sasl_username.as_deref(), Some("billing"));
        assert_eq!(c.sasl_password.as_deref(), Some("s3cret"));
        assert_eq!(c.ssl_cafile, Some(PathBuf::from("/etc/kafka/ca.pem")));
        assert_eq!(c.ssl_certfile, Some(PathBuf::from("/etc/kafka/client.pem")));
        assert_eq!(c.ssl_keyfile, Some(PathBuf::from("/etc/kafka/client.key")));
        assert!(!c.ssl_check_hostname);
    }

    #[test]
    fn librdkafka_synonyms_and_the_bus_field_names_are_keys_too() {
        let (c, unused) = KafkaEventBusConfig::from_properties([
            ("metadata.broker.list", "kafka:9092"),
            ("request.required.acks", "1"),
            ("compression.codec", "lz4"),
            ("queue.buffering.max.ms", "50"),
            ("message.timeout.ms", "45000"),
            ("queue.buffering.max.kbytes", "2048"),
            ("auto.offset.reset", "smallest"),
            ("fetch.wait.max.ms", "250"),
            ("sasl.mechanisms", "plain"),
            ("topic_prefix", "orders"),
            ("max_retries", "5"),
            ("retry_base_delay", "0.25"),
            ("batch_size", "32768"),
        ])
        .unwrap();
        assert!(unused.is_empty(), "{unused:?}");
        assert_eq!(c.bootstrap_servers, "kafka:9092");
        assert_eq!(c.acks, "1");
        assert_eq!(c.compression_type.as_deref(), Some("lz4"));
        assert_eq!(c.linger_ms, 50);
        assert_eq!(c.delivery_timeout, Duration::from_secs(45));
        assert_eq!(c.buffer_memory, 2 << 20);
        assert_eq!(c.auto_offset_reset, "earliest");
        assert_eq!(c.fetch_max_wait, Duration::from_millis(250));
        assert_eq!(c.sasl_mechanism.as_deref(), Some("PLAIN"));
        assert_eq!(c.topic_name(), "orders.stream");
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.retry_base_delay, Duration::from_millis(250));
        assert_eq!(c.producer_max_batch_bytes, 32_768);
    }

    #[test]
    fn unknown_keys_are_returned_and_bad_values_name_their_key() {
        let (_, unused) = KafkaEventBusConfig::from_properties([
            ("bootstrap.servers", "kafka:9092"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule ...",
            ),
            ("key.serializer", "StringSerializer"),
            ("KAFKA_TOPIC_PREFIX", "x"),
            ("topic.prefix", "x"),
        ])
        .unwrap();
        assert_eq!(
            unused,
            [
                "sasl.jaas.config",
                "key.serializer",
                "KAFKA_TOPIC_PREFIX",
                "topic.prefix"
            ]
        );
        for (key, value) in [
            ("linger.ms", "5ms"),
            ("delivery.timeout.ms", "-1"),
            ("enable.idempotence", "maybe"),
            ("batch.size", "16k"),
            ("ssl.endpoint.identification.algorithm", "ldap"),
            ("max_retries", "many"),
        ] {
            match KafkaEventBusConfig::from_properties([(key, value)]) {
                Err(ConfigError::InvalidProperty { key: k, reason }) => {
                    assert_eq!(k, key);
                    assert!(reason.contains(value), "{reason}");
                }
                other => panic!("{key}={value}: {other:?}"),
            }
        }
        // Values that parse still go through validation.
        assert!(matches!(
            KafkaEventBusConfig::from_properties([("acks", "1"), ("enable.idempotence", "true")]),
            Err(ConfigError::IdempotenceRequiresAcksAll { .. })
        ));
        // batch.size and the 0.8.1 name must agree.
        assert!(matches!(
            KafkaEventBusConfig::from_properties([("batch.size", "100"), ("batch_size", "200")]),
            Err(ConfigError::InvalidProperty { .. })
        ));
    }
}
