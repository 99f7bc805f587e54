//! DLQ administration: listing, counting and replaying dead letters ([`DlqAdmin`], feature `client`),
//! and the replay targeting every consumer checks ([`replay_is_for`], pure).
//!
//! Owns the operator's view of the DLQ topic ([`DlqEntry`], eventsource-py's `get_dlq_messages` entry)
//! and the [`REPLAY_CONSUMER_GROUP`] header. The I/O half may use [`crate::client::cluster`] (plain
//! assign-style Fetch and ListOffsets to the partition leaders, never a consumer group) and
//! [`crate::client::producer`]; the rest is pure.
//!
//! Invariants:
//! - Reads never join a group and never commit, so listing the DLQ changes nothing.
//! - [`DlqAdmin::messages`] reads each partition only up to the high watermark it saw when the call
//!   started, so it never waits for records that do not exist (eventsource-py hangs unless more than
//!   `limit` exist, eventsource-py bug 8 in `docs/spec-bugs.md`), and it is bounded by its timeout in any case.
//! - The log end always comes from a Fetch response's high watermark, never from ListOffsets(latest),
//!   which Tansu gets wrong after multi-record batches.
//! - A replay returns only after the broker acknowledged the republished record.
//!
//! Replays are targeted at the group that dead-lettered the record: see [`REPLAY_CONSUMER_GROUP`].

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
mod ends;
mod entry;
#[cfg(feature = "client")]
mod error;
#[cfg(feature = "client")]
mod read;

#[cfg(feature = "client")]
pub use client::{DEFAULT_READ_TIMEOUT, DlqAdmin, DlqAdminConfig};
#[cfg(feature = "client")]
pub(crate) use ends::{LogBounds, log_bounds};
pub use entry::{DlqEntry, DlqPayload};
#[cfg(feature = "client")]
pub use error::AdminError;

use super::replay_headers;
use crate::event::header;
use crate::protocol::Headers;

/// The header naming the only consumer group a replayed record is for.
///
/// # Replay targeting
///
/// eventsource-py republishes a replayed DLQ record to the main topic, where **every** consumer group
/// handles it again, although only the group that dead-lettered it failed (eventsource-py bug 3 in `docs/spec-bugs.md`). Here a
/// replay carries one more header, [`REPLAY_CONSUMER_GROUP`] (`dlq_replay_consumer_group`), whose value
/// is the DLQ record's `dlq_consumer_group`: the group that gave up on it. A consumer of group `g` calls
/// [`replay_is_for`]`(headers, g)` on every record and, when it says `false`, skips the record and
/// commits past it (its group already handled that event). Records without the header (every ordinary
/// event, and replays of DLQ records that name no group) are for everyone.
///
/// The name is in the `dlq_` family on purpose: anything that strips `dlq_*` headers drops it. So a
/// replay of a replay is re-targeted from its new DLQ record (never a stale group), and eventsource-py's
/// own replay drops it, so a Python replay reaches every group as it always did. eventsource-py
/// consumers ignore unknown headers: they handle a Rust replay whatever group it names, as they handle
/// every replay today. A record dead-lettered by a Python group and replayed from Rust names that
/// group: Rust groups skip it, every Python group handles it (as before). When two groups both
/// dead-lettered an event, the DLQ holds one record per group, and each replay targets its own group.
///
/// # Example
///
/// ```
/// use kafka_event_bus::dlq::{REPLAY_CONSUMER_GROUP, replay_is_for};
/// use kafka_event_bus::protocol::Headers;
///
/// assert_eq!(REPLAY_CONSUMER_GROUP, "dlq_replay_consumer_group");
/// assert!(REPLAY_CONSUMER_GROUP.starts_with("dlq_")); // stripped by every replay, Python's too
/// let mut replayed = Headers::new();
/// replayed.insert(REPLAY_CONSUMER_GROUP, "shipping");
/// assert!(!replay_is_for(&replayed, "billing"));
/// ```
pub const REPLAY_CONSUMER_GROUP: &str = "dlq_replay_consumer_group";

/// Whether a consumer of `group` should handle a record with these `headers`.
///
/// `true` when the record has no [`REPLAY_CONSUMER_GROUP`] header (an ordinary event, or a replay for
/// everyone), or when one of those headers names `group`. A header that is null, empty or not UTF-8
/// cannot name a group, so it makes the record one for everyone: when in doubt, handle (at least once)
/// rather than skip. `false` only when every such header names another group; the consumer then skips
/// the record and commits past it.
///
/// # Example
///
/// ```
/// use kafka_event_bus::dlq::{REPLAY_CONSUMER_GROUP, replay_is_for};
/// use kafka_event_bus::protocol::Headers;
///
/// let mut headers = Headers::new();
/// headers.insert("event_type", "OrderCreated");
/// assert!(replay_is_for(&headers, "billing")); // not a targeted replay
///
/// headers.insert(REPLAY_CONSUMER_GROUP, "shipping");
/// assert!(replay_is_for(&headers, "shipping"));
/// assert!(!replay_is_for(&headers, "billing")); // billing handled it already: skip and commit
/// ```
pub fn replay_is_for(headers: &Headers, group: &str) -> bool {
    let mut targeted = false;
    for value in headers.get_all(REPLAY_CONSUMER_GROUP) {
        match value.map(std::str::from_utf8) {
            Some(Ok(target)) if !target.is_empty() => {
                if target == group {
                    return true;
                }
                targeted = true;
            }
            _ => return true,
        }
    }
    !targeted
}

/// The headers of a targeted replay: [`replay_headers`] (no `dlq_*`, `retry_count=0`,
/// `dlq_replay_count+1`), then [`REPLAY_CONSUMER_GROUP`] set to the DLQ record's `dlq_consumer_group`
/// (the last one, as [`DeadLetter::from_headers`](super::DeadLetter::from_headers) reads it) when that
/// is non-empty UTF-8. Without a usable `dlq_consumer_group` the replay is for every group.
///
/// # Example
///
/// ```
/// use kafka_event_bus::dlq::{REPLAY_CONSUMER_GROUP, targeted_replay_headers};
/// use kafka_event_bus::protocol::Headers;
///
/// let mut dlq = Headers::new();
/// dlq.insert("event_type", "OrderCreated");
/// dlq.insert("retry_count", "3");
/// dlq.insert("dlq_reason", "max_retries_exceeded");
/// dlq.insert("dlq_consumer_group", "shipping");
/// let replay = targeted_replay_headers(&dlq);
/// let names: Vec<_> = replay.iter().map(|h| h.key).collect();
/// assert_eq!(names, ["event_type", "retry_count", "dlq_replay_count", REPLAY_CONSUMER_GROUP]);
/// assert_eq!(replay.get_str(REPLAY_CONSUMER_GROUP), Some("shipping"));
/// ```
pub fn targeted_replay_headers(dlq_headers: &Headers) -> Headers {
    let mut out = replay_headers(dlq_headers);
    let group = dlq_headers
        .get_last(header::DLQ_CONSUMER_GROUP)
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|g| !g.is_empty());
    if let Some(group) = group {
        out.insert(REPLAY_CONSUMER_GROUP, group.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, Option<&[u8]>)]) -> Headers {
        let mut h = Headers::new();
        for (k, v) in pairs {
            match v {
                Some(v) => h.insert(*k, v.to_vec()),
                None => h.insert_null(*k),
            }
        }
        h
    }

    #[test]
    fn untargeted_records_are_for_everyone() {
        assert!(replay_is_for(&Headers::new(), "g"));
        assert!(replay_is_for(
            &with(&[("dlq_consumer_group", Some(b"other"))]),
            "g"
        ));
    }

    #[test]
    fn targeted_records_are_only_for_the_named_group() {
        let h = with(&[(REPLAY_CONSUMER_GROUP, Some(b"a"))]);
        assert!(replay_is_for(&h, "a"));
        assert!(!replay_is_for(&h, "b"));
        assert!(!replay_is_for(&h, "A"), "group ids are case-sensitive");
        assert!(!replay_is_for(&h, ""));
        let two = with(&[
            (REPLAY_CONSUMER_GROUP, Some(b"a")),
            (REPLAY_CONSUMER_GROUP, Some(b"b")),
        ]);
        assert!(replay_is_for(&two, "b"));
        assert!(!replay_is_for(&two, "c"));
    }

    #[test]
    fn unreadable_targets_mean_everyone() {
        for bad in [None, Some(&b""[..]), Some(&b"\xff\xfe"[..])] {
            let h = with(&[(REPLAY_CONSUMER_GROUP, Some(b"a")), (REPLAY_CONSUMER_GROUP, bad)]);
            assert!(replay_is_for(&h, "zzz"), "{bad:?}");
        }
    }

    #[test]
    fn targeted_headers_replace_a_stale_target_and_skip_unusable_groups() {
        let dlq = with(&[
            ("event_type", Some(b"X")),
            (REPLAY_CONSUMER_GROUP, Some(b"old")),
            ("dlq_replay_count", Some(b"1")),
            ("dlq_consumer_group", Some(b"first")),
            ("dlq_consumer_group", Some(b"new")),
        ]);
        let out = targeted_replay_headers(&dlq);
        let pairs: Vec<(&str, Option<&str>)> = out
            .iter()
            .map(|h| (h.key, h.value.and_then(|v| std::str::from_utf8(v).ok())))
            .collect();
        assert_eq!(
            pairs,
            [
                ("event_type", Some("X")),
                ("retry_count", Some("0")),
                ("dlq_replay_count", Some("2")),
                (REPLAY_CONSUMER_GROUP, Some("new")),
            ]
        );
        assert!(!replay_is_for(&out, "old"));
        for unusable in [None, Some(&b""[..]), Some(&b"\xff"[..])] {
            let out = targeted_replay_headers(&with(&[("dlq_consumer_group", unusable)]));
            assert!(!out.contains_key(REPLAY_CONSUMER_GROUP), "{unusable:?}");
            assert!(replay_is_for(&out, "any"));
        }
    }
}
