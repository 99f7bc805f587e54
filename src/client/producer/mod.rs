//! The producer (feature `client`): partitioning now; the accumulator and sender build on it.
//!
//! May use: [`crate::protocol`] (record batches) and, later, `client::cluster`. The partitioner is pure
//! logic (no I/O, no clock), so it is unit-tested exhaustively without a broker.

pub mod partitioner;
