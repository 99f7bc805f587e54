//! Bounded, deterministic fuzzing of event JSON decoding: seeded mutations of eventsource-py's accepted
//! payloads through the typed and the untyped decoder. Nothing may panic or abort, and (the loop runs in
//! a child process under an address-space cap, with `prlimit`) nothing may reserve more than the cap.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Instant;

#[path = "../src/capped_child.rs"]
mod capped_child;

use capped_child::{Rng, is_child, run_capped};

use bytes::Bytes;
use kafka_event_bus::{
    event::{AnyEvent, DomainEvent, Event},
    protocol::Headers,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Serialize, Deserialize)]
struct OrderCreated {
    customer_id: String,
    #[serde(default)]
    lines: Vec<u32>,
    #[serde(default)]
    note: Option<String>,
}

impl Event for OrderCreated {
    const EVENT_TYPE: &'static str = "OrderCreated";
    const AGGREGATE_TYPE: &'static str = "Order";
}

const CHILD: &str = "KAFKA_EVENT_BUS_EVENT_MUTATION_CHILD";
const CASES_PER_SEED: usize = 200;

/// Pieces of JSON that stress a decoder: deep nesting, huge numbers, escapes, nulls, long runs.
fn piece(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => "[".repeat(1 + rng.below(4000)).into_bytes(),
        1 => "{\"a\":".repeat(1 + rng.below(2000)).into_bytes(),
        2 => b"1e999999999".to_vec(),
        3 => "9".repeat(1 + rng.below(5000)).into_bytes(),
        4 => b"\"\\u0000\\ud800\\udfff\"".to_vec(),
        5 => b"null".to_vec(),
        6 => b"\"aggregate_version\": -1, \"aggregate_version\": 18446744073709551616,".to_vec(),
        7 => b"\"occurred_at\": \"9999-99-99T99:99:99.9999999999+99:99\",".to_vec(),
        8 => vec![0xff, 0xfe, 0xc0, 0x80],
        _ => b"\"event_version\": 1e308, \"metadata\": [],".to_vec(),
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = b"{}[]\",:\\0-e."[rng.below(12)],
            2 => {
                let p = piece(rng);
                out.splice(at..at, p);
            }
            3 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            4 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(64)).min(out.len());
                let copy = out[start..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn seeds() -> Vec<Vec<u8>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/eventsource_py/decode_accept.json"
    );
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut seeds: Vec<Vec<u8>> = fixture["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["input"].as_str())
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let event = DomainEvent::new(
        uuid::Uuid::from_u128(7),
        1,
        OrderCreated {
            customer_id: "c-1".into(),
            lines: vec![1, 2, 3],
            note: Some("é\"\\".into()),
        },
    );
    seeds.push(event.to_json().unwrap());
    seeds
}

/// The loop; in a plain run (no child variable) it does nothing.
#[test]
fn mutation_child() {
    if !is_child(CHILD) {
        return;
    }
    let started = Instant::now();
    let mut rng = Rng::new(0x6576_656e_745f_6a73);
    let mut headers = Headers::new();
    headers.insert("event_type", "OrderCreated");
    let (mut cases, mut typed_ok, mut untyped_ok) = (0usize, 0usize, 0usize);
    for seed in seeds() {
        for _ in 0..CASES_PER_SEED {
            let json = Bytes::from(mutate(&mut rng, &seed));
            typed_ok += usize::from(DomainEvent::<OrderCreated>::from_json(&json).is_ok());
            untyped_ok += usize::from(AnyEvent::decode_untyped(&headers, json).is_ok());
            cases += 1;
        }
    }
    println!(
        "event mutation cases: {cases}, typed accepted: {typed_ok}, untyped accepted: {untyped_ok}, in {:?}",
        started.elapsed()
    );
    assert!(cases >= 5000, "{cases}");
    assert!(
        untyped_ok > 0,
        "no mutation decoded: the seeds are not valid events"
    );
}

/// Runs [`mutation_child`] in a child process under an address-space cap.
#[test]
fn event_json_decoding_survives_mutations_under_a_memory_cap() {
    run_capped("mutation_child", CHILD, "event mutation cases:");
}
