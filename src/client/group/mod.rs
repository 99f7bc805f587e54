//! Consumer groups: what a member of a classic consumer group computes without I/O.
//!
//! Owns the partition assignors and the consumer embedded protocol ([`assignor`]). May use
//! [`crate::protocol`] and external crates only. Everything here is pure logic: no sockets, no clock.

pub mod assignor;
