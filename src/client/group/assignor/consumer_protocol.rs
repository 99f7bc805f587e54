//! The consumer embedded protocol: the bytes inside JoinGroup's protocol metadata and SyncGroup's
//! member assignment, as Java's `ConsumerProtocol` reads and writes them.
//!
//! Owns [`Subscription`] and [`Assignment`] and their codecs. May use `kafka_protocol`'s generated
//! `ConsumerProtocolSubscription`/`ConsumerProtocolAssignment` (for encoding) and [`super::Error`].
//!
//! # Wire format
//!
//! Both start with an `i16` version, followed by the message in the classic (non-flexible) encoding:
//!
//! ```text
//! Subscription v0-3 => topics:[string] user_data:nullable_bytes
//!                      owned_partitions:[topic:string partitions:[i32]]   (v1+)
//!                      generation_id:i32                                  (v2+)
//!                      rack_id:nullable_string                            (v3+)
//! Assignment   v0-3 => assigned_partitions:[topic:string partitions:[i32]] user_data:nullable_bytes
//! ```
//!
//! # Invariants
//!
//! - Encoding writes version 3 of both, as Java 3.x does (librdkafka 2.x also writes subscription v3).
//! - Decoding accepts every version from 0 up. A version above 3 is read as version 3 and the bytes
//!   after the known fields are ignored, as Java does for forward compatibility. A negative version,
//!   truncated input, a negative length or invalid UTF-8 is an [`Error`], never a panic, and no
//!   allocation is sized by an untrusted length before the bytes for it have been seen.
//! - `generation_id < 0` decodes as `None` and an empty rack id as `None` (Java's `Subscription`).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName, consumer_protocol_assignment,
    consumer_protocol_subscription,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use snafu::{ResultExt, ensure};

use super::{EncodeSnafu, Error, NegativeVersionSnafu, TopicPartition};

/// The version of both messages this client writes (Java 3.x's highest).
pub const CONSUMER_PROTOCOL_VERSION: i16 = 3;

/// A member's subscription: the JoinGroup protocol metadata of the `consumer` protocol type.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::{TopicPartition, group::assignor::Subscription};
///
/// let sub = Subscription::new(["orders"])
///     .with_owned_partitions(vec![TopicPartition::new("orders", 0)])
///     .with_generation_id(Some(4));
/// let bytes = sub.encode().unwrap();
/// assert_eq!(&bytes[..2], &[0, 3]); // version 3
/// assert_eq!(Subscription::decode(&bytes).unwrap(), sub);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subscription {
    /// The topics the member subscribes to.
    pub topics: Vec<String>,
    /// Assignor-specific bytes, passed through untouched.
    pub user_data: Option<Bytes>,
    /// The partitions the member owns right now (v1+; cooperative rebalancing relies on it).
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation in which the member got its owned partitions (v2+); `None` when unknown.
    pub generation_id: Option<i32>,
    /// The member's rack (`client.rack`, v3+).
    pub rack_id: Option<String>,
}

/// The partitions the leader gave one member: SyncGroup's member assignment bytes.
///
/// # Example
///
/// ```
/// use kafka_event_bus::client::{TopicPartition, group::assignor::Assignment};
///
/// let a = Assignment::new(vec![TopicPartition::new("orders", 1), TopicPartition::new("orders", 3)])
///     .with_user_data(Some(bytes::Bytes::from_static(b"opaque")));
/// assert_eq!(Assignment::decode(&a.encode().unwrap()).unwrap(), a);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Assignment {
    /// The assigned partitions.
    pub partitions: Vec<TopicPartition>,
    /// Assignor-specific bytes, passed through untouched.
    pub user_data: Option<Bytes>,
}

impl Subscription {
    /// A subscription to `topics`, with nothing owned and no generation.
    pub fn new(topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            topics: topics.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Sets the partitions the member owns.
    #[must_use]
    pub fn with_owned_partitions(mut self, owned: Vec<TopicPartition>) -> Self {
        self.owned_partitions = owned;
        self
    }

    /// Sets the generation in which the member got its owned partitions.
    #[must_use]
    pub fn with_generation_id(mut self, generation_id: Option<i32>) -> Self {
        self.generation_id = generation_id;
        self
    }

    /// Sets the assignor's user data.
    #[must_use]
    pub fn with_user_data(mut self, user_data: Option<Bytes>) -> Self {
        self.user_data = user_data;
        self
    }

    /// Sets the member's rack.
    #[must_use]
    pub fn with_rack_id(mut self, rack_id: Option<String>) -> Self {
        self.rack_id = rack_id;
        self
    }

    /// Encodes at `CONSUMER_PROTOCOL_VERSION`, version prefix included.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when a string is too long for the wire (over 32767 bytes).
    pub fn encode(&self) -> Result<Bytes, Error> {
        let msg = ConsumerProtocolSubscription::default()
            .with_topics(
                self.topics
                    .iter()
                    .map(|t| StrBytes::from_string(t.clone()))
                    .collect(),
            )
            .with_user_data(self.user_data.clone())
            .with_owned_partitions(
                group_by_topic(&self.owned_partitions)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        consumer_protocol_subscription::TopicPartition::default()
                            .with_topic(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
            .with_generation_id(self.generation_id.unwrap_or(-1))
            .with_rack_id(self.rack_id.clone().map(StrBytes::from_string));
        encode_versioned(&msg, "subscription")
    }

    /// Decodes any version (see the module's invariants).
    ///
    /// # Errors
    ///
    /// [`Error::NegativeVersion`], [`Error::Truncated`], [`Error::NegativeLength`],
    /// [`Error::NullString`] or [`Error::InvalidUtf8`] for bytes that are not a subscription.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let version = r.version()?;
        let topics = r.array("topics", 2, |r| r.string("topic"))?;
        let user_data = r.nullable_bytes("user_data")?;
        let owned_partitions = if version >= 1 {
            r.topic_partitions("owned_partitions")?
        } else {
            Vec::new()
        };
        let generation_id = if version >= 2 {
            Some(r.i32("generation_id")?).filter(|g| *g >= 0)
        } else {
            None
        };
        let rack_id = if version >= 3 {
            r.nullable_string("rack_id")?.filter(|s| !s.is_empty())
        } else {
            None
        };
        Ok(Self {
            topics,
            user_data,
            owned_partitions,
            generation_id,
            rack_id,
        })
    }
}

impl Assignment {
    /// An assignment of `partitions` with no user data.
    pub fn new(partitions: Vec<TopicPartition>) -> Self {
        Self {
            partitions,
            user_data: None,
        }
    }

    /// Sets the assignor's user data.
    #[must_use]
    pub fn with_user_data(mut self, user_data: Option<Bytes>) -> Self {
        self.user_data = user_data;
        self
    }

    /// Encodes at `CONSUMER_PROTOCOL_VERSION`, version prefix included.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when a topic name is too long for the wire.
    pub fn encode(&self) -> Result<Bytes, Error> {
        let msg = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(
                group_by_topic(&self.partitions)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        consumer_protocol_assignment::TopicPartition::default()
                            .with_topic(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
            .with_user_data(self.user_data.clone());
        encode_versioned(&msg, "assignment")
    }

    /// Decodes any version. An empty byte string (what the broker hands a member for which the
    /// leader sent no entry) decodes as an empty assignment rather than an error.
    ///
    /// # Errors
    ///
    /// As [`Subscription::decode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let mut r = Reader::new(bytes);
        r.version()?;
        let partitions = r.topic_partitions("assigned_partitions")?;
        let user_data = r.nullable_bytes("user_data")?;
        Ok(Self {
            partitions,
            user_data,
        })
    }
}

/// Groups partitions by topic, keeping the order in which topics first appear.
fn group_by_topic(partitions: &[TopicPartition]) -> Vec<(String, Vec<i32>)> {
    let mut out: Vec<(String, Vec<i32>)> = Vec::new();
    for tp in partitions {
        match out.iter_mut().find(|(t, _)| *t == tp.topic) {
            Some((_, ps)) => ps.push(tp.partition),
            None => out.push((tp.topic.clone(), vec![tp.partition])),
        }
    }
    out
}

fn encode_versioned<M: Encodable>(msg: &M, what: &'static str) -> Result<Bytes, Error> {
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    msg.encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })
        .context(EncodeSnafu { what })?;
    Ok(buf.freeze())
}

/// A bounds-checked reader of the classic encoding.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.buf.len());
        let Some(end) = end else {
            return Err(Error::Truncated {
                field,
                offset: self.pos,
            });
        };
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn version(&mut self) -> Result<i16, Error> {
        let v = self.i16("version")?;
        ensure!(v >= 0, NegativeVersionSnafu { version: v });
        Ok(v)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, Error> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, Error> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length prefix: `None` for -1 (null), an error for any other negative value.
    fn len(&mut self, raw: i32, field: &'static str) -> Result<Option<usize>, Error> {
        match raw {
            -1 => Ok(None),
            n if n < 0 => Err(Error::NegativeLength {
                field,
                len: n,
                offset: self.pos,
            }),
            n => Ok(Some(n.unsigned_abs() as usize)),
        }
    }

    fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, Error> {
        let raw = self.i16(field)?;
        let Some(n) = self.len(raw.into(), field)? else {
            return Ok(None);
        };
        let offset = self.pos;
        let bytes = self.take(n, field)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| Error::InvalidUtf8 { field, offset })
    }

    fn string(&mut self, field: &'static str) -> Result<String, Error> {
        let offset = self.pos;
        self.nullable_string(field)?
            .ok_or(Error::NullString { field, offset })
    }

    fn nullable_bytes(&mut self, field: &'static str) -> Result<Option<Bytes>, Error> {
        let raw = self.i32(field)?;
        let Some(n) = self.len(raw, field)? else {
            return Ok(None);
        };
        Ok(Some(Bytes::copy_from_slice(self.take(n, field)?)))
    }

    /// An array whose elements take at least `min_elem` bytes each; a null array reads as empty.
    fn array<T>(
        &mut self,
        field: &'static str,
        min_elem: usize,
        mut elem: impl FnMut(&mut Self) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        let raw = self.i32(field)?;
        let Some(n) = self.len(raw, field)? else {
            return Ok(Vec::new());
        };
        // Never trust the count for an allocation: cap it by what the remaining bytes can hold.
        let remaining = self.buf.len().saturating_sub(self.pos);
        if n.saturating_mul(min_elem) > remaining {
            return Err(Error::Truncated {
                field,
                offset: self.pos,
            });
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(elem(self)?);
        }
        Ok(out)
    }

    fn topic_partitions(&mut self, field: &'static str) -> Result<Vec<TopicPartition>, Error> {
        let groups = self.array(field, 6, |r| {
            let topic = r.string("topic")?;
            let partitions = r.array("partitions", 4, |r| r.i32("partition"))?;
            Ok((topic, partitions))
        })?;
        Ok(groups
            .into_iter()
            .flat_map(|(topic, ps)| ps.into_iter().map(move |p| TopicPartition::new(topic.clone(), p)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::protocol::Decodable;
    use proptest::prelude::*;

    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    #[test]
    fn subscription_v3_bytes_are_exactly_javas_layout() {
        let sub = Subscription {
            topics: vec!["t".into()],
            user_data: None,
            owned_partitions: vec![tp("t", 2)],
            generation_id: Some(7),
            rack_id: Some("r".into()),
        };
        let expected: &[u8] = &[
            0, 3, // version
            0, 0, 0, 1, 0, 1, b't', // topics
            0xff, 0xff, 0xff, 0xff, // user_data null
            0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 2, // owned_partitions
            0, 0, 0, 7, // generation
            0, 1, b'r', // rack
        ];
        assert_eq!(&sub.encode().unwrap()[..], expected);
        assert_eq!(Subscription::decode(expected).unwrap(), sub);
    }

    #[test]
    fn decodes_v0_v1_v2_written_by_older_clients() {
        let full = ConsumerProtocolSubscription::default()
            .with_topics(vec!["a".into(), "b".into()])
            .with_user_data(Some(Bytes::from_static(b"ud")))
            .with_owned_partitions(vec![
                consumer_protocol_subscription::TopicPartition::default()
                    .with_topic(TopicName("a".into()))
                    .with_partitions(vec![0, 1]),
            ])
            .with_generation_id(9);
        for version in 0..=2i16 {
            let mut msg = full.clone();
            if version < 1 {
                msg.owned_partitions.clear();
            }
            if version < 2 {
                msg.generation_id = -1;
            }
            let mut buf = BytesMut::new();
            buf.put_i16(version);
            msg.encode(&mut buf, version).unwrap();
            let got = Subscription::decode(&buf).unwrap();
            assert_eq!(got.topics, vec!["a", "b"]);
            assert_eq!(got.user_data.as_deref(), Some(&b"ud"[..]));
            let owned = if version >= 1 {
                vec![tp("a", 0), tp("a", 1)]
            } else {
                vec![]
            };
            assert_eq!(got.owned_partitions, owned, "v{version}");
            assert_eq!(got.generation_id, (version >= 2).then_some(9), "v{version}");
            assert_eq!(got.rack_id, None);
        }
    }

    #[test]
    fn future_versions_decode_as_v3_and_ignore_trailing_fields() {
        let mut bytes = BytesMut::from(&Subscription::new(["x"]).encode().unwrap()[..]);
        bytes[1] = 9; // version 9
        bytes.put_slice(b"some future field");
        assert_eq!(Subscription::decode(&bytes).unwrap().topics, vec!["x"]);
    }

    #[test]
    fn malformed_input_is_a_typed_error() {
        assert!(matches!(
            Subscription::decode(&[]),
            Err(Error::Truncated { field: "version", .. })
        ));
        assert!(matches!(
            Subscription::decode(&[0xff, 0xff]),
            Err(Error::NegativeVersion { version: -1 })
        ));
        // 2^31-1 topics announced, none present: rejected before any allocation.
        assert!(matches!(
            Subscription::decode(&[0, 0, 0x7f, 0xff, 0xff, 0xff]),
            Err(Error::Truncated { field: "topics", .. })
        ));
        assert!(matches!(
            Subscription::decode(&[0, 0, 0xff, 0xff, 0xff, 0xfe]),
            Err(Error::NegativeLength { len: -2, .. })
        ));
        assert!(matches!(
            Subscription::decode(&[0, 0, 0, 0, 0, 1, 0xff, 0xff]),
            Err(Error::NullString { field: "topic", .. })
        ));
        assert!(matches!(
            Subscription::decode(&[0, 0, 0, 0, 0, 1, 0, 1, 0xc3, 0xff, 0xff, 0xff, 0xff]),
            Err(Error::InvalidUtf8 { field: "topic", .. })
        ));
        assert!(matches!(
            Assignment::decode(&[0, 0, 0]),
            Err(Error::Truncated { .. })
        ));
        assert_eq!(Assignment::decode(&[]).unwrap(), Assignment::default());
    }

    fn arb_tp() -> impl Strategy<Value = TopicPartition> {
        ("[a-c]{1,3}", 0..8i32).prop_map(|(t, p)| TopicPartition::new(t, p))
    }

    fn arb_subscription() -> impl Strategy<Value = Subscription> {
        (
            proptest::collection::vec("[a-z.\\-_é]{0,8}", 0..4),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            proptest::collection::vec(arb_tp(), 0..6),
            proptest::option::of(0..i32::MAX),
            proptest::option::of("[a-z]{1,4}"),
        )
            .prop_map(|(topics, ud, owned, generation_id, rack_id)| {
                // The wire groups owned partitions by topic; compare in that order.
                let owned = group_by_topic(&owned)
                    .into_iter()
                    .flat_map(|(t, ps)| ps.into_iter().map(move |p| TopicPartition::new(t.clone(), p)))
                    .collect();
                Subscription {
                    topics,
                    user_data: ud.map(Bytes::from),
                    owned_partitions: owned,
                    generation_id,
                    rack_id,
                }
            })
    }

    proptest! {
        #[test]
        fn subscription_round_trips_and_agrees_with_kafka_protocol(sub in arb_subscription()) {
            let bytes = sub.encode().unwrap();
            prop_assert_eq!(Subscription::decode(&bytes).unwrap(), sub.clone());
            let mut body = bytes.slice(2..);
            let theirs = ConsumerProtocolSubscription::decode(&mut body, 3).unwrap();
            prop_assert_eq!(theirs.topics.len(), sub.topics.len());
            prop_assert_eq!(theirs.generation_id, sub.generation_id.unwrap_or(-1));
        }

        #[test]
        fn assignment_round_trips(parts in proptest::collection::vec(arb_tp(), 0..10),
                                  ud in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8))) {
            let partitions = group_by_topic(&parts)
                .into_iter()
                .flat_map(|(t, ps)| ps.into_iter().map(move |p| TopicPartition::new(t.clone(), p)))
                .collect();
            let a = Assignment { partitions, user_data: ud.map(Bytes::from) };
            prop_assert_eq!(Assignment::decode(&a.encode().unwrap()).unwrap(), a);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Subscription::decode(&bytes);
            let _ = Assignment::decode(&bytes);
        }

        #[test]
        fn corrupted_valid_messages_never_panic(sub in arb_subscription(), at in any::<prop::sample::Index>(),
                                                byte in any::<u8>()) {
            let mut bytes = sub.encode().unwrap().to_vec();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = Subscription::decode(&bytes);
            let _ = Subscription::decode(&bytes[..i]);
            let _ = Assignment::decode(&bytes);
        }
    }
}
