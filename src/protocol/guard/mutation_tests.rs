//! Bounded, deterministic fuzzing of every response decoder the client uses: seeded mutations of rich
//! and empty responses, for every API and version, through [`frame::decode_response`] and the frame
//! helpers. Nothing may panic, and (the loop runs in a child process under an address-space cap, with
//! `prlimit`) nothing may reserve more memory than the cap.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::{messages::*, protocol::Encodable};

use super::tests::{frame_with, synthesize};
use crate::capped_child::Rng;
use crate::capped_child::{is_child, run_capped};
use crate::protocol::{ApiRequest, frame};

/// Cases per API version (rich and empty seeds alike).
const CASES: u32 = 200;
const CHILD: &str = "KAFKA_EVENT_BUS_MUTATION_CHILD";

/// Applies one to four mutations: byte flips, boundary values, varint and i32 counts spliced in,
/// insertions, deletions, duplications, truncation.
pub(crate) fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.below(5)],
            2 => {
                out.splice(at..at, [0xff, 0xff, 0xff, 0xff, 0x0f]);
            }
            3 => {
                let wide = [i32::MAX, -1, -2, i32::MIN, 0x00ff_ffff][rng.below(5)];
                let end = (at + 4).min(out.len());
                out.splice(at..end, wide.to_be_bytes());
            }
            4 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            }
            5 => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                out.drain(at..end);
            }
            6 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(16)).min(out.len());
                let piece = out[start..end].to_vec();
                out.splice(at..at, piece);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Mutated responses of `R`, every version: returns (cases, accepted).
fn fuzz<R: ApiRequest>(rng: &mut Rng) -> (u32, u32)
where
    R::Response: Encodable + Default,
{
    let (mut cases, mut accepted) = (0, 0);
    for version in R::VERSIONS.min..=R::VERSIONS.max {
        let rich = synthesize(R::KEY, version).out;
        let mut empty = BytesMut::new();
        R::Response::default().encode(&mut empty, version).unwrap();
        for case in 0..CASES {
            let seed = if case % 4 == 3 { &empty[..] } else { &rich[..] };
            let body = mutate(rng, seed);
            let frame = frame_with::<R>(version, &body);
            // Through the frame helpers too, as the reader of a connection uses them.
            let _ = frame::correlation_id(&frame);
            if frame::decode_response::<R>(frame, version).is_ok() {
                accepted += 1;
            }
            cases += 1;
        }
        // Raw garbage of every short length, header included.
        for len in 0..24 {
            let garbage: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = frame::decode_response::<R>(Bytes::from(garbage), version);
            cases += 1;
        }
    }
    (cases, accepted)
}

macro_rules! fuzz_all {
    ($rng:ident: $($req:ty),* $(,)?) => {{
        let (mut cases, mut accepted) = (0, 0);
        $(
            let (c, a) = fuzz::<$req>(&mut $rng);
            cases += c;
            accepted += a;
        )*
        (cases, accepted)
    }};
}

/// The loop itself; in a plain run (no child variable) it does nothing.
#[test]
fn mutation_child() {
    if !is_child(CHILD) {
        return;
    }
    let started = Instant::now();
    let mut rng = Rng::new(0x6b61_666b_615f_6275);
    let (cases, accepted) = fuzz_all!(rng:
        ApiVersionsRequest, MetadataRequest, CreateTopicsRequest, DeleteTopicsRequest,
        ProduceRequest, FetchRequest, ListOffsetsRequest, FindCoordinatorRequest,
        JoinGroupRequest, SyncGroupRequest, HeartbeatRequest, LeaveGroupRequest,
        OffsetCommitRequest, OffsetFetchRequest, DescribeGroupsRequest, ListGroupsRequest,
        DeleteGroupsRequest, InitProducerIdRequest, AddPartitionsToTxnRequest,
        AddOffsetsToTxnRequest, EndTxnRequest, SaslHandshakeRequest, SaslAuthenticateRequest,
    );
    println!(
        "mutation cases: {cases}, accepted: {accepted}, in {:?}",
        started.elapsed()
    );
    assert!(cases > 5000, "{cases}");
    assert!(
        accepted > 0,
        "no mutation decoded: the seeds are not valid responses"
    );
}

/// Runs [`mutation_child`] in a child process under an address-space cap: a panic, an abort or an
/// allocation past the cap fails the child, and this test reports it.
#[test]
fn every_response_decoder_survives_mutations_under_a_memory_cap() {
    run_capped(
        "protocol::guard::mutation_tests::mutation_child",
        CHILD,
        "mutation cases:",
    );
}
