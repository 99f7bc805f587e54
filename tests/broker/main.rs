//! Integration tests against a real broker.
//!
//! One test binary owns one broker for the whole run: `main` starts it (or uses
//! `KAFKA_BOOTSTRAP_SERVERS`), runs every test through libtest-mimic (same flags and output as
//! `cargo test`), and stops it, even when tests fail. Fault tests start brokers of their own.
//!
//! A file of trials has a `trials(&mut Trials)` function and one line in `trial_modules!`; each
//! trial is named `<file>::<name>` (filter with `cargo test --test broker -- <file>::`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../common/mod.rs"]
mod common;
mod fault_proxy;
mod faults_support;
mod group_support;
mod read_back;
mod read_idle;
mod sasl_proxy;
mod support;
mod tls_proxy;

use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};
use support::Ctx;

/// Declares the modules that hold trials and registers each one's under its module's name.
macro_rules! trial_modules {
    ($($module:ident),* $(,)?) => {
        $(mod $module;)*

        fn all_trials() -> Vec<Trial> {
            let mut all = Vec::new();
            $($module::trials(&mut Trials { module: stringify!($module), all: &mut all });)*
            all
        }
    };
}

trial_modules! {
    admin,
    bus,
    bus_background,
    bus_config,
    bus_footprint,
    bus_crash,
    bus_tls,
    bus_wait,
    config_tls,
    connection,
    consumer,
    corrupt_batch,
    corrupt_pause,
    dispatch,
    dlq,
    faults_blackhole,
    faults_freeze,
    faults_restart,
    group,
    group_handover,
    group_liveness,
    group_storm,
    local_broker,
    producer,
    producer_sequence_gap,
    record_headers,
    resets,
    sasl,
    spec_bugs,
    spec_bugs_more,
    telemetry,
    tls,
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let trials = all_trials();
    if args.list {
        return libtest_mimic::run(&args, trials).exit_code();
    }
    let broker = match kafka_event_bus::testing::TestBroker::from_env_or_start() {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("cannot start the test broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    Ctx::init(&broker);
    let conclusion = libtest_mimic::run(&args, trials.into_iter().map(|t| t.with_kind("broker")).collect());
    drop(broker);
    conclusion.exit_code()
}

/// The trials of one module, named `<module>::<name>`.
pub(crate) struct Trials<'a> {
    module: &'static str,
    all: &'a mut Vec<Trial>,
}

impl Trials<'_> {
    /// Registers a trial under this module's name.
    pub(crate) fn push(&mut self, trial: Named) {
        let name = format!("{}::{}", self.module, trial.name);
        self.all
            .push(Trial::test(name, trial.run).with_ignored_flag(trial.ignored));
    }
}

/// A trial before it is registered (and named after its module).
pub(crate) struct Named {
    name: String,
    ignored: bool,
    run: Box<dyn FnOnce() -> Result<(), Failed> + Send>,
}

impl Named {
    /// Ignored (run only with `--include-ignored`) when `ignored`.
    pub(crate) fn with_ignored_flag(mut self, ignored: bool) -> Self {
        self.ignored = ignored;
        self
    }
}

/// A test: an async function given the shared context.
pub(crate) fn trial<F, Fut>(name: &str, test: F) -> Named
where
    F: FnOnce(&'static Ctx) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    sync_trial(name, move || support::run(test))
}

/// A test that runs on the test thread itself (it starts brokers or runtimes of its own).
pub(crate) fn sync_trial(name: &str, test: impl FnOnce() -> Result<(), Failed> + Send + 'static) -> Named {
    Named {
        name: name.to_owned(),
        ignored: false,
        run: Box::new(test),
    }
}
