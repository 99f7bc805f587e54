//! Event JSON as consumed: typed (`DomainEvent::from_json`) and untyped (`AnyEvent::decode_untyped`).
//! Decoding may hold at most 64× the input plus 64 KiB.
#![no_main]

use bytes::Bytes;
use kafka_event_bus::{
    event::{AnyEvent, DomainEvent, Event},
    protocol::Headers,
};
use kafka_event_bus_fuzz::{Capped, limit_to};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOC: Capped = Capped;

#[derive(Debug, Serialize, Deserialize)]
struct OrderCreated {
    customer_id: String,
    lines: Vec<u32>,
    note: Option<String>,
    weight: f64,
}

impl Event for OrderCreated {
    const EVENT_TYPE: &'static str = "OrderCreated";
    const AGGREGATE_TYPE: &'static str = "Order";
}

fuzz_target!(|data: &[u8]| {
    let json = Bytes::copy_from_slice(data);
    let mut headers = Headers::new();
    headers.insert("event_type", "OrderCreated");
    limit_to(json.len(), 64, 64 << 10, || {
        let _ = std::hint::black_box(DomainEvent::<OrderCreated>::from_json(&json));
        let _ = std::hint::black_box(AnyEvent::decode_untyped(&headers, json.clone()));
    });
});
