//! Which requests the client sends, and at which versions.

use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteGroupsRequest, DeleteGroupsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, EndTxnRequest, EndTxnResponse, FetchRequest,
    FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
    InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, ProduceRequest, ProduceResponse, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, VersionRange};

/// A request this client knows how to send.
///
/// `kafka_protocol` generates every message for every version; this trait pins down, per request, the
/// API key, the response type and the versions this client has been written and tested against. The
/// connection layer picks the highest version in `VERSIONS ∩ broker's range` (see
/// [`ApiVersionTable::negotiate`](super::ApiVersionTable::negotiate)).
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::{ApiKey, ApiRequest};
/// use kafka_protocol::messages::MetadataRequest;
///
/// assert_eq!(MetadataRequest::KEY, ApiKey::Metadata);
/// assert!(MetadataRequest::VERSIONS.min <= MetadataRequest::VERSIONS.max);
/// ```
pub trait ApiRequest: Encodable + HeaderVersion + Send + Sync + 'static {
    /// The API key sent in the request header.
    const KEY: ApiKey;
    /// The versions this client speaks for this API.
    const VERSIONS: VersionRange;
    /// The response the broker answers with.
    type Response: Decodable + HeaderVersion + Send + 'static;
}

macro_rules! api_requests {
    ($($req:ty => $resp:ty, $key:ident, $min:literal ..= $max:literal;)*) => {
        $(
            impl ApiRequest for $req {
                const KEY: ApiKey = ApiKey::$key;
                const VERSIONS: VersionRange = VersionRange { min: $min, max: $max };
                type Response = $resp;
            }
        )*

        /// Every API this client can send, with its client-side version range (for tests and logs).
        #[cfg(test)]
        pub(crate) const ALL: &[(ApiKey, VersionRange)] = &[
            $((ApiKey::$key, VersionRange { min: $min, max: $max }),)*
        ];
    };
}

// The lower bounds are the oldest versions whose fields this client relies on (e.g. Metadata v4 for
// `allow_auto_topic_creation`, JoinGroup v4 for MEMBER_ID_REQUIRED, InitProducerId v3 because older
// versions cannot carry an existing producer id and Tansu rejects them). The upper bounds stop where a
// later version changes semantics this client does not implement (e.g. Fetch v13 switches to topic ids).
api_requests! {
    ApiVersionsRequest => ApiVersionsResponse, ApiVersions, 0..=3;
    MetadataRequest => MetadataResponse, Metadata, 4..=12;
    CreateTopicsRequest => CreateTopicsResponse, CreateTopics, 2..=7;
    DeleteTopicsRequest => DeleteTopicsResponse, DeleteTopics, 1..=6;
    ProduceRequest => ProduceResponse, Produce, 3..=11;
    FetchRequest => FetchResponse, Fetch, 4..=12;
    ListOffsetsRequest => ListOffsetsResponse, ListOffsets, 1..=7;
    FindCoordinatorRequest => FindCoordinatorResponse, FindCoordinator, 1..=4;
    JoinGroupRequest => JoinGroupResponse, JoinGroup, 4..=9;
    SyncGroupRequest => SyncGroupResponse, SyncGroup, 3..=5;
    HeartbeatRequest => HeartbeatResponse, Heartbeat, 3..=4;
    LeaveGroupRequest => LeaveGroupResponse, LeaveGroup, 3..=5;
    OffsetCommitRequest => OffsetCommitResponse, OffsetCommit, 2..=8;
    OffsetFetchRequest => OffsetFetchResponse, OffsetFetch, 1..=7;
    DescribeGroupsRequest => DescribeGroupsResponse, DescribeGroups, 0..=5;
    ListGroupsRequest => ListGroupsResponse, ListGroups, 0..=4;
    DeleteGroupsRequest => DeleteGroupsResponse, DeleteGroups, 0..=2;
    InitProducerIdRequest => InitProducerIdResponse, InitProducerId, 3..=5;
    AddPartitionsToTxnRequest => AddPartitionsToTxnResponse, AddPartitionsToTxn, 0..=3;
    AddOffsetsToTxnRequest => AddOffsetsToTxnResponse, AddOffsetsToTxn, 0..=3;
    EndTxnRequest => EndTxnResponse, EndTxn, 0..=3;
    SaslHandshakeRequest => SaslHandshakeResponse, SaslHandshake, 1..=1;
    SaslAuthenticateRequest => SaslAuthenticateResponse, SaslAuthenticate, 0..=2;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every client range must lie inside what `kafka_protocol` can encode, or encoding would fail at
    /// run time instead of at negotiation.
    #[test]
    fn client_ranges_are_encodable() {
        for (key, ours) in ALL {
            let generated = key.valid_versions();
            assert!(ours.min <= ours.max, "{key:?}: empty range {ours}");
            assert!(
                generated.min <= ours.min && ours.max <= generated.max,
                "{key:?}: ours {ours} outside kafka_protocol's {generated}"
            );
        }
    }
}
