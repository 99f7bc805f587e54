//! A fault for tests: a panic in a partition worker's own code (not in a handler), to check that a
//! worker that dies is noticed.

use std::sync::{
    Mutex, PoisonError,
    atomic::{AtomicBool, Ordering},
};

static TOPICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Whether `TOPICS` may hold a fault: workers check this per record, not the lock (a build with the
/// feature, such as the benchmarks', would otherwise share one lock across all partition workers).
static ARMED: AtomicBool = AtomicBool::new(false);

/// Makes the worker that takes the next record of `topic` panic, once: a fault in the bus's own code
/// (not in a handler), to check that a worker that dies is noticed (feature `testing`).
pub fn inject_worker_panic(topic: &str) {
    let mut topics = TOPICS.lock().unwrap_or_else(PoisonError::into_inner);
    topics.push(topic.to_owned());
    ARMED.store(true, Ordering::Release);
}

/// Panics if a fault was injected for `topic` (and forgets it).
#[allow(clippy::panic)] // the fault this module exists to inject
pub(crate) fn check(topic: &str) {
    if !ARMED.load(Ordering::Acquire) {
        return;
    }
    let hit = {
        let mut topics = TOPICS.lock().unwrap_or_else(PoisonError::into_inner);
        let at = topics.iter().position(|t| t == topic);
        let hit = at.map(|at| topics.swap_remove(at)).is_some();
        if topics.is_empty() {
            ARMED.store(false, Ordering::Release);
        }
        hit
    };
    if hit {
        panic!("injected worker fault on {topic}");
    }
}
