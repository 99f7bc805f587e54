//! [`SemconvStability`]: which span and metric names the bus emits, eventsource-py's or OpenTelemetry's
//! current messaging semantic conventions, chosen like the OpenTelemetry SDKs do, by
//! `OTEL_SEMCONV_STABILITY_OPT_IN`.
//!
//! Invariants: the choice is made once, when a [`crate::telemetry::Telemetry`] is built, never per
//! span or record; an unknown or empty value keeps eventsource-py's names.

/// The environment variable read by [`SemconvStability::from_env`].
pub const SEMCONV_STABILITY_OPT_IN: &str = "OTEL_SEMCONV_STABILITY_OPT_IN";

/// Which telemetry names the bus emits.
///
/// | mode | `OTEL_SEMCONV_STABILITY_OPT_IN` | spans | metrics |
/// |---|---|---|---|
/// | [`Reference`](Self::Reference) (default) | unset, or without `messaging` | `eventsource.event_bus.publish {event_type}`, eventsource-py's attributes | the `kafka.eventbus.*` instruments |
/// | [`Messaging`](Self::Messaging) | `messaging` | `send {topic}` / `process {topic}`, the conventions' attributes | `messaging.client.sent.messages`, `messaging.client.consumed.messages`, `messaging.client.operation.duration`, `messaging.process.duration` (seconds) |
/// | [`MessagingDup`](Self::MessagingDup) | `messaging/dup` | the conventions' names, both attribute sets | both sets |
///
/// In every mode the bus's own attributes keep their `eventsource.` prefix (`eventsource.event.type`,
/// `eventsource.handler.name`, ...), handler spans keep their name, and the instruments the conventions
/// have no counterpart for (handler, DLQ, connection, rebalance, corrupt-batch and the two gauges) keep
/// eventsource-py's names.
///
/// # Example
///
/// ```
/// use kafka_event_bus::telemetry::{SemconvStability, Telemetry};
///
/// assert_eq!(SemconvStability::parse("http,messaging"), SemconvStability::Messaging);
/// assert_eq!(SemconvStability::parse("messaging/dup"), SemconvStability::MessagingDup);
/// assert_eq!(SemconvStability::parse(""), SemconvStability::Reference);
///
/// // Set in code, the environment is not read.
/// let telemetry = Telemetry::builder().semconv(SemconvStability::Messaging).build();
/// assert_eq!(telemetry.semconv(), SemconvStability::Messaging);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SemconvStability {
    /// eventsource-py's span and metric names and attributes only.
    #[default]
    Reference,
    /// OpenTelemetry's current messaging conventions only.
    Messaging,
    /// Both: the conventions' span names, both attribute sets, both instrument sets.
    MessagingDup,
}

impl SemconvStability {
    /// Parses a value of `OTEL_SEMCONV_STABILITY_OPT_IN`: a comma-separated list in which `messaging`
    /// selects [`Messaging`](Self::Messaging) and `messaging/dup` selects
    /// [`MessagingDup`](Self::MessagingDup) (which wins if both are listed). Other entries (`http`,
    /// `database`, ...) are for other instrumentations and ignored.
    pub fn parse(value: &str) -> Self {
        let mut mode = Self::Reference;
        for entry in value.split(',').map(str::trim) {
            match entry {
                "messaging/dup" => return Self::MessagingDup,
                "messaging" => mode = Self::Messaging,
                _ => {}
            }
        }
        mode
    }

    /// The mode `OTEL_SEMCONV_STABILITY_OPT_IN` asks for ([`Reference`](Self::Reference) if it is unset
    /// or not Unicode).
    pub fn from_env() -> Self {
        std::env::var(SEMCONV_STABILITY_OPT_IN).map_or(Self::Reference, |v| Self::parse(&v))
    }

    /// Whether eventsource-py's names are emitted.
    pub fn reference(self) -> bool {
        matches!(self, Self::Reference | Self::MessagingDup)
    }

    /// Whether the messaging conventions' names are emitted.
    pub fn messaging(self) -> bool {
        matches!(self, Self::Messaging | Self::MessagingDup)
    }
}

#[cfg(test)]
mod tests {
    use super::SemconvStability::{self, *};

    #[test]
    fn parse_reads_the_messaging_entries_of_the_list() {
        for (value, want) in [
            ("", Reference),
            ("http", Reference),
            ("messaging-ish", Reference),
            ("MESSAGING", Reference),
            ("messaging", Messaging),
            ("http, messaging ", Messaging),
            ("messaging/dup", MessagingDup),
            ("messaging,messaging/dup", MessagingDup),
            ("messaging/dup,messaging", MessagingDup),
        ] {
            assert_eq!(SemconvStability::parse(value), want, "{value:?}");
        }
        assert!(Reference.reference() && !Reference.messaging());
        assert!(!Messaging.reference() && Messaging.messaging());
        assert!(MessagingDup.reference() && MessagingDup.messaging());
    }
}
