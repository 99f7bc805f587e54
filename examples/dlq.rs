//! Dead-letter queue operations for operators.
//!
//! ```text
//! cargo run --example dlq -- list [--prefix orders] [--limit 100]
//! cargo run --example dlq -- count [--prefix orders]
//! cargo run --example dlq -- replay --partition P --offset O [--force true] [--prefix orders]
//! ```
//!
//! Settings come from `KAFKA_*` variables. `list` prints one JSON object per line (eventsource-py's
//! entry keys); `replay` returns once the broker acknowledged the republished record.

mod common;

use std::{error::Error, time::Duration};

use common::{arg, args, config};
use kafka_event_bus::{bus::KafkaEventBus, testing::TestBroker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = args();
    let broker = TestBroker::start().await?;
    let bus = KafkaEventBus::new(config(&broker, args.get("prefix"), None)?)?;
    bus.connect().await?;
    match args.get("0").map(String::as_str) {
        Some("list") => {
            let limit: usize = arg(&args, "limit", 100)?;
            for entry in bus.get_dlq_messages(limit, Duration::from_secs(10)).await? {
                println!("{}", serde_json::to_string(&entry)?);
            }
        }
        Some("count") => println!("{}", bus.get_dlq_message_count().await?),
        Some("replay") => {
            let partition: i32 = arg(&args, "partition", -1)?;
            let offset: i64 = arg(&args, "offset", -1)?;
            let force: bool = arg(&args, "force", false)?;
            if partition < 0 || offset < 0 {
                return Err("replay needs --partition P --offset O".into());
            }
            let written = bus.replay_dlq_message(partition, offset, force).await?;
            println!(
                "replayed to {}/{} at offset {}",
                written.topic, written.partition, written.offset
            );
        }
        _ => return Err("usage: dlq list|count|replay --partition P --offset O [--force true]".into()),
    }
    Ok(())
}
