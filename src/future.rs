//! The one boxed future type of the crate: what a handler and a group's revocation return.

use std::{future::Future, pin::Pin};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
