//! Consumes `OrderCreated` events until SIGINT or SIGTERM, then shuts down gracefully.
//!
//! ```text
//! cargo run --example consume -- --prefix orders --group billing [--out handled.txt] [--fail-every K]
//! ```
//!
//! With `--out`, every handled event appends one line, `event_id partition offset`, flushed at once (so
//! a killed process loses none). With `--fail-every K`, every K-th event's handler fails once (to see
//! the retries). Settings come from `KAFKA_*` variables; `RUST_LOG` (e.g.
//! `kafka_event_bus::client::group=debug`) logs to stderr.

mod common;

use std::{
    error::Error,
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::{OrderCreated, arg, args, config};
use kafka_event_bus::{
    bus::{EventBus, KafkaEventBus, RecordContext},
    event::DomainEvent,
    testing::TestBroker,
};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    common::log::init();
    let args = args();
    let fail_every: u64 = arg(&args, "fail-every", 0)?;
    let out = match args.get("out") {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new().create(true).append(true).open(path)?,
        ))),
        None => None,
    };
    let broker = TestBroker::start().await?;
    let bus = KafkaEventBus::new(config(&broker, args.get("prefix"), args.get("group"))?)?;
    bus.connect().await?;
    bus.ensure_topics(kafka_event_bus::bus::TopicOptions::new().partitions(6))
        .await?;

    let seen = Arc::new(AtomicU64::new(0));
    bus.subscribe(move |event: Arc<DomainEvent<OrderCreated>>| {
        let (out, seen) = (out.clone(), Arc::clone(&seen));
        async move {
            let at = RecordContext::current();
            let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
            if fail_every > 0 && n % fail_every == 0 && at.as_ref().is_some_and(|a| a.retries == 0) {
                return Err(format!("failing event {} once, as asked", event.meta.event_id).into());
            }
            if let (Some(out), Some(at)) = (out, at) {
                // One write per line: a process killed mid-line leaves no partial line, and a line costs
                // one system call (formatting into the file directly wrote each piece separately).
                let line = format!("{} {} {}\n", event.meta.event_id, at.partition, at.offset);
                let mut file = out.lock().map_err(|_| "output file lock poisoned")?;
                file.write_all(line.as_bytes())?;
                file.flush()?;
            }
            Ok(())
        }
    })?;

    // The signal handlers first: a SIGINT or SIGTERM while joining the group (which can take a while)
    // still shuts down gracefully (commit, LeaveGroup) instead of killing the process.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let consuming = bus.start_consuming_in_background()?;
    eprintln!(
        "consuming {} as group {}; Ctrl-C to stop",
        bus.config().topic_name(),
        bus.config().consumer_group
    );
    let assigned = async {
        match bus.wait_for_assignment(Duration::from_secs(60)).await {
            Ok(partitions) => eprintln!("assigned partitions {partitions:?}"),
            // A member of a group with more members than partitions gets none: it keeps waiting.
            Err(e) if e.is_retriable() => eprintln!("{e}; consuming on"),
            // The consume loop ended: shut down and report why.
            Err(e) => return eprintln!("{e}"),
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        () = assigned => {}
    }
    eprintln!("shutting down");
    bus.shutdown(Duration::from_secs(30)).await?;
    consuming.wait().await?;
    eprintln!("{}", bus.stats());
    Ok(())
}
