//! Consumer groups (the classic protocol): membership, assignors, offsets.
//!
//! - [`assignor`]: the partition assignors and the consumer embedded protocol (pure).
//! - [`member`]: one member's join/sync/heartbeat state machine, without I/O ([`Member`]).
//! - `heartbeat`: the member's timers ([`HeartbeatConfig`]).
//!
//! May use [`crate::protocol`]; the pure parts use no clock and no sockets.

pub mod assignor;
mod heartbeat;
pub mod member;

pub use heartbeat::HeartbeatConfig;
pub use member::{
    Failure, Generation, GroupRequest, LeaveReason, Member, MemberConfig, MemberEvent, MemberState,
};
