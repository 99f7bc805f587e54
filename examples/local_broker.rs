//! Runs a throwaway local broker (Tansu, in-memory) in the foreground until Ctrl-C or SIGTERM.
//!
//! ```text
//! cargo run --example local_broker -- --port 9092
//! ```
//!
//! Handy for poking at the library by hand, or for `just broker-up`. Nothing persists.

use std::error::Error;

use kafka_event_bus::testing::LocalBroker;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let port = match (args.next().as_deref(), args.next()) {
        (Some("--port"), Some(port)) => Some(port.parse::<u16>()?),
        (None, _) => None,
        _ => return Err("usage: local_broker [--port PORT]".into()),
    };
    let broker = match port {
        Some(port) => LocalBroker::start_on(port)?,
        None => LocalBroker::start()?,
    };
    println!(
        "broker listening on {} (pid {:?}); Ctrl-C stops it",
        broker.bootstrap_servers(),
        broker.pid()
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    drop(broker);
    println!("broker stopped");
    Ok(())
}
