//! The record-batch codec per compression codec: records → batch (the producer's encode path) and
//! batch → records (the consumer's decode path).
//!
//! Workload: batches of `RECORDS` events shaped like the bus's: a ~300-byte JSON value, a key, and 7
//! headers. Throughput is reported as records/s and as MB/s of uncompressed record bytes.
//!
//! Run with `cargo bench --bench encode`; each case takes a few seconds.

#![allow(missing_docs, reason = "criterion_group! generates undocumented functions")]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kafka_event_bus::protocol::Headers;
use kafka_event_bus::protocol::records::{Compression, DecodeOptions, RecordBatchBuilder, decode_batches};

const RECORDS: usize = 1000;

struct Event {
    key: Bytes,
    value: Bytes,
    headers: Headers,
    timestamp: i64,
}

/// A deterministic stand-in for random ids (xorshift).
fn hex_id(state: &mut u64) -> String {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    format!("{:016x}{:016x}", *state, state.rotate_left(29))
}

fn events() -> Vec<Event> {
    let kinds = [
        "OrderCreated",
        "OrderPaid",
        "OrderShipped",
        "ItemAdded",
        "ItemRemoved",
    ];
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    (0..RECORDS)
        .map(|i| {
            let kind = kinds[i % kinds.len()];
            let aggregate = format!("order-{}", i % 97);
            let event_id = hex_id(&mut rng);
            let ts = 1_700_000_000_000 + i as i64;
            let value = format!(
                concat!(
                    "{{\"event_id\":\"{}\",\"aggregate_id\":\"{}\",\"type\":\"{}\",\"version\":{},",
                    "\"occurred_at\":\"2026-11-27T15:{:02}:{:02}.{:03}Z\",\"data\":{{\"customer_id\":\"cust-{}\",",
                    "\"items\":[{{\"sku\":\"SKU-{:05}\",\"qty\":{},\"price\":{}.{:02}}}],\"currency\":\"EUR\",",
                    "\"note\":\"{}\"}}}}"
                ),
                event_id,
                aggregate,
                kind,
                i / 97 + 1,
                (i / 60_000) % 60,
                (i / 1000) % 60,
                i % 1000,
                i % 1013,
                (i * 7919) % 100_000,
                i % 5 + 1,
                (i * 31) % 500,
                i % 100,
                &hex_id(&mut rng)[..20],
            );
            let mut headers = Headers::with_capacity(7);
            headers.insert("event_type", kind);
            headers.insert("event_id", event_id);
            headers.insert("aggregate_id", aggregate.clone());
            headers.insert("aggregate_type", "Order");
            headers.insert("content_type", "application/json");
            headers.insert("schema_version", "1");
            headers.insert("traceparent", format!("00-{}-{}-01", hex_id(&mut rng), &hex_id(&mut rng)[..16]));
            Event { key: Bytes::from(aggregate), value: Bytes::from(value), headers, timestamp: ts }
        })
        .collect()
}

fn encode(builder: &mut RecordBatchBuilder, events: &[Event]) -> Bytes {
    for e in events {
        builder
            .append(e.timestamp, Some(&e.key), Some(&e.value), &e.headers)
            .unwrap_or_default();
    }
    builder.finish().unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let events = events();
    let mut probe = RecordBatchBuilder::new(Compression::None);
    let plain_len = encode(&mut probe, &events).len();
    let value_len = events.iter().map(|e| e.value.len()).sum::<usize>() / events.len();
    eprintln!("{RECORDS} records, mean value {value_len} B, batch {plain_len} B uncompressed");
    // Records per second; the uncompressed bytes per batch are printed above for MB/s.
    let throughput = Throughput::Elements(RECORDS as u64);

    let mut group = c.benchmark_group("encode");
    group.throughput(throughput.clone());
    for codec in Compression::ALL {
        let mut builder = RecordBatchBuilder::with_capacity(codec, plain_len);
        let size = encode(&mut builder, &events).len();
        eprintln!(
            "{codec}: {size} B ({:.1}% of uncompressed)",
            100.0 * size as f64 / plain_len as f64
        );
        group.bench_function(codec.name(), |b| {
            b.iter(|| black_box(encode(&mut builder, black_box(&events))))
        });
    }
    // gzip at level 1 (`compression.gzip.level=1`), for comparison with the default 6.
    let mut builder = RecordBatchBuilder::with_capacity(Compression::Gzip, plain_len);
    builder.set_gzip_level(1);
    let size = encode(&mut builder, &events).len();
    eprintln!(
        "gzip-1: {size} B ({:.1}% of uncompressed)",
        100.0 * size as f64 / plain_len as f64
    );
    group.bench_function("gzip-1", |b| {
        b.iter(|| black_box(encode(&mut builder, black_box(&events))))
    });
    group.finish();

    let mut group = c.benchmark_group("decode");
    group.throughput(throughput);
    for codec in Compression::ALL {
        let batch = encode(&mut RecordBatchBuilder::new(codec), &events);
        let opts = DecodeOptions::default();
        group.bench_function(codec.name(), |b| {
            b.iter(|| {
                black_box(
                    decode_batches(black_box(batch.clone()), &opts)
                        .map(|v| v.len())
                        .unwrap_or(0),
                )
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = bench
}
criterion_main!(benches);
