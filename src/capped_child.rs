//! Bounded, deterministic mutation runs in a child process under an address-space cap: the response
//! decoders' unit test and the event JSON integration test share it (the latter includes this file by
//! path). A panic, an abort or an allocation past the cap fails the child, and the parent test reports
//! it with the child's output.

#![allow(clippy::unwrap_used, clippy::panic, dead_code)] // test support: failing loudly is the point

use std::process::Command;

/// The child's address-space cap. A test binary needs a few hundred MiB of address space; an array
/// sized from a lying count needs gigabytes or more.
pub(crate) const ADDRESS_SPACE: u64 = 1 << 30;

/// A small deterministic generator (xorshift64*): the same cases on every run and machine.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Whether this process is the child a [`run_capped`] started (the child test runs only then).
pub(crate) fn is_child(child_env: &str) -> bool {
    std::env::var_os(child_env).is_some()
}

/// Runs the test `child_test` of this test binary again, alone, in a child process with `child_env`
/// set, under `prlimit --as` (without a cap when util-linux's `prlimit` is missing), and asserts that
/// it passed and printed a line containing `marker`, which it echoes.
pub(crate) fn run_capped(child_test: &str, child_env: &str, marker: &str) {
    let exe = std::env::current_exe().unwrap();
    let args = ["--exact", child_test, "--nocapture", "--test-threads=1"];
    let capped = Command::new("prlimit")
        .arg(format!("--as={ADDRESS_SPACE}"))
        .arg("--")
        .arg(&exe)
        .args(args)
        .env(child_env, "1")
        .output();
    let output = match capped {
        Ok(output) => output,
        Err(e) => {
            eprintln!("prlimit unavailable ({e}): running without an address-space cap");
            Command::new(&exe)
                .args(args)
                .env(child_env, "1")
                .output()
                .unwrap()
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(marker),
        "mutation child failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for line in stdout.lines().filter(|l| l.contains(marker)) {
        eprintln!("{line}");
    }
}
