//! The open connections to each broker address, so that a request timeout on one of them also closes
//! the others that have heard nothing from that broker since the timed-out request was sent.
//!
//! A link that went silent (a NAT that forgot its flows, a host that vanished) is silent for every
//! connection over it, but each connection only learns it from a request of its own timing out. A
//! consumer holds several connections to a broker (shared, coordinator, one per fetch lane); an idle
//! one used only after another timed out would wait a whole request timeout more, then the next one,
//! and so on. A connection that heard from the broker after the timed-out request was sent is alive
//! and is kept.
//!
//! The registry holds weak references only, pruned whenever a connection registers: it never holds
//! more entries than connections are open.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, Weak},
    time::Instant,
};

use super::{Error, Shared};

static LINKS: LazyLock<Mutex<HashMap<String, Vec<Weak<Shared>>>>> = LazyLock::new(Mutex::default);

fn links() -> std::sync::MutexGuard<'static, HashMap<String, Vec<Weak<Shared>>>> {
    LINKS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Remembers `shared` as open to its broker, forgetting connections that are gone.
pub(super) fn register(shared: &Arc<Shared>) {
    let mut links = links();
    links.retain(|_, open| {
        open.retain(|w| w.strong_count() > 0);
        !open.is_empty()
    });
    links
        .entry(shared.broker.clone())
        .or_default()
        .push(Arc::downgrade(shared));
}

/// A request to `broker` sent at `sent_at` went unanswered for its whole timeout (`cause`): closes every
/// other connection to `broker` that has received nothing since `sent_at`.
pub(super) fn close_silent(broker: &str, sent_at: Instant, cause: &Error) {
    let silent: Vec<Arc<Shared>> = links()
        .get(broker)
        .into_iter()
        .flatten()
        .filter_map(Weak::upgrade)
        .filter(|s| s.last_heard() < sent_at)
        .collect();
    for shared in silent {
        shared.poison(cause.clone());
    }
}
