//! Integration tests against a real broker.
//!
//! One test binary owns one broker for the whole run: `main` starts it (or uses
//! `KAFKA_BOOTSTRAP_SERVERS`), runs every test through libtest-mimic (same flags and output as
//! `cargo test`), and stops it, even when tests fail. Fault tests start brokers of their own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod admin;
mod bus;
mod bus_background;
mod bus_config;
mod bus_crash;
mod bus_tls;
mod bus_wait;
#[path = "../common/mod.rs"]
mod common;
mod config_tls;
mod connection;
mod consumer;
mod corrupt_batch;
mod corrupt_pause;
mod dispatch;
mod dlq;
mod fault_proxy;
mod faults_blackhole;
mod faults_freeze;
mod faults_restart;
mod faults_support;
mod group;
mod group_handover;
mod group_liveness;
mod group_storm;
mod group_support;
mod local_broker;
mod producer;
mod read_back;
mod read_idle;
mod record_headers;
mod sasl;
mod sasl_proxy;
mod spec_bugs;
mod spec_bugs_more;
mod support;
mod telemetry;
mod tls;
mod tls_proxy;

use std::process::ExitCode;

use libtest_mimic::{Arguments, Trial};
use support::Ctx;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    connection::trials(&mut trials);
    admin::trials(&mut trials);
    tls::trials(&mut trials);
    producer::trials(&mut trials);
    group::trials(&mut trials);
    group_storm::trials(&mut trials);
    group_liveness::trials(&mut trials);
    group_handover::trials(&mut trials);
    config_tls::trials(&mut trials);
    sasl::trials(&mut trials);
    bus::trials(&mut trials);
    bus_background::trials(&mut trials);
    bus_config::trials(&mut trials);
    bus_crash::trials(&mut trials);
    bus_tls::trials(&mut trials);
    bus_wait::trials(&mut trials);
    telemetry::trials(&mut trials);
    record_headers::trials(&mut trials);
    consumer::trials(&mut trials);
    consumer::throughput_trial(&mut trials);
    dlq::trials(&mut trials);
    consumer::fault_trials(&mut trials);
    spec_bugs::trials(&mut trials);
    dispatch::trials(&mut trials);
    corrupt_batch::trials(&mut trials);
    corrupt_pause::trials(&mut trials);
    faults_freeze::trials(&mut trials);
    faults_restart::trials(&mut trials);
    faults_blackhole::trials(&mut trials);
    local_broker::trials(&mut trials);

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

/// A test: an async function given the shared context.
pub(crate) fn trial<F, Fut>(name: &str, test: F) -> Trial
where
    F: FnOnce(&'static Ctx) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    Trial::test(name, move || support::run(test))
}
