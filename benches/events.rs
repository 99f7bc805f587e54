//! Typed events to and from their JSON documents: `DomainEvent::to_json` (the publish path) and
//! `EventType::decode_json` (the consume path: envelope validation and the payload type).
//!
//! Workload: documents in eventsource-py's shape (every envelope field, `null`s and an empty `metadata`
//! included) with a two-field payload, ~400 bytes each, like the peer benchmarks' events. Throughput is
//! reported as events/s.
//!
//! Run with `cargo bench --bench events`.

#![allow(missing_docs, reason = "criterion_group! generates undocumented functions")]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kafka_event_bus::event::{DomainEvent, Event, EventType};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const EVENTS: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced {
    sku: String,
    quantity: u32,
}

impl Event for OrderPlaced {
    const EVENT_TYPE: &'static str = "OrderPlaced";
    const AGGREGATE_TYPE: &'static str = "Order";
}

fn events() -> Vec<DomainEvent<OrderPlaced>> {
    (0..EVENTS)
        .map(|i| {
            let n = i as u128;
            DomainEvent::new(
                Uuid::from_u128(0x0b6a_3e6e_9d7c_4c31_8a0e_6f1f_2a8d_0000 + n % 1000),
                1 + (i as u64) / 1000,
                OrderPlaced {
                    sku: format!("SKU-{:05}", i * 7919 % 100_000),
                    quantity: (i % 9) as u32 + 1,
                },
            )
            .with_event_id(Uuid::from_u128(0x4d2c_1b0a_9f8e_4d7c_a6b5_0000_0000_0000 + n))
            .with_actor_id(format!("user-{}", i % 5000))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let events = events();
    let docs: Vec<Bytes> = events
        .iter()
        .map(|e| Bytes::from(e.to_json().unwrap_or_default()))
        .collect();
    let mean = docs.iter().map(Bytes::len).sum::<usize>() / docs.len();
    eprintln!("{EVENTS} events, mean document {mean} B");
    assert!(mean > 300, "every event encodes");
    let ty = EventType::of::<OrderPlaced>();

    let mut group = c.benchmark_group("events");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("to_json", |b| {
        b.iter(|| {
            black_box(&events)
                .iter()
                .map(|e| e.to_json().map_or(0, |json| json.len()))
                .sum::<usize>()
        })
    });
    group.bench_function("decode_json", |b| {
        b.iter(|| {
            black_box(&docs)
                .iter()
                .filter(|doc| ty.decode_json(Bytes::clone(doc)).is_ok())
                .count()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
