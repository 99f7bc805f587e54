//! What every broker test shares: the broker's address, a runtime, unique names and a time limit.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use kafka_event_bus::{
    client::{ClientConfig, Cluster},
    testing::TestBroker,
};
use libtest_mimic::Failed;

/// The limit for one test; no test may hang the suite.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

pub(crate) struct Ctx {
    pub(crate) bootstrap: String,
    runtime: tokio::runtime::Runtime,
}

static CTX: OnceLock<Ctx> = OnceLock::new();

impl Ctx {
    pub(crate) fn init(broker: &TestBroker) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let _ = CTX.set(Ctx {
            bootstrap: broker.bootstrap_servers().to_owned(),
            runtime,
        });
    }

    /// A client config for the shared broker.
    pub(crate) fn config(&self) -> ClientConfig {
        ClientConfig::new(&self.bootstrap).with_client_id("kafka-event-bus-tests")
    }

    pub(crate) async fn cluster(&self) -> Cluster {
        Cluster::connect(self.config()).await.unwrap()
    }
}

/// The broker context, for a test that runs a runtime of its own.
pub(crate) fn ctx() -> Result<&'static Ctx, Failed> {
    CTX.get()
        .ok_or_else(|| "the broker context was not initialised".into())
}

/// Runs one async test on the shared runtime with the time limit; a panic is a failure.
pub(crate) fn run<F, Fut>(test: F) -> Result<(), Failed>
where
    F: FnOnce(&'static Ctx) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    run_for(TEST_TIMEOUT, test)
}

/// [`run`] with a time limit of its own (for opt-in long runs).
pub(crate) fn run_for<F, Fut>(limit: Duration, test: F) -> Result<(), Failed>
where
    F: FnOnce(&'static Ctx) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let ctx = CTX.get().ok_or("the broker context was not initialised")?;
    let handle = ctx.runtime.spawn(async move {
        tokio::time::timeout(limit, test(ctx))
            .await
            .map_err(|_| format!("timed out after {limit:?}"))
    });
    match ctx.runtime.block_on(handle) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(timeout)) => Err(timeout.into()),
        Err(join) => Err(panic_message(join).into()),
    }
}

fn panic_message(err: tokio::task::JoinError) -> String {
    match err.try_into_panic() {
        Ok(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panicked".into()),
        Err(err) => err.to_string(),
    }
}

/// A name no other test (or earlier run against the same broker) uses.
pub(crate) fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The event the bus tests publish (the user guide's `OrderCreated`).
pub(crate) use crate::common::OrderCreated;
