//! A `tracing` subscriber for tests that records every event's level, message and fields, so a test
//! can check what the bus logs and how often. Installed per thread with [`LogCapture::install`].

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex},
};

use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
    subscriber::DefaultGuard,
};

/// One logged event: its level and `message=... field=...` text.
#[derive(Debug, Clone)]
pub(crate) struct Logged {
    pub(crate) level: Level,
    pub(crate) text: String,
}

/// The events logged on this thread while the guard of [`install`](Self::install) lives.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogCapture {
    events: Arc<Mutex<Vec<Logged>>>,
}

impl LogCapture {
    /// Starts capturing on the current thread.
    pub(crate) fn install() -> (Self, DefaultGuard) {
        let capture = Self::default();
        let guard = tracing::subscriber::set_default(capture.clone());
        (capture, guard)
    }

    /// The events so far.
    pub(crate) fn events(&self) -> Vec<Logged> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The events at `level` whose text contains `needle`.
    pub(crate) fn matching(&self, level: Level, needle: &str) -> Vec<Logged> {
        self.events()
            .into_iter()
            .filter(|e| e.level == level && e.text.contains(needle))
            .collect()
    }
}

struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, "{}={} ", field.name(), value);
    }
}

impl Subscriber for LogCapture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = Text(String::new());
        event.record(&mut text);
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Logged {
                level: *event.metadata().level(),
                text: text.0,
            });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
