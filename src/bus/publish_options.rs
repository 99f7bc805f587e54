//! [`PublishOptions`]: what a publish call adds to eventsource-py's records, for now extra headers.
//!
//! Invariants: an extra header never replaces or shadows one of eventsource-py's publish, retry or DLQ
//! headers (those names are refused with [`Error::ReservedHeader`] before anything is sent); extra
//! headers come after eventsource-py's, in the order given; with no extra header a record is
//! byte-identical to one from [`EventBus::publish`](super::EventBus::publish).

use bytes::Bytes;

use super::Error;
use crate::event::header;
use crate::protocol::{Header, Headers};

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
/// `baggage`) given here is written as is when tracing is off; when tracing is on and the bus has a
/// trace context to inject (its producer span, or with no SDK installed the caller's current one), that
/// context replaces it, so a consumer's span stays the producer span's child.
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

    /// The extra headers, in the order given.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Refuses the options if a header name is one the bus writes itself.
    pub(crate) fn check(&self) -> Result<(), Error> {
        match self.headers.iter().find(|h| is_reserved_header(&h.key)) {
            Some(h) => Err(Error::ReservedHeader { name: h.key.clone() }),
            None => Ok(()),
        }
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::event::{EventMeta, publish_headers};

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
        let mut headers = publish_headers(&meta);
        options.add_to(&mut headers);
        let id = meta.event_id;
        let info = crate::telemetry::EventInfo {
            event_type: "OrderCreated",
            event_id: &id,
            aggregate_id: &id,
            aggregate_type: "Order",
        };
        let span = telemetry.publish_span("orders.stream", &info);
        span.inject(&mut headers);
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
}
