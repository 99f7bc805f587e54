//! A response of any API and version the client speaks: the first byte picks the API, the second the
//! version, the rest is the frame (header and body, no size prefix). Decoding may hold at most 64× the
//! frame's size (plus 64 KiB).
#![no_main]

use bytes::Bytes;
use kafka_event_bus_fuzz::{Capped, decode_response, limit_to};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Capped = Capped;

fuzz_target!(|data: &[u8]| {
    let [api, pick, frame @ ..] = data else { return };
    let frame = Bytes::copy_from_slice(frame);
    limit_to(frame.len(), 64, 64 << 10, || decode_response(*api, *pick, frame));
});
