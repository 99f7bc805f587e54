//! Runs under WASI (`wasm32-wasip1`, no sockets): declares an event, encodes it as eventsource-py would,
//! decodes it back through a registry, and delivers it through the in-memory bus.
//!
//! Build and run: `bash .ci/wasi.sh` (or `cargo run --example wasi_events` natively). Prints one line per
//! step and `wasi_events: ok` at the end; exits non-zero on any mismatch.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_event_bus::bus::{EventBus, InMemoryEventBus};
use kafka_event_bus::event::{AnyEvent, DomainEvent, Event, EventRegistry};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderCreated {
    customer_id: String,
}

impl Event for OrderCreated {
    const EVENT_TYPE: &'static str = "OrderCreated";
    const AGGREGATE_TYPE: &'static str = "Order";
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn ensure(ok: bool, what: &str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

async fn run() -> Result<(), Error> {
    // Declare + build.
    let order_id = Uuid::new_v4();
    let event = DomainEvent::new(
        order_id,
        1,
        OrderCreated {
            customer_id: "customer-123".into(),
        },
    );

    // Encode: key, value and headers as eventsource-py's KafkaEventBus writes them.
    let record = event.to_record()?;
    let json = std::str::from_utf8(&record.value)?;
    println!("key: {}", std::str::from_utf8(&record.key)?);
    for h in record.headers.iter() {
        println!(
            "header: {}={}",
            h.key,
            String::from_utf8_lossy(h.value.unwrap_or_default())
        );
    }
    println!("value: {json}");
    ensure(
        record.key == order_id.to_string().as_bytes(),
        "key is the aggregate id",
    )?;
    ensure(
        record.headers.get_str("event_type") == Some("OrderCreated"),
        "event_type header",
    )?;
    ensure(
        json.ends_with(r#""metadata":{},"customer_id":"customer-123"}"#),
        "payload field order",
    )?;

    // Decode through a registry, as a consumer would.
    let mut registry = EventRegistry::new();
    registry.register::<OrderCreated>()?;
    let decoded = registry.decode(&record.headers, record.value.clone())?;
    ensure(
        *decoded.downcast::<OrderCreated>()? == event,
        "decoded event equals the original",
    )?;
    println!("decoded: {} {}", decoded.type_name(), decoded.meta().event_id);

    // Deliver through the in-memory bus: a typed handler and a wildcard, inline and in the background.
    let bus = InMemoryEventBus::new();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let typed = seen.clone();
    bus.subscribe(move |e: Arc<DomainEvent<OrderCreated>>| {
        let typed = typed.clone();
        async move {
            typed
                .lock()
                .map_err(|_| "poisoned")?
                .push(format!("typed:{}", e.payload.customer_id));
            Ok(())
        }
    })?;
    let wildcard = seen.clone();
    bus.subscribe_to_all_events(move |e: AnyEvent| {
        let wildcard = wildcard.clone();
        async move {
            wildcard
                .lock()
                .map_err(|_| "poisoned")?
                .push(format!("any:{}", e.type_name()));
            Ok(())
        }
    })?;
    bus.publish(vec![decoded]).await?;
    let second = DomainEvent::new(
        order_id,
        2,
        OrderCreated {
            customer_id: "customer-456".into(),
        },
    );
    bus.publish_background(vec![second.into_any()?]).await?;
    bus.shutdown(Duration::from_secs(5)).await?;

    let seen = seen.lock().map_err(|_| "poisoned")?.clone();
    println!("delivered: {}", seen.join(", "));
    ensure(
        seen == [
            "typed:customer-123",
            "any:OrderCreated",
            "typed:customer-456",
            "any:OrderCreated",
        ],
        "deliveries in order",
    )?;
    Ok(())
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wasi_events: cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => println!("wasi_events: ok"),
        Err(e) => {
            eprintln!("wasi_events: {e}");
            std::process::exit(1);
        }
    }
}
