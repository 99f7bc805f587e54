//! The event API: construction defaults, header rules and typed errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use common::OrderCreated;
use kafka_event_bus::event::{
    AnyEvent, DomainEvent, ENVELOPE_FIELDS, Error, Event, EventRegistry, event_type_header, header,
};
use kafka_event_bus::protocol::Headers;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pinged;
impl Event for Pinged {
    const EVENT_TYPE: &'static str = "Pinged";
    const AGGREGATE_TYPE: &'static str = "Pinger";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Clashing {
    metadata: String,
}
impl Event for Clashing {
    const EVENT_TYPE: &'static str = "Clashing";
    const AGGREGATE_TYPE: &'static str = "X";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tuple(u32, u32);
impl Event for Tuple {
    const EVENT_TYPE: &'static str = "Tuple";
    const AGGREGATE_TYPE: &'static str = "X";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Strict {
    a: u8,
}
impl Event for Strict {
    const EVENT_TYPE: &'static str = "Strict";
    const AGGREGATE_TYPE: &'static str = "X";
}

fn order() -> DomainEvent<OrderCreated> {
    DomainEvent::new(
        Uuid::new_v4(),
        1,
        OrderCreated {
            customer_id: "c".into(),
        },
    )
}

#[test]
fn defaults_are_fresh_ids_now_and_correlation_equals_event_id() {
    let (a, b) = (order(), order());
    assert_ne!(a.meta.event_id, b.meta.event_id);
    assert_eq!(a.meta.event_id.get_version(), Some(uuid::Version::Random));
    assert_eq!(a.meta.correlation_id, a.meta.event_id);
    assert!(a.meta.occurred_at.offset().is_utc());
    assert_eq!(a.meta.occurred_at.nanosecond() % 1000, 0, "microsecond precision");
    let age = time::OffsetDateTime::now_utc() - a.meta.occurred_at;
    assert!(age >= time::Duration::ZERO && age < time::Duration::seconds(5));
    assert_eq!((a.meta.event_version, a.meta.aggregate_version), (1, 1));
    assert_eq!(
        (a.meta.tenant_id, a.meta.actor_id.clone(), a.meta.causation_id),
        (None, None, None)
    );

    let id = Uuid::new_v4();
    let moved = a.clone().with_event_id(id);
    assert_eq!(
        moved.meta.correlation_id, id,
        "a defaulted correlation id follows the event id"
    );
    let corr = Uuid::new_v4();
    let kept = a.with_correlation_id(corr).with_event_id(Uuid::new_v4());
    assert_eq!(kept.meta.correlation_id, corr, "an explicit correlation id stays");
}

#[test]
fn json_field_order_and_nulls() {
    let e = order();
    // `Metadata` reads a JSON object in its order (a `serde_json::Map` sorts).
    let json: kafka_event_bus::event::Metadata = serde_json::from_slice(&e.to_json().unwrap()).unwrap();
    let keys: Vec<&str> = json.keys().collect();
    let json = serde_json::to_value(&json).unwrap();
    let mut expected: Vec<&str> = ENVELOPE_FIELDS.to_vec();
    expected.push("customer_id");
    assert_eq!(keys, expected);
    assert!(json["tenant_id"].is_null() && json["actor_id"].is_null() && json["causation_id"].is_null());
    assert!(json["occurred_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn optional_headers_only_when_set_and_actor_only_when_not_empty() {
    let e = order()
        .with_tenant_id(Uuid::new_v4())
        .with_causation_id(Uuid::new_v4())
        .with_actor_id("");
    let names: Vec<String> = e.meta.headers().iter().map(|h| h.key.to_owned()).collect();
    assert_eq!(names[7..], [header::TENANT_ID, header::CAUSATION_ID]);
    let e = e.with_actor_id("bob");
    assert_eq!(e.meta.headers().get_str(header::ACTOR_ID), Some("bob"));
    assert_eq!(e.meta.headers().len(), 10);
}

#[test]
fn unit_payloads_round_trip() {
    let e = DomainEvent::new(Uuid::new_v4(), 4, Pinged);
    let json = String::from_utf8(e.to_json().unwrap()).unwrap();
    assert!(json.ends_with(r#""metadata":{}}"#), "{json}");
    assert_eq!(DomainEvent::<Pinged>::from_json(json.as_bytes()).unwrap(), e);
}

#[test]
fn encode_errors_are_typed() {
    let clash = DomainEvent::new(Uuid::new_v4(), 1, Clashing { metadata: "x".into() });
    assert!(matches!(clash.to_json(), Err(Error::ReservedField { ref field, .. }) if field == "metadata"));
    let tuple = DomainEvent::new(Uuid::new_v4(), 1, Tuple(1, 2));
    assert!(matches!(
        tuple.to_json(),
        Err(Error::PayloadNotObject {
            found: "an array",
            ..
        })
    ));
    let zero = DomainEvent::new(Uuid::new_v4(), 0, Pinged);
    assert!(matches!(
        zero.to_record(),
        Err(Error::InvalidVersion {
            field: "aggregate_version",
            ..
        })
    ));
    let zero = DomainEvent::new(Uuid::new_v4(), 1, Pinged).with_event_version(0);
    assert!(matches!(
        zero.into_any(),
        Err(Error::InvalidVersion {
            field: "event_version",
            ..
        })
    ));
}

#[test]
fn event_type_header_rules() {
    let mut h = Headers::new();
    assert!(matches!(event_type_header(&h), Err(Error::MissingEventType)));
    h.insert_null(header::EVENT_TYPE);
    assert!(matches!(event_type_header(&h), Err(Error::MissingEventType)));
    let mut h = Headers::new();
    h.insert(header::EVENT_TYPE, "");
    assert!(matches!(event_type_header(&h), Err(Error::MissingEventType)));
    let mut h = Headers::new();
    h.insert(header::EVENT_TYPE, vec![0xff, 0xfe]);
    let err = event_type_header(&h).unwrap_err();
    assert!(matches!(err, Error::EventTypeNotUtf8));
    assert!(err.should_dead_letter());
    assert!(!Error::MissingEventType.should_dead_letter());
    let mut h = Headers::new();
    h.insert(header::EVENT_TYPE, "First");
    h.insert(header::EVENT_TYPE, "Second");
    assert_eq!(event_type_header(&h).unwrap(), "First");
}

#[test]
fn the_header_alone_chooses_the_type() {
    let record = order().to_record().unwrap();
    let mut headers = Headers::new();
    headers.insert(header::EVENT_TYPE, "Pinged");
    let err = DomainEvent::<OrderCreated>::from_record(&headers, &record.value).unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");

    let mut registry = EventRegistry::new();
    registry.register::<OrderCreated>().unwrap();
    registry.register::<Pinged>().unwrap();
    // An OrderCreated payload under a Pinged header decodes as Pinged (extra fields are ignored, as in
    // eventsource-py 0.8.1), keeping the payload's own event_type.
    let any = registry.decode(&headers, record.value.clone()).unwrap();
    assert!(any.is::<Pinged>());
    assert_eq!(any.meta().event_type, "OrderCreated");
    assert!(matches!(
        any.downcast::<OrderCreated>(),
        Err(Error::TypeMismatch { .. })
    ));
}

#[test]
fn strict_payloads_can_refuse_unknown_fields() {
    let json = br#"{"aggregate_id":"00000000-0000-4000-8000-000000000001","a":1,"b":2}"#;
    let err = DomainEvent::<Strict>::from_json(json).unwrap_err();
    assert!(matches!(err, Error::InvalidPayload { .. }), "{err}");
    let ok = br#"{"aggregate_id":"00000000-0000-4000-8000-000000000001","a":1}"#;
    assert_eq!(
        DomainEvent::<Strict>::from_json(ok).unwrap().payload,
        Strict { a: 1 }
    );
}

#[test]
fn invalid_fields_name_the_field() {
    let err =
        DomainEvent::<OrderCreated>::from_json(br#"{"aggregate_id":"nope","customer_id":"c"}"#).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidField {
                field: "aggregate_id",
                ..
            }
        ),
        "{err}"
    );
    let err =
        DomainEvent::<OrderCreated>::from_json(br#"{"aggregate_id":"00000000-0000-4000-8000-000000000001"}"#)
            .unwrap_err();
    assert!(matches!(err, Error::InvalidPayload { .. }), "{err}");
    assert!(err.to_string().contains("customer_id"), "{err}");
}

#[test]
fn untyped_events_downcast_by_name() {
    let e = order();
    let record = e.to_record().unwrap();
    let any = AnyEvent::decode_untyped(&record.headers, record.value.clone()).unwrap();
    assert!(any.is::<OrderCreated>() && !any.is::<Pinged>());
    assert_eq!(*any.downcast::<OrderCreated>().unwrap(), e);
    assert!(matches!(
        any.downcast::<Pinged>(),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(any.to_record(), record);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Measured {
    x: f64,
    raw: serde_json::Value,
}
impl Event for Measured {
    const EVENT_TYPE: &'static str = "Measured";
    const AGGREGATE_TYPE: &'static str = "Probe";
}

/// Floats whose shortest text a fast float parser can miss by one bit (serde_json without its
/// `float_roundtrip` feature does on several of these): decoding reads the exact float, so the payload
/// field, a `Value` field and a metadata entry all re-encode to the same text.
#[test]
fn floats_round_trip_exactly_without_serde_json_float_roundtrip() {
    const HARD: [&str; 9] = [
        "0.30000000000000004",
        "1.7976931348623157e+308",
        "5e-324",
        "-7.123156052037168e-184",
        "2.2250738585072014e-308",
        "2.225073858507201e-308",
        "8.98846567431158e+307",
        "1.2345678901234568e+17",
        "0.1",
    ];
    for text in HARD {
        let exact: f64 = text.parse().unwrap();
        let doc = format!(
            r#"{{"event_id":"00000000-0000-4000-8000-000000000001","event_type":"Measured","event_version":1,"occurred_at":"2024-01-02T03:04:05Z","aggregate_id":"00000000-0000-4000-8000-000000000002","aggregate_type":"Probe","aggregate_version":1,"tenant_id":null,"actor_id":null,"correlation_id":"00000000-0000-4000-8000-000000000001","causation_id":null,"metadata":{{"m":{text}}},"x":{text},"raw":[{text}]}}"#
        );
        let e = DomainEvent::<Measured>::from_json(doc.as_bytes()).unwrap();
        assert_eq!(e.payload.x.to_bits(), exact.to_bits(), "{text}: payload field");
        assert_eq!(
            e.payload.raw[0].as_f64().map(f64::to_bits),
            Some(exact.to_bits()),
            "{text}: Value field"
        );
        assert_eq!(
            e.meta
                .metadata
                .get("m")
                .and_then(serde_json::Value::as_f64)
                .map(f64::to_bits),
            Some(exact.to_bits()),
            "{text}: metadata"
        );
        assert_eq!(
            String::from_utf8(e.to_json().unwrap()).unwrap(),
            doc,
            "{text}: round trip"
        );
    }
}

/// `metadata` keeps the producer's order, nested objects included, and is written back as pydantic
/// re-dumps it (compact, exact floats in Python's text, its escapes), so a decoded event re-encodes as
/// eventsource-py re-encodes it; entries set by the program are written from their values.
#[test]
fn metadata_keeps_its_order_and_is_written_back_as_pydantic_does() {
    let envelope = r#"{"event_id":"00000000-0000-4000-8000-000000000001","event_type":"OrderCreated","event_version":1,"occurred_at":"2024-01-02T03:04:05Z","aggregate_id":"00000000-0000-4000-8000-000000000002","aggregate_type":"Order","aggregate_version":1,"tenant_id":null,"actor_id":null,"correlation_id":"00000000-0000-4000-8000-000000000001","causation_id":null,"metadata":"#;
    let input = format!(
        r#"{envelope}{{"zeta": {{"y": 2, "b": [1.50, 1E2, 0.30000000000000004]}}, "alpha":"\u00e9", "mid":null}},"customer_id":"c"}}"#
    );
    let canonical = format!(
        r#"{envelope}{{"zeta":{{"y":2,"b":[1.5,100.0,0.30000000000000004]}},"alpha":"é","mid":null}},"customer_id":"c"}}"#
    );
    let e = DomainEvent::<OrderCreated>::from_json(input.as_bytes()).unwrap();
    let keys: Vec<&str> = e.meta.metadata.keys().collect();
    assert_eq!(keys, ["zeta", "alpha", "mid"]);
    assert_eq!(e.meta.metadata.get("alpha"), Some(&serde_json::json!("é")));
    assert_eq!(String::from_utf8(e.to_json().unwrap()).unwrap(), canonical);
    let again = DomainEvent::<OrderCreated>::from_json(canonical.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(again.to_json().unwrap()).unwrap(), canonical);

    let changed = e.with_metadata("alpha", "a").with_metadata("new", 1);
    let json = String::from_utf8(changed.to_json().unwrap()).unwrap();
    assert!(
        json.contains(r#""metadata":{"zeta":{"y":2,"b":[1.5,100.0,0.30000000000000004]},"alpha":"a","mid":null,"new":1}"#),
        "{json}"
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unsorted {
    zulu: u8,
    alpha: Option<u8>,
    mike: Vec<u8>,
}
impl Event for Unsorted {
    const EVENT_TYPE: &'static str = "Unsorted";
    const AGGREGATE_TYPE: &'static str = "X";
}

/// The payload's fields follow the envelope in the order the type declares them.
#[test]
fn payload_fields_keep_their_declared_order() {
    let e = DomainEvent::new(
        Uuid::new_v4(),
        1,
        Unsorted {
            zulu: 1,
            alpha: None,
            mike: vec![2],
        },
    );
    let json = String::from_utf8(e.to_json().unwrap()).unwrap();
    assert!(
        json.ends_with(r#""metadata":{},"zulu":1,"alpha":null,"mike":[2]}"#),
        "{json}"
    );
    assert_eq!(DomainEvent::<Unsorted>::from_json(json.as_bytes()).unwrap(), e);
}
