//! Property tests: untrusted headers and payload bytes never panic the decoders, and valid events round
//! trip exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use kafka_event_bus::dlq::{self, DeadLetter};
use kafka_event_bus::event::{AnyEvent, DomainEvent, ENVELOPE_FIELDS, Event, EventRegistry};
use kafka_event_bus::protocol::{Header, Headers};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

const NAMES: [&str; 8] = [
    "event_type",
    "retry_count",
    "retry_after",
    "dlq_replay_count",
    "dlq_timestamp",
    "dlq_retry_count",
    "dlq_original_partition",
    "x",
];

fn header_strategy() -> impl Strategy<Value = Header> {
    let key = prop_oneof![
        proptest::sample::select(NAMES.to_vec()).prop_map(str::to_owned),
        ".{0,12}"
    ];
    let value = prop_oneof![
        Just(None),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Some),
        prop_oneof![
            Just("OrderCreated"),
            Just("1"),
            Just("-3"),
            Just("inf"),
            Just("nan"),
            Just("1e400")
        ]
        .prop_map(|s| Some(s.as_bytes().to_vec())),
    ];
    (key, value).prop_map(|(key, value)| Header {
        key,
        value: value.map(Into::into),
    })
}

fn headers_strategy() -> impl Strategy<Value = Headers> {
    proptest::collection::vec(header_strategy(), 0..8).prop_map(|v| v.into_iter().collect())
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[0-9a-fA-F-]{0,40}".prop_map(Value::String),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{0,12})?)?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?"
            .prop_map(Value::String),
        "[-0-9.]{0,22}".prop_map(Value::String),
        ".{0,16}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((".{0,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// JSON objects whose keys are mostly envelope or payload field names, so decoding gets past the parser.
fn event_like_json() -> impl Strategy<Value = Vec<u8>> {
    let mut keys: Vec<&'static str> = ENVELOPE_FIELDS.to_vec();
    keys.extend(["customer_id", "lines", "note", "weight", "extra"]);
    proptest::collection::vec((proptest::sample::select(keys), json_value()), 0..16).prop_map(|kv| {
        let map: Map<String, Value> = kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        serde_json::to_vec(&Value::Object(map)).unwrap()
    })
}

fn registry() -> EventRegistry {
    let mut r = EventRegistry::new();
    r.register::<OrderCreated>().unwrap();
    r
}

fn exercise(headers: &Headers, value: &[u8]) {
    let registry = registry();
    let _ = registry.decode(headers, value.to_vec());
    let _ = DomainEvent::<OrderCreated>::from_record(headers, value);
    if let Ok(e) = DomainEvent::<OrderCreated>::from_json(value) {
        // Whatever decodes re-encodes (possibly normalised), and that decodes to the same event.
        if let Ok(json) = e.to_json() {
            assert_eq!(DomainEvent::<OrderCreated>::from_json(&json).unwrap(), e);
        }
    }
    if let Ok(any) = AnyEvent::decode_untyped(headers, value.to_vec().into()) {
        let _ = any.downcast::<OrderCreated>();
        let _ = any.to_record();
    }
    let _ = dlq::retry_count(headers);
    let _ = dlq::retry_after(headers);
    let _ = dlq::replay_headers(headers);
    let _ = dlq::retry_headers(headers, dlq::retry_count(headers).saturating_add(1), 1.5);
    let _ = DeadLetter::from_headers(headers);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(headers in headers_strategy(), value in proptest::collection::vec(any::<u8>(), 0..256)) {
        exercise(&headers, &value);
    }

    #[test]
    fn arbitrary_event_like_json_never_panics(headers in headers_strategy(), value in event_like_json()) {
        exercise(&headers, &value);
        let mut typed = Headers::new();
        typed.insert("event_type", "OrderCreated");
        exercise(&typed, &value);
    }

    #[test]
    fn valid_events_round_trip_exactly(
        seed in any::<(u128, u128, u128)>(),
        version in 1u64..u64::MAX,
        micros in -62_135_596_800_000_000i64..253_402_300_799_999_999,
        offset_minutes in -1439i32..=1439,
        actor in proptest::option::of(".{0,12}"),
        tenant in any::<Option<u128>>(),
        customer in ".{0,20}",
        lines in proptest::collection::vec(any::<u32>(), 0..5),
        note in proptest::option::of(".{0,8}"),
        weight in any::<f64>().prop_filter("finite", |w| w.is_finite()),
        meta in proptest::collection::vec(("[a-z]{1,5}", json_value()), 0..4),
    ) {
        let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap().to_offset(offset);
        let mut e = DomainEvent::new(Uuid::from_u128(seed.0), version, OrderCreated { customer_id: customer, lines, note, weight })
            .with_event_id(Uuid::from_u128(seed.1))
            .with_correlation_id(Uuid::from_u128(seed.2))
            .with_occurred_at(at);
        if let Some(a) = actor { e = e.with_actor_id(a); }
        if let Some(t) = tenant { e = e.with_tenant_id(Uuid::from_u128(t)); }
        for (k, v) in meta {
            // serde_json cannot carry NaN or infinities; they become null, as pydantic writes them.
            e = e.with_metadata(k, v);
        }
        let record = e.to_record().unwrap();
        let back = DomainEvent::<OrderCreated>::from_record(&record.headers, &record.value).unwrap();
        prop_assert_eq!(back.to_record().unwrap(), record.clone());
        prop_assert_eq!(&back.payload, &e.payload);
        prop_assert_eq!(back.meta.occurred_at, e.meta.occurred_at);
        prop_assert_eq!(back.meta.occurred_at.offset(), e.meta.occurred_at.offset());
        let any = registry().decode(&record.headers, record.value.clone()).unwrap();
        prop_assert_eq!(any.to_record(), record);
    }

    #[test]
    fn retry_after_text_reads_back_exactly(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
        let text = dlq::format_retry_after(v);
        let mut h = Headers::new();
        h.insert("retry_after", text.clone());
        prop_assert_eq!(dlq::retry_after(&h), Some(v), "{}", text);
    }
}
