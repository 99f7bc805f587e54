//! Trace-context propagation through record headers: the [`HeaderCarrier`] trait a header type implements,
//! and [`W3cPropagator`], which writes and reads W3C `traceparent`, `tracestate` and `baggage`.
//!
//! Invariants: untrusted header values never panic. A malformed `traceparent` yields no parent, a malformed
//! `tracestate` is dropped (the `traceparent` is still used), and malformed baggage members are skipped.

use std::str::FromStr;

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt, KeyValueMetadata};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

/// The W3C trace-context header: version, trace id, parent span id and flags.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C vendor-specific trace state header.
pub const TRACESTATE: &str = "tracestate";
/// The W3C baggage header.
pub const BAGGAGE: &str = "baggage";
/// Every header the default propagator reads and writes, in the order it writes them.
pub const TRACE_HEADERS: [&str; 3] = [TRACEPARENT, TRACESTATE, BAGGAGE];

/// Something that carries text headers: a Kafka record's headers, a map in a test.
///
/// `crate::protocol::Headers` implements it. Keys are matched exactly (Kafka header names are
/// case-sensitive); a header whose value is null or not UTF-8 reads as absent.
///
/// # Example
///
/// ```
/// use kafka_event_bus::telemetry::HeaderCarrier;
/// use kafka_event_bus::protocol::Headers;
///
/// let mut headers = Headers::new();
/// headers.set_text("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
/// assert_eq!(headers.text("traceparent").map(str::len), Some(55));
/// ```
pub trait HeaderCarrier {
    /// The first value of the header named `key`, if it is present and UTF-8.
    fn text(&self, key: &str) -> Option<&str>;

    /// Every header name, in order (repeated names may repeat).
    fn keys(&self) -> Vec<&str>;

    /// Replaces every header named `key` by one with this value (appended at the end).
    fn set_text(&mut self, key: &str, value: String);
}

/// Copies the trace headers ([`TRACE_HEADERS`]) that `from` has into `to`, replacing any `to` had.
///
/// The retry and DLQ header functions in `crate::dlq` already keep every original header, trace
/// headers included; this is for a record built from scratch that must continue the original trace.
///
/// # Example
///
/// ```
/// use kafka_event_bus::protocol::Headers;
/// use kafka_event_bus::telemetry::{copy_trace_headers, HeaderCarrier};
///
/// let mut original = Headers::new();
/// original.insert("event_type", "OrderCreated");
/// original.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
/// let mut copy = Headers::new();
/// copy_trace_headers(&original, &mut copy);
/// assert_eq!(copy.text("traceparent"), original.text("traceparent"));
/// assert_eq!(copy.len(), 1);
/// ```
pub fn copy_trace_headers<A: HeaderCarrier + ?Sized, B: HeaderCarrier + ?Sized>(from: &A, to: &mut B) {
    for key in TRACE_HEADERS {
        if let Some(value) = from.text(key) {
            to.set_text(key, value.to_owned());
        }
    }
}

/// Adapts a [`HeaderCarrier`] to OpenTelemetry's [`Injector`].
#[derive(Debug)]
pub struct HeaderInjector<'a, C: ?Sized>(pub &'a mut C);

impl<C: HeaderCarrier + ?Sized> Injector for HeaderInjector<'_, C> {
    fn set(&mut self, key: &str, value: String) {
        self.0.set_text(key, value);
    }
}

/// Adapts a [`HeaderCarrier`] to OpenTelemetry's [`Extractor`].
#[derive(Debug)]
pub struct HeaderExtractor<'a, C: ?Sized>(pub &'a C);

impl<C: HeaderCarrier + ?Sized> Extractor for HeaderExtractor<'_, C> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.text(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys()
    }
}

/// The W3C Trace Context and Baggage propagator, as eventsource-py's default global propagator
/// (`tracecontext,baggage`) writes and reads them.
///
/// Inject writes `traceparent` when the context has a valid span, `tracestate` when it is non-empty, and
/// `baggage` (values percent-encoded) when there is any. Extract reads them back as a remote parent.
///
/// # Example
///
/// ```
/// use std::collections::HashMap;
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
/// use kafka_event_bus::telemetry::W3cPropagator;
///
/// let mut headers = HashMap::new();
/// headers.insert(
///     "traceparent".to_owned(),
///     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
/// );
/// let cx = W3cPropagator::new().extract(&headers);
/// let parent = cx.span().span_context().clone();
/// assert_eq!(format!("{}", parent.trace_id()), "0af7651916cd43dd8448eb211c80319c");
/// assert!(parent.is_remote() && parent.is_sampled());
/// ```
#[derive(Debug)]
pub struct W3cPropagator {
    fields: [String; 3],
}

impl W3cPropagator {
    /// The propagator.
    pub fn new() -> Self {
        Self {
            fields: TRACE_HEADERS.map(str::to_owned),
        }
    }
}

impl Default for W3cPropagator {
    fn default() -> Self {
        Self::new()
    }
}

impl TextMapPropagator for W3cPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let flags = sc.trace_flags() & TraceFlags::SAMPLED;
            injector.set(
                TRACEPARENT,
                format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), flags.to_u8()),
            );
            let state = sc.trace_state().header();
            if !state.is_empty() {
                injector.set(TRACESTATE, state);
            }
        }
        let baggage = cx.baggage();
        if !baggage.is_empty() {
            injector.set(BAGGAGE, baggage.to_string());
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut out = cx.clone();
        if let Some(sc) = extractor.get(TRACEPARENT).and_then(parse_traceparent) {
            let state = extractor
                .get(TRACESTATE)
                .and_then(|s| TraceState::from_str(s.trim()).ok())
                .unwrap_or_default();
            let sc = SpanContext::new(sc.0, sc.1, sc.2, true, state);
            out = out.with_remote_span_context(sc);
        }
        if let Some(baggage) = extractor.get(BAGGAGE).map(parse_baggage)
            && !baggage.is_empty()
        {
            out = out.with_baggage(baggage);
        }
        out
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses a `traceparent` value: `vv-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, lowercase,
/// with all-zero ids, version `ff`, and extra fields on version `00` rejected; later versions may append
/// fields.
pub(crate) fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let mut parts = value.split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let rest = parts.next();
    if !is_lower_hex(version, 2) || version == "ff" || (version == "00" && rest.is_some()) {
        return None;
    }
    if !is_lower_hex(trace, 32) || !is_lower_hex(span, 16) || !is_lower_hex(flags, 2) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some((trace_id, span_id, TraceFlags::new(flags) & TraceFlags::SAMPLED))
}

/// Decodes `%XX` escapes; `None` if an escape is malformed or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a W3C `baggage` value: `key=value;prop,key2=value2`, values percent-encoded. Malformed members
/// are skipped; OpenTelemetry's [`Baggage`] enforces the W3C size limits.
pub(crate) fn parse_baggage(value: &str) -> Baggage {
    value
        .split(',')
        .filter_map(|member| {
            let (pair, metadata) = member.split_once(';').unwrap_or((member, ""));
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return None;
            }
            let value = percent_decode(value.trim())?;
            Some(KeyValueMetadata::new(key.to_owned(), value, metadata.trim()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::trace::TraceContextExt;
    use opentelemetry::{KeyValue, StringValue};

    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn traceparent_parses_valid_and_rejects_malformed() {
        let (t, s, f) = parse_traceparent(PARENT).unwrap();
        assert_eq!(t.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(s.to_string(), "b7ad6b7169203331");
        assert!(f.is_sampled());
        let unsampled = PARENT.replace("-01", "-00");
        assert!(!parse_traceparent(&unsampled).unwrap().2.is_sampled());
        // Later versions may append fields; version 00 may not.
        assert!(parse_traceparent(&PARENT.replacen("00", "01", 1).replace("-01", "-01-xyz")).is_some());
        for bad in [
            "",
            "garbage",
            &format!("{PARENT}-extra"),
            &PARENT.replacen("00", "ff", 1),
            &PARENT.to_uppercase(),
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
            "00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "0é-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn extract_builds_a_remote_parent_with_state_and_baggage() {
        let h = headers(&[
            (TRACEPARENT, PARENT),
            (TRACESTATE, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
            (BAGGAGE, "userId=alice%20smith;prop=1, tenant = t1 ,broken,=x"),
        ]);
        let cx = W3cPropagator::new().extract_with_context(&Context::new(), &h);
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_valid() && sc.is_remote());
        assert_eq!(sc.span_id().to_string(), "b7ad6b7169203331");
        assert_eq!(sc.trace_state().get("rojo"), Some("00f067aa0ba902b7"));
        let baggage = cx.baggage();
        assert_eq!(baggage.len(), 2);
        assert_eq!(baggage.get("userId"), Some(&StringValue::from("alice smith")));
        assert_eq!(baggage.get("tenant"), Some(&StringValue::from("t1")));
    }

    #[test]
    fn bad_tracestate_keeps_the_parent_and_bad_traceparent_gives_none() {
        let h = headers(&[(TRACEPARENT, PARENT), (TRACESTATE, "not a state!!")]);
        let cx = W3cPropagator::new().extract_with_context(&Context::new(), &h);
        assert!(cx.span().span_context().is_valid());
        assert_eq!(cx.span().span_context().trace_state().header(), "");

        let h = headers(&[(TRACEPARENT, "00-zz")]);
        let cx = W3cPropagator::new().extract_with_context(&Context::new(), &h);
        assert!(!cx.has_active_span());
    }

    #[test]
    fn inject_then_extract_round_trips() {
        let sc = SpanContext::new(
            TraceId::from(0x1234_u128),
            SpanId::from(0x99_u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("vendor", "v1")]).unwrap(),
        );
        let cx = Context::new()
            .with_remote_span_context(sc)
            .with_baggage([KeyValue::new("k", "a b,c")]);
        let mut h = HashMap::new();
        W3cPropagator::new().inject_context(&cx, &mut h);
        assert_eq!(
            h.get(TRACEPARENT).map(String::as_str),
            Some("00-00000000000000000000000000001234-0000000000000099-01")
        );
        assert_eq!(h.get(TRACESTATE).map(String::as_str), Some("vendor=v1"));
        assert_eq!(h.get(BAGGAGE).map(String::as_str), Some("k=a%20b%2Cc"));

        let back = W3cPropagator::new().extract_with_context(&Context::new(), &h);
        assert_eq!(back.span().span_context().trace_id(), TraceId::from(0x1234_u128));
        assert_eq!(back.baggage().get("k"), Some(&StringValue::from("a b,c")));
    }

    #[test]
    fn inject_without_a_span_or_baggage_writes_nothing() {
        let mut h: HashMap<String, String> = HashMap::new();
        W3cPropagator::new().inject_context(&Context::new(), &mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn percent_decode_rejects_bad_escapes() {
        assert_eq!(percent_decode("a%2Cb").as_deref(), Some("a,b"));
        assert_eq!(percent_decode("a%2"), None);
        assert_eq!(percent_decode("a%zz"), None);
        assert_eq!(percent_decode("%ff"), None); // not UTF-8
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
    }
}
