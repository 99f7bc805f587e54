//! [`KafkaEventBusConfig`]: every setting of eventsource-py's `KafkaEventBusConfig`, with the same
//! names, defaults (but `fetch_max_bytes`'s) and meaning, plus the checks eventsource-py lacks.
//!
//! Owns the config struct, its builder ([`KafkaEventBusConfigBuilder`]) and its typed setters
//! (`config/typed.rs`), validation ([`ConfigError`], in `config/validate.rs`), the assignment strategies
//! (`config/assignment.rs`), `from_env` (`config/env.rs`), `from_properties` (`config/properties.rs`),
//! `Deserialize` (`config/file.rs`, feature `serde`) and the conversions into the client's own settings
//! (`client_config`, `producer_config`; feature `client`). May use
//! [`crate::event`] (topic names), [`crate::protocol`] (compression names) and, with `client`,
//! [`crate::client`] (TLS, SASL and producer settings). No I/O except reading the TLS files in
//! `client_config` and the host name for the default `consumer_name`.
//!
//! Invariants:
//! - Fields are plain values, as in eventsource-py, so a config can be read from anywhere (environment,
//!   files) and checked in one place: [`KafkaEventBusConfig::validate`]. The conversions validate first.
//! - `Debug` (and every log line) shows `sasl_password` and `ssl_keyfile` as `"***"`, as eventsource-py's
//!   `get_sanitized_config` does.
//!
//! Deliberate differences from eventsource-py (see `docs/spec-bugs.md`):
//! - SSL and SASL_SSL connect (eventsource-py's fail at `connect()`), and `acks` "0"/"1" work.
//! - `ssl_check_hostname = false` still verifies the certificate chain (eventsource-py turned all
//!   verification off); only the name check is skipped.
//! - The retry settings are checked with the rest, not when the bus is built; `consumer_name` becomes
//!   the client id of every connection (eventsource-py left the producer on aiokafka's default).
//! - SASL settings under PLAINTEXT or SSL, and SSL files under a non-SSL protocol, are ignored with a
//!   warning (eventsource-py passed them on silently).
//! - `fetch_max_bytes` defaults to 2 MiB, not 50 MiB: a response stays in memory until its last record
//!   is handled, so its size is the consumer's memory floor.

mod assignment;
mod env;
#[cfg(feature = "serde")]
mod file;
#[cfg(feature = "serde")]
use file::seconds;
mod properties;
mod typed;
mod validate;

use std::{fmt, path::PathBuf, time::Duration};

use tracing::warn;

pub use assignment::AssignmentStrategy;
pub use validate::{ConfigError, CorruptBatchPolicy, OffsetReset, SecurityProtocol};

/// Settings of the Kafka event bus: where the cluster is, topic and group names, producer and
/// consumer tuning, retries and the dead-letter queue, and security.
///
/// Every field has eventsource-py's name, default and meaning (but for
/// [`fetch_max_bytes`](Self::fetch_max_bytes)'s default: 2 MiB, not 50 MiB); durations whose Python name has no unit
/// (`retry_base_delay`, `retry_max_delay`, `shutdown_timeout`) are [`Duration`]s here. Build one with
/// [`builder`](Self::builder) (which validates), [`from_env`](Self::from_env), or start from
/// [`Default`] and set fields, then call [`validate`](Self::validate).
///
/// # Example
///
/// ```
/// use kafka_event_bus::bus::KafkaEventBusConfig;
///
/// let config = KafkaEventBusConfig::builder()
///     .bootstrap_servers("kafka:9093")
///     .topic_prefix("myapp.events")
///     .consumer_group("my-service")
///     .security_protocol("SASL_SSL")
///     .sasl_mechanism("SCRAM-SHA-512")
///     .sasl_username("myapp")
///     .sasl_password("secret")
///     .ssl_cafile("/etc/kafka/ssl/ca.crt")
///     .build()?;
/// assert_eq!(config.topic_name(), "myapp.events.stream");
/// assert_eq!(config.dlq_topic_name(), "myapp.events.stream.dlq");
/// assert!(!format!("{config:?}").contains("secret"));
/// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
/// ```
#[derive(Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct KafkaEventBusConfig {
    /// Comma-separated `host:port` list used to discover the cluster. Default `"localhost:9092"`.
    pub bootstrap_servers: String,
    /// Topic prefix: the main topic is `"{topic_prefix}.stream"`. Default `"events"`.
    pub topic_prefix: String,
    /// The consumer group of the main consumer (also the `dlq_consumer_group` DLQ header). Default
    /// `"default"`.
    pub consumer_group: String,
    /// The client id of every connection. Default `"{hostname}-{8 random hex digits}"`, drawn when the
    /// config is created (as eventsource-py's `__post_init__` does).
    pub consumer_name: String,
    /// Producer acknowledgements: `"0"`, `"1"` or `"all"` (`"-1"` is `"all"`). Default `"all"`.
    pub acks: String,
    /// Batch compression: `gzip`, `snappy`, `lz4`, `zstd`, or `None` (also `"none"`). Default `gzip`.
    pub compression_type: Option<String>,
    /// The producer's batch size in bytes (`batch_size` in eventsource-py 0.8.1). Default 16384.
    #[cfg_attr(feature = "serde", serde(alias = "batch_size"))]
    pub producer_max_batch_bytes: usize,
    /// How long the producer waits for more records before sending a batch. Default 5.
    pub linger_ms: u64,
    /// Where a group without a committed offset starts: `"earliest"` or `"latest"`. Default
    /// `"earliest"`. (The DLQ readers always start at the earliest offset.)
    pub auto_offset_reset: String,
    /// The group session timeout. Default 30000.
    pub session_timeout_ms: u64,
    /// How often the member heartbeats; must be below `session_timeout_ms`. Default 10000.
    pub heartbeat_interval_ms: u64,
    /// The longest a handler chain may take before the member is evicted from the group. Default
    /// 300000.
    pub max_poll_interval_ms: u64,
    /// The most bytes one fetch response may carry (the first batch of the response's first non-empty
    /// partition comes whole even when larger). Default 2097152 (2 MiB; eventsource-py and Kafka's clients: 50 MiB): the records of a
    /// response are read in place, so a response stays resident until its last record is handled and
    /// its buffer is kept for the next one; the response size is the consumer's memory floor. Raise it
    /// for a distant broker (a round trip of tens of milliseconds) when one bus must read more than
    /// ~2 MiB per round trip from one broker.
    pub fetch_max_bytes: usize,
    /// The most bytes one partition may contribute to a fetch response. Default 1048576.
    pub max_partition_fetch_bytes: usize,
    /// How often a failed delivery is retried (in place, by the partition's worker) before it goes to
    /// the DLQ; 0 sends it straight there. Default 3.
    pub max_retries: u32,
    /// The first retry delay; it doubles per attempt. Default 1 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub retry_base_delay: Duration,
    /// The largest retry delay. Default 60 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub retry_max_delay: Duration,
    /// Symmetric jitter as a fraction of the delay, in `[0, 1]`. Default 0.1.
    pub retry_jitter: f64,
    /// Whether exhausted and undecodable messages go to the DLQ topic (else they are logged and
    /// dropped). Default `true`.
    pub enable_dlq: bool,
    /// What happens to a valid event of a type this bus has no typed subscription for when no wildcard
    /// handler takes it either: `false` (the default) consumes and counts it with no handler, so a group
    /// may subscribe to only some of a topic's types; `true` sends it to the DLQ as eventsource-py does
    /// (`deserialization_error`, "Unknown event type: X"; needs `enable_dlq`, else it is logged and
    /// counted in `events_dropped`).
    pub dead_letter_unknown_types: bool,
    /// What happens to a record batch of the main topic that cannot be decoded (CRC mismatch, unknown
    /// codec, failed decompression, a batch decompressing past `max_uncompressed_batch_bytes`, malformed
    /// records, an old message format), also when fetched a second time: `"dead_letter"` (the default)
    /// sends one DLQ record per batch (`corrupt_batch`, the batch's bytes as value) and goes on after it
    /// once the DLQ acknowledged it; `"stop"` stops the partition at the batch with an ERROR log (the
    /// committed offset stays before it, as Java's consumer with `check.crcs`). With `enable_dlq` off the
    /// partition stops too. Either way the batch is counted (`corrupt_batches`, the
    /// `kafka.eventbus.batches.corrupt` metric).
    pub corrupt_batch_policy: String,
    /// The most bytes one compressed batch may decompress to; a larger one cannot be decoded (see
    /// `corrupt_batch_policy`). Default 134217728 (128 MiB).
    pub max_uncompressed_batch_bytes: usize,
    /// The DLQ topic is `"{topic_prefix}.stream{dlq_topic_suffix}"`. Default `".dlq"`.
    pub dlq_topic_suffix: String,
    /// Accepted for compatibility with eventsource-py's config and never read: DLQ reads never join a
    /// consumer group. Default `None`.
    pub dlq_consumer_group: Option<String>,
    /// A DLQ message replayed this many times is not replayed again unless forced. Default 3.
    pub dlq_max_replay_attempts: u32,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`. Default `"PLAINTEXT"`.
    pub security_protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; required by the SASL protocols.
    pub sasl_mechanism: Option<String>,
    /// The SASL user; required by the SASL protocols.
    pub sasl_username: Option<String>,
    /// The SASL password; required by the SASL protocols. Never shown by `Debug` or logs.
    pub sasl_password: Option<String>,
    /// PEM file of the CA certificates to trust (SSL protocols); `None` trusts the system's roots.
    pub ssl_cafile: Option<PathBuf>,
    /// PEM client certificate chain for mTLS; requires `ssl_keyfile`.
    pub ssl_certfile: Option<PathBuf>,
    /// PEM private key of `ssl_certfile`; requires `ssl_certfile`. Shown as `"***"`.
    pub ssl_keyfile: Option<PathBuf>,
    /// Whether the broker's certificate must name the host connected to. Default `true`.
    pub ssl_check_hostname: bool,
    /// Ready TLS settings for the SSL protocols (aiokafka's `ssl_context`): when set, they are used as
    /// they are and `ssl_cafile`, `ssl_certfile`, `ssl_keyfile` and `ssl_check_hostname` are ignored.
    /// [`TlsConfig::from_rustls`](crate::client::connection::TlsConfig::from_rustls) takes a rustls
    /// `ClientConfig` built on any crypto provider. Default `None`.
    #[cfg(feature = "client")]
    #[cfg_attr(feature = "serde", serde(skip))]
    pub ssl_context: Option<crate::client::connection::TlsConfig>,
    /// Whether the bus records traces. Default `true`.
    pub enable_tracing: bool,
    /// Whether the bus records metrics. Default `true`.
    pub enable_metrics: bool,
    /// The default time `shutdown()` may take. Default 30 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub shutdown_timeout: Duration,
    /// How many events of one partition may be handled at once (not in eventsource-py). 1 (the default)
    /// handles a partition's events one after another. Above 1, events of *different* aggregates (record
    /// keys) run concurrently, up to this many in flight, while events of one aggregate still run in
    /// order; offsets are committed only past events that are all settled.
    pub max_in_flight_per_partition: usize,
    /// Static membership (`group.instance.id`, not in eventsource-py): a member restarted within the
    /// session timeout gets its partitions back without a rebalance. Default `None`.
    pub group_instance_id: Option<String>,
    /// How long a fetch may wait on the broker for new records. Default 500 ms (Kafka's
    /// `fetch.max.wait.ms`); lower it for latency on brokers that do not answer as soon as data arrives.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub fetch_max_wait: Duration,
    /// How long a published record may take from `publish` to the broker's acknowledgement, retries
    /// included, before it fails (Kafka's `delivery.timeout.ms`). Must be at least `linger_ms` +
    /// `request_timeout`. Default 120 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub delivery_timeout: Duration,
    /// The most bytes of records the producer buffers (waiting or in flight) at once; beyond it a
    /// publish waits for room instead of growing memory (Kafka's `buffer.memory`). Default 33554432
    /// (32 MiB).
    pub buffer_memory: usize,
    /// How long one request (Produce, group and metadata requests) may wait for the broker's answer
    /// before it fails and is retried (Kafka's `request.timeout.ms`). Default 30 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub request_timeout: Duration,
    /// Whether the producer is idempotent (Kafka's `enable.idempotence`): retries then never duplicate
    /// or reorder records. `None` (the default) turns it on exactly when `acks` is `"all"`; `Some(true)`
    /// requires `acks = "all"`.
    pub enable_idempotence: Option<bool>,
    /// The partition assignors the member offers, preferred first, comma-separated, as Kafka's
    /// `partition.assignment.strategy`: `range`, `roundrobin`, `cooperative-sticky`. The group uses the
    /// cooperative protocol only when every strategy listed is cooperative. Default `"range,roundrobin"`
    /// (aiokafka members, as eventsource-py's, only speak `roundrobin`).
    pub partition_assignment_strategy: String,
    /// How long `connect()` keeps trying the bootstrap servers before it fails with
    /// [`Error::BootstrapTimeout`](crate::bus::Error); every failed round is logged at INFO with each
    /// address and its cause. Default 30 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub bootstrap_timeout: Duration,
    /// How often the consumer commits the offsets of settled events (Kafka's
    /// `auto.commit.interval.ms`; not in eventsource-py, which commits after every event). A commit
    /// only ever passes events that were handled or acknowledged in the DLQ, and a revoked partition
    /// or `shutdown()` commits at once; the interval bounds how much a crash (`kill -9`) redelivers.
    /// Default 5 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub commit_interval: Duration,
}

impl Default for KafkaEventBusConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "localhost:9092".into(),
            topic_prefix: crate::event::DEFAULT_TOPIC_PREFIX.into(),
            consumer_group: "default".into(),
            consumer_name: default_consumer_name(),
            acks: "all".into(),
            compression_type: Some("gzip".into()),
            producer_max_batch_bytes: 16_384,
            linger_ms: 5,
            auto_offset_reset: "earliest".into(),
            session_timeout_ms: 30_000,
            heartbeat_interval_ms: 10_000,
            max_poll_interval_ms: 300_000,
            fetch_max_bytes: 2 << 20,
            max_partition_fetch_bytes: 1_048_576,
            max_retries: 3,
            retry_base_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(60),
            retry_jitter: 0.1,
            enable_dlq: true,
            dead_letter_unknown_types: false,
            corrupt_batch_policy: "dead_letter".into(),
            max_uncompressed_batch_bytes: 128 << 20,
            dlq_topic_suffix: crate::event::DEFAULT_DLQ_SUFFIX.into(),
            dlq_consumer_group: None,
            dlq_max_replay_attempts: 3,
            security_protocol: "PLAINTEXT".into(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_cafile: None,
            ssl_certfile: None,
            ssl_keyfile: None,
            ssl_check_hostname: true,
            #[cfg(feature = "client")]
            ssl_context: None,
            enable_tracing: true,
            enable_metrics: true,
            shutdown_timeout: Duration::from_secs(30),
            max_in_flight_per_partition: 1,
            group_instance_id: None,
            fetch_max_wait: Duration::from_millis(500),
            delivery_timeout: Duration::from_secs(120),
            buffer_memory: 32 << 20,
            request_timeout: Duration::from_secs(30),
            enable_idempotence: None,
            partition_assignment_strategy: "range,roundrobin".into(),
            bootstrap_timeout: Duration::from_secs(30),
            commit_interval: Duration::from_secs(5),
        }
    }
}

/// `"{hostname}-{8 hex digits}"`, as eventsource-py names consumers.
fn default_consumer_name() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kafka-event-bus".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

impl KafkaEventBusConfig {
    /// A builder starting from the defaults.
    ///
    /// # Example
    ///
    /// ```
    /// let config = kafka_event_bus::bus::KafkaEventBusConfig::builder()
    ///     .acks("1")
    ///     .no_compression()
    ///     .build()?;
    /// assert_eq!(config.compression_type, None);
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn builder() -> KafkaEventBusConfigBuilder {
        KafkaEventBusConfigBuilder {
            config: Self::default(),
        }
    }

    /// The main topic: `"{topic_prefix}.stream"`.
    ///
    /// ```
    /// let config = kafka_event_bus::bus::KafkaEventBusConfig::default();
    /// assert_eq!(config.topic_name(), "events.stream");
    /// ```
    pub fn topic_name(&self) -> String {
        crate::event::topic_name(&self.topic_prefix)
    }

    /// The DLQ topic: `"{topic_prefix}.stream{dlq_topic_suffix}"`.
    ///
    /// ```
    /// let config = kafka_event_bus::bus::KafkaEventBusConfig::default();
    /// assert_eq!(config.dlq_topic_name(), "events.stream.dlq");
    /// ```
    pub fn dlq_topic_name(&self) -> String {
        crate::event::dlq_topic_name(&self.topic_prefix, &self.dlq_topic_suffix)
    }

    /// [`session_timeout_ms`](Self::session_timeout_ms) as a [`Duration`].
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }

    /// [`heartbeat_interval_ms`](Self::heartbeat_interval_ms) as a [`Duration`].
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// [`max_poll_interval_ms`](Self::max_poll_interval_ms) as a [`Duration`].
    pub fn max_poll_interval(&self) -> Duration {
        Duration::from_millis(self.max_poll_interval_ms)
    }

    /// [`linger_ms`](Self::linger_ms) as a [`Duration`].
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    /// Logs eventsource-py's warnings (and ours) for settings that work but deserve attention:
    /// PLAINTEXT, SASL without TLS, hostname checks off, settings the protocol ignores, a commit interval
    /// longer than `max_poll_interval_ms` (a millisecond value given in seconds). Called once per
    /// bus, when `KafkaEventBus` is built; building or reading a config logs nothing.
    pub fn log_warnings(&self) {
        for warning in self.warnings() {
            warn!(security_protocol = %self.security_protocol, "{warning}");
        }
    }

    /// The warnings [`log_warnings`](Self::log_warnings) logs, for callers with their own reporting.
    ///
    /// ```
    /// let config = kafka_event_bus::bus::KafkaEventBusConfig::default();
    /// assert_eq!(
    ///     config.warnings(),
    ///     ["Using PLAINTEXT security protocol - not recommended for production"]
    /// );
    /// ```
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let protocol = self.security_protocol.as_str();
        if protocol == "PLAINTEXT" {
            out.push("Using PLAINTEXT security protocol - not recommended for production");
        }
        if protocol == "SASL_PLAINTEXT" {
            out.push("Using SASL without SSL - credentials sent in plain text");
        }
        if protocol.contains("SSL") && !self.ssl_check_hostname {
            out.push("SSL hostname verification disabled - vulnerable to MITM attacks");
        }
        let sasl_set =
            self.sasl_mechanism.is_some() || self.sasl_username.is_some() || self.sasl_password.is_some();
        if sasl_set && !protocol.starts_with("SASL_") {
            out.push("sasl_* settings are ignored: security_protocol is not SASL_PLAINTEXT or SASL_SSL");
        }
        let ssl_set = self.ssl_cafile.is_some() || self.ssl_certfile.is_some() || self.ssl_keyfile.is_some();
        if ssl_set && !protocol.contains("SSL") {
            out.push("ssl_* files are ignored: security_protocol is not SSL or SASL_SSL");
        }
        if self.commit_interval > self.max_poll_interval() {
            out.push(
                "commit_interval is longer than max_poll_interval_ms: a crash redelivers that much work \
                 (KAFKA_COMMIT_INTERVAL is in seconds, not milliseconds)",
            );
        }
        out
    }
}

impl fmt::Debug for KafkaEventBusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |set: bool| set.then_some("***");
        f.debug_struct("KafkaEventBusConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic_prefix", &self.topic_prefix)
            .field("consumer_group", &self.consumer_group)
            .field("consumer_name", &self.consumer_name)
            .field("acks", &self.acks)
            .field("compression_type", &self.compression_type)
            .field("producer_max_batch_bytes", &self.producer_max_batch_bytes)
            .field("linger_ms", &self.linger_ms)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("session_timeout_ms", &self.session_timeout_ms)
            .field("heartbeat_interval_ms", &self.heartbeat_interval_ms)
            .field("max_poll_interval_ms", &self.max_poll_interval_ms)
            .field("fetch_max_bytes", &self.fetch_max_bytes)
            .field("max_partition_fetch_bytes", &self.max_partition_fetch_bytes)
            .field("max_retries", &self.max_retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("retry_jitter", &self.retry_jitter)
            .field("enable_dlq", &self.enable_dlq)
            .field("dead_letter_unknown_types", &self.dead_letter_unknown_types)
            .field("corrupt_batch_policy", &self.corrupt_batch_policy)
            .field("max_uncompressed_batch_bytes", &self.max_uncompressed_batch_bytes)
            .field("dlq_topic_suffix", &self.dlq_topic_suffix)
            .field("dlq_consumer_group", &self.dlq_consumer_group)
            .field("dlq_max_replay_attempts", &self.dlq_max_replay_attempts)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &redacted(self.sasl_password.is_some()))
            .field("ssl_cafile", &self.ssl_cafile)
            .field("ssl_certfile", &self.ssl_certfile)
            .field("ssl_keyfile", &redacted(self.ssl_keyfile.is_some()))
            .field("ssl_check_hostname", &self.ssl_check_hostname)
            .field("enable_tracing", &self.enable_tracing)
            .field("enable_metrics", &self.enable_metrics)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("max_in_flight_per_partition", &self.max_in_flight_per_partition)
            .field("group_instance_id", &self.group_instance_id)
            .field("fetch_max_wait", &self.fetch_max_wait)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("buffer_memory", &self.buffer_memory)
            .field("request_timeout", &self.request_timeout)
            .field("enable_idempotence", &self.enable_idempotence)
            .field(
                "partition_assignment_strategy",
                &self.partition_assignment_strategy,
            )
            .field("bootstrap_timeout", &self.bootstrap_timeout)
            .field("commit_interval", &self.commit_interval)
            .field("ssl_context", &self.ssl_context_for_debug())
            .finish()
    }
}

/// Builds a [`KafkaEventBusConfig`] from the defaults; [`build`](Self::build) validates it.
///
/// Each setter is named after the field it sets; optional fields take the value itself (the setter
/// wraps it in `Some`), and [`no_compression`](Self::no_compression) clears `compression_type`.
/// Settings stored as strings also have a typed setter named after their parsed getter:
/// [`protocol`](Self::protocol), [`compression`](Self::compression),
/// [`offset_reset`](Self::offset_reset), [`corrupt_batches`](Self::corrupt_batches),
/// [`assignment_strategies`](Self::assignment_strategies), and with the `client` feature
/// `producer_acks` and `sasl` (mechanism, user and password at once).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kafka_event_bus::bus::KafkaEventBusConfig;
///
/// let config = KafkaEventBusConfig::builder()
///     .session_timeout_ms(6_000)
///     .heartbeat_interval_ms(1_000)
///     .max_retries(5)
///     .retry_base_delay(Duration::from_millis(200))
///     .build()?;
/// assert_eq!(config.session_timeout(), Duration::from_secs(6));
/// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct KafkaEventBusConfigBuilder {
    config: KafkaEventBusConfig,
}

macro_rules! setters {
    ($($kind:ident $field:ident: $ty:ty;)*) => {
        $(setters!(@one $kind $field: $ty);)*
    };
    (@one value $field:ident: $ty:ty) => {
        #[doc = concat!("Sets [`", stringify!($field), "`](KafkaEventBusConfig::", stringify!($field), ").")]
        pub fn $field(mut self, value: $ty) -> Self {
            self.config.$field = value;
            self
        }
    };
    (@one string $field:ident: $ty:ty) => {
        #[doc = concat!("Sets [`", stringify!($field), "`](KafkaEventBusConfig::", stringify!($field), ").")]
        pub fn $field(mut self, value: impl Into<$ty>) -> Self {
            self.config.$field = value.into();
            self
        }
    };
    (@one some $field:ident: $ty:ty) => {
        #[doc = concat!("Sets [`", stringify!($field), "`](KafkaEventBusConfig::", stringify!($field), ").")]
        pub fn $field(mut self, value: impl Into<$ty>) -> Self {
            self.config.$field = Some(value.into());
            self
        }
    };
}

impl KafkaEventBusConfig {
    #[cfg(feature = "client")]
    fn ssl_context_for_debug(&self) -> Option<&dyn fmt::Debug> {
        self.ssl_context.as_ref().map(|tls| tls as &dyn fmt::Debug)
    }

    #[cfg(not(feature = "client"))]
    fn ssl_context_for_debug(&self) -> Option<&dyn fmt::Debug> {
        None
    }
}

impl KafkaEventBusConfigBuilder {
    /// Sets [`ssl_context`](KafkaEventBusConfig::ssl_context): TLS settings built in code, used as
    /// they are under the SSL protocols.
    #[cfg(feature = "client")]
    pub fn ssl_context(mut self, tls: crate::client::connection::TlsConfig) -> Self {
        self.config.ssl_context = Some(tls);
        self
    }

    setters! {
        string bootstrap_servers: String;
        string topic_prefix: String;
        string consumer_group: String;
        string consumer_name: String;
        string acks: String;
        some compression_type: String;
        value producer_max_batch_bytes: usize;
        value linger_ms: u64;
        string auto_offset_reset: String;
        value session_timeout_ms: u64;
        value heartbeat_interval_ms: u64;
        value max_poll_interval_ms: u64;
        value fetch_max_bytes: usize;
        value max_partition_fetch_bytes: usize;
        value max_retries: u32;
        value retry_base_delay: Duration;
        value retry_max_delay: Duration;
        value retry_jitter: f64;
        value enable_dlq: bool;
        value dead_letter_unknown_types: bool;
        string corrupt_batch_policy: String;
        value max_uncompressed_batch_bytes: usize;
        string dlq_topic_suffix: String;
        some dlq_consumer_group: String;
        value dlq_max_replay_attempts: u32;
        string security_protocol: String;
        some sasl_mechanism: String;
        some sasl_username: String;
        some sasl_password: String;
        some ssl_cafile: PathBuf;
        some ssl_certfile: PathBuf;
        some ssl_keyfile: PathBuf;
        value ssl_check_hostname: bool;
        value enable_tracing: bool;
        value enable_metrics: bool;
        value shutdown_timeout: Duration;
        value max_in_flight_per_partition: usize;
        some group_instance_id: String;
        value fetch_max_wait: Duration;
        value delivery_timeout: Duration;
        value buffer_memory: usize;
        value request_timeout: Duration;
        some enable_idempotence: bool;
        string partition_assignment_strategy: String;
        value bootstrap_timeout: Duration;
        value commit_interval: Duration;
    }

    /// Sends batches uncompressed (`compression_type = None`).
    pub fn no_compression(mut self) -> Self {
        self.config.compression_type = None;
        self
    }

    /// Validates the settings and returns them. Their [warnings](KafkaEventBusConfig::warnings) are
    /// logged once, by the bus built from them.
    ///
    /// # Errors
    ///
    /// The first rule broken, as [`KafkaEventBusConfig::validate`] reports it.
    pub fn build(self) -> Result<KafkaEventBusConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(feature = "client")]
mod convert;

#[cfg(test)]
mod tests;
