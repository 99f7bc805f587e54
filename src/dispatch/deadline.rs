//! The deadline of a shutdown in progress, shared by the bus that sets it and the consume loop and
//! workers that must be done by then.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

/// When stopping must be done, once a shutdown set it; until then stopping has its own bound.
#[derive(Debug, Default)]
pub(crate) struct StopDeadline(Mutex<Option<Instant>>);

impl StopDeadline {
    /// Everything must be done by `at` (an earlier deadline already set wins).
    pub(crate) fn set(&self, at: Instant) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(slot.map_or(at, |old| old.min(at)));
    }

    /// The deadline, if a shutdown set one.
    pub(crate) fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long stopping may still take: what is left before the deadline, or `bound` when there is
    /// none (or `bound` is sooner).
    pub(crate) fn remaining(&self, bound: Duration) -> Duration {
        match self.get() {
            Some(at) => at.saturating_duration_since(Instant::now()).min(bound),
            None => bound,
        }
    }
}
