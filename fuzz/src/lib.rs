//! Shared by the fuzz targets: an allocator that fails the run when one input makes the code under test
//! hold more memory than a multiple of the input's size, and the dispatch of a response by API.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
};

use bytes::Bytes;
use kafka_event_bus::protocol::{ApiRequest, frame};
use kafka_protocol::messages::*;

/// The system allocator, counting the bytes live; past the limit set by [`limit_to`] it aborts the
/// process, which libFuzzer reports as a crash with the input that caused it.
pub struct Capped;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        if live > LIMIT.load(Ordering::Relaxed) {
            LIMIT.store(usize::MAX, Ordering::Relaxed);
            eprintln!(
                "allocation of {} bytes takes the live total to {live}, past the cap",
                layout.size()
            );
            std::process::abort();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` with at most `factor × input_len + slack` bytes allocated on top of what is live now.
pub fn limit_to<T>(input_len: usize, factor: usize, slack: usize, f: impl FnOnce() -> T) -> T {
    let base = LIVE.load(Ordering::Relaxed);
    LIMIT.store(
        base.saturating_add(input_len.saturating_mul(factor))
            .saturating_add(slack),
        Ordering::Relaxed,
    );
    let out = f();
    LIMIT.store(usize::MAX, Ordering::Relaxed);
    out
}

/// Every request the client sends, as `(index → decode_response::<R>)`.
macro_rules! responses {
    ($($req:ty),* $(,)?) => {
        /// How many APIs [`decode_response`] knows.
        pub const APIS: usize = [$(stringify!($req)),*].len();

        /// Decodes `frame` as the response to API number `api % APIS` at the version `pick` selects in
        /// the client's range. Returns whether it decoded.
        pub fn decode_response(api: u8, pick: u8, frame: Bytes) -> bool {
            let mut index = usize::from(api) % APIS;
            $(
                if index == 0 {
                    let range = <$req as ApiRequest>::VERSIONS;
                    let span = (range.max - range.min + 1) as u8;
                    let version = range.min + (pick % span) as i16;
                    return frame::decode_response::<$req>(frame, version).is_ok();
                }
                index -= 1;
            )*
            let _ = index;
            false
        }
    };
}

responses!(
    ApiVersionsRequest,
    MetadataRequest,
    CreateTopicsRequest,
    DeleteTopicsRequest,
    ProduceRequest,
    FetchRequest,
    ListOffsetsRequest,
    FindCoordinatorRequest,
    JoinGroupRequest,
    SyncGroupRequest,
    HeartbeatRequest,
    LeaveGroupRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    DescribeGroupsRequest,
    ListGroupsRequest,
    DeleteGroupsRequest,
    InitProducerIdRequest,
    AddPartitionsToTxnRequest,
    AddOffsetsToTxnRequest,
    EndTxnRequest,
    SaslHandshakeRequest,
    SaslAuthenticateRequest,
);
