//! Typed builder setters beside the string ones: a value of the enum a string setting parses to, so a
//! typo is a compile error instead of a [`ConfigError`] at `build()`. Each stores the same string the
//! string setter would, so the config stays plain values (environment, files, `Debug`).

use super::{
    AssignmentStrategy, CorruptBatchPolicy, KafkaEventBusConfigBuilder, OffsetReset, SecurityProtocol,
};
use crate::protocol::records::Compression;

impl KafkaEventBusConfigBuilder {
    /// Sets [`security_protocol`](super::KafkaEventBusConfig::security_protocol) from a
    /// [`SecurityProtocol`].
    ///
    /// ```
    /// use kafka_event_bus::bus::{KafkaEventBusConfig, SecurityProtocol};
    ///
    /// let config = KafkaEventBusConfig::builder().protocol(SecurityProtocol::Ssl).build()?;
    /// assert_eq!(config.security_protocol, "SSL");
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn protocol(mut self, protocol: SecurityProtocol) -> Self {
        self.config.security_protocol = protocol.name().to_owned();
        self
    }

    /// Sets [`compression_type`](super::KafkaEventBusConfig::compression_type) from a
    /// [`Compression`]; [`Compression::None`] is `None`.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.config.compression_type = match compression {
            Compression::None => None,
            codec => Some(codec.name().to_owned()),
        };
        self
    }

    /// Sets [`auto_offset_reset`](super::KafkaEventBusConfig::auto_offset_reset) from an
    /// [`OffsetReset`].
    pub fn offset_reset(mut self, reset: OffsetReset) -> Self {
        self.config.auto_offset_reset = match reset {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
        .to_owned();
        self
    }

    /// Sets [`corrupt_batch_policy`](super::KafkaEventBusConfig::corrupt_batch_policy) from a
    /// [`CorruptBatchPolicy`].
    pub fn corrupt_batches(mut self, policy: CorruptBatchPolicy) -> Self {
        self.config.corrupt_batch_policy = match policy {
            CorruptBatchPolicy::DeadLetter => "dead_letter",
            CorruptBatchPolicy::Stop => "stop",
        }
        .to_owned();
        self
    }

    /// Sets [`partition_assignment_strategy`](super::KafkaEventBusConfig::partition_assignment_strategy)
    /// to `strategies`, preferred first.
    ///
    /// ```
    /// use kafka_event_bus::bus::{AssignmentStrategy, KafkaEventBusConfig};
    ///
    /// let config = KafkaEventBusConfig::builder()
    ///     .assignment_strategies([AssignmentStrategy::CooperativeSticky])
    ///     .build()?;
    /// assert_eq!(config.partition_assignment_strategy, "cooperative-sticky");
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    pub fn assignment_strategies(mut self, strategies: impl IntoIterator<Item = AssignmentStrategy>) -> Self {
        self.config.partition_assignment_strategy = strategies
            .into_iter()
            .map(AssignmentStrategy::name)
            .collect::<Vec<_>>()
            .join(",");
        self
    }

    /// Sets [`acks`](super::KafkaEventBusConfig::acks) from an
    /// [`Acks`](crate::client::producer::Acks).
    #[cfg(feature = "client")]
    pub fn producer_acks(mut self, acks: crate::client::producer::Acks) -> Self {
        use crate::client::producer::Acks;
        self.config.acks = match acks {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
        .to_owned();
        self
    }

    /// Sets [`sasl_mechanism`](super::KafkaEventBusConfig::sasl_mechanism),
    /// [`sasl_username`](super::KafkaEventBusConfig::sasl_username) and
    /// [`sasl_password`](super::KafkaEventBusConfig::sasl_password) at once.
    ///
    /// ```
    /// use kafka_event_bus::bus::{KafkaEventBusConfig, SecurityProtocol};
    /// use kafka_event_bus::client::connection::SaslMechanism;
    ///
    /// let config = KafkaEventBusConfig::builder()
    ///     .protocol(SecurityProtocol::SaslSsl)
    ///     .sasl(SaslMechanism::ScramSha512, "orders", "s3cret")
    ///     .build()?;
    /// assert_eq!(config.sasl_mechanism.as_deref(), Some("SCRAM-SHA-512"));
    /// # Ok::<(), kafka_event_bus::bus::ConfigError>(())
    /// ```
    #[cfg(feature = "client")]
    pub fn sasl(
        mut self,
        mechanism: crate::client::connection::SaslMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.config.sasl_mechanism = Some(mechanism.name().to_owned());
        self.config.sasl_username = Some(username.into());
        self.config.sasl_password = Some(password.into());
        self
    }
}

#[cfg(all(test, feature = "client"))]
mod tests {
    use super::*;
    use crate::bus::KafkaEventBusConfig;

    /// Every typed setter stores what its string setter would, and the parsed getter gives the value
    /// back.
    #[test]
    fn typed_setters_round_trip_through_the_parsed_getters() {
        for protocol in SecurityProtocol::ALL {
            let mut builder = KafkaEventBusConfig::builder().protocol(protocol);
            if protocol.uses_sasl() {
                builder = builder.sasl(crate::client::connection::SaslMechanism::Plain, "user", "pw");
            }
            assert_eq!(builder.build().unwrap().protocol().unwrap(), protocol);
        }
        for codec in Compression::ALL {
            let c = KafkaEventBusConfig::builder().compression(codec).build().unwrap();
            assert_eq!(c.compression().unwrap(), codec);
        }
        assert_eq!(
            KafkaEventBusConfig::builder()
                .compression(Compression::None)
                .build()
                .unwrap()
                .compression_type,
            None
        );
        for reset in [OffsetReset::Earliest, OffsetReset::Latest] {
            let c = KafkaEventBusConfig::builder()
                .offset_reset(reset)
                .build()
                .unwrap();
            assert_eq!(c.offset_reset().unwrap(), reset);
        }
        for policy in [CorruptBatchPolicy::DeadLetter, CorruptBatchPolicy::Stop] {
            let c = KafkaEventBusConfig::builder()
                .corrupt_batches(policy)
                .build()
                .unwrap();
            assert_eq!(c.corrupt_batches().unwrap(), policy);
        }
        let order = [AssignmentStrategy::CooperativeSticky, AssignmentStrategy::Range];
        let c = KafkaEventBusConfig::builder()
            .assignment_strategies(order)
            .build()
            .unwrap();
        assert_eq!(c.assignment_strategies().unwrap(), order);
        use crate::client::producer::Acks;
        for acks in [Acks::None, Acks::Leader, Acks::All] {
            let c = KafkaEventBusConfig::builder()
                .producer_acks(acks)
                .build()
                .unwrap();
            assert_eq!(c.producer_config().unwrap().acks, acks);
        }
    }
}
