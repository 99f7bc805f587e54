//! The broker's end of a connection in unit tests: reads request frames and writes response frames over
//! an in-memory pipe or a loopback socket, so the messenger, SASL and reconnect tests script a broker
//! (including the lies and stalls a real one will not produce on demand) without one.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::{
    messages::{
        ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader, api_versions_response::ApiVersion,
    },
    protocol::{Encodable, HeaderVersion, decode_request_header_from_buffer},
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

/// The scripted broker's end of one connection.
pub(crate) struct FakePeer<Io = DuplexStream> {
    pub(crate) io: Io,
}

impl<Io: AsyncRead + AsyncWrite + Unpin + Send> FakePeer<Io> {
    pub(crate) fn new(io: Io) -> Self {
        Self { io }
    }

    /// Reads one request frame: its header and the body bytes; `None` once the client hung up.
    pub(crate) async fn read_request(&mut self) -> Option<(RequestHeader, Bytes)> {
        let mut prefix = [0u8; 4];
        self.io.read_exact(&mut prefix).await.ok()?;
        let mut buf = BytesMut::zeroed(i32::from_be_bytes(prefix) as usize);
        self.io.read_exact(&mut buf).await.ok()?;
        let mut buf = buf.freeze();
        let header = decode_request_header_from_buffer(&mut buf).unwrap();
        Some((header, buf))
    }

    /// Writes `body` as the response to request `correlation_id`, encoded at `version`.
    pub(crate) async fn respond<T: Encodable + HeaderVersion + Sync>(
        &mut self,
        correlation_id: i32,
        version: i16,
        body: &T,
    ) {
        let frame = response_frame(correlation_id, version, body);
        self.write(&frame).await;
    }

    /// Writes raw bytes: a frame of one's own making, garbage, half a frame.
    pub(crate) async fn write(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// Reads the ApiVersions request of the handshake and answers it at the request's version,
    /// advertising `0..=max` for each `(api, max)`. Returns the request's header.
    pub(crate) async fn answer_api_versions(&mut self, apis: &[(ApiKey, i16)]) -> RequestHeader {
        let (header, _) = self.read_request().await.unwrap();
        assert_eq!(header.request_api_key, ApiKey::ApiVersions as i16);
        let keys = apis
            .iter()
            .map(|&(api, max)| {
                ApiVersion::default()
                    .with_api_key(api as i16)
                    .with_min_version(0)
                    .with_max_version(max)
            })
            .collect();
        let body = ApiVersionsResponse::default().with_api_keys(keys);
        self.respond(header.correlation_id, header.request_api_version, &body)
            .await;
        header
    }
}

/// One response frame: size prefix, response header for `T` at `version`, body.
pub(crate) fn response_frame<T: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &T,
) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, T::header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = i32::try_from(buf.len() - 4).unwrap();
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf
}
