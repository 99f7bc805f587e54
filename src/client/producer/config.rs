//! Producer settings.

use std::time::Duration;

use snafu::ensure;

use super::{Error, error::InvalidConfigSnafu};
use crate::protocol::records::Compression;

/// How many acknowledgements a Produce request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Acks {
    /// Fire and forget: the broker sends no response (`acks=0`); offsets are unknown (-1).
    None,
    /// The leader wrote the records (`acks=1`).
    Leader,
    /// Every in-sync replica wrote them (`acks=all`, `-1`): the only setting that survives a leader loss.
    #[default]
    All,
}

impl Acks {
    /// The value on the wire.
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl std::str::FromStr for Acks {
    type Err = Error;

    /// Parses `"0"`, `"1"`, `"all"` or `"-1"`.
    ///
    /// ```
    /// use kafka_event_bus::client::producer::Acks;
    ///
    /// assert_eq!("all".parse::<Acks>().unwrap(), Acks::All);
    /// assert_eq!("-1".parse::<Acks>().unwrap(), Acks::All);
    /// assert_eq!("1".parse::<Acks>().unwrap(), Acks::Leader);
    /// assert!("2".parse::<Acks>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => InvalidConfigSnafu {
                reason: format!("acks must be 0, 1 or all, not {other:?}"),
            }
            .fail(),
        }
    }
}

/// Producer settings. Defaults are the Java client's, except `compression` (gzip, as eventsource-py)
/// and `batch_size` (16 KiB, likewise).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kafka_event_bus::client::producer::{Acks, ProducerConfig};
/// use kafka_event_bus::protocol::Compression;
///
/// let config = ProducerConfig::default()
///     .with_acks(Acks::All)
///     .with_compression(Compression::Zstd)
///     .with_linger(Duration::from_millis(5))
///     .with_batch_size(1 << 20);
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// Acknowledgements to wait for.
    pub acks: Acks,
    /// The codec of every batch.
    pub compression: Compression,
    /// A partition's batch is sent once it holds this many (uncompressed) bytes.
    pub batch_size: usize,
    /// How long a batch that is not full may wait for more records.
    pub linger: Duration,
    /// The most bytes of records buffered (waiting or in flight) at once; beyond it, sending waits
    /// (backpressure) instead of growing memory.
    pub buffer_memory: usize,
    /// The largest Produce request (and so the largest single record) sent, counted in bytes of
    /// record batches as sent (compressed). A request is filled by estimated compressed sizes and
    /// capped once encoded; the first batch of a request is sent even if alone it is larger (a batch
    /// fills up to `batch_size`, which may be set above this).
    pub max_request_size: usize,
    /// How long a record may take from `send` to acknowledgement, retries included, before it fails.
    pub delivery_timeout: Duration,
    /// How long the broker may take to answer one Produce request.
    pub request_timeout: Duration,
    /// The pause before a failed batch is retried.
    pub retry_backoff: Duration,
    /// Idempotence (producer id + sequence numbers: retries never duplicate or reorder). `None` means
    /// "on when acks=all".
    pub idempotence: Option<bool>,
    /// The most Produce requests in flight to one broker.
    pub max_in_flight_per_broker: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: Acks::All,
            compression: Compression::Gzip,
            batch_size: 16 * 1024,
            linger: Duration::from_millis(5),
            buffer_memory: 32 * 1024 * 1024,
            max_request_size: 1024 * 1024,
            delivery_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(100),
            idempotence: None,
            max_in_flight_per_broker: 5,
        }
    }
}

impl ProducerConfig {
    /// Sets [`acks`](Self::acks).
    pub fn with_acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }
    /// Sets [`compression`](Self::compression).
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }
    /// Sets [`batch_size`](Self::batch_size).
    pub fn with_batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }
    /// Sets [`linger`](Self::linger).
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }
    /// Sets [`buffer_memory`](Self::buffer_memory).
    pub fn with_buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }
    /// Sets [`max_request_size`](Self::max_request_size).
    pub fn with_max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }
    /// Sets [`delivery_timeout`](Self::delivery_timeout).
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }
    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
    /// Sets [`retry_backoff`](Self::retry_backoff).
    pub fn with_retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }
    /// Sets [`idempotence`](Self::idempotence).
    pub fn with_idempotence(mut self, on: bool) -> Self {
        self.idempotence = Some(on);
        self
    }

    /// Whether the producer will be idempotent.
    pub fn is_idempotent(&self) -> bool {
        self.idempotence.unwrap_or(self.acks == Acks::All)
    }

    /// Checks that the settings can work together.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |reason: &str| InvalidConfigSnafu { reason }.fail();
        ensure!(
            self.batch_size > 0,
            InvalidConfigSnafu {
                reason: "batch_size must be > 0"
            }
        );
        if self.idempotence == Some(true) && self.acks != Acks::All {
            return fail("idempotence requires acks=all");
        }
        if self.max_request_size > self.buffer_memory {
            return fail("max_request_size must not exceed buffer_memory");
        }
        if self.max_in_flight_per_broker == 0 {
            return fail("max_in_flight_per_broker must be > 0");
        }
        // Java's int milliseconds (about 24.8 days): larger values overflow the clock arithmetic.
        let fits = |d: Duration| i32::try_from(d.as_millis()).is_ok();
        if !fits(self.request_timeout) {
            return fail("request_timeout is too large");
        }
        if !fits(self.linger) {
            return fail("linger is too large");
        }
        if !fits(self.delivery_timeout) {
            return fail("delivery_timeout is too large");
        }
        if self.delivery_timeout < self.linger + self.request_timeout {
            return fail("delivery_timeout must be at least linger + request_timeout");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_too_large_for_the_wire_are_refused_not_a_panic() {
        for config in [
            ProducerConfig::default().with_linger(Duration::MAX),
            ProducerConfig::default()
                .with_linger(Duration::MAX - Duration::from_secs(60))
                .with_delivery_timeout(Duration::MAX),
            ProducerConfig::default().with_delivery_timeout(Duration::MAX),
        ] {
            assert!(
                matches!(config.validate(), Err(Error::InvalidConfig { .. })),
                "{config:?}"
            );
        }
    }
}
