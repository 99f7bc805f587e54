//! Fetched record-set bytes through `RecordBatchDecoder`, every record and header read. Decompression
//! is capped at 1 MiB per batch here, and the decoder may hold at most 64× the input plus 4 MiB.
#![no_main]

use bytes::Bytes;
use kafka_event_bus::protocol::records::{DecodeOptions, RecordBatchDecoder};
use kafka_event_bus_fuzz::{Capped, limit_to};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Capped = Capped;

fuzz_target!(|data: &[u8]| {
    let [flags, records @ ..] = data else { return };
    let records = Bytes::copy_from_slice(records);
    let options = DecodeOptions::default()
        .with_check_crcs(flags & 1 == 1)
        .with_skip_control_batches(flags & 2 == 2)
        .with_max_uncompressed_batch_bytes(1 << 20);
    limit_to(records.len(), 64, 4 << 20, || {
        let mut decoder = RecordBatchDecoder::new(records, options);
        for batch in decoder.by_ref() {
            let Ok(batch) = batch else { break };
            for record in &batch.records {
                std::hint::black_box((&record.key, &record.value));
                for header in record.headers.iter() {
                    std::hint::black_box(header);
                }
            }
        }
        std::hint::black_box((decoder.next_offset(), decoder.truncated_bytes()));
    });
});
