//! The group driver's own thread (Java's heartbeat thread): a one-thread runtime that runs nothing but
//! the driver, so heartbeats and the join protocol go on however busy the application's runtime is.
//! A member whose runtime was saturated by record handling sent no heartbeat for longer than the
//! session timeout, was evicted, and had its revocation commit refused.
//!
//! May use [`driver`](super::driver) only.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Runs `driver` on a thread of its own; the handle awaits or aborts it from any runtime. Falls back to
/// the current runtime if no thread or runtime can be made.
pub(crate) fn spawn(
    runtime: &tokio::runtime::Handle,
    driver: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    let own = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("kafka-group")
        .build()
    {
        Ok(own) => own,
        Err(e) => {
            tracing::warn!(error = %e, "no runtime for the group driver; it shares the application's");
            return runtime.spawn(driver);
        }
    };
    // The thread lives until the driver ends, normally or aborted (dropping the task drops the guard).
    let ended = CancellationToken::new();
    let guard = ended.clone().drop_guard();
    let task = own.spawn(async move {
        let _guard = guard;
        driver.await;
    });
    let thread = std::thread::Builder::new()
        .name("kafka-group".into())
        .spawn(move || own.block_on(ended.cancelled()));
    if let Err(e) = thread {
        tracing::warn!(error = %e, "no thread for the group driver");
        task.abort();
    }
    task
}
