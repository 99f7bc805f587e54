//! Partition assignors, and the consumer embedded protocol they speak.
//!
//! The group leader decodes every member's [`Subscription`] from JoinGroup, runs an [`Assignor`] over
//! them and the topics' partition counts, and encodes one `Assignment` per member for SyncGroup.
//! Members of this crate, of the Java client and of librdkafka can share one group because the bytes
//! (`consumer_protocol`) and the algorithms match Java's:
//!
//! | assignor | Java class | protocol |
//! |---|---|---|
//! | [`RangeAssignor`] (`range`) | `RangeAssignor` | eager |
//! | [`RoundRobinAssignor`] (`roundrobin`) | `RoundRobinAssignor` | eager |
//! | [`CooperativeStickyAssignor`] (`cooperative-sticky`) | `CooperativeStickyAssignor` | cooperative (or eager) |
//!
//! Owns: [`MemberSubscription`], the [`Assignor`] trait and its implementations,
//! [`AssignmentChange`] (what a member revokes and gains). May use [`crate::protocol`] and external
//! crates only. No I/O, no clock, no randomness.
//!
//! # Invariants
//!
//! - Results are deterministic: members, topics and partitions are visited in sorted order wherever
//!   Java iterates a `HashMap`, so the same input always gives the same output.
//! - Every partition of a topic someone subscribes to is assigned to at most one member, and only to a
//!   member subscribed to its topic; eager assignors assign every such partition. The cooperative
//!   assignor withholds a partition that changes owner until its old owner has revoked it.
//! - Every member of the input appears in the output, possibly with no partitions.
//! - Rack-aware assignment (KIP-881) is not done: partition replica racks are not an input, which is
//!   exactly the case where Java's assignors ignore racks too.

unstable! { pub mod consumer_protocol; }
mod range;
mod round_robin;
mod sticky;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use snafu::Snafu;

pub(crate) use crate::client::TopicPartition;
pub use consumer_protocol::Subscription;
unstable! { pub use consumer_protocol::{Assignment, CONSUMER_PROTOCOL_VERSION}; }
pub use range::RangeAssignor;
pub use round_robin::RoundRobinAssignor;
pub use sticky::CooperativeStickyAssignor;

/// Errors of the consumer embedded protocol. None is retriable: the bytes are what they are.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::group::assignor::{Error, Subscription};
///
/// let err = Subscription::decode(&[0, 1, 0, 0]).unwrap_err();
/// assert!(matches!(err, Error::Truncated { field: "topics", .. }));
/// ```
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The input ended inside a field.
    #[snafu(display("consumer protocol: truncated {field} at byte {offset}"))]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it started.
        offset: usize,
    },
    /// The version prefix was negative.
    #[snafu(display("consumer protocol: negative version {version}"))]
    NegativeVersion {
        /// The version read.
        version: i16,
    },
    /// A length prefix below -1.
    #[snafu(display("consumer protocol: negative length {len} for {field} at byte {offset}"))]
    NegativeLength {
        /// The field being read.
        field: &'static str,
        /// The length read.
        len: i32,
        /// Where the field's data would start.
        offset: usize,
    },
    /// A null where the protocol requires a string.
    #[snafu(display("consumer protocol: null {field} at byte {offset}"))]
    NullString {
        /// The field being read.
        field: &'static str,
        /// Where it started.
        offset: usize,
    },
    /// A string that is not UTF-8.
    #[snafu(display("consumer protocol: {field} at byte {offset} is not UTF-8"))]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
        /// Where its data started.
        offset: usize,
    },
    /// A message could not be encoded (a string longer than the wire allows).
    #[snafu(display("consumer protocol: cannot encode {what}: {source}"))]
    Encode {
        /// Which message.
        what: &'static str,
        /// What the codec said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Which rebalance protocol an assignor supports (Java's `RebalanceProtocol`).
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::group::assignor::{
///     Assignor, CooperativeStickyAssignor, RangeAssignor, RebalanceProtocol,
/// };
///
/// assert_eq!(RangeAssignor.rebalance_protocol(), RebalanceProtocol::Eager);
/// assert_eq!(CooperativeStickyAssignor.rebalance_protocol(), RebalanceProtocol::Cooperative);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RebalanceProtocol {
    /// Every member revokes everything before joining; the leader may move anything.
    Eager,
    /// Members keep their partitions while rejoining; only the partitions that move are revoked, and
    /// a moved partition is handed to its new owner one rebalance later.
    Cooperative,
}

/// One member as the leader sees it in the JoinGroup response.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::group::assignor::{MemberSubscription, Subscription};
///
/// let m = MemberSubscription::new(Subscription::new(["orders"])).with_group_instance_id("worker-1");
/// assert_eq!(m.group_instance_id.as_deref(), Some("worker-1"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberSubscription {
    /// The member's static id (`group.instance.id`), if it has one. Range and round-robin order
    /// static members before dynamic ones, as Java does.
    pub group_instance_id: Option<String>,
    /// What the member sent in JoinGroup.
    pub subscription: Subscription,
}

impl MemberSubscription {
    /// A dynamic member with this subscription.
    pub fn new(subscription: Subscription) -> Self {
        Self {
            group_instance_id: None,
            subscription,
        }
    }

    /// Sets the static member id.
    #[must_use]
    pub fn with_group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    fn subscribes_to(&self, topic: &str) -> bool {
        self.subscription.topics.iter().any(|t| t == topic)
    }
}

/// Member id → partitions assigned to it (sorted), with an entry for every member.
pub type GroupAssignment = BTreeMap<String, Vec<TopicPartition>>;

/// Topic → number of partitions, as cluster metadata reports it.
pub type PartitionsPerTopic = BTreeMap<String, i32>;

/// A partition assignor: what the group leader runs between JoinGroup and SyncGroup.
///
/// # Example
///
/// ```
/// use std::collections::BTreeMap;
/// use kafka_event_bus::client::TopicPartition;
/// use kafka_event_bus::client::group::assignor::{
///     Assignor, MemberSubscription, RangeAssignor, Subscription,
/// };
///
/// let metadata = BTreeMap::from([("orders".to_owned(), 3)]);
/// let members = BTreeMap::from([
///     ("a".to_owned(), MemberSubscription::new(Subscription::new(["orders"]))),
///     ("b".to_owned(), MemberSubscription::new(Subscription::new(["orders"]))),
/// ]);
/// let out = RangeAssignor.assign(&metadata, &members);
/// assert_eq!(out["a"], vec![TopicPartition::new("orders", 0), TopicPartition::new("orders", 1)]);
/// assert_eq!(out["b"], vec![TopicPartition::new("orders", 2)]);
/// ```
pub trait Assignor: fmt::Debug + Send + Sync {
    /// The protocol name sent in JoinGroup (`range`, `roundrobin`, `cooperative-sticky`).
    fn name(&self) -> &'static str;

    /// The rebalance protocols this assignor supports, preferred first. A group uses the most
    /// advanced protocol all its assignors support.
    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        &[RebalanceProtocol::Eager]
    }

    /// The protocol this assignor is meant for (the first of [`Self::supported_protocols`]).
    fn rebalance_protocol(&self) -> RebalanceProtocol {
        self.supported_protocols()
            .first()
            .copied()
            .unwrap_or(RebalanceProtocol::Eager)
    }

    /// The `user_data` this assignor wants in the member's subscription, given the generation in
    /// which the member got its current partitions (`None` before its first assignment).
    fn subscription_user_data(&self, generation: Option<i32>) -> Option<bytes::Bytes> {
        let _ = generation;
        None
    }

    /// Assigns the partitions of `metadata` to `members` (member id → subscription). Topics nobody
    /// subscribes to are ignored; subscribed topics missing from `metadata` get nothing.
    fn assign(
        &self,
        metadata: &PartitionsPerTopic,
        members: &BTreeMap<String, MemberSubscription>,
    ) -> GroupAssignment;
}

/// What one member must do when its assignment changes from `old` to `new`.
///
/// Under the cooperative protocol a member revokes only [`Self::revoked`] (committing their offsets
/// first) and, if it revoked anything, rejoins so the leader can hand those partitions on.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::{
///     TopicPartition,
///     group::assignor::AssignmentChange,
/// };
///
/// let tp = |p| TopicPartition::new("t", p);
/// let change = AssignmentChange::between(&[tp(0), tp(1)], &[tp(1), tp(2)]);
/// assert_eq!(change.revoked, vec![tp(0)]);
/// assert_eq!(change.added, vec![tp(2)]);
/// assert_eq!(change.kept, vec![tp(1)]);
/// assert!(change.needs_rejoin());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AssignmentChange {
    /// Owned before, not any more: revoke these (sorted).
    pub revoked: Vec<TopicPartition>,
    /// Newly assigned (sorted).
    pub added: Vec<TopicPartition>,
    /// In both (sorted).
    pub kept: Vec<TopicPartition>,
}

impl AssignmentChange {
    /// Compares an old and a new assignment; duplicates are ignored.
    pub fn between(old: &[TopicPartition], new: &[TopicPartition]) -> Self {
        let old: BTreeSet<_> = old.iter().collect();
        let new: BTreeSet<_> = new.iter().collect();
        Self {
            revoked: old.difference(&new).map(|tp| (*tp).clone()).collect(),
            added: new.difference(&old).map(|tp| (*tp).clone()).collect(),
            kept: old.intersection(&new).map(|tp| (*tp).clone()).collect(),
        }
    }

    /// Whether the cooperative protocol requires another rebalance: something was revoked, so a
    /// member elsewhere is waiting for it.
    pub fn needs_rejoin(&self) -> bool {
        !self.revoked.is_empty()
    }
}

/// The metadata restricted to topics some member subscribes to (Java's `partitionsPerTopic`);
/// negative counts read as 0.
fn subscribed_partitions(
    metadata: &PartitionsPerTopic,
    members: &BTreeMap<String, MemberSubscription>,
) -> BTreeMap<String, i32> {
    let subscribed: BTreeSet<&str> = members
        .values()
        .flat_map(|m| m.subscription.topics.iter().map(String::as_str))
        .collect();
    metadata
        .iter()
        .filter(|(t, _)| subscribed.contains(t.as_str()))
        .map(|(t, n)| (t.clone(), (*n).max(0)))
        .collect()
}

/// Member ids in Java's `MemberInfo` order: static members by instance id first, then dynamic
/// members by member id.
fn java_member_order(members: &BTreeMap<String, MemberSubscription>) -> Vec<&str> {
    let mut ids: Vec<(&str, Option<&str>)> = members
        .iter()
        .map(|(id, m)| (id.as_str(), m.group_instance_id.as_deref()))
        .collect();
    ids.sort_by(|(a_id, a_inst), (b_id, b_inst)| match (a_inst, b_inst) {
        (Some(a), Some(b)) => a.cmp(b).then_with(|| a_id.cmp(b_id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a_id.cmp(b_id),
    });
    ids.into_iter().map(|(id, _)| id).collect()
}

/// An output with an empty entry for every member.
fn empty_assignment(members: &BTreeMap<String, MemberSubscription>) -> GroupAssignment {
    members.keys().map(|id| (id.clone(), Vec::new())).collect()
}

#[cfg(test)]
pub(crate) mod test_support;
