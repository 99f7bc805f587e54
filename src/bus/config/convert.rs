//! From [`KafkaEventBusConfig`] to the client's settings: [`ClientConfig`] (bootstrap, client id, TLS,
//! SASL), [`ProducerConfig`], the consumer's [`ConsumerConfig`] and the dispatcher's `DispatchConfig`.
//! All validate first, so a config that converts is a config that validates.

use snafu::ResultExt as _;

use std::sync::Arc;

use super::{
    AssignmentStrategy, ConfigError, KafkaEventBusConfig,
    validate::{ProducerSnafu, TlsSnafu, out_of_range},
};
use crate::{
    client::{
        ClientConfig,
        connection::{SaslConfig, SaslMechanism, TlsConfig},
        consumer::ConsumerConfig,
        fetcher::FetchConfig,
        group::assignor::{Assignor, CooperativeStickyAssignor, RangeAssignor, RoundRobinAssignor},
        producer::{Acks, ProducerConfig},
        subscription::OffsetReset,
    },
    dispatch::{CorruptBatches, DispatchConfig, RetryPolicy},
    dlq::DlqAdminConfig,
};

impl KafkaEventBusConfig {
    /// The connection settings every client of the bus shares: `bootstrap_servers`, `consumer_name`
    /// as the client id, TLS for SSL and SASL_SSL (`ssl_cafile`, else the system's roots;
    /// `ssl_certfile` + `ssl_keyfile` for mTLS; `ssl_check_hostname`), and SASL for SASL_PLAINTEXT and
    /// SASL_SSL.
    ///
    /// To use a `rustls::ClientConfig` of your own (another crypto provider, custom verification), set
    /// [`ssl_context`](Self::ssl_context) to [`TlsConfig::from_rustls`].
    ///
    /// # Errors
    ///
    /// What [`validate`](Self::validate) finds, or [`ConfigError::Tls`] when a TLS file cannot be read
    /// or parsed (the files are read here, once).
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::bus::KafkaEventBusConfig;
    /// use kafka_event_bus::client::connection::SaslMechanism;
    ///
    /// let config = KafkaEventBusConfig::builder()
    ///     .bootstrap_servers("kafka-1:9092,kafka-2:9092")
    ///     .consumer_name("worker-1")
    ///     .security_protocol("SASL_PLAINTEXT")
    ///     .sasl_mechanism("SCRAM-SHA-256")
    ///     .sasl_username("orders")
    ///     .sasl_password("s3cret")
    ///     .build()?;
    /// let client = config.client_config()?;
    /// assert_eq!(client.bootstrap_servers(), ["kafka-1:9092", "kafka-2:9092"]);
    /// assert_eq!(client.client_id.as_deref(), Some("worker-1"));
    /// assert!(client.tls.is_none());
    /// assert_eq!(client.sasl.as_ref().map(|s| s.mechanism), Some(SaslMechanism::ScramSha256));
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn client_config(&self) -> Result<ClientConfig, ConfigError> {
        self.validate()?;
        let protocol = self.protocol()?;
        let mut config = ClientConfig::new(&self.bootstrap_servers)
            .with_client_id(&self.consumer_name)
            .with_request_timeout(self.request_timeout)
            .with_bootstrap_timeout(self.bootstrap_timeout);
        if protocol.uses_tls() {
            config = config.with_tls(self.tls_config()?);
        }
        if let Some(sasl) = self.sasl_config()? {
            config = config.with_sasl(sasl);
        }
        Ok(config)
    }

    /// [`ssl_context`](Self::ssl_context) when set, else the TLS settings from `ssl_cafile`,
    /// `ssl_certfile`, `ssl_keyfile` and `ssl_check_hostname`, whatever the protocol.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Tls`] for a file that cannot be read or parsed, a key that does not match
    /// the certificate, or no crypto provider usable on this machine.
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::bus::{ConfigError, KafkaEventBusConfig};
    ///
    /// let config = KafkaEventBusConfig::builder()
    ///     .security_protocol("SSL")
    ///     .ssl_cafile("/nonexistent/ca.pem")
    ///     .build()?; // validation does not read files...
    /// let err = config.tls_config().unwrap_err(); // ...building the TLS settings does
    /// assert!(matches!(err, ConfigError::Tls { .. }));
    /// assert!(err.to_string().contains("/nonexistent/ca.pem"));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn tls_config(&self) -> Result<TlsConfig, ConfigError> {
        if let Some(tls) = &self.ssl_context {
            return Ok(tls.clone());
        }
        let mut tls = TlsConfig::builder().check_hostname(self.ssl_check_hostname);
        if let Some(ca) = &self.ssl_cafile {
            tls = tls.ca_file(ca);
        }
        if let (Some(cert), Some(key)) = (&self.ssl_certfile, &self.ssl_keyfile) {
            tls = tls.client_cert(cert, key);
        }
        tls.build().context(TlsSnafu)
    }

    /// The SASL credentials under SASL_PLAINTEXT and SASL_SSL; `None` under the other protocols.
    ///
    /// # Errors
    ///
    /// The security rules of [`validate`](Self::validate).
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::bus::KafkaEventBusConfig;
    ///
    /// let mut config = KafkaEventBusConfig::default();
    /// config.sasl_mechanism = Some("PLAIN".into());
    /// config.sasl_username = Some("app".into());
    /// config.sasl_password = Some("pw".into());
    /// assert!(config.sasl_config()?.is_none()); // PLAINTEXT: SASL settings are ignored
    /// config.security_protocol = "SASL_SSL".into();
    /// assert_eq!(config.sasl_config()?.map(|s| s.username), Some("app".to_owned()));
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn sasl_config(&self) -> Result<Option<SaslConfig>, ConfigError> {
        if !self.protocol()?.uses_sasl() {
            return Ok(None);
        }
        self.validate_security()?;
        let (Some(mechanism), Some(username), Some(password)) =
            (&self.sasl_mechanism, &self.sasl_username, &self.sasl_password)
        else {
            return Err(ConfigError::SaslCredentialsRequired);
        };
        let mechanism: SaslMechanism = mechanism.parse().map_err(|_| ConfigError::InvalidSaslMechanism {
            value: mechanism.clone(),
        })?;
        Ok(Some(SaslConfig::new(mechanism, username, password)))
    }

    /// The producer settings: `acks`, `compression_type`, `producer_max_batch_bytes` (batch size),
    /// `linger_ms`, `delivery_timeout`, `buffer_memory`, `request_timeout` and `enable_idempotence`;
    /// the rest keep [`ProducerConfig`]'s defaults.
    ///
    /// # Errors
    ///
    /// What [`validate`](Self::validate) finds, or [`ConfigError::Producer`] when the producer refuses
    /// the combination (a `linger_ms` beyond its delivery timeout).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_event_bus::bus::KafkaEventBusConfig;
    /// use kafka_event_bus::client::producer::Acks;
    /// use kafka_event_bus::protocol::Compression;
    ///
    /// let config = KafkaEventBusConfig::builder().acks("1").compression_type("zstd").build()?;
    /// let producer = config.producer_config()?;
    /// assert_eq!(producer.acks, Acks::Leader);
    /// assert_eq!(producer.compression, Compression::Zstd);
    /// assert_eq!(producer.batch_size, 16_384);
    /// assert_eq!(producer.linger, Duration::from_millis(5));
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn producer_config(&self) -> Result<ProducerConfig, ConfigError> {
        self.validate()?;
        let acks: Acks = self.acks.parse().map_err(|_| ConfigError::InvalidAcks {
            value: self.acks.clone(),
        })?;
        let mut config = ProducerConfig::default()
            .with_acks(acks)
            .with_compression(self.compression()?)
            .with_batch_size(self.producer_max_batch_bytes)
            .with_linger(self.linger())
            .with_delivery_timeout(self.delivery_timeout)
            .with_buffer_memory(self.buffer_memory)
            .with_request_timeout(self.request_timeout);
        if let Some(on) = self.enable_idempotence {
            config = config.with_idempotence(on);
        }
        config.validate().context(ProducerSnafu)?;
        Ok(config)
    }

    /// What the DLQ admin needs: the main topic (replays go there), the DLQ topic (`dlq_topic_name`),
    /// and `dlq_max_replay_attempts`.
    ///
    /// # Example
    ///
    /// ```
    /// use kafka_event_bus::bus::KafkaEventBusConfig;
    ///
    /// let bus = KafkaEventBusConfig::builder().topic_prefix("orders").build()?;
    /// let admin = bus.dlq_admin_config();
    /// assert_eq!(admin.topic, "orders.stream");
    /// assert_eq!(admin.dlq_topic, "orders.stream.dlq");
    /// assert_eq!(admin.max_replay_attempts, 3);
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn dlq_admin_config(&self) -> DlqAdminConfig {
        DlqAdminConfig::new(self.topic_name(), self.dlq_topic_name())
            .with_max_replay_attempts(self.dlq_max_replay_attempts)
    }

    /// The consumer's settings: the group, the main topic, session and poll timeouts, the request
    /// timeout, fetch sizes, the offset reset, static membership, and the assignors of
    /// `partition_assignment_strategy`. A revocation may wait `shutdown_timeout` for the handlers still
    /// running.
    pub(crate) fn consumer_config(&self) -> Result<ConsumerConfig, ConfigError> {
        self.validate()?;
        let reset = match self.offset_reset()? {
            super::OffsetReset::Latest => OffsetReset::Latest,
            _ => OffsetReset::Earliest,
        };
        let fetch = FetchConfig {
            fetch_max_wait: self.fetch_max_wait,
            fetch_max_bytes: i32::try_from(self.fetch_max_bytes).unwrap_or(i32::MAX),
            max_partition_fetch_bytes: i32::try_from(self.max_partition_fetch_bytes).unwrap_or(i32::MAX),
            auto_offset_reset: reset,
            max_uncompressed_batch_bytes: self.max_uncompressed_batch_bytes,
            ..FetchConfig::default()
        };
        let assignors: Vec<Arc<dyn Assignor>> = self
            .assignment_strategies()?
            .into_iter()
            .map(|strategy| -> Arc<dyn Assignor> {
                match strategy {
                    AssignmentStrategy::Range => Arc::new(RangeAssignor),
                    AssignmentStrategy::RoundRobin => Arc::new(RoundRobinAssignor),
                    AssignmentStrategy::CooperativeSticky => Arc::new(CooperativeStickyAssignor),
                }
            })
            .collect();
        let mut consumer = ConsumerConfig::new(self.consumer_group.clone(), [self.topic_name()])
            .with_assignors(assignors)
            .with_session_timeout(self.session_timeout())
            .with_heartbeat_interval(self.heartbeat_interval())
            .with_max_poll_interval(self.max_poll_interval())
            .with_fetch(fetch)
            .with_auto_offset_reset(reset)
            .with_commit_interval(self.commit_interval);
        consumer.revoke_timeout = self.shutdown_timeout;
        consumer.request_timeout = self.request_timeout;
        if let Some(id) = &self.group_instance_id {
            consumer = consumer.with_group_instance_id(id.clone());
        }
        Ok(consumer)
    }

    /// The dispatcher's settings: the retry policy (built once, here), the DLQ, the unknown-type policy
    /// and the per-partition concurrency.
    pub(crate) fn dispatch_config(&self) -> Result<DispatchConfig, ConfigError> {
        self.validate()?;
        let retry = RetryPolicy::new(
            self.max_retries,
            self.retry_base_delay,
            self.retry_max_delay,
            self.retry_jitter,
        )
        .map_err(|e| out_of_range("retry_base_delay", e, "a valid retry policy"))?;
        Ok(DispatchConfig {
            consumer_group: self.consumer_group.clone(),
            topic: self.topic_name(),
            retry,
            enable_dlq: self.enable_dlq,
            dlq_topic: self.dlq_topic_name(),
            dead_letter_unknown_types: self.dead_letter_unknown_types,
            corrupt_batches: match self.corrupt_batches()? {
                super::CorruptBatchPolicy::DeadLetter if self.enable_dlq => CorruptBatches::DeadLetter,
                _ => CorruptBatches::Stop,
            },
            max_in_flight_per_partition: self.max_in_flight_per_partition,
            drain_timeout: self.shutdown_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{path::PathBuf, time::Duration};

    use super::*;
    use crate::protocol::records::Compression;

    fn config() -> KafkaEventBusConfig {
        KafkaEventBusConfig::default()
    }

    fn sasl(protocol: &str) -> KafkaEventBusConfig {
        let mut c = config();
        c.security_protocol = protocol.into();
        c.sasl_mechanism = Some("SCRAM-SHA-512".into());
        c.sasl_username = Some("myapp".into());
        c.sasl_password = Some("hunter2-secret".into());
        c
    }

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn plaintext_has_neither_tls_nor_sasl_even_with_sasl_fields() {
        let mut c = sasl("PLAINTEXT");
        c.consumer_name = "worker-1".into();
        let client = c.client_config().unwrap();
        assert!(client.tls.is_none() && client.sasl.is_none());
        assert_eq!(client.client_id.as_deref(), Some("worker-1"));
        assert_eq!(client.bootstrap_servers(), ["localhost:9092"]);
    }

    #[test]
    fn sasl_ssl_builds_tls_from_the_files_and_sasl_from_the_credentials() {
        let mut c = sasl("SASL_SSL");
        c.ssl_cafile = Some(fixture("ca.pem"));
        c.ssl_certfile = Some(fixture("client.pem"));
        c.ssl_keyfile = Some(fixture("client.key"));
        let client = c.client_config().unwrap();
        assert!(client.tls.is_some());
        let sasl = client.sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(
            (sasl.username.as_str(), sasl.password()),
            ("myapp", "hunter2-secret")
        );
        assert!(!format!("{client:?}").contains("hunter2"));
    }

    #[test]
    fn unreadable_or_mismatched_tls_files_are_config_errors() {
        let mut c = config();
        c.security_protocol = "SSL".into();
        c.ssl_cafile = Some("/nonexistent/ca.pem".into());
        let err = c.client_config().unwrap_err();
        assert!(matches!(err, ConfigError::Tls { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        c.ssl_cafile = Some(fixture("ca.pem"));
        c.ssl_certfile = Some(fixture("client.pem"));
        c.ssl_keyfile = Some(fixture("server.key"));
        assert!(matches!(c.client_config(), Err(ConfigError::Tls { .. })));
        // Validation comes first: a half mTLS pair never reaches the file system.
        c.ssl_keyfile = None;
        assert!(matches!(c.client_config(), Err(ConfigError::SslKeyfileRequired)));
    }

    #[test]
    fn a_ready_ssl_context_is_used_as_it_is_instead_of_the_files() {
        let ready = TlsConfig::builder().ca_file(fixture("ca.pem")).build().unwrap();
        let mut c = config();
        c.security_protocol = "SSL".into();
        c.ssl_cafile = Some("/nonexistent/ca.pem".into());
        c.ssl_context = Some(ready.clone());
        let client = c.client_config().unwrap();
        assert_eq!(client.tls.as_ref(), Some(&ready));
        assert!(format!("{c:?}").contains("ssl_context: Some(TlsConfig"));
        // Under PLAINTEXT it is not used at all.
        c.security_protocol = "PLAINTEXT".into();
        assert!(c.client_config().unwrap().tls.is_none());
    }

    #[test]
    fn producer_config_maps_acks_compression_batch_and_linger() {
        for (acks, expected) in [
            ("0", Acks::None),
            ("1", Acks::Leader),
            ("all", Acks::All),
            ("-1", Acks::All),
        ] {
            let mut c = config();
            c.acks = acks.into();
            assert_eq!(c.producer_config().unwrap().acks, expected);
        }
        let mut c = config();
        c.compression_type = None;
        c.producer_max_batch_bytes = 1 << 20;
        c.linger_ms = 50;
        let p = c.producer_config().unwrap();
        assert_eq!(p.compression, Compression::None);
        assert_eq!(p.batch_size, 1 << 20);
        assert_eq!(p.linger, Duration::from_millis(50));
        assert_eq!(config().producer_config().unwrap().compression, Compression::Gzip);
        // A linger beyond the delivery timeout is refused before the producer sees it.
        c.linger_ms = 200_000;
        assert!(matches!(
            c.producer_config(),
            Err(ConfigError::OutOfRange {
                field: "delivery_timeout",
                ..
            })
        ));
        c.acks = "2".into();
        assert!(matches!(
            c.producer_config(),
            Err(ConfigError::InvalidAcks { .. })
        ));
    }

    #[test]
    fn pass_through_settings_reach_the_client_configs() {
        let mut c = config();
        c.delivery_timeout = Duration::from_secs(45);
        c.buffer_memory = 8 << 20;
        c.request_timeout = Duration::from_secs(12);
        c.bootstrap_timeout = Duration::from_secs(7);
        c.commit_interval = Duration::from_millis(300);
        c.enable_idempotence = Some(false);
        let p = c.producer_config().unwrap();
        assert_eq!(p.delivery_timeout, Duration::from_secs(45));
        assert_eq!(p.buffer_memory, 8 << 20);
        assert_eq!(p.request_timeout, Duration::from_secs(12));
        assert_eq!(p.idempotence, Some(false));
        assert!(!p.is_idempotent(), "acks=all, but idempotence was turned off");
        let client = c.client_config().unwrap();
        assert_eq!(client.request_timeout, Duration::from_secs(12));
        assert_eq!(client.bootstrap_timeout, Some(Duration::from_secs(7)));
        let consumer = c.consumer_config().unwrap();
        assert_eq!(consumer.request_timeout, Duration::from_secs(12));
        assert_eq!(consumer.commit_interval, Duration::from_millis(300));
        // Unset, idempotence follows acks as before.
        let p = config().producer_config().unwrap();
        assert_eq!(p.idempotence, None);
        assert!(p.is_idempotent());
        c.acks = "1".into();
        c.enable_idempotence = None;
        assert!(!c.producer_config().unwrap().is_idempotent());
    }

    #[test]
    fn the_assignment_strategy_chooses_the_consumers_assignors() {
        let names = |c: &KafkaEventBusConfig| -> Vec<&'static str> {
            let consumer = c.consumer_config().unwrap();
            consumer.group.assignors.iter().map(|a| a.name()).collect()
        };
        let mut c = config();
        assert_eq!(names(&c), ["range", "roundrobin"]);
        c.partition_assignment_strategy = "cooperative-sticky".into();
        assert_eq!(names(&c), ["cooperative-sticky"]);
        c.partition_assignment_strategy = " roundrobin , range ".into();
        assert_eq!(names(&c), ["roundrobin", "range"]);
        c.partition_assignment_strategy =
            "org.apache.kafka.clients.consumer.CooperativeStickyAssignor".into();
        assert_eq!(names(&c), ["cooperative-sticky"]);
    }
}
