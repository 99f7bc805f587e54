//! [`PublishOptions`]: what a publish call adds to eventsource-py's records, for now extra headers.
//!
//! Invariants: an extra header never replaces or shadows one of eventsource-py's publish, retry or DLQ
//! headers (those names are refused with [`Error::ReservedHeader`] before anything is sent); extra
//! headers come after eventsource-py's, in the order given; with no extra header a record is
//! byte-identical to one from [`EventBus::publish`](super::EventBus::publish).

use bytes::Bytes;

use super::Error;
use crate::event::header;
use crate::protocol::Header;
#[cfg(any(feature = "client", test))]
use crate::protocol::Headers;
use crate::telemetry::TRACE_HEADERS;
#[cfg(any(feature = "client", test))]
use crate::telemetry::{HeaderCarrier, PublishSpan};

/// Every header name eventsource-py writes itself on publish, retry or dead-lettering.
const RESERVED: &[&str] = &[
    header::EVENT_ID,
    header::EVENT_TYPE,
    header::AGGREGATE_ID,
    header::AGGREGATE_TYPE,
    header::AGGREGATE_VERSION,
    header::OCCURRED_AT,
    header::CORRELATION_ID,
    header::TENANT_ID,
    header::CAUSATION_ID,
    header::ACTOR_ID,
    header::RETRY_COUNT,
    header::RETRY_AFTER,
];

/// Whether `name` is a header the bus writes itself (eventsource-py's publish and retry headers and
/// every `dlq_*` header), which [`PublishOptions::header`] may not set.
///
/// The trace headers (`traceparent`, `tracestate`, `baggage`) are not reserved: see
/// [`PublishOptions`] for which value wins.
///
/// # Example
///
/// ```
/// use kafka_event_bus::bus::is_reserved_header;
///
/// assert!(is_reserved_header("event_type"));
/// assert!(is_reserved_header("dlq_reason"));
/// assert!(!is_reserved_header("traceparent"));
/// assert!(!is_reserved_header("x-tenant"));
/// ```
pub fn is_reserved_header(name: &str) -> bool {
    RESERVED.contains(&name) || name.starts_with(header::DLQ_PREFIX)
}

/// Options of one [`EventBus::publish_with`](super::EventBus::publish_with) call: extra headers written
/// on every record of the call, after eventsource-py's.
///
/// Names the bus writes itself ([`is_reserved_header`]) are refused: the call fails with
/// [`Error::ReservedHeader`] before any event is sent. A trace header (`traceparent`, `tracestate`,
/// `baggage`) given here must be printable ASCII (else [`Error::InvalidTraceHeader`]) and is written as
/// is when tracing is off; when tracing is on and the bus has a trace context to inject (its producer
/// span, or with no SDK installed the caller's current one), every given trace header is dropped and
/// that context written instead, so a consumer's span stays the producer span's child.
///
/// # Example
///
/// ```
/// use kafka_event_bus::bus::{Error, EventBus, InMemoryEventBus, PublishOptions};
/// use kafka_event_bus::event::{DomainEvent, Event};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct OrderCreated { customer_id: String }
/// # impl Event for OrderCreated { const EVENT_TYPE: &'static str = "OrderCreated";
/// #     const AGGREGATE_TYPE: &'static str = "Order"; }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let bus = InMemoryEventBus::new();
/// let event = DomainEvent::new(uuid::Uuid::new_v4(), 1, OrderCreated { customer_id: "c-1".into() });
/// let options = PublishOptions::new().header("x-tenant", "acme").header("x-source", "checkout");
/// bus.publish_with(vec![event.into_any()?], options).await?;
///
/// let refused = PublishOptions::new().header("event_type", "Forged");
/// let err = bus.publish_with(Vec::new(), refused).await.unwrap_err();
/// assert!(matches!(err, Error::ReservedHeader { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "pass the options to publish_with"]
pub struct PublishOptions {
    headers: Vec<Header>,
}

impl PublishOptions {
    /// No options: [`publish_with`](super::EventBus::publish_with) then behaves as `publish`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header to every record of the call (repeat a name to send it several times).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: name.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Adds a header whose value is copied from `value`: for a borrowed `&str` or `&[u8]` that
    /// [`header`](Self::header) cannot take because it does not live for `'static`.
    ///
    /// ```
    /// use kafka_event_bus::bus::PublishOptions;
    ///
    /// let tenant = String::from("acme");
    /// let options = PublishOptions::new().header_copied("x-tenant", tenant.as_str());
    /// assert_eq!(options.headers()[0].value.as_deref(), Some(&b"acme"[..]));
    /// ```
    pub fn header_copied(self, name: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        self.header(name, Bytes::copy_from_slice(value.as_ref()))
    }

    /// The extra headers, in the order given.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Refuses the options if a header name is one the bus writes itself, or if a trace header
    /// (`traceparent`, `tracestate`, `baggage`) is null or not printable ASCII: eventsource-py's
    /// consumers decode those as text before their error handling, so such a value would stall them.
    pub(crate) fn check(&self) -> Result<(), Error> {
        for h in &self.headers {
            if is_reserved_header(&h.key) {
                return Err(Error::ReservedHeader { name: h.key.clone() });
            }
            if TRACE_HEADERS.contains(&h.key.as_str()) && !is_printable_ascii(h.value.as_deref()) {
                return Err(Error::InvalidTraceHeader { name: h.key.clone() });
            }
        }
        Ok(())
    }

    /// Appends the extra headers to a record's `headers` (values are shared, not copied).
    #[cfg(any(feature = "client", test))]
    pub(crate) fn add_to(&self, headers: &mut Headers) {
        for h in &self.headers {
            match &h.value {
                Some(value) => headers.insert(h.key.clone(), value.clone()),
                None => headers.insert_null(h.key.clone()),
            }
        }
    }

    /// Completes a record's `headers` (eventsource-py's already there): the extra headers, then
    /// `span`'s trace context. When the span has a context to write, every trace header of the
    /// options is removed first, so a record never mixes the caller's `tracestate` or `baggage` with
    /// the bus's `traceparent`.
    #[cfg(any(feature = "client", test))]
    pub(crate) fn write_to(&self, headers: &mut Headers, span: &PublishSpan) {
        self.add_to(headers);
        let mut injected = Injected::default();
        span.inject(&mut injected);
        if injected.0.is_empty() {
            return;
        }
        for name in TRACE_HEADERS {
            headers.remove(name);
        }
        for (name, value) in injected.0 {
            headers.insert(name, value);
        }
    }
}

/// Whether a header value is present and printable ASCII (space to `~`).
fn is_printable_ascii(value: Option<&[u8]>) -> bool {
    value.is_some_and(|v| v.iter().all(|b| (b' '..=b'~').contains(b)))
}

/// The trace headers a span writes, collected before they go into a record.
#[cfg(any(feature = "client", test))]
#[derive(Default)]
struct Injected(Vec<(String, String)>);

#[cfg(any(feature = "client", test))]
impl HeaderCarrier for Injected {
    fn text(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn set_text(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::event::{EventMeta, publish_headers};
    use crate::telemetry::TRACE_HEADERS;

    #[test]
    fn no_option_leaves_the_publish_headers_as_they_are() {
        let meta = EventMeta::new("OrderCreated", "Order", uuid::Uuid::new_v4(), 3);
        let mut headers = publish_headers(&meta);
        PublishOptions::new().add_to(&mut headers);
        assert_eq!(headers, publish_headers(&meta));
    }

    #[test]
    fn extra_headers_follow_the_publish_headers_in_order() {
        let meta = EventMeta::new("OrderCreated", "Order", uuid::Uuid::new_v4(), 3);
        let mut headers = publish_headers(&meta);
        let options = PublishOptions::new()
            .header("b", "2")
            .header("a", "1")
            .header("b", "3");
        assert!(options.check().is_ok());
        options.add_to(&mut headers);
        let tail: Vec<_> = headers
            .iter()
            .skip(7)
            .map(|h| (h.key, h.value.unwrap()))
            .collect();
        assert_eq!(tail, [("b", &b"2"[..]), ("a", b"1"), ("b", b"3")]);
    }

    /// The order the Kafka bus builds a record in: publish headers, extras, then the trace injection.
    fn record_headers(telemetry: &crate::telemetry::Telemetry, options: &PublishOptions) -> Headers {
        let meta = EventMeta::new("OrderCreated", "Order", uuid::Uuid::new_v4(), 3);
        let id = meta.event_id;
        let info = crate::telemetry::EventInfo {
            event_type: "OrderCreated",
            event_id: &id,
            aggregate_id: &id,
            aggregate_type: "Order",
        };
        let span = telemetry.publish_span("orders.stream", &info);
        let mut headers = publish_headers(&meta);
        options.write_to(&mut headers, &span);
        span.acked(0, 1);
        headers
    }

    #[test]
    fn a_given_traceparent_is_kept_without_tracing_and_replaced_with_it() {
        const GIVEN: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let options = PublishOptions::new().header("traceparent", GIVEN);

        let off = record_headers(&crate::telemetry::Telemetry::disabled(), &options);
        assert_eq!(
            off.get_all("traceparent").collect::<Vec<_>>(),
            [Some(GIVEN.as_bytes())]
        );

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let on = crate::telemetry::Telemetry::builder()
            .metrics(false)
            .tracer_provider(&provider)
            .build();
        let on = record_headers(&on, &options);
        let values: Vec<_> = on.get_all("traceparent").collect();
        assert_eq!(values.len(), 1, "one traceparent");
        assert_ne!(values[0], Some(GIVEN.as_bytes()));
        assert_eq!(on.iter().last().map(|h| h.key), Some("traceparent"));
    }

    #[test]
    fn the_bus_trace_context_replaces_every_given_trace_header() {
        const GIVEN: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let options = PublishOptions::new()
            .header("traceparent", GIVEN)
            .header("tracestate", "vendor=given")
            .header("baggage", "user=given")
            .header("x-tenant", "acme");
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let on = crate::telemetry::Telemetry::builder()
            .metrics(false)
            .tracer_provider(&provider)
            .build();
        let on = record_headers(&on, &options);
        assert_eq!(
            on.get_all("tracestate").count(),
            0,
            "the given tracestate is gone"
        );
        assert_eq!(on.get_all("baggage").count(), 0, "the given baggage is gone");
        assert_eq!(on.get_all("traceparent").count(), 1);
        assert_eq!(on.get_str("x-tenant"), Some("acme"));
    }

    #[test]
    fn trace_headers_must_be_printable_ascii() {
        for name in ["traceparent", "tracestate", "baggage"] {
            for bad in [&b"\xff\xfe"[..], b"a\nb", b"caf\xc3\xa9", b"\x7f"] {
                let options = PublishOptions::new().header(name, Bytes::copy_from_slice(bad));
                assert!(
                    matches!(options.check(), Err(Error::InvalidTraceHeader { ref name }) if TRACE_HEADERS.contains(&name.as_str())),
                    "{name} = {bad:?} accepted"
                );
            }
            let ok = PublishOptions::new().header(name, "k=v, a b");
            assert!(ok.check().is_ok());
        }
        // Other extra headers are opaque bytes.
        let bytes = PublishOptions::new().header("x-bin", Bytes::from_static(b"\xff\x00"));
        assert!(bytes.check().is_ok());
    }
}
