//! A small `tracing` subscriber for the examples: one line per event on stderr, filtered by `RUST_LOG`
//! (`level` or `target=level` directives, comma-separated; the longest matching target wins). Without
//! `RUST_LOG` nothing is logged. Spans are ignored.

use std::{
    fmt::Write as _,
    io::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};

struct StderrLog {
    default: Option<Level>,
    targets: Vec<(String, Option<Level>)>,
    next_span: AtomicU64,
}

fn level(name: &str) -> Option<Level> {
    name.trim().parse().ok()
}

impl StderrLog {
    fn from_env() -> Option<Self> {
        let spec = std::env::var("RUST_LOG").ok()?;
        let mut log = Self {
            default: None,
            targets: Vec::new(),
            next_span: AtomicU64::new(1),
        };
        for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match directive.split_once('=') {
                Some((target, lvl)) => log.targets.push((target.trim().to_owned(), level(lvl))),
                None => match level(directive) {
                    Some(l) => log.default = Some(l),
                    None => log.targets.push((directive.to_owned(), Some(Level::TRACE))),
                },
            }
        }
        log.targets.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        Some(log)
    }

    fn max_level(&self, target: &str) -> Option<Level> {
        self.targets
            .iter()
            .find(|(t, _)| target.starts_with(t.as_str()))
            .map_or(self.default, |(_, l)| *l)
    }
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.max_level(metadata.target())
            .is_some_and(|max| *metadata.level() <= max)
    }

    fn new_span(&self, _span: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _span: &span::Id, _values: &span::Record<'_>) {}

    fn record_follows_from(&self, _span: &span::Id, _follows: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let meta = event.metadata();
        let mut line = Line(format!(
            "{}.{:03} {} {}:",
            at.as_secs(),
            at.subsec_millis(),
            meta.level(),
            meta.target()
        ));
        event.record(&mut line);
        line.0.push('\n');
        let _ = std::io::stderr().lock().write_all(line.0.as_bytes());
    }

    fn enter(&self, _span: &span::Id) {}

    fn exit(&self, _span: &span::Id) {}
}

/// Installs the stderr subscriber when `RUST_LOG` is set.
pub(crate) fn init() {
    if let Some(log) = StderrLog::from_env() {
        let _ = tracing::subscriber::set_global_default(log);
    }
}
