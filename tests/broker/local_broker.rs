//! The local test broker itself: starting it from async code, and what it leaves behind.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use kafka_event_bus::testing::{LocalBroker, TestBroker};

pub(crate) fn trials(trials: &mut crate::Trials<'_>) {
    trials.push(crate::sync_trial(
        "async_start_leaves_the_runtime_running",
        || {
            async_start_leaves_the_runtime_running();
            Ok(())
        },
    ));
    trials.push(crate::sync_trial(
        "log_is_removed_after_a_clean_stop",
        || {
            log_is_removed_after_a_clean_stop();
            Ok(())
        },
    ));
    trials.push(crate::sync_trial(
        "log_is_kept_when_the_broker_died",
        || {
            log_is_kept_when_the_broker_died();
            Ok(())
        },
    ));
}

/// On a single-threaded runtime, other tasks keep running while `TestBroker::start` installs and starts
/// the broker (a blocking start would freeze them all).
fn async_start_leaves_the_runtime_running() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ticks = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&ticks);
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        let broker = TestBroker::start().await.unwrap();
        let during = ticks.load(Ordering::Relaxed);
        ticker.abort();
        if broker.is_local() {
            assert!(
                during >= 3,
                "only {during} ticks while the broker started: the runtime was blocked"
            );
            let address = broker.bootstrap_servers().to_owned();
            tokio::net::TcpStream::connect(address).await.unwrap();
        }
    });
}

fn log_is_removed_after_a_clean_stop() {
    let broker = LocalBroker::start().unwrap();
    let log = broker.log().to_path_buf();
    assert!(log.is_file(), "{} missing while the broker runs", log.display());
    drop(broker);
    assert!(!log.exists(), "{} left behind after a clean stop", log.display());
}

fn log_is_kept_when_the_broker_died() {
    let broker = LocalBroker::start().unwrap();
    let log = broker.log().to_path_buf();
    let pid = broker.pid().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(100));
    drop(broker);
    let kept = log.is_file();
    let _ = std::fs::remove_file(&log);
    assert!(kept, "the log of a broker that died was removed");
}
