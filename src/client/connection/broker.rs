//! A handle to one broker that (re)connects on demand.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use backon::{ExponentialBuilder, Retryable};
use tracing::{debug, warn};

use super::{Error, Messenger, transport, transport::BoxStream};
use crate::{client::ClientConfig, protocol::ApiRequest};

/// How many new connections are tried after a handshake whose answer did not decode.
const MAX_PROTOCOL_RETRIES: u32 = 1;

/// One broker, shared by everything that talks to it: requests are pipelined on a single connection,
/// which is opened on first use and reopened after it fails.
///
/// Reconnecting backs off exponentially (with jitter) from [`ClientConfig::reconnect_backoff`] to
/// [`ClientConfig::reconnect_backoff_max`] and gives up after [`ClientConfig::reconnect_deadline`], so
/// no request waits forever for a broker that is gone. A handshake answer that does not decode
/// ([`Error::Protocol`]) is retried on one new connection only, then returned as it is.
///
/// # Example
///
/// ```no_run
/// # async fn example() -> Result<(), kafka_event_bus::client::connection::Error> {
/// use kafka_event_bus::client::{ClientConfig, connection::BrokerConnection};
/// use kafka_protocol::messages::MetadataRequest;
///
/// let broker = BrokerConnection::new("localhost:9092", ClientConfig::new("localhost:9092").into());
/// let metadata = broker.request(&MetadataRequest::default()).await?;
/// println!("{} brokers", metadata.brokers.len());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BrokerConnection {
    address: String,
    config: Arc<ClientConfig>,
    current: std::sync::Mutex<Option<Arc<Messenger>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl BrokerConnection {
    /// A handle to the broker at `address` (`host:port`). Nothing is connected until the first request.
    pub fn new(address: impl Into<String>, config: Arc<ClientConfig>) -> Self {
        Self {
            address: address.into(),
            config,
            current: std::sync::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// The broker's `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether a connection is open and not poisoned (a request would go out on it at once).
    pub(crate) fn is_connected(&self) -> bool {
        self.healthy().is_some()
    }

    fn healthy(&self) -> Option<Arc<Messenger>> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current.as_ref().filter(|m| !m.is_poisoned()).cloned()
    }

    /// The live connection, connecting (with backoff, up to the reconnect deadline) if there is none.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAddress`] at once for a malformed address; otherwise the last connect error, inside
    /// [`Error::ReconnectDeadline`] once the deadline has passed.
    pub async fn messenger(&self) -> Result<Arc<Messenger>, Error> {
        if let Some(m) = self.healthy() {
            return Ok(m);
        }
        // One task reconnects; the others wait for it and reuse its connection.
        let _connecting = self.connecting.lock().await;
        if let Some(m) = self.healthy() {
            return Ok(m);
        }
        let messenger = Arc::new(self.connect_with_backoff().await?);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&messenger));
        Ok(messenger)
    }

    /// Connects once, without retrying (bootstrap tries the next server instead of waiting).
    pub(crate) async fn connect_once(&self) -> Result<Arc<Messenger>, Error> {
        let _connecting = self.connecting.lock().await;
        if let Some(m) = self.healthy() {
            return Ok(m);
        }
        let messenger = Arc::new(self.connect().await?);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&messenger));
        Ok(messenger)
    }

    async fn connect_with_backoff(&self) -> Result<Messenger, Error> {
        let config = &self.config;
        let backoff = ExponentialBuilder::new()
            .with_min_delay(config.reconnect_backoff)
            .with_max_delay(config.reconnect_backoff_max)
            .with_jitter()
            .without_max_times();
        let mut last = None;
        // A broker whose answers do not decode may have sent one corrupt frame, or may never speak our
        // protocol: one new connection is tried, then its error is returned as it is.
        let protocol_failures = AtomicU32::new(0);
        let attempts = (|| self.connect())
            .retry(backoff)
            .when(|e: &Error| {
                let protocol = matches!(e, Error::Protocol { .. });
                if protocol && protocol_failures.fetch_add(1, Ordering::Relaxed) >= MAX_PROTOCOL_RETRIES {
                    return false;
                }
                e.is_retriable()
            })
            .notify(|e: &Error, delay: Duration| {
                debug!(broker = %self.address, error = %e, ?delay, "reconnecting");
                last = Some(e.clone());
            });
        match tokio::time::timeout(config.reconnect_deadline, attempts).await {
            Ok(result) => result,
            Err(_) => {
                let last = last.unwrap_or_else(|| Error::ConnectTimeout {
                    broker: self.address.clone(),
                    timeout: config.connect_timeout,
                });
                warn!(broker = %self.address, error = %last, "giving up reconnecting");
                Err(Error::ReconnectDeadline {
                    broker: self.address.clone(),
                    deadline: config.reconnect_deadline,
                    last: Box::new(last),
                })
            }
        }
    }

    async fn connect(&self) -> Result<Messenger, Error> {
        let config = &self.config;
        let stream = transport::connect_tcp(&self.address, config.connect_timeout).await?;
        let stream: BoxStream = match &config.tls {
            None => Box::new(stream),
            Some(tls) => {
                let (host, _) = transport::split_host_port(&self.address)?;
                let handshake = tls.connect(host, stream);
                let stream = tokio::time::timeout(config.connect_timeout, handshake)
                    .await
                    .map_err(|_| Error::ConnectTimeout {
                        broker: self.address.clone(),
                        timeout: config.connect_timeout,
                    })?
                    .map_err(|e| Error::Tls {
                        broker: self.address.clone(),
                        source: Arc::new(e),
                    })?;
                Box::new(stream)
            }
        };
        let handshake = Messenger::handshake(
            stream,
            self.address.clone(),
            config.client_id.clone(),
            config.request_timeout,
            config.connect_timeout,
            config.max_response_size,
        );
        let messenger = tokio::time::timeout(config.connect_timeout, handshake)
            .await
            .map_err(|_| Error::ConnectTimeout {
                broker: self.address.clone(),
                timeout: config.connect_timeout,
            })??;
        if let Some(sasl) = &config.sasl {
            tokio::time::timeout(
                config.connect_timeout,
                super::sasl::authenticate(&messenger, sasl),
            )
            .await
            .map_err(|_| Error::ConnectTimeout {
                broker: self.address.clone(),
                timeout: config.connect_timeout,
            })??;
        }
        debug!(broker = %self.address, "connected");
        Ok(messenger)
    }

    /// Sends `request` on the live connection (connecting first if needed) and waits for the answer.
    ///
    /// The request itself is not retried: a request that failed may or may not have reached the broker,
    /// and only the caller knows whether sending it again is safe.
    ///
    /// # Errors
    ///
    /// See [`messenger`](Self::messenger) and [`Messenger::request`].
    pub async fn request<R: ApiRequest>(&self, request: &R) -> Result<R::Response, Error> {
        self.messenger().await?.request(request).await
    }

    /// [`request`](Self::request) with its own timeout.
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request).
    pub async fn request_with_timeout<R: ApiRequest>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, Error> {
        self.messenger()
            .await?
            .request_with_timeout(request, timeout)
            .await
    }

    /// Drops the current connection (requests in flight on it fail); the next request reconnects.
    pub fn disconnect(&self) {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

#[cfg(test)]
mod tests;
