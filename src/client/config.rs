//! Settings shared by the connection and cluster layers.

use std::{fmt, time::Duration};

use super::connection::{SaslConfig, TlsConfig};

/// How the client reaches and talks to a cluster.
///
/// Defaults follow the Java client where it has the same setting (`request.timeout.ms` 30 s,
/// `reconnect.backoff.ms` 50 ms, `reconnect.backoff.max.ms` 1 s, `socket.connection.setup.timeout.ms`
/// 10 s).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kafka_event_bus::client::ClientConfig;
///
/// let config = ClientConfig::new("broker-1:9092, broker-2:9092")
///     .with_client_id("orders-service")
///     .with_request_timeout(Duration::from_secs(10));
/// assert_eq!(config.bootstrap_servers(), ["broker-1:9092", "broker-2:9092"]);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    bootstrap_servers: Vec<String>,
    /// The `client.id` sent with every request (shows up in broker logs and quotas).
    pub client_id: Option<String>,
    /// How long one TCP connect (with its handshake) may take.
    pub connect_timeout: Duration,
    /// How long a request may wait for its response before it fails with a retriable timeout.
    pub request_timeout: Duration,
    /// The first delay between reconnect attempts to one broker; it doubles up to
    /// [`reconnect_backoff_max`](Self::reconnect_backoff_max), with jitter.
    pub reconnect_backoff: Duration,
    /// The largest delay between reconnect attempts.
    pub reconnect_backoff_max: Duration,
    /// How long a request keeps trying to (re)connect before it gives up with the last error.
    pub reconnect_deadline: Duration,
    /// How long [`Cluster::connect`](super::Cluster::connect) keeps trying the bootstrap servers (each
    /// failed attempt is logged at INFO with the address and the cause); `None` (the default) is
    /// [`reconnect_deadline`](Self::reconnect_deadline). The servers not yet tried share the time
    /// left, so a hung one cannot use it all: with N servers an attempt may get only a 1/N share,
    /// which must cover TCP, TLS, SASL and one Metadata request (set it to N times a slow handshake).
    pub bootstrap_timeout: Option<Duration>,
    /// TLS for every broker connection (`security_protocol` SSL); `None` is plaintext.
    pub tls: Option<TlsConfig>,
    /// SASL authentication on every broker connection (`security_protocol` SASL_PLAINTEXT, or SASL_SSL
    /// together with [`tls`](Self::tls)); `None` is no authentication.
    pub sasl: Option<SaslConfig>,
    /// The largest response frame accepted from a broker (a guard against garbage size prefixes).
    pub max_response_size: usize,
}

impl ClientConfig {
    /// A config for the comma-separated `host:port` list in `bootstrap_servers`. Any one reachable server
    /// is enough to discover the whole cluster.
    pub fn new(bootstrap_servers: &str) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            client_id: Some(concat!("kafka-event-bus/", env!("CARGO_PKG_VERSION")).to_owned()),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            reconnect_deadline: Duration::from_secs(30),
            bootstrap_timeout: None,
            max_response_size: 100 * 1024 * 1024,
            tls: None,
            sasl: None,
        }
    }

    /// The bootstrap servers, trimmed, empty entries dropped.
    pub fn bootstrap_servers(&self) -> &[String] {
        &self.bootstrap_servers
    }

    /// Sets [`client_id`](Self::client_id).
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`reconnect_deadline`](Self::reconnect_deadline).
    pub fn with_reconnect_deadline(mut self, deadline: Duration) -> Self {
        self.reconnect_deadline = deadline;
        self
    }

    /// Sets [`bootstrap_timeout`](Self::bootstrap_timeout).
    pub fn with_bootstrap_timeout(mut self, timeout: Duration) -> Self {
        self.bootstrap_timeout = Some(timeout);
        self
    }

    /// Secures every broker connection with TLS.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Authenticates every broker connection with SASL (after the ApiVersions handshake).
    pub fn with_sasl(mut self, sasl: SaslConfig) -> Self {
        self.sasl = Some(sasl);
        self
    }

    /// Sets the reconnect backoff range ([`reconnect_backoff`](Self::reconnect_backoff) to
    /// [`reconnect_backoff_max`](Self::reconnect_backoff_max)).
    pub fn with_reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_backoff = min;
        self.reconnect_backoff_max = max.max(min);
        self
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("reconnect_backoff", &self.reconnect_backoff)
            .field("reconnect_backoff_max", &self.reconnect_backoff_max)
            .field("reconnect_deadline", &self.reconnect_deadline)
            .field("bootstrap_timeout", &self.bootstrap_timeout)
            .field("tls", &self.tls)
            .field("sasl", &self.sasl)
            .finish_non_exhaustive()
    }
}
