//! Retry and replay headers: `retry_count`, `retry_after` and `dlq_replay_count`, written and read as
//! eventsource-py does.

use time::OffsetDateTime;

use crate::event::{header, python_int, timefmt};
use crate::protocol::Headers;

fn first_text<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| std::str::from_utf8(v).ok())
}

fn first_int(headers: &Headers, name: &str) -> i64 {
    first_text(headers, name)
        .and_then(python_int)
        .and_then(|v| i64::try_from(v).ok())
        .unwrap_or(0)
}

/// The delivery's retry count: the first `retry_count` header as Python's `int()` reads it; 0 when it
/// is missing or does not parse (eventsource-py crashes its loop on non-UTF-8 here; this reads 0).
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::Headers;
///
/// let mut h = Headers::new();
/// assert_eq!(kafka_event_bus::dlq::retry_count(&h), 0);
/// h.insert("retry_count", " 2 ");
/// assert_eq!(kafka_event_bus::dlq::retry_count(&h), 2);
/// ```
pub fn retry_count(headers: &Headers) -> i64 {
    first_int(headers, header::RETRY_COUNT)
}

/// How many times the record was replayed from the DLQ: the first `dlq_replay_count`, 0 when missing or
/// unparseable.
pub fn replay_count(headers: &Headers) -> i64 {
    first_int(headers, header::DLQ_REPLAY_COUNT)
}

/// The retry's due time in Unix seconds: the first `retry_after` header as Python's `float()` reads it.
/// `None` when missing, unparseable or not finite; eventsource-py treats the unparseable as 0 (due now)
/// and would sleep forever on `inf`, so callers should treat `None` as due now.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::Headers;
///
/// let mut h = Headers::new();
/// h.insert("retry_after", "1714979290.123456");
/// assert_eq!(kafka_event_bus::dlq::retry_after(&h), Some(1714979290.123456));
/// ```
pub fn retry_after(headers: &Headers) -> Option<f64> {
    let v: f64 = first_text(headers, header::RETRY_AFTER)?.trim().parse().ok()?;
    v.is_finite().then_some(v)
}

/// `now + delay` in Unix seconds, computed as Python's `datetime.now(UTC).timestamp() + delay`.
pub fn retry_due(now: OffsetDateTime, delay_secs: f64) -> f64 {
    let micros = now.unix_timestamp_nanos().div_euclid(1_000);
    micros as f64 / 1e6 + delay_secs
}

/// The text of a `retry_after` value: Python's `str(float)` (`1714979290.123456`, `1714979291.0`).
///
/// # Example
///
/// ```
/// assert_eq!(kafka_event_bus::dlq::format_retry_after(1714979291.0), "1714979291.0");
/// assert_eq!(kafka_event_bus::dlq::format_retry_after(1e16), "1e+16");
/// ```
pub fn format_retry_after(value: f64) -> String {
    timefmt::python_float_repr(value)
}

/// The headers of a retry re-publish: the original headers without any `retry_count` or `retry_after`,
/// then `retry_count` and `retry_after` (Unix seconds, see [`retry_due`]).
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::Headers;
///
/// let mut h = Headers::new();
/// h.insert("event_type", "OrderCreated");
/// h.insert("retry_count", "1");
/// let retry = kafka_event_bus::dlq::retry_headers(&h, 2, 1714979291.5);
/// let pairs: Vec<_> = retry.iter().map(|x| (x.key, x.value.unwrap())).collect();
/// assert_eq!(pairs, [("event_type", &b"OrderCreated"[..]), ("retry_count", b"2"),
///                    ("retry_after", b"1714979291.5")]);
/// ```
pub fn retry_headers(original: &Headers, retry_count: i64, retry_after: f64) -> Headers {
    let mut out: Headers = original
        .iter()
        .filter(|h| h.key != header::RETRY_COUNT && h.key != header::RETRY_AFTER)
        .collect();
    out.insert(header::RETRY_COUNT, retry_count.to_string());
    out.insert(header::RETRY_AFTER, format_retry_after(retry_after));
    out
}

/// The headers of a DLQ replay to the main topic: the DLQ record's headers without any `dlq_*` or
/// `retry_count` (a stale `retry_after` is kept, as in eventsource-py), then `retry_count=0` and
/// `dlq_replay_count` = [`replay_count`] + 1.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::Headers;
///
/// let mut h = Headers::new();
/// h.insert("event_type", "OrderCreated");
/// h.insert("retry_count", "3");
/// h.insert("dlq_reason", "max_retries_exceeded");
/// h.insert("dlq_replay_count", "1");
/// let replay = kafka_event_bus::dlq::replay_headers(&h);
/// let names: Vec<_> = replay.iter().map(|x| x.key).collect();
/// assert_eq!(names, ["event_type", "retry_count", "dlq_replay_count"]);
/// assert_eq!(replay.get_str("retry_count"), Some("0"));
/// assert_eq!(replay.get_str("dlq_replay_count"), Some("2"));
/// ```
pub fn replay_headers(dlq_headers: &Headers) -> Headers {
    let next = replay_count(dlq_headers).saturating_add(1);
    let mut out: Headers = dlq_headers
        .iter()
        .filter(|h| !h.key.starts_with(header::DLQ_PREFIX) && h.key != header::RETRY_COUNT)
        .collect();
    out.insert(header::RETRY_COUNT, "0");
    out.insert(header::DLQ_REPLAY_COUNT, next.to_string());
    out
}
