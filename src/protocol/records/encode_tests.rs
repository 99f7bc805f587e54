//! Tests of the batch encoder.

use super::*;
use crate::protocol::records::{DecodeOptions, decode_batches};

fn headers() -> Headers {
    let mut h = Headers::new();
    h.insert("a", "1");
    h.insert_null("n");
    h.insert("a", "2");
    h
}

#[test]
fn header_layout_is_the_wire_layout() {
    let mut b = RecordBatchBuilder::new(Compression::None);
    b.set_producer_state(0x0102_0304_0506_0708, 9, 10);
    b.append(5, Some(b"k"), Some(b"v"), &Headers::new()).unwrap();
    b.append(3, None, None, &Headers::new()).unwrap();
    let bytes = b.finish().unwrap();
    assert_eq!(&bytes[0..8], &0i64.to_be_bytes());
    assert_eq!(
        i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize,
        bytes.len() - 12
    );
    assert_eq!(&bytes[12..16], &(-1i32).to_be_bytes());
    assert_eq!(bytes[16], 2);
    let crc = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
    assert_eq!(crc, crc32c::crc32c(&bytes[21..]));
    assert_eq!(&bytes[21..23], &0i16.to_be_bytes());
    assert_eq!(&bytes[23..27], &1i32.to_be_bytes()); // last offset delta
    assert_eq!(&bytes[27..35], &5i64.to_be_bytes()); // base timestamp: the first record's
    assert_eq!(&bytes[35..43], &5i64.to_be_bytes()); // max timestamp
    assert_eq!(&bytes[43..51], &0x0102_0304_0506_0708i64.to_be_bytes());
    assert_eq!(&bytes[51..53], &9i16.to_be_bytes());
    assert_eq!(&bytes[53..57], &10i32.to_be_bytes());
    assert_eq!(&bytes[57..61], &2i32.to_be_bytes());
    // First record: length 8 (zig-zag 16), attrs 0, ts delta 0, offset delta 0, key "k", value "v",
    // no headers. Second: ts delta -2 (zig-zag 3), offset delta 1, null key and value.
    assert_eq!(
        &bytes[61..],
        &[16, 0, 0, 0, 2, b'k', 2, b'v', 0, 12, 0, 3, 2, 1, 1, 0]
    );
}

#[test]
fn builder_is_reusable_and_sizes_are_exact() {
    for c in Compression::ALL {
        let mut b = RecordBatchBuilder::with_capacity(c, 0);
        b.set_transactional(true);
        for round in 0..3 {
            let mut expect = BATCH_HEADER_LEN;
            for i in 0..(10 + round) {
                let value = format!("value-{i}");
                let n = b
                    .record_size(100 + i, Some(b"key"), Some(value.as_bytes()), &headers())
                    .unwrap();
                assert_eq!(
                    b.append(100 + i, Some(b"key"), Some(value.as_bytes()), &headers())
                        .unwrap(),
                    n
                );
                expect += n;
                assert_eq!(b.size(), expect);
            }
            let bytes = b.finish().unwrap();
            assert!(b.is_empty() && b.size() == BATCH_HEADER_LEN);
            let batches = decode_batches(bytes, &DecodeOptions::default()).unwrap();
            assert_eq!(batches.len(), 1);
            let batch = &batches[0];
            assert_eq!(batch.compression, c);
            assert!(batch.is_transactional);
            assert_eq!(batch.records.len() as i64, 10 + round);
            assert_eq!(
                batch.records.last().unwrap().value.as_deref(),
                Some(format!("value-{}", 9 + round).as_bytes())
            );
            assert_eq!(batch.records[3].headers, headers());
        }
    }
}

#[test]
fn estimated_size_scales_compressed_only() {
    let mut b = RecordBatchBuilder::new(Compression::Gzip);
    b.append(0, None, Some(&[b'x'; 1000]), &Headers::new()).unwrap();
    let plain = b.records_size();
    assert_eq!(b.estimated_size(0.5), BATCH_HEADER_LEN + plain.div_ceil(2));
    assert_eq!(b.estimated_size(f32::NAN), b.size());
    let mut n = RecordBatchBuilder::new(Compression::None);
    n.append(0, None, Some(&[b'x'; 1000]), &Headers::new()).unwrap();
    assert_eq!(n.estimated_size(0.5), n.size());
}

#[test]
fn rewrite_producer_state_keeps_crc_valid() {
    let mut b = RecordBatchBuilder::new(Compression::Zstd);
    b.append(1, Some(b"k"), Some(b"v"), &headers()).unwrap();
    let mut bytes = b.finish().unwrap().to_vec();
    rewrite_producer_state(&mut bytes, 77, 3, 1_000).unwrap();
    let batch = decode_batches(Bytes::from(bytes.clone()), &DecodeOptions::default())
        .unwrap()
        .remove(0);
    assert_eq!(
        (batch.producer_id, batch.producer_epoch, batch.base_sequence),
        (77, 3, 1_000)
    );
    assert!(rewrite_producer_state(&mut bytes[..40], 1, 1, 1).is_err());
    bytes[16] = 1;
    assert!(rewrite_producer_state(&mut bytes, 1, 1, 1).is_err());
}

#[test]
fn gzip_level_is_used() {
    let value: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("{{\"n\":{},\"s\":\"{}\"}}", i % 977, i % 13).into_bytes())
        .collect();
    let sizes: Vec<usize> = [1, 9, 0, 99]
        .into_iter()
        .map(|level| {
            let mut b = RecordBatchBuilder::new(Compression::Gzip);
            b.set_gzip_level(level);
            b.append(0, None, Some(&value), &Headers::new()).unwrap();
            let bytes = b.finish().unwrap();
            let back = decode_batches(bytes.clone(), &DecodeOptions::default()).unwrap();
            assert_eq!(back[0].records[0].value.as_deref(), Some(&value[..]));
            bytes.len()
        })
        .collect();
    assert!(sizes[0] > sizes[1], "{sizes:?}");
    assert_eq!((sizes[2], sizes[3]), (sizes[0], sizes[1]), "clamped to 1..=9");
}

#[test]
fn timestamps_going_backwards_are_kept() {
    let mut b = RecordBatchBuilder::new(Compression::None);
    b.append(1_000, None, Some(b"a"), &Headers::new()).unwrap();
    b.append(900, None, Some(b"b"), &Headers::new()).unwrap();
    b.append(1_100, None, Some(b"c"), &Headers::new()).unwrap();
    let batch = decode_batches(b.finish().unwrap(), &DecodeOptions::default())
        .unwrap()
        .remove(0);
    let ts: Vec<i64> = batch.records.iter().map(|r| batch.timestamp_of(r)).collect();
    assert_eq!(ts, [1_000, 900, 1_100]);
    assert_eq!((batch.base_timestamp, batch.max_timestamp), (1_000, 1_100));
}

#[test]
fn a_measured_record_is_written_as_an_unmeasured_one() {
    for c in Compression::ALL {
        let (mut measured, mut plain) = (RecordBatchBuilder::new(c), RecordBatchBuilder::new(c));
        for i in 0..5i64 {
            let value = format!("value-{i}");
            let (key, value) = (Some(&b"key"[..]), Some(value.as_bytes()));
            let size = measured.measure(100 - i, key, value, &headers()).unwrap();
            let expected = plain.append(100 - i, key, value, &headers()).unwrap();
            assert_eq!(size.total, expected);
            assert_eq!(
                measured.append_measured(100 - i, key, value, &headers(), size).unwrap(),
                expected
            );
        }
        // A size measured before another record was appended is measured again.
        let stale = measured.measure(7, None, Some(&[0u8; 200][..]), &Headers::new()).unwrap();
        measured.append(8, None, None, &Headers::new()).unwrap();
        plain.append(8, None, None, &Headers::new()).unwrap();
        let big = Some(&[0u8; 200][..]);
        let n = measured.append_measured(7, None, big, &Headers::new(), stale).unwrap();
        assert_eq!(n, plain.append(7, None, big, &Headers::new()).unwrap());
        assert_eq!(measured.finish().unwrap(), plain.finish().unwrap(), "{c:?}");
    }
}

#[test]
fn a_size_measured_with_other_deltas_is_measured_again() {
    // Measured as the second record of a batch whose first was written at 0: a timestamp delta of
    // 100,000 (a 3-byte varint).
    let mut measured = RecordBatchBuilder::new(Compression::None);
    measured.append(0, None, None, &Headers::new()).unwrap();
    let stale = measured.measure(100_000, None, None, &Headers::new()).unwrap();
    measured.finish().unwrap();
    // At the same record count, in the next batch whose first record was written at 100,000: the
    // delta is 0 (1 byte) now.
    let mut plain = RecordBatchBuilder::new(Compression::None);
    for b in [&mut measured, &mut plain] {
        b.append(100_000, None, None, &Headers::new()).unwrap();
    }
    let n = measured.append_measured(100_000, None, None, &Headers::new(), stale).unwrap();
    assert_eq!(n, plain.append(100_000, None, None, &Headers::new()).unwrap());
    let batch = measured.finish().unwrap();
    assert_eq!(batch, plain.finish().unwrap());
    decode_batches(batch, &DecodeOptions::default()).unwrap();
    // The same count, another timestamp than measured.
    let mut b = RecordBatchBuilder::new(Compression::None);
    b.append(0, None, None, &Headers::new()).unwrap();
    let size = b.measure(1, None, None, &Headers::new()).unwrap();
    let n = b.append_measured(1_000_000, None, None, &Headers::new(), size).unwrap();
    assert_eq!(n, size.total + 2, "a 3-byte timestamp delta instead of a 1-byte one");
}

#[test]
fn a_builder_on_a_used_buffer_starts_empty() {
    let mut used = BytesMut::with_capacity(4096);
    used.put_bytes(7, 3000);
    let mut b = RecordBatchBuilder::with_buffer(Compression::None, used);
    assert!(b.is_empty());
    assert_eq!(b.size(), BATCH_HEADER_LEN);
    b.append(1, Some(b"k"), Some(b"v"), &Headers::new()).unwrap();
    let mut fresh = RecordBatchBuilder::new(Compression::None);
    fresh.append(1, Some(b"k"), Some(b"v"), &Headers::new()).unwrap();
    assert_eq!(b.finish().unwrap(), fresh.finish().unwrap());
}
