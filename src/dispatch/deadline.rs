//! The deadline of a shutdown in progress, shared by the bus that sets it and the consume loop and
//! workers that must be done by then.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

/// When stopping must be done, once a shutdown set it; until then stopping has its own bound.
#[derive(Debug, Default)]
pub(crate) struct StopDeadline {
    at: Mutex<Option<Instant>>,
    /// Woken when the deadline is set, so that a wait already begun ends by it.
    set: Notify,
}

impl StopDeadline {
    /// Everything must be done by `at` (an earlier deadline already set wins).
    pub(crate) fn set(&self, at: Instant) {
        {
            let mut slot = self.at.lock().unwrap_or_else(PoisonError::into_inner);
            *slot = Some(slot.map_or(at, |old| old.min(at)));
        }
        self.set.notify_waiters();
    }

    /// The deadline, if a shutdown set one.
    pub(crate) fn get(&self) -> Option<Instant> {
        *self.at.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long stopping may still take: what is left before the deadline, or `bound` when there is
    /// none (or `bound` is sooner).
    pub(crate) fn remaining(&self, bound: Duration) -> Duration {
        match self.get() {
            Some(at) => at.saturating_duration_since(Instant::now()).min(bound),
            None => bound,
        }
    }

    /// Resolves once stopping has had its time: `bound` after the call, or at the deadline when one
    /// is (or gets) set sooner.
    pub(crate) async fn elapsed(&self, bound: Duration) {
        let bound_at = Instant::now() + bound;
        loop {
            // Registered before the deadline is read: a `set` in between still wakes this wait.
            let set = self.set.notified();
            let mut set = std::pin::pin!(set);
            set.as_mut().enable();
            let end = self.get().map_or(bound_at, |at| at.min(bound_at));
            tokio::select! {
                () = tokio::time::sleep_until(end) => return,
                () = set => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use tokio::time::Instant;

    use super::StopDeadline;

    #[tokio::test(start_paused = true)]
    async fn a_grace_begun_before_a_shutdown_ends_at_the_shutdown_deadline() {
        let deadline = Arc::new(StopDeadline::default());
        let start = Instant::now();
        let waiting = tokio::spawn({
            let deadline = Arc::clone(&deadline);
            async move { deadline.elapsed(Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        // A shutdown with 2 s left begins while the 30 s grace runs.
        deadline.set(Instant::now() + Duration::from_secs(2));
        waiting.await.unwrap();
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(3),
            "ended at the shutdown's deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_grace_ends_at_its_bound_or_an_earlier_deadline() {
        let deadline = StopDeadline::default();
        let start = Instant::now();
        deadline.elapsed(Duration::from_secs(5)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        deadline.set(Instant::now() + Duration::from_secs(1));
        deadline.elapsed(Duration::from_secs(5)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(6));
    }
}
