//! A leader that closes while the group rebalances. Tansu keeps a leader that sent LeaveGroup during a
//! rebalance as the group's leader: every JoinGroup answer names it, nobody sends the assignment, and
//! the group never forms again. The closing leader therefore completes the rebalance (handing every
//! partition to the others) before it leaves.

use std::time::Duration;

use kafka_event_bus::client::{Cluster, connection::BrokerConnection, group::assignor::Subscription};
use kafka_protocol::messages::{GroupId, JoinGroupRequest, join_group_request::JoinGroupRequestProtocol};
use kafka_protocol::protocol::StrBytes;

use crate::{
    group_support::{TestMember, create_topic, eventually, fast_config},
    support::unique,
    trial,
};

/// A JoinGroup without a member id: the coordinator hands out an id (MEMBER_ID_REQUIRED) and, on
/// Tansu, counts the member in and starts a rebalance at once. The member never comes back.
async fn knock(bootstrap: &str, config: kafka_event_bus::client::ClientConfig, group: &str) {
    let broker = BrokerConnection::new(bootstrap.split(',').next().unwrap(), config.into());
    let nothing: Vec<String> = Vec::new();
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_session_timeout_ms(6_000)
        .with_rebalance_timeout_ms(6_000)
        .with_member_id(StrBytes::from_static_str(""))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Subscription::new(nothing).encode().unwrap()),
        ]);
    let answer = broker.request(&request).await.unwrap();
    assert!(!answer.member_id.is_empty(), "{answer:?}");
}

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(trial(
        "a_leader_closing_during_a_rebalance_does_not_stall_the_group",
        |ctx| async move {
            let cluster: Cluster = ctx.cluster().await;
            let (topic, group) = (unique("handover"), unique("handover-g"));
            create_topic(&cluster, &topic, 2).await;
            // Heartbeats far apart, so the leader closes before one tells it the group rebalances.
            let config = fast_config(&group, &topic).with_heartbeat_interval(Duration::from_secs(3));
            let leader = TestMember::start(&cluster, config.clone());
            eventually("the leader's assignment", Duration::from_secs(30), || {
                leader.assignment().len() == 2
            })
            .await;
            // A member knocks: the group rebalances, with the current leader still its leader...
            knock(&ctx.bootstrap, ctx.config(), &group).await;
            // ...which closes now (revocation, commit, and its LeaveGroup).
            leader.close().await;
            // The next member must get the partitions: a group whose departed leader is still the
            // leader never forms again.
            let next = TestMember::start(&cluster, fast_config(&group, &topic));
            eventually("the next member's assignment", Duration::from_secs(30), || {
                next.assignment().len() == 2
            })
            .await;
            next.close().await;
        },
    ));
}
