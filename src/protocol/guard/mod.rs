//! The response guard: every count and length in a response is checked against the bytes that are
//! actually there before `kafka_protocol` decodes it.
//!
//! `kafka_protocol`'s array decoders reserve `Vec::with_capacity(count)` from the count on the wire
//! before reading an element, so a four-byte count of `0xFFFFFFFF` would ask for hundreds of gigabytes
//! and abort the process. The guard walks the body along a description of its layout
//! ([`schemas`], generated from Kafka's message definitions) and rejects, with
//! [`Error::Malformed`], any frame where
//!
//! - an array announces more elements than the bytes left could hold (each element's smallest
//!   encoding is known from the layout),
//! - a string, bytes or record-set length runs past the end of the frame, or is negative,
//! - a null appears where the version does not allow one,
//! - a known tagged field does not fill exactly the size its header announces,
//! - or bytes are left over after the last field ([`Error::TrailingBytes`]).
//!
//! A frame that passes holds every element its counts announce, so decoding it allocates at most a
//! small multiple of the frame's own size (the in-memory size of a decoded element over its smallest
//! encoding, per level of nesting). Record sets (Fetch) are opaque bytes here: record batches have their
//! own bounded decoder ([`RecordBatchDecoder`](super::RecordBatchDecoder)).

mod schema;
#[rustfmt::skip]
mod schemas;
mod violation;
mod walker;

#[cfg(test)]
mod mutation_tests;
#[cfg(test)]
mod tests;

use kafka_protocol::messages::ApiKey;

pub use violation::Violation;

use self::schema::Message;
use super::Error;

/// The layout of `api`'s response, `None` for an API this client never sends.
pub(crate) fn response_layout(api: ApiKey) -> Option<&'static Message> {
    use schemas::*;
    Some(match api {
        ApiKey::ApiVersions => &API_VERSIONS,
        ApiKey::Metadata => &METADATA,
        ApiKey::CreateTopics => &CREATE_TOPICS,
        ApiKey::DeleteTopics => &DELETE_TOPICS,
        ApiKey::Produce => &PRODUCE,
        ApiKey::Fetch => &FETCH,
        ApiKey::ListOffsets => &LIST_OFFSETS,
        ApiKey::FindCoordinator => &FIND_COORDINATOR,
        ApiKey::JoinGroup => &JOIN_GROUP,
        ApiKey::SyncGroup => &SYNC_GROUP,
        ApiKey::Heartbeat => &HEARTBEAT,
        ApiKey::LeaveGroup => &LEAVE_GROUP,
        ApiKey::OffsetCommit => &OFFSET_COMMIT,
        ApiKey::OffsetFetch => &OFFSET_FETCH,
        ApiKey::DescribeGroups => &DESCRIBE_GROUPS,
        ApiKey::ListGroups => &LIST_GROUPS,
        ApiKey::DeleteGroups => &DELETE_GROUPS,
        ApiKey::InitProducerId => &INIT_PRODUCER_ID,
        ApiKey::AddPartitionsToTxn => &ADD_PARTITIONS_TO_TXN,
        ApiKey::AddOffsetsToTxn => &ADD_OFFSETS_TO_TXN,
        ApiKey::EndTxn => &END_TXN,
        ApiKey::SaslHandshake => &SASL_HANDSHAKE,
        ApiKey::SaslAuthenticate => &SASL_AUTHENTICATE,
        _ => return None,
    })
}

/// Checks a response body (after its header) of `api` at `version` before it is decoded.
///
/// # Errors
///
/// [`Error::Malformed`] when a count or length does not fit the frame, or the API has no known layout
/// (the guard fails closed); [`Error::TrailingBytes`] when bytes are left after the last field.
pub(crate) fn check_response(api: ApiKey, version: i16, body: &[u8]) -> Result<(), Error> {
    let Some(message) = response_layout(api) else {
        return Err(Error::Malformed {
            api,
            version,
            offset: 0,
            field: "response",
            violation: Violation::UnknownLayout,
        });
    };
    let left = walker::walk(message, version, body).map_err(|r| Error::Malformed {
        api,
        version,
        offset: r.offset,
        field: r.field,
        violation: r.violation,
    })?;
    if left > 0 {
        return Err(Error::TrailingBytes {
            api,
            version,
            remaining: left,
        });
    }
    Ok(())
}
