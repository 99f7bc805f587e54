//! A byte stream as a connection's reader sees it: size prefixes checked against a 1 MiB maximum,
//! correlation ids read, each frame decoded as the response the byte before it picks.
#![no_main]

use bytes::Bytes;
use kafka_event_bus::protocol::frame;
use kafka_event_bus_fuzz::{Capped, decode_response, limit_to};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Capped = Capped;

fuzz_target!(|data: &[u8]| {
    let stream = Bytes::copy_from_slice(data);
    limit_to(stream.len(), 64, 64 << 10, || {
        let mut rest = stream.clone();
        while rest.len() > frame::SIZE_PREFIX + 2 {
            let (api, pick) = (rest[0], rest[1]);
            let prefix = [rest[2], rest[3], rest[4], rest[5]];
            let Ok(len) = frame::frame_len(prefix, 1 << 20) else {
                return;
            };
            let body = rest.slice(frame::SIZE_PREFIX + 2..);
            if body.len() < len {
                return;
            }
            let frame = body.slice(..len);
            let _ = frame::correlation_id(&frame);
            decode_response(api, pick, frame);
            rest = body.slice(len..);
        }
    });
});
