//! Interoperability: batches cross-checked against two independent implementations, kafka_protocol's
//! record codec (in process) and kafka-python's (fixtures it wrote, and a dump it reads back).

use bytes::{Bytes, BytesMut};

use super::*;
use crate::protocol::records::RecordBatchBuilder;

// ---- cross-checks against kafka_protocol's record codec (an independent implementation) ----

mod kp {
    pub(super) use kafka_protocol::protocol::StrBytes;
    pub(super) use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
}

fn kp_compression(c: Compression) -> kp::Compression {
    match c {
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        _ => kp::Compression::None,
    }
}

/// Records without duplicate header keys (kafka_protocol keeps headers in a map).
fn map_friendly_batch(c: Compression) -> RecordBatch {
    let records = (0..40)
        .map(|i| {
            let mut h = Headers::new();
            h.insert("event_type", format!("E{i}"));
            h.insert("trace", "t");
            h.insert_null("null");
            record(i, h)
        })
        .collect();
    RecordBatch {
        base_offset: 1000,
        compression: c,
        last_offset_delta: 39,
        base_timestamp: 1_000,
        max_timestamp: 1_000 + 39 * 3,
        producer_id: 5,
        producer_epoch: 2,
        base_sequence: 10,
        records,
        ..RecordBatch::default()
    }
}

#[test]
fn kafka_protocol_reads_what_we_write() {
    for c in [Compression::None, Compression::Gzip, Compression::Snappy] {
        let ours = map_friendly_batch(c);
        let mut bytes = encode(std::slice::from_ref(&ours));
        let sets = kp::RecordBatchDecoder::decode_all(&mut bytes).unwrap();
        assert_eq!(sets.len(), 1, "{c}");
        assert_eq!(sets[0].compression, kp_compression(c));
        let theirs = &sets[0].records;
        assert_eq!(theirs.len(), ours.records.len());
        for (t, o) in theirs.iter().zip(&ours.records) {
            assert_eq!(t.offset, ours.offset_of(o));
            assert_eq!(t.timestamp, ours.timestamp_of(o));
            assert_eq!(t.sequence, ours.base_sequence + o.offset_delta);
            assert_eq!((t.producer_id, t.producer_epoch), (5, 2));
            assert_eq!((&t.key, &t.value), (&o.key, &o.value));
            let th: Vec<(String, Option<Bytes>)> = t
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            let oh: Vec<(String, Option<Bytes>)> = o
                .headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(Bytes::copy_from_slice)))
                .collect();
            assert_eq!(th, oh, "{c}");
        }
    }
}

#[test]
fn we_read_what_kafka_protocol_writes() {
    for c in [Compression::None, Compression::Gzip, Compression::Snappy] {
        let theirs: Vec<kp::Record> = (0..25)
            .map(|i: i64| kp::Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 77,
                producer_epoch: 3,
                timestamp_type: kp::TimestampType::Creation,
                offset: 500 + i,
                sequence: 9 + i as i32,
                timestamp: 2_000 + i * 7,
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("value {i} {}", "y".repeat(i as usize)))),
                headers: [
                    (
                        kp::StrBytes::from_static_str("a"),
                        Some(Bytes::from(format!("{i}"))),
                    ),
                    (kp::StrBytes::from_static_str("b"), None),
                ]
                .into_iter()
                .collect(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let opts = kp::RecordEncodeOptions {
            version: 2,
            compression: kp_compression(c),
        };
        kp::RecordBatchEncoder::encode(&mut buf, theirs.iter(), &opts).unwrap();
        let ours = decode_batches(buf.freeze(), &DecodeOptions::default()).unwrap();
        let records: Vec<(i64, i64, &Record)> = ours
            .iter()
            .flat_map(|b| {
                b.records
                    .iter()
                    .map(move |r| (b.offset_of(r), b.timestamp_of(r), r))
            })
            .collect();
        assert_eq!(records.len(), theirs.len(), "{c}");
        assert!(
            ours.iter()
                .all(|b| b.compression == c && b.producer_id == 77 && b.producer_epoch == 3)
        );
        for ((offset, ts, o), t) in records.into_iter().zip(&theirs) {
            assert_eq!((offset, ts), (t.offset, t.timestamp));
            assert_eq!((&o.key, &o.value), (&t.key, &t.value));
            assert_eq!(
                o.headers.get_str("a"),
                Some(format!("{}", t.offset - 500).as_str())
            );
            assert!(o.headers.contains_key("b") && o.headers.get("b").is_none());
        }
    }
}

// ---- batches written by another client ----

/// Batches encoded by kafka-python 3.0.12's own record codec, compressed by the C libraries (zlib, snappy,
/// liblz4 through `lz4` 4.4.5, libzstd through `zstandard` 0.25.0); `testdata/gen_fixtures.py` wrote them.
#[test]
fn kafka_python_batches_decode() {
    let fixtures: [(Compression, &[u8]); 5] = [
        (
            Compression::None,
            include_bytes!("testdata/kafka_python_none.bin"),
        ),
        (
            Compression::Gzip,
            include_bytes!("testdata/kafka_python_gzip.bin"),
        ),
        (
            Compression::Snappy,
            include_bytes!("testdata/kafka_python_snappy.bin"),
        ),
        (Compression::Lz4, include_bytes!("testdata/kafka_python_lz4.bin")),
        (
            Compression::Zstd,
            include_bytes!("testdata/kafka_python_zstd.bin"),
        ),
    ];
    for (c, bytes) in fixtures {
        if c == Compression::Snappy {
            assert_eq!(
                &bytes[61..69],
                b"\x82SNAPPY\x00",
                "kafka-python writes xerial framing"
            );
        }
        let batches = decode_batches(Bytes::from_static(bytes), &DecodeOptions::default()).unwrap();
        assert_eq!(batches.len(), 1, "{c}");
        let b = &batches[0];
        assert_eq!(b.compression, c);
        assert_eq!(
            (b.producer_id, b.producer_epoch, b.base_sequence),
            (4242, 7, 1000)
        );
        assert_eq!((b.base_offset, b.last_offset_delta, b.records.len()), (0, 19, 20));
        assert_eq!(b.max_timestamp, 1_700_000_000_000 + 19 * 5);
        for (i, r) in b.records.iter().enumerate() {
            assert_eq!(b.offset_of(r), i as i64);
            assert_eq!(b.timestamp_of(r), 1_700_000_000_000 + i as i64 * 5);
            let key = (i % 3 != 0).then(|| format!("key-{i}"));
            assert_eq!(r.key.as_deref(), key.as_deref().map(str::as_bytes), "{c} {i}");
            let value: Vec<u8> = if i == 19 && c != Compression::None {
                (0..5000)
                    .flat_map(|j| format!("event-payload-{} ", j % 10).into_bytes())
                    .collect()
            } else {
                let mut v = format!("value-{i} ").into_bytes();
                v.extend(b"abcdefgh".repeat(i));
                v
            };
            assert_eq!(r.value.as_deref(), Some(&value[..]), "{c} {i}");
            let headers: Vec<(&str, Option<&[u8]>)> = r.headers.iter().map(|h| (h.key, h.value)).collect();
            let n = i.to_string();
            assert_eq!(
                headers,
                [
                    ("h", Some(n.as_bytes())),
                    ("h", None),
                    ("dup", Some(&b"a"[..])),
                    ("dup", Some(&b"b"[..]))
                ],
                "{c} {i}: order, duplicates and nulls as sent"
            );
        }
    }
}

/// Writes one batch per codec, encoded here, to `target/records-dump/` for
/// `testdata/check_ours.py`, which reads them with kafka-python (C codecs). Run by hand:
/// `cargo test --lib dump_batches_for_kafka_python -- --ignored`.
#[test]
#[ignore = "writes files for an external check"]
fn dump_batches_for_kafka_python() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/records-dump");
    std::fs::create_dir_all(&dir).unwrap();
    for c in Compression::ALL {
        let mut b = RecordBatchBuilder::new(c);
        b.set_producer_state(99, 3, 7);
        for i in 0..50i64 {
            let mut h = Headers::new();
            h.insert("event_type", "OrderCreated");
            h.insert("dup", format!("{i}"));
            h.insert("dup", "x");
            h.insert_null("null");
            let value: Vec<u8> = if i == 49 {
                (0..8000)
                    .flat_map(|j| format!("payload-{} ", j % 7).into_bytes())
                    .collect()
            } else {
                format!("{{\"n\":{i}}}").into_bytes()
            };
            b.append(
                1_700_000_000_000 + i,
                Some(format!("k{i}").as_bytes()),
                Some(&value),
                &h,
            )
            .unwrap();
        }
        std::fs::write(dir.join(format!("{c}.bin")), b.finish().unwrap()).unwrap();
    }
}
