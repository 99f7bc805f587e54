//! The guide's "Your first service" (`examples/first_service/`) is a crate of its own that uses this
//! library through a path dependency, as a user's service does through crates.io. This test builds it
//! offline against the published API and runs its tests, so the documented path cannot rot: its handler
//! unit test on the in-memory bus, and (unless `FIRST_SERVICE_E2E=0`) the whole service end to end
//! against a local broker (or `KAFKA_BOOTSTRAP_SERVERS`).
//!
//! The source tree is left alone (it may be read-only): the service is copied under this build's
//! `CARGO_TARGET_TMPDIR`, its path dependency pointed at this crate's directory, next to a copy of the
//! library's `Cargo.lock` so the same dependency versions are used and nothing is downloaded
//! (`--offline`). It builds with this build's target directory (cargo does not hold its lock while
//! tests run). The service enables other features of the library's dependencies (tokio's `signal`,
//! `tracing-subscriber`, the library's `testing`) than this build does, so the first run compiles
//! some of those dependencies again (tokio-rustls and the crates whose features differ), the library
//! and the service: about 2 minutes of wall time (under a minute of CPU) on two busy cores after the
//! library's own tests were built. Later runs only check that they are fresh. Each step's output is
//! kept next to the copy (`cargo-build.*`, `cargo-test.*`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// How long the first build may take (it compiles dependencies again, see the module docs).
const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// How long the service's tests may take once built (the end-to-end test included).
const RUN_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[test]
fn the_first_service_of_the_guide_builds_and_its_tests_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = root.join("examples").join("first_service");
    if !source.join("Cargo.toml").is_file() {
        eprintln!("examples/first_service is not here (a packaged crate): nothing to build");
        return;
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let service = copy_service(root, &source, &tmp.join("first_service"));
    let target = tmp.parent().unwrap();
    let e2e = std::env::var("FIRST_SERVICE_E2E").as_deref() != Ok("0");

    let started = Instant::now();
    run(&service, target, e2e, &["--no-run"], BUILD_TIMEOUT);
    eprintln!("examples/first_service built in {:?}", started.elapsed());
    let started = Instant::now();
    let stdout = run(&service, target, e2e, &[], RUN_TIMEOUT);
    assert!(
        stdout.contains("billing_charges_known_customers_and_refunds_cancellations ... ok"),
        "{stdout}"
    );
    eprintln!("examples/first_service tested in {:?}", started.elapsed());
}

/// Copies the service's manifest, sources and tests to `to`, with the library's `Cargo.lock`, and
/// points its path dependency at `root`. Returns the copy's manifest.
fn copy_service(root: &Path, source: &Path, to: &Path) -> PathBuf {
    let _ = fs::remove_dir_all(to);
    for dir in ["src", "tests"] {
        copy_dir(&source.join(dir), &to.join(dir));
    }
    let manifest = fs::read_to_string(source.join("Cargo.toml")).unwrap();
    let root = root.to_str().expect("the crate's directory is not UTF-8");
    assert!(
        !root.contains('\''),
        "cannot write {root:?} as a TOML literal string"
    );
    let rewritten = manifest.replace("path = \"../..\"", &format!("path = '{root}'"));
    assert_ne!(
        rewritten, manifest,
        "the path dependency `../..` is gone from the manifest"
    );
    fs::write(to.join("Cargo.toml"), rewritten).unwrap();
    fs::copy(root_lock(root), to.join("Cargo.lock")).unwrap();
    to.join("Cargo.toml")
}

fn root_lock(root: &str) -> PathBuf {
    Path::new(root).join("Cargo.lock")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// `cargo test` of the service with `extra` arguments, killed after `limit`; its standard output.
fn run(manifest: &Path, target: &Path, e2e: bool, extra: &[&str], limit: Duration) -> String {
    let dir = manifest.parent().unwrap();
    let step = if extra.contains(&"--no-run") {
        "build"
    } else {
        "test"
    };
    let (out, err) = (
        dir.join(format!("cargo-{step}.stdout")),
        dir.join(format!("cargo-{step}.stderr")),
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["test", "--offline", "--manifest-path"])
        .arg(manifest)
        .args(["--lib", "--bins"])
        .args(extra)
        .env("CARGO_TARGET_DIR", target)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    if e2e {
        command.args(["--test", "end_to_end"]);
    }
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = fs::read_to_string(&out).unwrap_or_default();
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    match status {
        Some(status) => assert!(
            status.success(),
            "`cargo test {extra:?}` of examples/first_service failed after {:?}:\n{stdout}\n{stderr}",
            started.elapsed()
        ),
        None => panic!(
            "`cargo test {extra:?}` of examples/first_service took over {limit:?}:\n{stdout}\n{stderr}"
        ),
    }
    stdout
}
