//! Consumer groups (the classic protocol): membership, assignors, committed offsets.
//!
//! - [`assignor`]: the partition assignors and the consumer embedded protocol (pure).
//! - `member`: one member's join/sync/heartbeat state machine, without I/O (`Member`).
//! - `heartbeat`: the member's timers ([`HeartbeatConfig`]).
//! - `coordinator`, `offsets`: the group requests on the wire, OffsetFetch and OffsetCommit.
//! - `driver_thread`: the driver's own thread and runtime (heartbeats never wait for the application).
//! - `actions`: what the member wants done next, in order (events, requests).
//! - `waits`: what the driver waits for and since when (long waits are logged).
//! - `driver`: the task that drives a `Member` over the coordinator's own connection and reports to
//!   a `RebalanceListener` (the consumer).
//!
//! May use [`crate::client::cluster`], [`crate::client::connection`] and [`crate::protocol`]; the
//! member, heartbeat and assignors use no clock and no sockets.

mod actions;
pub mod assignor;
mod coordinator;
#[cfg_attr(not(feature = "unstable"), allow(unreachable_pub))]
pub(crate) mod driver;
pub(crate) mod driver_thread;
mod heartbeat;
unstable! { pub mod member; }
mod offsets;
mod waits;

pub(crate) use driver::BoxFuture;
unstable! { pub use driver::RebalanceListener; }
pub use heartbeat::HeartbeatConfig;
pub use member::{LeaveReason, MemberConfig};
unstable! { pub use member::{Failure, Generation, GroupRequest, Member, MemberEvent, MemberState}; }
