//! The timers of one group member (Java's `Heartbeat`): when to heartbeat, when the session is
//! presumed lost, and when the application has stalled past `max_poll_interval`.
//!
//! Owns only instants and durations; reads no clock (every method takes `now`). Used by
//! [`Member`](super::member::Member).
//!
//! # Invariants
//!
//! - A heartbeat is due `heartbeat_interval` after the last one was *sent*, or `retry_backoff` after one
//!   failed; never while one is in flight.
//! - The session timer restarts on every successful heartbeat response (and on joining); it expires
//!   `session_timeout` later.
//! - The poll timer restarts whenever the application shows progress ([`Heartbeat::poll`]); it expires
//!   `max_poll_interval` later.

use std::time::{Duration, Instant};

/// The three timeouts a member honours, plus the retry backoff.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kafka_event_bus::client::group::HeartbeatConfig;
///
/// let c = HeartbeatConfig::default();
/// assert!(c.heartbeat_interval < c.session_timeout);
/// assert_eq!(c.max_poll_interval, Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeartbeatConfig {
    /// `session.timeout.ms`: without a heartbeat for this long, the coordinator evicts the member.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`: how often to heartbeat (well below the session timeout).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`: the longest the application may go without progress before the member
    /// leaves the group on its own.
    pub max_poll_interval: Duration,
    /// `retry.backoff.ms`: the pause after a failed group request before trying again.
    pub retry_backoff: Duration,
}

impl Default for HeartbeatConfig {
    /// Java's defaults: 45 s session, 3 s heartbeat, 5 min poll interval, 100 ms backoff.
    fn default() -> Self {
        Self {
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// The heartbeat, session and poll timers.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    config: HeartbeatConfig,
    next_heartbeat: Instant,
    in_flight: bool,
    session_start: Instant,
    last_poll: Instant,
}

impl Heartbeat {
    pub(crate) fn new(config: HeartbeatConfig, now: Instant) -> Self {
        Self {
            config,
            next_heartbeat: now + config.heartbeat_interval,
            in_flight: false,
            session_start: now,
            last_poll: now,
        }
    }

    pub(crate) fn config(&self) -> &HeartbeatConfig {
        &self.config
    }

    /// The application made progress (or has nothing to do).
    pub(crate) fn poll(&mut self, now: Instant) {
        self.last_poll = self.last_poll.max(now);
    }

    /// Restarts the session and heartbeat timers (after joining the group).
    pub(crate) fn reset_timeouts(&mut self, now: Instant) {
        self.session_start = now;
        self.next_heartbeat = now + self.config.heartbeat_interval;
        self.in_flight = false;
    }

    pub(crate) fn sent(&mut self, now: Instant) {
        self.in_flight = true;
        self.next_heartbeat = now + self.config.heartbeat_interval;
    }

    pub(crate) fn received(&mut self, now: Instant) {
        self.in_flight = false;
        self.session_start = now;
    }

    pub(crate) fn failed(&mut self, now: Instant) {
        self.in_flight = false;
        self.next_heartbeat = now + self.config.retry_backoff;
    }

    pub(crate) fn should_heartbeat(&self, now: Instant) -> bool {
        !self.in_flight && now >= self.next_heartbeat
    }

    /// When the next heartbeat is due (`None` while one is in flight).
    pub(crate) fn next_heartbeat(&self) -> Option<Instant> {
        (!self.in_flight).then_some(self.next_heartbeat)
    }

    pub(crate) fn session_deadline(&self) -> Instant {
        self.session_start + self.config.session_timeout
    }

    pub(crate) fn session_expired(&self, now: Instant) -> bool {
        now >= self.session_deadline()
    }

    pub(crate) fn poll_deadline(&self) -> Instant {
        self.last_poll + self.config.max_poll_interval
    }

    pub(crate) fn poll_expired(&self, now: Instant) -> bool {
        now >= self.poll_deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HeartbeatConfig {
        HeartbeatConfig {
            session_timeout: Duration::from_secs(6),
            heartbeat_interval: Duration::from_secs(1),
            max_poll_interval: Duration::from_secs(10),
            retry_backoff: Duration::from_millis(100),
        }
    }

    #[test]
    fn heartbeat_is_due_an_interval_after_sending_and_never_while_in_flight() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(config(), t0);
        assert!(!hb.should_heartbeat(t0 + Duration::from_millis(999)));
        assert!(hb.should_heartbeat(t0 + Duration::from_secs(1)));
        hb.sent(t0 + Duration::from_secs(1));
        assert!(!hb.should_heartbeat(t0 + Duration::from_secs(5)));
        assert_eq!(hb.next_heartbeat(), None);
        hb.received(t0 + Duration::from_millis(1200));
        assert_eq!(hb.next_heartbeat(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(hb.session_deadline(), t0 + Duration::from_millis(7200));
    }

    #[test]
    fn failure_retries_after_backoff_and_session_keeps_running() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(config(), t0);
        hb.sent(t0 + Duration::from_secs(1));
        hb.failed(t0 + Duration::from_secs(2));
        assert_eq!(hb.next_heartbeat(), Some(t0 + Duration::from_millis(2100)));
        assert!(!hb.session_expired(t0 + Duration::from_millis(5999)));
        assert!(hb.session_expired(t0 + Duration::from_secs(6)));
    }

    #[test]
    fn poll_timer_restarts_on_progress() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(config(), t0);
        hb.poll(t0 + Duration::from_secs(8));
        assert!(!hb.poll_expired(t0 + Duration::from_secs(17)));
        assert!(hb.poll_expired(t0 + Duration::from_secs(18)));
    }
}
