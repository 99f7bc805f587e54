//! What a [`Member`] wants done next, in the order the driver must do it.
//!
//! [`Member::poll_request`] may queue an event without returning a request: the revocation an eager
//! member owes before it rejoins. [`next_action`] looks for events again right after a request poll,
//! so such an event is handled at once, not at the driver's next wake-up (up to a heartbeat interval
//! later, for every rebalance).
//!
//! May use [`member`](super::member) only; no clock, no I/O.

use std::time::Instant;

use super::member::{GroupRequest, Member, MemberEvent};

/// One thing the driver must do for the member.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Hand this event to the consumer.
    Event(MemberEvent),
    /// Send this request.
    Request(GroupRequest),
}

/// The member's next event, else its next request, else an event the request poll queued.
pub(crate) fn next_action(member: &mut Member, now: Instant) -> Option<Action> {
    if let Some(event) = member.poll_event() {
        return Some(Action::Event(event));
    }
    if let Some(request) = member.poll_request(now) {
        return Some(Action::Request(request));
    }
    member.poll_event().map(Action::Event)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kafka_protocol::messages::{BrokerId, FindCoordinatorResponse, HeartbeatResponse, JoinGroupResponse};

    use super::*;
    use crate::{
        client::group::{
            HeartbeatConfig, MemberConfig,
            assignor::{Assignment, TopicPartition},
        },
        protocol::{ResponseError, StrBytes},
    };

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    #[test]
    fn a_revocation_queued_by_a_request_poll_is_handed_out_in_the_same_step() {
        let t0 = Instant::now();
        let timeouts = HeartbeatConfig {
            session_timeout: Duration::from_secs(6),
            heartbeat_interval: Duration::from_secs(1),
            max_poll_interval: Duration::from_secs(20),
            retry_backoff: Duration::from_millis(100),
        };
        let mut m = Member::new(MemberConfig::new("g", ["t"]).with_timeouts(timeouts), t0);
        assert_eq!(m.poll_request(t0), Some(GroupRequest::FindCoordinator));
        m.handle_coordinator(
            t0,
            Ok(FindCoordinatorResponse::default()
                .with_node_id(BrokerId(1))
                .with_host(s("b"))
                .with_port(9092)),
        );
        assert!(matches!(m.poll_request(t0), Some(GroupRequest::JoinGroup { .. })));
        m.handle_join(
            t0,
            Ok(JoinGroupResponse::default()
                .with_member_id(s("me"))
                .with_leader(s("other"))
                .with_generation_id(1)
                .with_protocol_name(Some(s("range")))),
        );
        assert!(matches!(m.poll_request(t0), Some(GroupRequest::SyncGroup { .. })));
        let tp = TopicPartition::new("t", 0);
        m.handle_sync(
            t0,
            Ok(kafka_protocol::messages::SyncGroupResponse::default()
                .with_assignment(Assignment::new(vec![tp.clone()]).encode().unwrap())),
        );
        while next_action(&mut m, t0).is_some() {}

        let t1 = t0 + Duration::from_secs(1);
        let Some(Action::Request(GroupRequest::Heartbeat { generation: sent })) = next_action(&mut m, t1)
        else {
            panic!("expected a heartbeat")
        };
        m.handle_heartbeat(
            t1,
            &sent,
            Ok(HeartbeatResponse::default().with_error_code(ResponseError::RebalanceInProgress.code())),
        );
        // The eager member revokes before it rejoins: the revocation comes out of this step.
        assert!(
            matches!(
                next_action(&mut m, t1),
                Some(Action::Event(MemberEvent::Revoke { ref partitions, .. })) if *partitions == vec![tp.clone()]
            ),
            "the revocation waits for the next wake-up"
        );
    }
}
