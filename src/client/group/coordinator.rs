//! The group coordinator on the wire: the requests a [`Member`](super::Member) asks for, built for the
//! version negotiated with the broker, and the coordinator's own connection.
//!
//! Owns: request building (pure functions of the version, unit-tested) and [`CoordinatorConnection`].
//! May use [`crate::client::cluster`], [`crate::client::connection`] and [`crate::protocol`].
//!
//! # Invariants
//!
//! - The coordinator gets a connection of its own (not the cluster's shared one), so a JoinGroup the
//!   coordinator holds for a whole rebalance never delays fetches or produces to the same broker.
//! - A field is only set at versions that carry it (`kafka_protocol` refuses to encode otherwise).

use std::{sync::Arc, time::Duration};

use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
    join_group_request::JoinGroupRequestProtocol, leave_group_request::MemberIdentity,
    sync_group_request::SyncGroupRequestAssignment,
};

use super::member::{Failure, Generation, MemberConfig};
use crate::{
    client::{ClientConfig, connection::BrokerConnection},
    protocol::{ApiRequest, StrBytes},
};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// The coordinator's dedicated connection.
#[derive(Debug, Clone)]
pub(crate) struct CoordinatorConnection {
    pub(crate) node_id: i32,
    pub(crate) conn: Arc<BrokerConnection>,
}

impl CoordinatorConnection {
    pub(crate) fn new(node_id: i32, address: &str, config: &ClientConfig) -> Self {
        Self {
            node_id,
            conn: Arc::new(BrokerConnection::new(address, Arc::new(config.clone()))),
        }
    }

    pub(crate) fn address(&self) -> &str {
        self.conn.address()
    }

    /// Sends the request `build(version)` at the negotiated version, waiting up to `timeout`.
    pub(crate) async fn send<R: ApiRequest>(
        &self,
        build: impl FnOnce(i16) -> R,
        timeout: Duration,
    ) -> Result<R::Response, Failure> {
        let messenger = self
            .conn
            .messenger()
            .await
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let version = messenger
            .version_for::<R>()
            .map_err(|e| Failure::Transport(e.to_string()))?;
        messenger
            .request_with_timeout(&build(version), timeout)
            .await
            .map_err(|e| Failure::Transport(e.to_string()))
    }
}

pub(crate) fn find_coordinator(version: i16, group_id: &str) -> FindCoordinatorRequest {
    let request = FindCoordinatorRequest::default().with_key_type(0);
    if version >= 4 {
        request.with_coordinator_keys(vec![s(group_id)])
    } else {
        request.with_key(s(group_id))
    }
}

pub(crate) fn join_group(
    version: i16,
    config: &MemberConfig,
    member_id: &str,
    protocols: &[(String, bytes::Bytes)],
    reason: &str,
) -> JoinGroupRequest {
    let session = i32::try_from(config.timeouts.session_timeout.as_millis()).unwrap_or(i32::MAX);
    let rebalance = i32::try_from(config.rebalance_timeout.as_millis()).unwrap_or(i32::MAX);
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(&config.group_id)))
        .with_session_timeout_ms(session)
        .with_rebalance_timeout_ms(rebalance)
        .with_member_id(s(member_id))
        .with_group_instance_id(
            config
                .group_instance_id
                .as_deref()
                .filter(|_| version >= 5)
                .map(s),
        )
        .with_protocol_type(s("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|(name, metadata)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(name))
                        .with_metadata(metadata.clone())
                })
                .collect(),
        )
        .with_reason(Some(s(reason)).filter(|_| version >= 8))
}

pub(crate) fn sync_group(
    version: i16,
    config: &MemberConfig,
    generation: &Generation,
    assignments: &[(String, bytes::Bytes)],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(&config.group_id)))
        .with_generation_id(generation.generation_id)
        .with_member_id(s(&generation.member_id))
        .with_group_instance_id(config.group_instance_id.as_deref().map(s))
        .with_protocol_type(Some(s("consumer")).filter(|_| version >= 5))
        .with_protocol_name(
            generation
                .protocol_name
                .as_deref()
                .filter(|_| version >= 5)
                .map(s),
        )
        .with_assignments(
            assignments
                .iter()
                .map(|(member, bytes)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(member))
                        .with_assignment(bytes.clone())
                })
                .collect(),
        )
}

pub(crate) fn heartbeat(config: &MemberConfig, generation: &Generation) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(s(&config.group_id)))
        .with_generation_id(generation.generation_id)
        .with_member_id(s(&generation.member_id))
        .with_group_instance_id(config.group_instance_id.as_deref().map(s))
}

pub(crate) fn leave_group(
    version: i16,
    config: &MemberConfig,
    member_id: &str,
    reason: &str,
) -> LeaveGroupRequest {
    LeaveGroupRequest::default()
        .with_group_id(GroupId(s(&config.group_id)))
        .with_members(vec![
            MemberIdentity::default()
                .with_member_id(s(member_id))
                .with_group_instance_id(config.group_instance_id.as_deref().map(s))
                .with_reason(Some(s(reason)).filter(|_| version >= 5)),
        ])
}

#[cfg(test)]
mod tests {
    use kafka_protocol::protocol::Encodable;

    use super::*;

    fn generation() -> Generation {
        Generation {
            generation_id: 4,
            member_id: "m".into(),
            protocol_name: Some("range".into()),
        }
    }

    /// Every request encodes at every version this client may negotiate, static member or not.
    #[test]
    fn requests_encode_at_every_negotiable_version() {
        for config in [
            MemberConfig::new("g", ["t"]),
            MemberConfig::new("g", ["t"]).with_group_instance_id("i-1"),
        ] {
            let protocols = vec![("range".to_owned(), bytes::Bytes::from_static(b"\0\x03"))];
            for v in JoinGroupRequest::VERSIONS.min..=JoinGroupRequest::VERSIONS.max {
                let r = join_group(v, &config, "", &protocols, "why");
                assert!(r.compute_size(v).is_ok(), "JoinGroup v{v}");
                assert_eq!(r.reason.is_some(), v >= 8);
            }
            for v in SyncGroupRequest::VERSIONS.min..=SyncGroupRequest::VERSIONS.max {
                let r = sync_group(v, &config, &generation(), &[]);
                assert!(r.compute_size(v).is_ok(), "SyncGroup v{v}");
            }
            for v in HeartbeatRequest::VERSIONS.min..=HeartbeatRequest::VERSIONS.max {
                assert!(
                    heartbeat(&config, &generation()).compute_size(v).is_ok(),
                    "Heartbeat v{v}"
                );
            }
            for v in LeaveGroupRequest::VERSIONS.min..=LeaveGroupRequest::VERSIONS.max {
                assert!(
                    leave_group(v, &config, "m", "bye").compute_size(v).is_ok(),
                    "LeaveGroup v{v}"
                );
            }
        }
        for v in FindCoordinatorRequest::VERSIONS.min..=FindCoordinatorRequest::VERSIONS.max {
            assert!(
                find_coordinator(v, "g").compute_size(v).is_ok(),
                "FindCoordinator v{v}"
            );
        }
    }
}
