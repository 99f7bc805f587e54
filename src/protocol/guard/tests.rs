//! The layouts proven against `kafka_protocol`'s own decoders and encoders, for every API and version
//! the client speaks; and counts or lengths bumped anywhere are rejected before decoding.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::{
    messages::*,
    protocol::{Encodable, HeaderVersion},
};

use super::{
    schema::{Field, Type},
    *,
};
use crate::protocol::{ApiRequest, api, frame};

/// Where a synthesized body has a length or count, and how it is encoded.
#[derive(Debug, Clone, Copy)]
enum Site {
    I16(usize),
    I32(usize),
    Varint { at: usize, len: usize },
}

/// Writes a body along a layout with every field present and non-default: arrays of two, strings and
/// bytes non-empty, every known tagged field of the version plus an unknown one.
#[derive(Default)]
pub(super) struct Synth {
    pub(super) out: Vec<u8>,
    sites: Vec<Site>,
}

impl Synth {
    fn uvarint(&mut self, mut value: u32) -> Site {
        let at = self.out.len();
        while value >= 0x80 {
            self.out.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.out.push(value as u8);
        Site::Varint {
            at,
            len: self.out.len() - at,
        }
    }

    fn length(&mut self, n: usize, flexible: bool, wide: bool) {
        let site = if flexible {
            self.uvarint(n as u32 + 1)
        } else if wide {
            self.out.put_i32(n as i32);
            Site::I32(self.out.len() - 4)
        } else {
            self.out.put_i16(n as i16);
            Site::I16(self.out.len() - 2)
        };
        self.sites.push(site);
    }

    fn value(&mut self, ty: Type, version: i16, flexible: bool) {
        match ty {
            Type::Bool | Type::Int8 => self.out.push(1),
            Type::Int16 => self.out.put_i16(3),
            Type::Int32 => self.out.put_i32(5),
            Type::Int64 => self.out.put_i64(9),
            Type::Uuid => self.out.extend_from_slice(&[0x11; 16]),
            Type::String => {
                self.length(2, flexible, false);
                self.out.extend_from_slice(b"ab");
            }
            Type::Bytes | Type::Records => {
                self.length(3, flexible, true);
                self.out.extend_from_slice(&[1, 2, 3]);
            }
            Type::Array(element) => {
                self.length(2, flexible, true);
                self.value(*element, version, flexible);
                self.value(*element, version, flexible);
            }
            Type::Struct(fields) => self.fields(fields, version, flexible),
        }
    }

    fn fields(&mut self, fields: &[Field], version: i16, flexible: bool) {
        for field in fields.iter().filter(|f| f.positional(version, flexible)) {
            self.value(field.ty, version, flexible);
        }
        if !flexible {
            return;
        }
        let mut tagged: Vec<(i32, &Field)> = fields
            .iter()
            .filter(|f| f.tagged(version, true))
            .filter_map(|f| f.tag.map(|(tag, _)| (tag, f)))
            .collect();
        tagged.sort_by_key(|(tag, _)| *tag);
        let site = self.uvarint(tagged.len() as u32 + 1);
        self.sites.push(site);
        for (tag, field) in tagged {
            let mut inner = Synth::default();
            inner.value(field.ty, version, true);
            self.uvarint(tag as u32);
            self.tagged_value(inner);
        }
        // An unknown tag, after the known ones (tags go in ascending order).
        self.uvarint(90);
        self.tagged_value(Synth {
            out: vec![0xab, 0xcd],
            sites: Vec::new(),
        });
    }

    fn tagged_value(&mut self, inner: Synth) {
        let site = self.uvarint(inner.out.len() as u32);
        self.sites.push(site);
        let base = self.out.len();
        self.out.extend_from_slice(&inner.out);
        self.sites.extend(inner.sites.into_iter().map(|site| match site {
            Site::I16(at) => Site::I16(at + base),
            Site::I32(at) => Site::I32(at + base),
            Site::Varint { at, len } => Site::Varint { at: at + base, len },
        }));
    }
}

pub(super) fn synthesize(api: ApiKey, version: i16) -> Synth {
    let message = response_layout(api).unwrap();
    let mut synth = Synth::default();
    synth.fields(message.fields, version, version >= message.flexible_from);
    synth
}

/// A response frame (no size prefix) with `body` after the header `R`'s response uses at `version`.
pub(super) fn frame_with<R: ApiRequest>(version: i16, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(7)
        .encode(&mut buf, R::Response::header_version(version))
        .unwrap();
    buf.extend_from_slice(body);
    buf.freeze()
}

/// The same body with the length or count at `site` made as large as its encoding allows.
fn bumped(body: &[u8], site: Site) -> Vec<u8> {
    let mut out = body.to_vec();
    match site {
        Site::I16(at) => out[at..at + 2].copy_from_slice(&i16::MAX.to_be_bytes()),
        Site::I32(at) => out[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes()),
        Site::Varint { at, len } => {
            out.splice(at..at + len, [0xff, 0xff, 0xff, 0xff, 0x0f]);
        }
    }
    out
}

/// Everything the layout of `R`'s response must satisfy, at every version the client speaks.
fn prove_layout<R: ApiRequest>() -> ApiKey
where
    R::Response: Encodable + Default + std::fmt::Debug + PartialEq,
{
    for version in R::VERSIONS.min..=R::VERSIONS.max {
        let context = format!("{:?} v{version}", R::KEY);
        // A rich body decodes with kafka_protocol, and re-encodes to the very same bytes: the layout has
        // every field, in order, with the right type, and the walker consumed exactly the frame.
        let synth = synthesize(R::KEY, version);
        let decoded = frame::decode_response::<R>(frame_with::<R>(version, &synth.out), version)
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        let mut encoded = BytesMut::new();
        decoded.encode(&mut encoded, version).unwrap();
        assert_eq!(&encoded[..], &synth.out[..], "{context}: re-encoded body differs");
        // The default (empty) response passes too.
        let mut empty = BytesMut::new();
        R::Response::default().encode(&mut empty, version).unwrap();
        check_response(R::KEY, version, &empty).unwrap_or_else(|e| panic!("{context} default: {e}"));
        // Every length and count, bumped to the largest its encoding can say, is rejected by the guard.
        // (Heartbeat v3 has none: an error code and a throttle time.)
        for site in &synth.sites {
            let body = bumped(&synth.out, *site);
            let err = frame::decode_response::<R>(frame_with::<R>(version, &body), version).unwrap_err();
            // Mostly CountTooLarge or LengthTooLarge; inside a tagged field the five-byte varint can
            // also run out of the field's announced size first (Truncated).
            assert!(
                matches!(&err, Error::Malformed { .. }),
                "{context}: {site:?} bumped: {err}"
            );
        }
        // Cut anywhere, the body is rejected by the guard, never by the decoder.
        for cut in 0..synth.out.len() {
            let err = check_response(R::KEY, version, &synth.out[..cut]);
            assert!(err.is_err(), "{context}: cut at {cut} passed");
        }
    }
    R::KEY
}

macro_rules! covered_by {
    ($check:ident: $($req:ty),* $(,)?) => {{
        let mut covered = BTreeSet::new();
        $(covered.insert($check::<$req>() as i16);)*
        covered
    }};
}

/// Every request type the client sends, calling `$check::<Request>()` on each.
macro_rules! every_request {
    ($check:ident) => {
        covered_by!($check:
            ApiVersionsRequest, MetadataRequest, CreateTopicsRequest, DeleteTopicsRequest,
            ProduceRequest, FetchRequest, ListOffsetsRequest, FindCoordinatorRequest,
            JoinGroupRequest, SyncGroupRequest, HeartbeatRequest, LeaveGroupRequest,
            OffsetCommitRequest, OffsetFetchRequest, DescribeGroupsRequest, ListGroupsRequest,
            DeleteGroupsRequest, InitProducerIdRequest, AddPartitionsToTxnRequest,
            AddOffsetsToTxnRequest, EndTxnRequest, SaslHandshakeRequest, SaslAuthenticateRequest,
        )
    };
}

#[test]
fn layouts_match_kafka_protocol_for_every_api_and_version() {
    let covered = every_request!(prove_layout);
    let client: BTreeSet<i16> = api::ALL.iter().map(|(key, _)| *key as i16).collect();
    assert_eq!(covered, client, "every API the client sends is proven");
}

#[test]
fn the_reported_api_versions_answer_is_a_typed_error() {
    // The 15 bytes a user's fake listener sent: size 11, correlation id 0, error code 0, then an
    // `api_keys` compact count of 0xFFFFFFFF, and nothing else.
    let wire = [0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
    let len = frame::frame_len(wire[..4].try_into().unwrap(), 1 << 20).unwrap();
    let frame = Bytes::copy_from_slice(&wire[4..4 + len]);
    let err = frame::decode_response::<ApiVersionsRequest>(frame, 3).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Malformed {
                api: ApiKey::ApiVersions,
                version: 3,
                field: "api_keys",
                violation: Violation::CountTooLarge {
                    count: 4_294_967_294,
                    left: 0
                },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("ApiVersions v3"), "{err}");
}

#[test]
fn known_tagged_fields_must_fill_their_size() {
    // ApiVersions v3 with tag 1 (finalized_features_epoch, an int64) announced as 9 bytes: the decoder
    // would read 8 and go on inside the field.
    let mut body = vec![0, 0, 1, 0, 0, 0, 0];
    body.extend_from_slice(&[1, 1, 9]);
    body.extend_from_slice(&[0; 9]);
    let err = check_response(ApiKey::ApiVersions, 3, &body).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Malformed {
                violation: Violation::TaggedFieldSize { size: 9, used: 8 },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn nulls_only_where_the_version_allows() {
    // Metadata v12: throttle, brokers = null (compact 0) is not allowed.
    let err = check_response(ApiKey::Metadata, 12, &[0, 0, 0, 0, 0]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Malformed {
                violation: Violation::UnexpectedNull,
                field: "brokers",
                offset: 4,
                ..
            }
        ),
        "{err}"
    );
    // Fetch v4: a partition's aborted_transactions may be null (-1).
    let mut body = BytesMut::new();
    body.put_i32(0); // throttle
    body.put_i32(1); // one topic
    body.put_i16(1);
    body.put_slice(b"t");
    body.put_i32(1); // one partition
    body.put_i32(0); // index
    body.put_i16(0); // error
    body.put_i64(0); // high watermark
    body.put_i64(0); // last stable offset
    body.put_i32(-1); // aborted transactions: null
    body.put_i32(-1); // records: null
    check_response(ApiKey::Fetch, 4, &body).unwrap();
}

#[test]
fn fetch_records_are_opaque_bytes() {
    // Whatever the record set holds (here a record batch header announcing a huge record count), the
    // guard only checks its length; record batches have their own decoder.
    let mut body = BytesMut::new();
    body.put_i32(0);
    body.put_i32(1);
    body.put_i16(1);
    body.put_slice(b"t");
    body.put_i32(1);
    body.put_i32(0);
    body.put_i16(0);
    body.put_i64(0);
    body.put_i64(0);
    body.put_i32(0);
    let records = [0xffu8; 61];
    body.put_i32(records.len() as i32);
    body.put_slice(&records);
    check_response(ApiKey::Fetch, 4, &body).unwrap();
    body.truncate(body.len() - 1);
    assert!(check_response(ApiKey::Fetch, 4, &body).is_err());
}

/// Writes a seed corpus for the `responses` fuzz target (`just fuzz` runs this first): for every API
/// and version, the rich body and the empty one, as `[api index, version - min, frame...]` with the API
/// index in `api::ALL`'s order (the order of the fuzz crate's table). Does nothing without the variable.
#[test]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("KAFKA_EVENT_BUS_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (index, (api, range)) in api::ALL.iter().enumerate() {
        for version in range.min..=range.max {
            let message = response_layout(*api).unwrap();
            let flexible = version >= message.flexible_from;
            // Header v1 (a tagged-field count after the correlation id) for flexible versions, except
            // ApiVersions, which always answers with header v0.
            let mut header = 7i32.to_be_bytes().to_vec();
            if flexible && *api != ApiKey::ApiVersions {
                header.push(0);
            }
            let rich = synthesize(*api, version).out;
            let empty = synthesize_empty(message.fields, version, flexible);
            for (kind, body) in [("rich", rich), ("empty", empty)] {
                let mut seed = vec![index as u8, (version - range.min) as u8];
                seed.extend_from_slice(&header);
                seed.extend_from_slice(&body);
                std::fs::write(dir.join(format!("{api:?}-v{version}-{kind}")), seed).unwrap();
            }
        }
    }
}

/// A body with every array empty, every string and bytes field empty and no tagged field.
fn synthesize_empty(fields: &[Field], version: i16, flexible: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields.iter().filter(|f| f.positional(version, flexible)) {
        match field.ty {
            Type::Bool | Type::Int8 => out.push(0),
            Type::Int16 => out.put_i16(0),
            Type::Int32 => out.put_i32(0),
            Type::Int64 => out.put_i64(0),
            Type::Uuid => out.extend_from_slice(&[0; 16]),
            Type::String if !flexible => out.put_i16(0),
            Type::Bytes | Type::Records | Type::Array(_) if !flexible => out.put_i32(0),
            Type::String | Type::Bytes | Type::Records | Type::Array(_) => out.push(1),
            Type::Struct(inner) => out.extend(synthesize_empty(inner, version, flexible)),
        }
    }
    if flexible {
        out.push(0);
    }
    out
}

#[test]
fn empty_bodies_pass_the_guard() {
    for (api, range) in api::ALL {
        for version in range.min..=range.max {
            let message = response_layout(*api).unwrap();
            let body = synthesize_empty(message.fields, version, version >= message.flexible_from);
            check_response(*api, version, &body).unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
        }
    }
}
