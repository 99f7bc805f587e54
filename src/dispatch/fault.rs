//! A fault for tests: a panic in a partition worker's own code (not in a handler), to check that a
//! worker that dies is noticed.

use std::sync::{Mutex, PoisonError};

static TOPICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Makes the worker that takes the next record of `topic` panic, once: a fault in the bus's own code
/// (not in a handler), to check that a worker that dies is noticed (feature `testing`).
pub fn inject_worker_panic(topic: &str) {
    TOPICS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(topic.to_owned());
}

/// Panics if a fault was injected for `topic` (and forgets it).
#[allow(clippy::panic)] // the fault this module exists to inject
pub(crate) fn check(topic: &str) {
    let hit = {
        let mut topics = TOPICS.lock().unwrap_or_else(PoisonError::into_inner);
        let at = topics.iter().position(|t| t == topic);
        at.map(|at| topics.swap_remove(at)).is_some()
    };
    if hit {
        panic!("injected worker fault on {topic}");
    }
}
