//! The service: `KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run` (see the guide's "Running against a
//! local broker" for a broker).

use std::error::Error;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Logs of the bus and the service on stderr (INFO and above).
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .init();

    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "localhost:9092".into());
    let config = first_service::config(&bootstrap, "orders", "billing")?;
    tokio::select! {
        report = first_service::run(config, 1_000) => {
            let report = report?;
            println!("{}", report.stats);
            println!(
                "{} charges, {} refunds, {} timeouts retried, {} dead letters replayed",
                report.charges, report.refunds, report.timeouts, report.replayed
            );
        }
        // Ctrl-C during the run: `run` is dropped; the bus it owned is not shut down gracefully here, so
        // a real service keeps the bus outside and calls `shutdown` (see the guide's Graceful Shutdown).
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted"),
    }
    Ok(())
}
