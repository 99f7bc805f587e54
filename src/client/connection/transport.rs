//! Opening the byte stream to a broker: address parsing, resolution and TCP connect with a timeout.
//!
//! TLS and SASL wrap what this returns; the messenger only needs something that reads and writes.

use std::{sync::Arc, time::Duration};

use snafu::ResultExt;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpStream, lookup_host},
};

use super::error::{ConnectSnafu, Error, ResolveSnafu};

/// Idle time before the first keepalive probe. A request timeout already closes a connection that goes
/// silent while a request waits; keepalive finds the ones that die while idle (a NAT or firewall
/// forgetting the flow, a host that vanished) so the next request does not go into the void.
pub(crate) const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Time between unanswered keepalive probes.
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the kernel declares the connection dead (about a minute in all).
pub(crate) const KEEPALIVE_PROBES: u32 = 3;

/// A byte stream to a broker (plain TCP today; TLS wraps the same trait).
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A boxed [`Stream`].
pub(crate) type BoxStream = Box<dyn Stream>;

/// Splits `host:port` (or `[v6]:port`) into its parts.
pub(crate) fn split_host_port(address: &str) -> Result<(&str, u16), Error> {
    let invalid = |reason| Error::InvalidAddress {
        address: address.to_owned(),
        reason,
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(|| invalid("missing :port"))?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .ok_or_else(|| invalid("unclosed [ in IPv6 address"))?,
        None if host.contains(':') => return Err(invalid("IPv6 addresses must be written [addr]:port")),
        None => host,
    };
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| invalid("port is not a number in 1..=65535"))?;
    if port == 0 {
        return Err(invalid("port is not a number in 1..=65535"));
    }
    Ok((host, port))
}

/// Resolves `address` and connects to the first resolved address that accepts, within `timeout`.
pub(crate) async fn connect_tcp(address: &str, timeout: Duration) -> Result<TcpStream, Error> {
    let (host, port) = split_host_port(address)?;
    let attempt = async {
        let addrs: Vec<_> = lookup_host((host, port))
            .await
            .map_err(Arc::new)
            .context(ResolveSnafu { broker: address })?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        let err = last.unwrap_or_else(|| std::io::Error::other("the name resolved to no address"));
        Err(Arc::new(err)).context(ConnectSnafu { broker: address })
    };
    let stream = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| Error::ConnectTimeout {
            broker: address.to_owned(),
            timeout,
        })??;
    // Requests are written whole and small ones are coalesced by the writer task: Nagle would only
    // add latency.
    stream
        .set_nodelay(true)
        .map_err(Arc::new)
        .context(ConnectSnafu { broker: address })?;
    set_keepalive(&stream)
        .map_err(Arc::new)
        .context(ConnectSnafu { broker: address })?;
    Ok(stream)
}

/// Turns TCP keepalive on with [`KEEPALIVE_IDLE`], [`KEEPALIVE_INTERVAL`] and [`KEEPALIVE_PROBES`] (where
/// the platform lets them be set; elsewhere its defaults apply).
fn set_keepalive(stream: &TcpStream) -> std::io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "windows",
    ))]
    let keepalive = keepalive
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(split_host_port("localhost:9092").unwrap(), ("localhost", 9092));
        assert_eq!(split_host_port("[::1]:9093").unwrap(), ("::1", 9093));
        assert_eq!(split_host_port("10.0.0.1:1").unwrap(), ("10.0.0.1", 1));
        for bad in [
            "localhost",
            "localhost:",
            ":9092",
            "host:0",
            "host:70000",
            "::1:9092",
            "[::1:9092",
            "h:x",
        ] {
            let err = split_host_port(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidAddress { .. }), "{bad}: {err}");
            assert!(!err.is_retriable());
        }
    }

    #[tokio::test]
    async fn sockets_probe_idle_connections() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let stream = connect_tcp(&address, Duration::from_secs(5)).await.unwrap();
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().unwrap(), "keepalive is off");
        #[cfg(target_os = "linux")]
        {
            assert_eq!(socket.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
            assert_eq!(socket.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
            assert_eq!(socket.tcp_keepalive_retries().unwrap(), KEEPALIVE_PROBES);
        }
    }

    #[tokio::test]
    async fn refused_connections_are_retriable_errors() {
        // Bind then drop to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = connect_tcp(&format!("127.0.0.1:{port}"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err}");
        assert!(err.is_retriable());
        assert_eq!(err.broker(), format!("127.0.0.1:{port}"));
    }
}
