//! Size-prefixed frames: the request side encodes, the response side decodes.
//!
//! A Kafka frame is `i32 size | header | body`. The request header's version depends on the API and
//! its version (flexible versions use header v2 with tagged fields); the response header likewise, and
//! ApiVersions responses always use header v0 so that a client can read them before it knows anything.
//! Every response header starts with the `i32` correlation id, which is all the reader of a connection
//! needs to route a frame to its waiter ([`correlation_id`]); the waiter then decodes the rest
//! ([`decode_response`]) at the version it sent.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::{
    messages::{RequestHeader, ResponseHeader},
    protocol::{Decodable, Encodable, HeaderVersion, StrBytes},
};
use snafu::{ResultExt, ensure};

use super::{
    ApiRequest, Error,
    error::{DecodeSnafu, EncodeSnafu, ShortFrameSnafu, TrailingBytesSnafu},
    guard,
};

/// The size of the length prefix.
pub const SIZE_PREFIX: usize = 4;

/// Appends one request frame (size prefix, header, body) to `buf`.
///
/// # Errors
///
/// [`Error::Encode`] when the request has a field its version cannot carry, or a value too large to
/// encode.
///
/// # Example
///
/// ```
/// use bytes::BytesMut;
/// use kafka_event_bus::protocol::frame;
/// use kafka_protocol::messages::ApiVersionsRequest;
///
/// let mut buf = BytesMut::new();
/// frame::encode_request(&mut buf, 7, Some("me"), 0, &ApiVersionsRequest::default()).unwrap();
/// // size, api key 18, version 0, correlation id 7, client id "me".
/// assert_eq!(&buf[..], &[0, 0, 0, 12, 0, 18, 0, 0, 0, 0, 0, 7, 0, 2, b'm', b'e'][..]);
/// ```
pub fn encode_request<R: ApiRequest>(
    buf: &mut BytesMut,
    correlation_id: i32,
    client_id: Option<&str>,
    version: i16,
    request: &R,
) -> Result<(), Error> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|id| StrBytes::from_string(id.to_owned())));
    let start = buf.len();
    buf.put_i32(0); // patched below
    let api = R::KEY;
    header
        .encode(buf, R::header_version(version))
        .map_err(Into::into)
        .context(EncodeSnafu { api, version })?;
    // Room for the whole body at once: a Produce request's batches are copied in without the
    // buffer growing (and copying them again) on the way. A size that cannot be computed fails below.
    if let Ok(body) = request.compute_size(version) {
        buf.reserve(body);
    }
    request
        .encode(buf, version)
        .map_err(Into::into)
        .context(EncodeSnafu { api, version })?;
    let size = buf.len() - start - SIZE_PREFIX;
    let size = i32::try_from(size).map_err(|_| Error::FrameSize {
        size: size as i64,
        max: i32::MAX as usize,
    })?;
    buf[start..start + SIZE_PREFIX].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Checks a size prefix read from the wire and returns the frame length it announces.
///
/// # Errors
///
/// [`Error::FrameSize`] for a negative size or one above `max`.
pub fn frame_len(prefix: [u8; SIZE_PREFIX], max: usize) -> Result<usize, Error> {
    let size = i32::from_be_bytes(prefix);
    let len = usize::try_from(size).ok().filter(|&len| len <= max);
    len.ok_or(Error::FrameSize {
        size: size.into(),
        max,
    })
}

/// The correlation id at the start of a response frame (without its size prefix).
///
/// # Errors
///
/// [`Error::ShortFrame`] when the frame has fewer than four bytes.
pub fn correlation_id(frame: &[u8]) -> Result<i32, Error> {
    ensure!(frame.len() >= 4, ShortFrameSnafu { len: frame.len() });
    Ok(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]))
}

/// Decodes a response frame (without its size prefix) sent in answer to `R` at `version`.
///
/// # Errors
///
/// [`Error::Malformed`] when a count or length does not fit the frame (checked before anything is
/// decoded, so no count can make decoding reserve memory the frame does not back), [`Error::Decode`]
/// when the bytes do not parse, [`Error::TrailingBytes`] when they parse but bytes are
/// left over (both sides disagree on the layout of that version).
pub fn decode_response<R: ApiRequest>(mut frame: Bytes, version: i16) -> Result<R::Response, Error> {
    let api = R::KEY;
    ResponseHeader::decode(&mut frame, R::Response::header_version(version))
        .map_err(Into::into)
        .context(DecodeSnafu { api, version })?;
    guard::check_response(api, version, &frame)?;
    let response = R::Response::decode(&mut frame, version)
        .map_err(Into::into)
        .context(DecodeSnafu { api, version })?;
    ensure!(
        !frame.has_remaining(),
        TrailingBytesSnafu {
            api,
            version,
            remaining: frame.remaining()
        }
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::{
        messages::{
            ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
            api_versions_response::ApiVersion,
        },
        protocol::Encodable,
    };

    use super::*;

    #[test]
    fn a_request_frame_is_written_into_one_buffer_of_its_size() {
        use kafka_protocol::messages::{
            ProduceRequest, TopicName,
            produce_request::{PartitionProduceData, TopicProduceData},
        };
        let records = Bytes::from(vec![7u8; 100_000]);
        let topic = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default().with_records(Some(records))]);
        let request = ProduceRequest::default().with_topic_data(vec![topic]);
        let mut buf = BytesMut::new();
        encode_request(&mut buf, 1, Some("me"), 9, &request).unwrap();
        assert!(buf.len() > 100_000);
        assert!(
            buf.capacity() - buf.len() < 1024,
            "{} bytes reserved for a frame of {}: the buffer grew while encoding",
            buf.capacity(),
            buf.len()
        );
    }

    /// Encodes a response as a broker would (header + body, no size prefix).
    fn response_frame<T: Encodable + HeaderVersion>(correlation_id: i32, body: &T, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, T::header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn flexible_requests_use_header_v2() {
        // Metadata v9+ is flexible: header v2 ends with an empty tagged-field section (one 0 byte) after
        // the client id, and the body uses compact encodings.
        let mut flexible = BytesMut::new();
        encode_request(&mut flexible, 1, Some("c"), 12, &MetadataRequest::default()).unwrap();
        let mut legacy = BytesMut::new();
        encode_request(&mut legacy, 1, Some("c"), 8, &MetadataRequest::default()).unwrap();
        // size(4) key(2) version(2) correlation(4) client id(2+1) = 15, then the tag section.
        assert_eq!(flexible[15], 0, "header v2 has a tagged-field count");
        assert_eq!(&flexible[4..6], &(ApiKey::Metadata as i16).to_be_bytes());
        assert_eq!(&flexible[6..8], &12i16.to_be_bytes());
        assert_ne!(flexible.len(), legacy.len());
        // The size prefix counts everything after itself.
        for buf in [&flexible, &legacy] {
            let len = frame_len(buf[..4].try_into().unwrap(), usize::MAX).unwrap();
            assert_eq!(len, buf.len() - SIZE_PREFIX);
        }
    }

    #[test]
    fn frames_append_to_a_shared_buffer() {
        let mut buf = BytesMut::new();
        encode_request(&mut buf, 1, None, 3, &ApiVersionsRequest::default()).unwrap();
        let first = buf.len();
        encode_request(&mut buf, 2, None, 3, &ApiVersionsRequest::default()).unwrap();
        assert_eq!(buf.len(), 2 * first);
        let second_len = frame_len(buf[first..first + 4].try_into().unwrap(), 1 << 20).unwrap();
        assert_eq!(second_len, first - SIZE_PREFIX);
        assert_eq!(correlation_id(&buf[first + 8..]).unwrap(), 2);
    }

    #[test]
    fn a_field_the_version_lacks_is_an_encode_error() {
        // Metadata v4 cannot carry include_topic_authorized_operations (v8+).
        let request = MetadataRequest::default().with_include_topic_authorized_operations(true);
        let err = encode_request(&mut BytesMut::new(), 1, None, 4, &request).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Encode {
                    api: ApiKey::Metadata,
                    version: 4,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn frame_sizes_are_checked() {
        assert_eq!(frame_len(7i32.to_be_bytes(), 7).unwrap(), 7);
        assert!(matches!(
            frame_len(8i32.to_be_bytes(), 7),
            Err(Error::FrameSize { size: 8, max: 7 })
        ));
        assert!(matches!(
            frame_len((-1i32).to_be_bytes(), 7),
            Err(Error::FrameSize { size: -1, .. })
        ));
        assert!(matches!(
            correlation_id(&[0, 0, 1]),
            Err(Error::ShortFrame { len: 3 })
        ));
    }

    #[test]
    fn api_versions_responses_round_trip_with_header_v0() {
        let body = ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(18)
                .with_min_version(0)
                .with_max_version(4),
        ]);
        let frame = response_frame(42, &body, 3);
        assert_eq!(correlation_id(&frame).unwrap(), 42);
        // Header v0 even though ApiVersions v3 is flexible: the body starts right after the id.
        assert_eq!(
            &frame[4..6],
            &0i16.to_be_bytes(),
            "error code follows the correlation id"
        );
        let decoded = decode_response::<ApiVersionsRequest>(frame, 3).unwrap();
        assert_eq!(decoded, body);
    }

    #[test]
    fn trailing_and_truncated_bytes_are_errors() {
        let body = MetadataResponse::default();
        let mut frame = BytesMut::from(&response_frame(1, &body, 12)[..]);
        frame.put_u8(0xff);
        let err = decode_response::<MetadataRequest>(frame.freeze(), 12).unwrap_err();
        assert!(matches!(err, Error::TrailingBytes { remaining: 1, .. }), "{err}");

        let whole = response_frame(1, &body, 12);
        for cut in 0..whole.len() {
            let err = decode_response::<MetadataRequest>(whole.slice(..cut), 12);
            assert!(err.is_err(), "a frame cut at {cut} decoded");
        }
    }
}
