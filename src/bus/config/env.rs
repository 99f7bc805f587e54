//! [`KafkaEventBusConfig::from_env`]: one `KAFKA_*` variable per field.
//!
//! The variable of a field is `KAFKA_` + the field name in upper case (`topic_prefix` →
//! `KAFKA_TOPIC_PREFIX`), which covers the eight the seed guide reads. Unset or empty variables keep
//! the default. The lookup is a function, so tests never touch the process environment.

use std::{path::PathBuf, str::FromStr, time::Duration};

use super::{ConfigError, KafkaEventBusConfig};

impl KafkaEventBusConfig {
    /// Every variable [`from_env`](Self::from_env) reads, in field order; `KAFKA_BATCH_SIZE` is
    /// eventsource-py 0.8.1's name for `KAFKA_PRODUCER_MAX_BATCH_BYTES`.
    ///
    /// ```
    /// use kafka_event_bus::bus::KafkaEventBusConfig;
    ///
    /// assert!(KafkaEventBusConfig::ENV_VARIABLES.contains(&"KAFKA_SASL_PASSWORD"));
    /// ```
    pub const ENV_VARIABLES: [&'static str; 47] = [
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_TOPIC_PREFIX",
        "KAFKA_CONSUMER_GROUP",
        "KAFKA_CONSUMER_NAME",
        "KAFKA_ACKS",
        "KAFKA_COMPRESSION_TYPE",
        "KAFKA_PRODUCER_MAX_BATCH_BYTES",
        "KAFKA_BATCH_SIZE",
        "KAFKA_LINGER_MS",
        "KAFKA_AUTO_OFFSET_RESET",
        "KAFKA_SESSION_TIMEOUT_MS",
        "KAFKA_HEARTBEAT_INTERVAL_MS",
        "KAFKA_MAX_POLL_INTERVAL_MS",
        "KAFKA_FETCH_MAX_BYTES",
        "KAFKA_MAX_PARTITION_FETCH_BYTES",
        "KAFKA_MAX_RETRIES",
        "KAFKA_RETRY_BASE_DELAY",
        "KAFKA_RETRY_MAX_DELAY",
        "KAFKA_RETRY_JITTER",
        "KAFKA_ENABLE_DLQ",
        "KAFKA_DEAD_LETTER_UNKNOWN_TYPES",
        "KAFKA_CORRUPT_BATCH_POLICY",
        "KAFKA_MAX_UNCOMPRESSED_BATCH_BYTES",
        "KAFKA_DLQ_TOPIC_SUFFIX",
        "KAFKA_DLQ_CONSUMER_GROUP",
        "KAFKA_DLQ_MAX_REPLAY_ATTEMPTS",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_CAFILE",
        "KAFKA_SSL_CERTFILE",
        "KAFKA_SSL_KEYFILE",
        "KAFKA_SSL_CHECK_HOSTNAME",
        "KAFKA_ENABLE_TRACING",
        "KAFKA_ENABLE_METRICS",
        "KAFKA_SHUTDOWN_TIMEOUT",
        "KAFKA_MAX_IN_FLIGHT_PER_PARTITION",
        "KAFKA_GROUP_INSTANCE_ID",
        "KAFKA_FETCH_MAX_WAIT",
        "KAFKA_DELIVERY_TIMEOUT",
        "KAFKA_BUFFER_MEMORY",
        "KAFKA_REQUEST_TIMEOUT",
        "KAFKA_ENABLE_IDEMPOTENCE",
        "KAFKA_PARTITION_ASSIGNMENT_STRATEGY",
        "KAFKA_BOOTSTRAP_TIMEOUT",
        "KAFKA_COMMIT_INTERVAL",
    ];
}

struct Env<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The trimmed value, `None` when unset or empty.
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn string(&self, name: &str, into: &mut String) {
        if let Some(v) = self.get(name) {
            *into = v;
        }
    }

    fn optional(&self, name: &str, into: &mut Option<String>) {
        if let Some(v) = self.get(name) {
            *into = Some(v);
        }
    }

    fn path(&self, name: &str, into: &mut Option<PathBuf>) {
        if let Some(v) = self.get(name) {
            *into = Some(PathBuf::from(v));
        }
    }

    fn number<T: FromStr>(&self, name: &str, into: &mut T) -> Result<(), ConfigError> {
        if let Some(v) = self.get(name) {
            *into = number(name, &v)?;
        }
        Ok(())
    }

    fn boolean(&self, name: &str, into: &mut bool) -> Result<(), ConfigError> {
        if let Some(v) = self.get(name) {
            *into = boolean(name, &v)?;
        }
        Ok(())
    }

    /// Seconds as a decimal number (`"1.5"`), as eventsource-py's float fields. Zero is taken as it is;
    /// anything else must be at least a millisecond, the wire's unit (a shorter value would be sent
    /// as 0).
    fn seconds(&self, name: &'static str, into: &mut Duration) -> Result<(), ConfigError> {
        if let Some(v) = self.get(name) {
            let value = v
                .parse::<f64>()
                .ok()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .ok_or_else(|| invalid(name, format!("{v:?} is not a non-negative number of seconds")))?;
            if !value.is_zero() && value < Duration::from_millis(1) {
                return Err(ConfigError::OutOfRange {
                    field: name,
                    value: v,
                    expected: "0 or at least 0.001 seconds",
                });
            }
            *into = value;
        }
        Ok(())
    }
}

fn number<T: FromStr>(name: &str, v: &str) -> Result<T, ConfigError> {
    v.parse()
        .map_err(|_| invalid(name, format!("{v:?} is not a valid number")))
}

fn boolean(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(
            name,
            format!("{v:?} is not true/false (or 1/0, yes/no, on/off)"),
        )),
    }
}

fn invalid(name: &str, reason: String) -> ConfigError {
    ConfigError::InvalidEnv {
        name: name.to_owned(),
        reason,
    }
}

impl KafkaEventBusConfig {
    /// The defaults overridden by the `KAFKA_*` environment variables, validated. Warnings are logged
    /// by the bus built from it.
    ///
    /// One variable per field: `KAFKA_` + the field name in upper case. The seed guide's eight are
    /// `KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC_PREFIX`, `KAFKA_CONSUMER_GROUP`,
    /// `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`
    /// and `KAFKA_SSL_CAFILE`; the others are `KAFKA_CONSUMER_NAME`, `KAFKA_ACKS`,
    /// `KAFKA_COMPRESSION_TYPE` (`none` for no compression), `KAFKA_PRODUCER_MAX_BATCH_BYTES`,
    /// `KAFKA_LINGER_MS`, `KAFKA_AUTO_OFFSET_RESET`, `KAFKA_SESSION_TIMEOUT_MS`,
    /// `KAFKA_HEARTBEAT_INTERVAL_MS`, `KAFKA_MAX_POLL_INTERVAL_MS`, `KAFKA_FETCH_MAX_BYTES`,
    /// `KAFKA_MAX_PARTITION_FETCH_BYTES`, `KAFKA_MAX_RETRIES`, `KAFKA_RETRY_BASE_DELAY`,
    /// `KAFKA_RETRY_MAX_DELAY` (seconds, decimals allowed), `KAFKA_RETRY_JITTER`, `KAFKA_ENABLE_DLQ`,
    /// `KAFKA_DEAD_LETTER_UNKNOWN_TYPES`, `KAFKA_DLQ_TOPIC_SUFFIX`, `KAFKA_DLQ_CONSUMER_GROUP`, `KAFKA_DLQ_MAX_REPLAY_ATTEMPTS`,
    /// `KAFKA_SSL_CERTFILE`, `KAFKA_SSL_KEYFILE`, `KAFKA_SSL_CHECK_HOSTNAME`, `KAFKA_ENABLE_TRACING`,
    /// `KAFKA_ENABLE_METRICS` (booleans: true/false, 1/0, yes/no, on/off), `KAFKA_SHUTDOWN_TIMEOUT`
    /// (seconds), `KAFKA_MAX_IN_FLIGHT_PER_PARTITION`, `KAFKA_GROUP_INSTANCE_ID`,
    /// `KAFKA_FETCH_MAX_WAIT` (seconds), `KAFKA_DELIVERY_TIMEOUT` (seconds), `KAFKA_BUFFER_MEMORY`,
    /// `KAFKA_REQUEST_TIMEOUT` (seconds), `KAFKA_ENABLE_IDEMPOTENCE` (boolean; unset: on when acks is
    /// all), `KAFKA_PARTITION_ASSIGNMENT_STRATEGY` (e.g. `cooperative-sticky` or `range,roundrobin`),
    /// `KAFKA_BOOTSTRAP_TIMEOUT` and `KAFKA_COMMIT_INTERVAL` (seconds). Unset or empty variables keep the default; values are
    /// trimmed.
    ///
    /// `KAFKA_BATCH_SIZE` (eventsource-py 0.8.1's name for the batch size in bytes) is read as
    /// `KAFKA_PRODUCER_MAX_BATCH_BYTES`; both set to different values is an error.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidEnv`] for a value that does not parse (never showing the password), or
    /// what [`validate`](Self::validate) finds.
    ///
    /// # Example
    ///
    /// ```no_run
    /// let config = kafka_event_bus::bus::KafkaEventBusConfig::from_env()?;
    /// println!("publishing to {}", config.topic_name());
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with another source of variables (a map, a `.env` parser, a test).
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    ///
    /// # Example
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use kafka_event_bus::bus::KafkaEventBusConfig;
    ///
    /// let vars = HashMap::from([
    ///     ("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092"),
    ///     ("KAFKA_TOPIC_PREFIX", "myapp.events"),
    ///     ("KAFKA_ACKS", "1"),
    /// ]);
    /// let config = KafkaEventBusConfig::from_lookup(|name| vars.get(name).map(|v| v.to_string()))?;
    /// assert_eq!(config.topic_name(), "myapp.events.stream");
    /// assert_eq!(config.acks, "1");
    /// assert_eq!(config.consumer_group, "default");
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup };
        let mut c = Self::default();
        env.string("KAFKA_BOOTSTRAP_SERVERS", &mut c.bootstrap_servers);
        env.string("KAFKA_TOPIC_PREFIX", &mut c.topic_prefix);
        env.string("KAFKA_CONSUMER_GROUP", &mut c.consumer_group);
        env.string("KAFKA_CONSUMER_NAME", &mut c.consumer_name);
        env.string("KAFKA_ACKS", &mut c.acks);
        if let Some(v) = env.get("KAFKA_COMPRESSION_TYPE") {
            c.compression_type = (!v.eq_ignore_ascii_case("none")).then_some(v);
        }
        // eventsource-py 0.8.1 called the same byte count `batch_size`.
        // Both may be set if they name the same number ("65536" and "065536" agree).
        let max_batch_bytes = env
            .get("KAFKA_PRODUCER_MAX_BATCH_BYTES")
            .map(|v| number::<usize>("KAFKA_PRODUCER_MAX_BATCH_BYTES", &v))
            .transpose()?;
        let batch_size = env
            .get("KAFKA_BATCH_SIZE")
            .map(|v| number::<usize>("KAFKA_BATCH_SIZE", &v))
            .transpose()?;
        if let (Some(new), Some(old)) = (max_batch_bytes, batch_size)
            && new != old
        {
            return Err(invalid(
                "KAFKA_BATCH_SIZE",
                format!("{old} disagrees with KAFKA_PRODUCER_MAX_BATCH_BYTES={new}; set only one"),
            ));
        }
        if let Some(bytes) = max_batch_bytes.or(batch_size) {
            c.producer_max_batch_bytes = bytes;
        }
        env.number("KAFKA_LINGER_MS", &mut c.linger_ms)?;
        env.string("KAFKA_AUTO_OFFSET_RESET", &mut c.auto_offset_reset);
        env.number("KAFKA_SESSION_TIMEOUT_MS", &mut c.session_timeout_ms)?;
        env.number("KAFKA_HEARTBEAT_INTERVAL_MS", &mut c.heartbeat_interval_ms)?;
        env.number("KAFKA_MAX_POLL_INTERVAL_MS", &mut c.max_poll_interval_ms)?;
        env.number("KAFKA_FETCH_MAX_BYTES", &mut c.fetch_max_bytes)?;
        env.number(
            "KAFKA_MAX_PARTITION_FETCH_BYTES",
            &mut c.max_partition_fetch_bytes,
        )?;
        env.number("KAFKA_MAX_RETRIES", &mut c.max_retries)?;
        env.seconds("KAFKA_RETRY_BASE_DELAY", &mut c.retry_base_delay)?;
        env.seconds("KAFKA_RETRY_MAX_DELAY", &mut c.retry_max_delay)?;
        env.number("KAFKA_RETRY_JITTER", &mut c.retry_jitter)?;
        env.boolean("KAFKA_ENABLE_DLQ", &mut c.enable_dlq)?;
        env.boolean(
            "KAFKA_DEAD_LETTER_UNKNOWN_TYPES",
            &mut c.dead_letter_unknown_types,
        )?;
        env.string("KAFKA_CORRUPT_BATCH_POLICY", &mut c.corrupt_batch_policy);
        env.number(
            "KAFKA_MAX_UNCOMPRESSED_BATCH_BYTES",
            &mut c.max_uncompressed_batch_bytes,
        )?;
        env.string("KAFKA_DLQ_TOPIC_SUFFIX", &mut c.dlq_topic_suffix);
        env.optional("KAFKA_DLQ_CONSUMER_GROUP", &mut c.dlq_consumer_group);
        env.number("KAFKA_DLQ_MAX_REPLAY_ATTEMPTS", &mut c.dlq_max_replay_attempts)?;
        env.string("KAFKA_SECURITY_PROTOCOL", &mut c.security_protocol);
        env.optional("KAFKA_SASL_MECHANISM", &mut c.sasl_mechanism);
        env.optional("KAFKA_SASL_USERNAME", &mut c.sasl_username);
        // The password is taken as given (not trimmed): spaces may be part of it.
        if let Some(password) = (env.lookup)("KAFKA_SASL_PASSWORD").filter(|p| !p.is_empty()) {
            c.sasl_password = Some(password);
        }
        env.path("KAFKA_SSL_CAFILE", &mut c.ssl_cafile);
        env.path("KAFKA_SSL_CERTFILE", &mut c.ssl_certfile);
        env.path("KAFKA_SSL_KEYFILE", &mut c.ssl_keyfile);
        env.boolean("KAFKA_SSL_CHECK_HOSTNAME", &mut c.ssl_check_hostname)?;
        env.boolean("KAFKA_ENABLE_TRACING", &mut c.enable_tracing)?;
        env.boolean("KAFKA_ENABLE_METRICS", &mut c.enable_metrics)?;
        env.seconds("KAFKA_SHUTDOWN_TIMEOUT", &mut c.shutdown_timeout)?;
        env.number(
            "KAFKA_MAX_IN_FLIGHT_PER_PARTITION",
            &mut c.max_in_flight_per_partition,
        )?;
        env.optional("KAFKA_GROUP_INSTANCE_ID", &mut c.group_instance_id);
        env.seconds("KAFKA_FETCH_MAX_WAIT", &mut c.fetch_max_wait)?;
        env.seconds("KAFKA_DELIVERY_TIMEOUT", &mut c.delivery_timeout)?;
        env.number("KAFKA_BUFFER_MEMORY", &mut c.buffer_memory)?;
        env.seconds("KAFKA_REQUEST_TIMEOUT", &mut c.request_timeout)?;
        if let Some(v) = env.get("KAFKA_ENABLE_IDEMPOTENCE") {
            c.enable_idempotence = Some(boolean("KAFKA_ENABLE_IDEMPOTENCE", &v)?);
        }
        env.string(
            "KAFKA_PARTITION_ASSIGNMENT_STRATEGY",
            &mut c.partition_assignment_strategy,
        );
        env.seconds("KAFKA_BOOTSTRAP_TIMEOUT", &mut c.bootstrap_timeout)?;
        env.seconds("KAFKA_COMMIT_INTERVAL", &mut c.commit_interval)?;
        c.validate()?;
        Ok(c)
    }
}
