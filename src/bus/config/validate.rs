//! [`KafkaEventBusConfig::validate`]: eventsource-py's security rules with its messages, in its order,
//! then the checks it lacks.

use std::{fmt, str::FromStr, time::Duration};

use snafu::Snafu;

use super::KafkaEventBusConfig;
use crate::protocol::records::Compression;

/// A setting of [`KafkaEventBusConfig`] that cannot work. The security messages are eventsource-py's,
/// word for word (its sets are shown in a fixed order).
///
/// # Example
///
/// ```
/// use kafka_event_bus::bus::{ConfigError, KafkaEventBusConfig};
///
/// let err = KafkaEventBusConfig::builder()
///     .security_protocol("SASL_SSL")
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, ConfigError::SaslMechanismRequired { .. }));
/// assert_eq!(err.to_string(), "sasl_mechanism required for SASL_SSL");
/// ```
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum ConfigError {
    /// `security_protocol` is not one of the four Kafka protocols.
    #[snafu(display(
        "Invalid security_protocol: {value}. Must be one of: {{'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'}}"
    ))]
    InvalidSecurityProtocol {
        /// What was configured.
        value: String,
    },
    /// A SASL protocol without `sasl_mechanism`.
    #[snafu(display("sasl_mechanism required for {protocol}"))]
    SaslMechanismRequired {
        /// The protocol.
        protocol: String,
    },
    /// `sasl_mechanism` is not one this client implements.
    #[snafu(display(
        "Invalid sasl_mechanism: {value}. Must be one of: {{'PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'}}"
    ))]
    InvalidSaslMechanism {
        /// What was configured.
        value: String,
    },
    /// A SASL protocol without a user name or password.
    #[snafu(display("sasl_username and sasl_password required for SASL authentication"))]
    SaslCredentialsRequired,
    /// `ssl_certfile` without `ssl_keyfile`.
    #[snafu(display("ssl_keyfile required when ssl_certfile is provided (mTLS)"))]
    SslKeyfileRequired,
    /// `ssl_keyfile` without `ssl_certfile`.
    #[snafu(display("ssl_certfile required when ssl_keyfile is provided (mTLS)"))]
    SslCertfileRequired,
    /// `bootstrap_servers` names no server, or an entry is not `host:port`.
    #[snafu(display("Invalid bootstrap_servers: {value:?}. {reason}"))]
    InvalidBootstrapServers {
        /// What was configured.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A name that must not be empty is.
    #[snafu(display("{field} must not be empty"))]
    Empty {
        /// The setting.
        field: &'static str,
    },
    /// A topic name built from `topic_prefix` and `dlq_topic_suffix` is not a legal Kafka topic.
    #[snafu(display("Invalid topic name {topic:?} (from {field}): {reason}"))]
    InvalidTopicName {
        /// The topic name.
        topic: String,
        /// The setting it comes from.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// `acks` is not 0, 1 or all.
    #[snafu(display("Invalid acks: {value}. Must be one of: {{'0', '1', 'all'}} ('-1' means 'all')"))]
    InvalidAcks {
        /// What was configured.
        value: String,
    },
    /// `compression_type` names no codec.
    #[snafu(display(
        "Invalid compression_type: {value}. Must be one of: {{'gzip', 'snappy', 'lz4', 'zstd'}} or None"
    ))]
    InvalidCompression {
        /// What was configured.
        value: String,
    },
    /// `auto_offset_reset` is not earliest or latest.
    #[snafu(display("Invalid auto_offset_reset: {value}. Must be one of: {{'earliest', 'latest'}}"))]
    InvalidOffsetReset {
        /// What was configured.
        value: String,
    },
    /// `corrupt_batch_policy` is not dead_letter or stop.
    #[snafu(display("Invalid corrupt_batch_policy: {value}. Must be one of: {{'dead_letter', 'stop'}}"))]
    InvalidCorruptBatchPolicy {
        /// What was configured.
        value: String,
    },
    /// `partition_assignment_strategy` names no known assignor, repeats one, or is empty.
    #[snafu(display(
        "Invalid partition_assignment_strategy: {value}. Must be a comma-separated list of: {{'range', 'roundrobin', 'cooperative-sticky'}}"
    ))]
    InvalidAssignmentStrategy {
        /// What was configured.
        value: String,
    },
    /// `enable_idempotence` is on while `acks` is not `all`.
    #[snafu(display("enable_idempotence requires acks='all' (acks is {acks:?})"))]
    IdempotenceRequiresAcksAll {
        /// The configured `acks`.
        acks: String,
    },
    /// A number outside what works (or what the wire can carry).
    #[snafu(display("Invalid {field}: {value}. Must be {expected}"))]
    OutOfRange {
        /// The setting.
        field: &'static str,
        /// What was configured.
        value: String,
        /// The accepted range.
        expected: &'static str,
    },
    /// The heartbeat would not keep the session alive.
    #[snafu(display(
        "heartbeat_interval_ms ({heartbeat_interval_ms}) must be less than session_timeout_ms ({session_timeout_ms})"
    ))]
    HeartbeatNotBelowSession {
        /// The heartbeat interval.
        heartbeat_interval_ms: u64,
        /// The session timeout.
        session_timeout_ms: u64,
    },
    /// `retry_max_delay` is below `retry_base_delay`.
    #[snafu(display("retry_max_delay ({max:?}) must be at least retry_base_delay ({base:?})"))]
    RetryMaxBelowBase {
        /// `retry_base_delay`.
        base: Duration,
        /// `retry_max_delay`.
        max: Duration,
    },
    /// An environment variable does not parse (`from_env`). The value is not shown for secrets.
    #[snafu(display("Invalid environment variable {name}: {reason}"))]
    InvalidEnv {
        /// The variable.
        name: String,
        /// What is wrong, with the value.
        reason: String,
    },
    /// A property of `from_properties` does not parse. The value is not shown for secrets.
    #[snafu(display("Invalid property {key}: {reason}"))]
    InvalidProperty {
        /// The key.
        key: String,
        /// What is wrong, with the value.
        reason: String,
    },
    /// The producer settings derived from this config do not work together (`producer_config`), e.g.
    /// a `linger_ms` longer than the producer's delivery timeout.
    #[cfg(feature = "client")]
    #[snafu(display("Invalid producer settings: {source}"))]
    Producer {
        /// The producer's complaint.
        source: crate::client::producer::Error,
    },
    /// The TLS files could not be loaded (`client_config`).
    #[cfg(feature = "client")]
    #[snafu(display("cannot build the TLS settings: {source}"))]
    Tls {
        /// What went wrong (names the file, never its contents).
        source: crate::client::connection::TlsConfigError,
    },
}

/// `security_protocol`, parsed.
///
/// ```
/// use kafka_event_bus::bus::SecurityProtocol;
///
/// let p: SecurityProtocol = "SASL_SSL".parse().unwrap();
/// assert!(p.uses_tls() && p.uses_sasl());
/// assert_eq!(p.to_string(), "SASL_SSL");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol, in eventsource-py's order.
    pub const ALL: [SecurityProtocol; 4] = [Self::Plaintext, Self::Ssl, Self::SaslPlaintext, Self::SaslSsl];

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections use TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecurityProtocol {
    type Err = ConfigError;

    /// Exact, case-sensitive names, as eventsource-py checks them.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ConfigError::InvalidSecurityProtocol { value: s.to_owned() })
    }
}

/// `auto_offset_reset`, parsed: the client's own type, so the bus config hands it to the consumer as is.
///
/// ```
/// use kafka_event_bus::bus::OffsetReset;
///
/// assert_eq!("latest".parse::<OffsetReset>().unwrap(), OffsetReset::Latest);
/// assert!("none".parse::<OffsetReset>().is_err());
/// ```
#[cfg(feature = "client")]
pub use crate::client::subscription::OffsetReset;

/// `auto_offset_reset`, parsed (the build without the `client` feature has no consumer, and no
/// `client::subscription::OffsetReset`).
#[cfg(not(feature = "client"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OffsetReset {
    /// Start at the log start.
    #[default]
    Earliest,
    /// Start at the log end (only new records).
    Latest,
}

impl FromStr for OffsetReset {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "earliest" => Ok(Self::Earliest),
            "latest" => Ok(Self::Latest),
            _ => Err(ConfigError::InvalidOffsetReset { value: s.to_owned() }),
        }
    }
}

/// `corrupt_batch_policy`, parsed: what the bus does with a record batch that cannot be decoded.
///
/// ```
/// use kafka_event_bus::bus::CorruptBatchPolicy;
///
/// assert_eq!("stop".parse::<CorruptBatchPolicy>().unwrap(), CorruptBatchPolicy::Stop);
/// assert!("skip".parse::<CorruptBatchPolicy>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CorruptBatchPolicy {
    /// One DLQ record per batch (its bytes, reason `corrupt_batch`); the partition goes on after it
    /// once the DLQ acknowledged it. Stops instead when the DLQ is disabled.
    #[default]
    DeadLetter,
    /// The partition stops at the batch (ERROR log); the committed offset stays before it.
    Stop,
}

impl FromStr for CorruptBatchPolicy {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "dead_letter" => Ok(Self::DeadLetter),
            "stop" => Ok(Self::Stop),
            _ => Err(ConfigError::InvalidCorruptBatchPolicy { value: s.to_owned() }),
        }
    }
}

const SASL_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
/// The wire carries timeouts and sizes as int32.
const I32_MAX: u64 = i32::MAX as u64;
/// The producer's largest Produce request (Kafka's `max.request.size` default): the buffer must hold one.
const MAX_REQUEST_SIZE: usize = 1 << 20;

pub(super) fn out_of_range(
    field: &'static str,
    value: impl fmt::Display,
    expected: &'static str,
) -> ConfigError {
    ConfigError::OutOfRange {
        field,
        value: value.to_string(),
        expected,
    }
}

impl KafkaEventBusConfig {
    /// Checks every setting: first eventsource-py's security rules, in its order and with its messages,
    /// then what it does not check (names, acks, compression, offset reset, timeouts,
    /// sizes, retries).
    ///
    /// # Errors
    ///
    /// The first rule broken, as a [`ConfigError`].
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::bus::KafkaEventBusConfig;
    ///
    /// let mut config = KafkaEventBusConfig::default();
    /// config.validate()?;
    /// config.heartbeat_interval_ms = config.session_timeout_ms;
    /// assert!(config.validate().is_err());
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_security()?;
        self.validate_names()?;
        self.validate_producer()?;
        self.validate_consumer()?;
        self.validate_retries()
    }

    /// The parsed [`security_protocol`](Self::security_protocol).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSecurityProtocol`].
    ///
    /// ```
    /// use kafka_event_bus::bus::{KafkaEventBusConfig, SecurityProtocol};
    ///
    /// let config = KafkaEventBusConfig::builder().security_protocol("SSL").build()?;
    /// assert_eq!(config.protocol()?, SecurityProtocol::Ssl);
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn protocol(&self) -> Result<SecurityProtocol, ConfigError> {
        self.security_protocol.parse()
    }

    /// The parsed [`auto_offset_reset`](Self::auto_offset_reset).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidOffsetReset`].
    pub fn offset_reset(&self) -> Result<OffsetReset, ConfigError> {
        self.auto_offset_reset.parse()
    }

    /// The parsed [`corrupt_batch_policy`](Self::corrupt_batch_policy).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidCorruptBatchPolicy`].
    pub fn corrupt_batches(&self) -> Result<CorruptBatchPolicy, ConfigError> {
        self.corrupt_batch_policy.parse()
    }

    /// The parsed [`compression_type`](Self::compression_type); `None` and `"none"` are
    /// [`Compression::None`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidCompression`].
    ///
    /// ```
    /// use kafka_event_bus::bus::KafkaEventBusConfig;
    /// use kafka_event_bus::protocol::Compression;
    ///
    /// let mut config = KafkaEventBusConfig::default();
    /// assert_eq!(config.compression()?, Compression::Gzip);
    /// config.compression_type = Some("none".into());
    /// assert_eq!(config.compression()?, Compression::None);
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn compression(&self) -> Result<Compression, ConfigError> {
        match self.compression_type.as_deref() {
            None | Some("none") => Ok(Compression::None),
            Some(name) => name.parse().map_err(|_| ConfigError::InvalidCompression {
                value: name.to_owned(),
            }),
        }
    }

    pub(super) fn validate_security(&self) -> Result<(), ConfigError> {
        let protocol = self.protocol()?;
        if protocol.uses_sasl() {
            let mechanism = self
                .sasl_mechanism
                .as_deref()
                .filter(|m| !m.is_empty())
                .ok_or_else(|| ConfigError::SaslMechanismRequired {
                    protocol: self.security_protocol.clone(),
                })?;
            if !SASL_MECHANISMS.contains(&mechanism) {
                return Err(ConfigError::InvalidSaslMechanism {
                    value: mechanism.to_owned(),
                });
            }
            let filled = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
            if !filled(&self.sasl_username) || !filled(&self.sasl_password) {
                return Err(ConfigError::SaslCredentialsRequired);
            }
        }
        if protocol.uses_tls() {
            let set = |p: &Option<std::path::PathBuf>| p.as_ref().is_some_and(|p| !p.as_os_str().is_empty());
            match (set(&self.ssl_certfile), set(&self.ssl_keyfile)) {
                (true, false) => return Err(ConfigError::SslKeyfileRequired),
                (false, true) => return Err(ConfigError::SslCertfileRequired),
                _ => {}
            }
        }
        Ok(())
    }

    fn validate_names(&self) -> Result<(), ConfigError> {
        let bootstrap = |reason| ConfigError::InvalidBootstrapServers {
            value: self.bootstrap_servers.clone(),
            reason,
        };
        let servers: Vec<&str> = self
            .bootstrap_servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() {
            return Err(bootstrap("Must name at least one host:port"));
        }
        for server in servers {
            let valid = server
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
            if !valid {
                return Err(bootstrap("Every entry must be host:port"));
            }
        }
        for (field, value) in [
            ("topic_prefix", &self.topic_prefix),
            ("consumer_group", &self.consumer_group),
            ("consumer_name", &self.consumer_name),
            ("dlq_topic_suffix", &self.dlq_topic_suffix),
        ] {
            if value.is_empty() {
                return Err(ConfigError::Empty { field });
            }
        }
        if self.dlq_consumer_group.as_deref() == Some("") {
            return Err(ConfigError::Empty {
                field: "dlq_consumer_group",
            });
        }
        check_topic(self.topic_name(), "topic_prefix")?;
        check_topic(self.dlq_topic_name(), "dlq_topic_suffix")
    }

    fn validate_producer(&self) -> Result<(), ConfigError> {
        if !matches!(self.acks.as_str(), "0" | "1" | "all" | "-1") {
            return Err(ConfigError::InvalidAcks {
                value: self.acks.clone(),
            });
        }
        self.compression()?;
        if self.producer_max_batch_bytes == 0 || self.producer_max_batch_bytes as u64 > I32_MAX {
            return Err(out_of_range(
                "producer_max_batch_bytes",
                self.producer_max_batch_bytes,
                "between 1 and 2147483647",
            ));
        }
        if self.linger_ms > I32_MAX {
            return Err(out_of_range("linger_ms", self.linger_ms, "at most 2147483647"));
        }
        if self.enable_idempotence == Some(true) && !matches!(self.acks.as_str(), "all" | "-1") {
            return Err(ConfigError::IdempotenceRequiresAcksAll {
                acks: self.acks.clone(),
            });
        }
        check_millis("request_timeout", self.request_timeout)?;
        check_millis("delivery_timeout", self.delivery_timeout)?;
        check_millis("bootstrap_timeout", self.bootstrap_timeout)?;
        if self.delivery_timeout < self.linger() + self.request_timeout {
            return Err(out_of_range(
                "delivery_timeout",
                format!("{:?}", self.delivery_timeout),
                "at least linger_ms + request_timeout",
            ));
        }
        if self.buffer_memory < self.producer_max_batch_bytes.max(MAX_REQUEST_SIZE) {
            return Err(out_of_range(
                "buffer_memory",
                self.buffer_memory,
                "at least producer_max_batch_bytes and 1048576 (the largest Produce request)",
            ));
        }
        Ok(())
    }

    fn validate_consumer(&self) -> Result<(), ConfigError> {
        self.offset_reset()?;
        check_millis("commit_interval", self.commit_interval)?;
        self.corrupt_batches()?;
        self.assignment_strategies()?;
        if self.max_uncompressed_batch_bytes == 0 {
            return Err(out_of_range("max_uncompressed_batch_bytes", 0, "at least 1"));
        }
        for (field, value) in [
            ("session_timeout_ms", self.session_timeout_ms),
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("max_poll_interval_ms", self.max_poll_interval_ms),
            ("fetch_max_bytes", self.fetch_max_bytes as u64),
            ("max_partition_fetch_bytes", self.max_partition_fetch_bytes as u64),
        ] {
            if value == 0 || value > I32_MAX {
                return Err(out_of_range(field, value, "between 1 and 2147483647"));
            }
        }
        if self.heartbeat_interval_ms >= self.session_timeout_ms {
            return Err(ConfigError::HeartbeatNotBelowSession {
                heartbeat_interval_ms: self.heartbeat_interval_ms,
                session_timeout_ms: self.session_timeout_ms,
            });
        }
        if self.shutdown_timeout.is_zero() {
            return Err(out_of_range("shutdown_timeout", "0s", "greater than zero"));
        }
        if self.max_in_flight_per_partition == 0 {
            return Err(out_of_range("max_in_flight_per_partition", 0, "at least 1"));
        }
        if self.fetch_max_wait.as_millis() > u128::from(I32_MAX) {
            return Err(out_of_range(
                "fetch_max_wait",
                format!("{:?}", self.fetch_max_wait),
                "at most i32::MAX milliseconds",
            ));
        }
        Ok(())
    }

    fn validate_retries(&self) -> Result<(), ConfigError> {
        if self.retry_base_delay.is_zero() {
            return Err(out_of_range("retry_base_delay", "0s", "greater than zero"));
        }
        if self.retry_max_delay.is_zero() {
            return Err(out_of_range("retry_max_delay", "0s", "greater than zero"));
        }
        if self.retry_max_delay < self.retry_base_delay {
            return Err(ConfigError::RetryMaxBelowBase {
                base: self.retry_base_delay,
                max: self.retry_max_delay,
            });
        }
        if !(0.0..=1.0).contains(&self.retry_jitter) {
            return Err(out_of_range("retry_jitter", self.retry_jitter, "between 0 and 1"));
        }
        // Retries run in place, inside the partition's worker: their delays added up must stay below
        // max_poll_interval, or the member would be evicted while still retrying.
        let policy = crate::dispatch::RetryPolicy::new(
            self.max_retries,
            self.retry_base_delay,
            self.retry_max_delay,
            self.retry_jitter,
        );
        if let Ok(policy) = policy {
            let budget: Duration = (0..self.max_retries.min(1024))
                .map(|n| policy.delay(n, 1.0))
                .sum();
            if budget.as_millis() >= u128::from(self.max_poll_interval_ms) {
                return Err(out_of_range(
                    "max_retries",
                    format!("{} (retry delays add up to {budget:?})", self.max_retries),
                    "retry delays that add up to less than max_poll_interval_ms",
                ));
            }
        }
        Ok(())
    }
}

/// A timeout the wire carries in int32 milliseconds: above zero and at most `i32::MAX` ms.
fn check_millis(field: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() || value.as_millis() > u128::from(I32_MAX) {
        return Err(out_of_range(
            field,
            format!("{value:?}"),
            "greater than zero and at most i32::MAX milliseconds",
        ));
    }
    Ok(())
}

/// Kafka's topic rules: at most 249 characters of `[a-zA-Z0-9._-]` (the names here always end in
/// `.stream...`, so never `.` or `..`).
fn check_topic(topic: String, field: &'static str) -> Result<(), ConfigError> {
    let reason = if topic.len() > 249 {
        Some("longer than 249 characters")
    } else if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::InvalidTopicName { topic, field, reason }),
        None => Ok(()),
    }
}
