//! Tests of the batch decoder (and of encode → decode round trips), including proptests on arbitrary
//! input and cross-checks against `kafka_protocol`'s independent record codec.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::protocol::records::{NO_PRODUCER_ID, RecordBatchBuilder};

fn record(i: i32, headers: Headers) -> Record {
    Record {
        offset_delta: i,
        timestamp_delta: i64::from(i) * 3,
        key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
        value: (i % 5 != 4)
            .then(|| Bytes::from(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i as usize)))),
        headers,
    }
}

fn sample_batch(base_offset: i64, n: i32, compression: Compression) -> RecordBatch {
    let records: Vec<Record> = (0..n)
        .map(|i| {
            let mut h = Headers::new();
            h.insert("event_type", "OrderCreated");
            h.insert("dup", "1");
            h.insert("dup", "2");
            h.insert_null("nothing");
            record(i, h)
        })
        .collect();
    RecordBatch {
        base_offset,
        partition_leader_epoch: 4,
        compression,
        last_offset_delta: n - 1,
        base_timestamp: 1_700_000_000_000,
        max_timestamp: 1_700_000_000_000 + i64::from(n - 1) * 3,
        producer_id: 12,
        producer_epoch: 1,
        base_sequence: 100,
        records,
        ..RecordBatch::default()
    }
}

fn encode(batches: &[RecordBatch]) -> Bytes {
    let mut out = BytesMut::new();
    for b in batches {
        b.encode(&mut out).unwrap();
    }
    out.freeze()
}

/// A batch whose CRC is recomputed after `edit`, so the decoder gets past the CRC check.
fn with_fixed_crc(mut batch: Vec<u8>, edit: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    edit(&mut batch);
    let len = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(batch)
}

#[test]
fn every_codec_round_trips_with_headers_intact() {
    for c in Compression::ALL {
        let batches = vec![
            sample_batch(0, 50, c),
            sample_batch(50, 1, c),
            sample_batch(51, 20, c),
        ];
        let decoded = decode_batches(encode(&batches), &DecodeOptions::default()).unwrap();
        assert_eq!(decoded, batches, "{c}");
        assert_eq!(
            decoded[0].records[1]
                .headers
                .iter()
                .filter(|h| h.key == "dup")
                .count(),
            2
        );
    }
}

#[test]
fn uncompressed_reencodes_to_the_same_bytes_and_is_zero_copy() {
    let bytes = encode(&[sample_batch(7, 30, Compression::None)]);
    let decoded = decode_batches(bytes.clone(), &DecodeOptions::default()).unwrap();
    assert_eq!(encode(&decoded), bytes);
    let value = decoded[0].records[1].value.as_ref().unwrap();
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    assert!(
        range.contains(&(value.as_ptr() as usize)),
        "value shares the fetch buffer"
    );
}

#[test]
fn truncated_last_batch_is_skipped_at_every_cut() {
    let batches = vec![
        sample_batch(0, 3, Compression::None),
        sample_batch(3, 4, Compression::Gzip),
    ];
    let bytes = encode(&batches);
    let first_len = encode(&batches[..1]).len();
    for cut in 0..bytes.len() {
        let mut d = RecordBatchDecoder::new(bytes.slice(..cut), DecodeOptions::default());
        let got: Vec<RecordBatch> = d.by_ref().collect::<Result<_, _>>().unwrap();
        let want = if cut >= first_len { 1 } else { 0 };
        assert_eq!(got.len(), want, "cut at {cut}");
        assert_eq!(d.truncated_bytes(), cut - if want == 1 { first_len } else { 0 });
        assert_eq!(d.next_offset(), (want == 1).then_some(3));
    }
    assert_eq!(decode_batches(bytes, &DecodeOptions::default()).unwrap(), batches);
}

#[test]
fn control_batches_skipped_but_counted() {
    let marker = RecordBatch {
        base_offset: 5,
        is_control: true,
        is_transactional: true,
        records: vec![Record {
            key: Some(Bytes::from_static(&[0, 0, 0, 1])), // version 0, COMMIT
            value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
            ..Record::default()
        }],
        ..RecordBatch::default()
    };
    let a = sample_batch(0, 5, Compression::Snappy);
    let bytes = encode(&[a.clone(), marker.clone()]);

    let mut d = RecordBatchDecoder::new(bytes.clone(), DecodeOptions::default());
    assert_eq!(d.next().unwrap().unwrap(), a);
    assert!(d.next().is_none());
    assert_eq!(
        d.next_offset(),
        Some(6),
        "the fetch position moves past the marker"
    );

    let all = DecodeOptions {
        skip_control_batches: false,
        ..DecodeOptions::default()
    };
    let got = decode_batches(bytes, &all).unwrap();
    assert_eq!(got, vec![a, marker]);
    assert!(got[1].is_control);
}

#[test]
fn crc_mismatch_is_reported_after_good_batches() {
    let bytes = encode(&[
        sample_batch(0, 2, Compression::None),
        sample_batch(2, 2, Compression::None),
    ]);
    let mut damaged = bytes.to_vec();
    let at = damaged.windows(3).rposition(|w| w == b"pad").unwrap();
    damaged[at] = b'q'; // inside the last record's value
    let mut d = RecordBatchDecoder::new(Bytes::from(damaged.clone()), DecodeOptions::default());
    assert!(d.next().unwrap().is_ok());
    let err = d.next().unwrap().unwrap_err();
    assert!(matches!(err, Error::CrcMismatch { base_offset: 2, .. }), "{err}");
    assert!(err.is_retriable());
    assert!(d.next().is_none(), "fused after an error");
    // Without CRC checks the damage reaches the records (a value byte here).
    let lax = DecodeOptions {
        check_crcs: false,
        ..DecodeOptions::default()
    };
    assert!(decode_batches(Bytes::from(damaged), &lax).is_ok());
}

#[test]
fn malformed_batches_are_typed_errors() {
    let good = encode(&[sample_batch(9, 3, Compression::None)]).to_vec();
    let opts = DecodeOptions::default();

    let mut v1 = good.clone();
    v1[16] = 1;
    let err = decode_batches(Bytes::from(v1), &opts).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedMagic {
                base_offset: 9,
                magic: 1
            }
        ),
        "{err}"
    );

    let mut short = good.clone();
    short[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert!(matches!(
        decode_batches(Bytes::from(short), &opts),
        Err(Error::BatchLength { length: 10, .. })
    ));

    // A magic-1 message (offset, size 26, crc, magic 1, ...): shorter than any v2 batch.
    let mut legacy = vec![0u8; 38];
    legacy[11] = 26;
    legacy[16] = 1;
    let err = decode_batches(Bytes::from(legacy), &opts).unwrap_err();
    assert!(matches!(err, Error::UnsupportedMagic { magic: 1, .. }), "{err}");

    let bad_codec = with_fixed_crc(good.clone(), |b| b[22] |= 7);
    assert!(matches!(
        decode_batches(bad_codec, &opts),
        Err(Error::UnknownCompression { id: 7, .. })
    ));

    let more_records = with_fixed_crc(good.clone(), |b| b[60] = 4);
    assert!(matches!(
        decode_batches(more_records, &opts),
        Err(Error::Malformed { .. })
    ));
    let fewer_records = with_fixed_crc(good.clone(), |b| b[60] = 2);
    let err = decode_batches(fewer_records, &opts).unwrap_err();
    assert!(err.to_string().contains("bytes left"), "{err}");
    let negative = with_fixed_crc(good.clone(), |b| {
        b[57..61].copy_from_slice(&(-1i32).to_be_bytes())
    });
    assert!(matches!(
        decode_batches(negative, &opts),
        Err(Error::Malformed { .. })
    ));

    // gzip attribute on uncompressed records.
    let not_gzip = with_fixed_crc(good, |b| b[22] |= 1);
    let err = decode_batches(not_gzip, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decompress {
                compression: Compression::Gzip,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn decompression_bomb_is_bounded() {
    let mut b = RecordBatchBuilder::new(Compression::Zstd);
    b.append(0, None, Some(&vec![0u8; 4 << 20]), &Headers::new())
        .unwrap();
    let bytes = b.finish().unwrap();
    assert!(bytes.len() < 64 * 1024);
    let tight = DecodeOptions {
        max_uncompressed_batch_bytes: 1 << 20,
        ..DecodeOptions::default()
    };
    let err = decode_batches(bytes.clone(), &tight).unwrap_err();
    assert!(
        matches!(err, Error::DecompressedTooLarge { limit: 1_048_576, .. }),
        "{err}"
    );
    assert_eq!(
        decode_batches(bytes, &DecodeOptions::default()).unwrap()[0]
            .records
            .len(),
        1
    );
}

#[test]
fn invalid_utf8_header_key_is_replaced_like_java() {
    let mut h = Headers::new();
    h.insert("k\u{e9}y", "v");
    let plain = encode(&[RecordBatch {
        records: vec![record(0, h)],
        ..RecordBatch::default()
    }])
    .to_vec();
    let at = plain.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
    let bytes = with_fixed_crc(plain, |b| b[at] = 0xff);
    let batch = decode_batches(bytes, &DecodeOptions::default())
        .unwrap()
        .remove(0);
    assert_eq!(
        batch.records[0].headers.iter().next().unwrap().key,
        "k\u{fffd}\u{fffd}y"
    );
}

// ---- properties ----

fn arb_headers() -> impl Strategy<Value = Headers> {
    let key = prop::sample::select(vec!["a", "b", "event_type", "", "ключ"]);
    let value = prop::option::of(prop::collection::vec(any::<u8>(), 0..20).prop_map(Bytes::from));
    prop::collection::vec((key, value), 0..5).prop_map(|hs| {
        hs.into_iter()
            .map(|(key, value)| crate::protocol::Header {
                key: key.to_owned(),
                value,
            })
            .collect()
    })
}

fn arb_batch() -> impl Strategy<Value = RecordBatch> {
    let bytes = || prop::option::of(prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from));
    let rec = (any::<i32>(), any::<i64>(), bytes(), bytes(), arb_headers()).prop_map(
        |(offset_delta, timestamp_delta, key, value, headers)| Record {
            offset_delta,
            timestamp_delta,
            key,
            value,
            headers,
        },
    );
    (
        prop::collection::vec(rec, 0..12),
        0u8..5,
        any::<(i64, i32, i32, i64, i64)>(),
        any::<(bool, bool, bool, bool)>(),
        any::<(i64, i16, i32)>(),
    )
        .prop_map(
            |(records, c, (bo, ple, lod, bt, mt), (log_append, tx, ctl, dh), (pid, pe, bs))| RecordBatch {
                base_offset: bo,
                partition_leader_epoch: ple,
                compression: Compression::from_id(c).unwrap_or_default(),
                timestamp_type: if log_append {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                },
                is_transactional: tx,
                is_control: ctl,
                has_delete_horizon: dh,
                last_offset_delta: lod,
                base_timestamp: bt,
                max_timestamp: mt,
                producer_id: pid,
                producer_epoch: pe,
                base_sequence: bs,
                records,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_batch_round_trips(batches in prop::collection::vec(arb_batch(), 1..4)) {
        let opts = DecodeOptions { skip_control_batches: false, ..DecodeOptions::default() };
        prop_assert_eq!(decode_batches(encode(&batches), &opts).unwrap(), batches);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        for check_crcs in [true, false] {
            let opts = DecodeOptions { check_crcs, max_uncompressed_batch_bytes: 1 << 16, ..DecodeOptions::default() };
            let _ = decode_batches(Bytes::from(data.clone()), &opts);
        }
    }

    /// Arbitrary bytes behind a well-formed header with a matching CRC: exercises the record parser and
    /// the decompressors rather than the CRC check.
    #[test]
    fn arbitrary_records_section_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..400), count in -2i32..20, codec in 0u8..8,
    ) {
        let mut batch = vec![0u8; BATCH_HEADER_LEN];
        batch[16] = 2;
        batch[22] = codec;
        batch[57..61].copy_from_slice(&count.to_be_bytes());
        batch.extend_from_slice(&body);
        let bytes = with_fixed_crc(batch, |_| {});
        let opts = DecodeOptions { max_uncompressed_batch_bytes: 1 << 16, ..DecodeOptions::default() };
        let _ = decode_batches(bytes, &opts);
    }

    /// Mutations of real batches of every codec that keep the CRC right (so every byte reaches the
    /// decompressors and the record parser), followed by a valid batch: never a panic, a bounded
    /// output, every failure a typed decode error naming the damaged batch, and the decoder goes on
    /// with the next batch when the damaged one's bounds were sound.
    #[test]
    fn mutated_batches_of_every_codec_fail_typed_and_bounded(
        batch in arb_batch(),
        codec in 0u8..5,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        grow in prop::collection::vec(any::<u8>(), 0..16),
        header_edit in prop::option::of((23usize..61, any::<u8>())),
    ) {
        const LIMIT: usize = 1 << 16;
        let batch = RecordBatch {
            base_offset: 100,
            compression: Compression::from_id(codec).unwrap_or_default(),
            ..batch
        };
        let mut bytes = encode(std::slice::from_ref(&batch)).to_vec();
        let body = bytes.len() - BATCH_HEADER_LEN;
        let damaged = with_fixed_crc(bytes.clone(), |b| {
            if body > 0 {
                for (at, value) in &edits {
                    let i = BATCH_HEADER_LEN + at.index(body);
                    b[i] = *value;
                }
            }
            b.extend_from_slice(&grow);
            if let Some((at, value)) = header_edit {
                b[at] = value;
            }
        });
        let next = encode(&[sample_batch(10_000, 2, Compression::None)]);
        bytes.clear();
        bytes.extend_from_slice(&damaged);
        bytes.extend_from_slice(&next);
        let opts = DecodeOptions {
            skip_control_batches: false,
            max_uncompressed_batch_bytes: LIMIT,
            ..DecodeOptions::default()
        };
        let mut decoder = RecordBatchDecoder::new(Bytes::from(bytes), opts);
        let mut seen_next = false;
        for _ in 0..4 {
            match decoder.next() {
                Some(Ok(b)) => {
                    let size: usize = b.records.iter().map(|r| {
                        r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len)
                    }).sum();
                    prop_assert!(size <= LIMIT.max(damaged.len()), "{} bytes of records", size);
                    seen_next |= b.base_offset == 10_000;
                }
                Some(Err(e)) => {
                    let named = match &e {
                        Error::UnknownCompression { base_offset, .. }
                        | Error::Decompress { base_offset, .. }
                        | Error::DecompressedTooLarge { base_offset, .. }
                        | Error::Malformed { base_offset, .. }
                        | Error::UnsupportedMagic { base_offset, .. }
                        | Error::BatchLength { base_offset, .. }
                        | Error::CrcMismatch { base_offset, .. } => *base_offset,
                        other => return Err(TestCaseError::fail(format!("untyped: {other:?}"))),
                    };
                    prop_assert_eq!(named, 100);
                    prop_assert!(!e.is_retriable(), "the CRC is right: {}", e);
                    if !decoder.resume() {
                        break;
                    }
                }
                None => break,
            }
        }
        if header_edit.is_none() {
            prop_assert!(seen_next, "the batch after the damaged one was lost");
        }
    }

    /// Any one damaged byte of a valid batch: never a panic; with CRC checks, an error unless the byte is
    /// outside what the CRC covers.
    #[test]
    fn damaged_batch_never_panics(batch in arb_batch(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let bytes = encode(std::slice::from_ref(&batch));
        let mut damaged = bytes.to_vec();
        let i = at.index(damaged.len());
        damaged[i] ^= flip;
        let result = decode_batches(Bytes::from(damaged.clone()), &DecodeOptions::default());
        if i >= 21 {
            prop_assert!(result.is_err(), "flip at {} accepted", i);
        }
        let lax = DecodeOptions { check_crcs: false, max_uncompressed_batch_bytes: 1 << 16, ..DecodeOptions::default() };
        let _ = decode_batches(Bytes::from(damaged), &lax);
    }
}

#[test]
fn builder_defaults_are_non_idempotent() {
    let mut b = RecordBatchBuilder::new(Compression::None);
    b.append(0, None, None, &Headers::new()).unwrap();
    let batch = decode_batches(b.finish().unwrap(), &DecodeOptions::default())
        .unwrap()
        .remove(0);
    assert_eq!(
        (batch.producer_id, batch.producer_epoch, batch.base_sequence),
        (NO_PRODUCER_ID, -1, -1)
    );
    assert_eq!(batch.partition_leader_epoch, -1);
    let mut out = BytesMut::new();
    out.put_slice(&[0; 5]);
    assert!(
        decode_batches(out.freeze(), &DecodeOptions::default())
            .unwrap()
            .is_empty()
    );
}

#[path = "interop_tests.rs"]
mod interop;
