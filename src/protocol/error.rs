//! Errors of the wire layer, and the broker's own error codes.

use std::fmt;

use kafka_protocol::{error::ResponseError, messages::ApiKey, protocol::VersionRange};
use snafu::Snafu;

use super::guard::Violation;

/// A boxed error from the message codec (`kafka_protocol` reports with `anyhow`).
pub(crate) type CodecError = Box<dyn std::error::Error + Send + Sync>;

/// An error encoding or decoding a frame. None of these is retriable: they mean a bug, a version
/// mismatch, or a broker speaking something other than Kafka.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// A request could not be encoded at the chosen version.
    #[snafu(display("cannot encode {api:?} v{version}: {source}"))]
    Encode {
        /// The API.
        api: ApiKey,
        /// The version it was encoded at.
        version: i16,
        /// What the codec said.
        source: CodecError,
    },
    /// A response could not be decoded at the version its request was sent with.
    #[snafu(display("cannot decode {api:?} v{version} response: {source}"))]
    Decode {
        /// The API.
        api: ApiKey,
        /// The version of the request.
        version: i16,
        /// What the codec said.
        source: CodecError,
    },
    /// A response whose counts or lengths do not fit in its own frame (or that is otherwise not laid
    /// out as its version says), rejected before decoding so that no count on the wire can make the
    /// client reserve memory the frame does not back.
    #[snafu(display("malformed {api:?} v{version} response at byte {offset} ({field}): {violation}"))]
    Malformed {
        /// The API.
        api: ApiKey,
        /// The version of the request.
        version: i16,
        /// The offset in the response body (after the header) where the walk stopped.
        offset: usize,
        /// The field being read.
        field: &'static str,
        /// What was wrong.
        violation: Violation,
    },
    /// A response decoded cleanly but left bytes over: the two sides disagree on the version's layout.
    #[snafu(display("{api:?} v{version} response has {remaining} unread bytes"))]
    TrailingBytes {
        /// The API.
        api: ApiKey,
        /// The version of the request.
        version: i16,
        /// How many bytes were left.
        remaining: usize,
    },
    /// A frame's size prefix was negative or larger than the configured maximum.
    #[snafu(display("frame size {size} is outside 0..={max}"))]
    FrameSize {
        /// The size prefix read from the wire.
        size: i64,
        /// The largest frame accepted.
        max: usize,
    },
    /// A frame too short to hold the correlation id every response starts with.
    #[snafu(display("frame of {len} bytes is too short for a response header"))]
    ShortFrame {
        /// The frame's length.
        len: usize,
    },
    /// The broker and this client share no version of an API.
    #[snafu(display(
        "no common version of {api:?}: client speaks {client}, broker {}",
        broker.map_or_else(|| "does not advertise it".to_owned(), |b| format!("speaks {b}"))
    ))]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// The versions this client speaks.
        client: VersionRange,
        /// The versions the broker advertised, if it advertised the API at all.
        broker: Option<VersionRange>,
    },
}

/// An error code a broker returned in a response, with the message it sent along (if any).
///
/// `code` is `kafka_protocol`'s [`ResponseError`], which names every code of the Kafka protocol and
/// knows which are retriable.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::{ResponseError, ServerError};
///
/// let err = ServerError::from_code(6, None).expect("6 is an error code");
/// assert_eq!(err.code, ResponseError::NotLeaderOrFollower);
/// assert!(err.is_retriable());
/// assert!(ServerError::from_code(0, None).is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerError {
    /// The error code.
    pub code: ResponseError,
    /// The broker's own message, when the response has one.
    pub message: Option<String>,
}

impl ServerError {
    /// Turns a response's error code into an error; `None` for 0 (no error).
    pub fn from_code(code: i16, message: Option<&str>) -> Option<Self> {
        ResponseError::try_from_code(code).map(|code| Self {
            code,
            message: message.filter(|m| !m.is_empty()).map(str::to_owned),
        })
    }

    /// Whether the Kafka protocol says the request may succeed if retried.
    pub fn is_retriable(&self) -> bool {
        self.code.is_retriable()
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.code, self.code.code())?;
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerError {}
