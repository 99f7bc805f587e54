//! The guide's "Your first service" (`examples/first_service/`) is a crate of its own that uses this
//! library through a path dependency, as a user's service does through crates.io. This test builds it
//! offline against the published API and runs its tests, so the documented path cannot rot: its handler
//! unit test on the in-memory bus, and (unless `FIRST_SERVICE_E2E=0`) the whole service end to end
//! against a local broker (or `KAFKA_BOOTSTRAP_SERVERS`).
//!
//! It builds with this build's target directory (`CARGO_TARGET_DIR`; cargo does not hold its lock while
//! tests run), after copying the library's `Cargo.lock` next to the service, so the same dependency
//! versions are used: nothing is downloaded (`--offline`) and the dependencies already built are reused.
//! Only the library and the service itself are compiled the first time; later runs only check them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::{path::Path, process::Command, time::Instant};

#[test]
fn the_first_service_of_the_guide_builds_and_its_tests_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let service = root.join("examples").join("first_service");
    if !service.join("Cargo.toml").is_file() {
        eprintln!("examples/first_service is not here (a packaged crate): nothing to build");
        return;
    }
    std::fs::copy(root.join("Cargo.lock"), service.join("Cargo.lock")).unwrap();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["test", "--offline", "--manifest-path"])
        .arg(service.join("Cargo.toml"))
        .args(["--lib", "--bins"])
        .env("CARGO_TARGET_DIR", target);
    if std::env::var("FIRST_SERVICE_E2E").as_deref() != Ok("0") {
        command.args(["--test", "end_to_end"]);
    }
    let started = Instant::now();
    let output = command.output().unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "building or testing examples/first_service failed after {took:?}:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("billing_charges_known_customers_and_refunds_cancellations ... ok"),
        "{stdout}"
    );
    eprintln!("examples/first_service built and tested in {took:?}");
}
