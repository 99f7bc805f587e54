//! How long to wait before retrying a failed handler.

use std::time::Duration;

use snafu::Snafu;

/// Exponential backoff with symmetric jitter: attempt `n` (0-based) waits
/// `min(base · 2ⁿ, max) · (1 ± jitter)`, clamped to `[0, max]`. Unlike eventsource-py's policy, the
/// jitter can never push a delay above `max`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use kafka_event_bus::bus::RetryPolicy;
///
/// let policy = RetryPolicy::new(3, Duration::from_secs(1), Duration::from_secs(60), 0.0).unwrap();
/// assert_eq!(policy.delay(0, 0.5), Duration::from_secs(1));
/// assert_eq!(policy.delay(2, 0.5), Duration::from_secs(4));
/// assert_eq!(policy.delay(30, 0.5), Duration::from_secs(60));
/// assert!(policy.should_retry(2) && !policy.should_retry(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    max_retries: u32,
    base: Duration,
    max: Duration,
    jitter: f64,
}

/// A retry setting that cannot work; the messages are eventsource-py's.
#[derive(Debug, Clone, PartialEq, Snafu)]
#[non_exhaustive]
pub enum RetryPolicyError {
    /// `retry_base_delay` is zero.
    #[snafu(display("base_delay must be positive"))]
    BaseDelay,
    /// `retry_max_delay` is zero.
    #[snafu(display("max_delay must be positive"))]
    MaxDelay,
    /// `retry_max_delay` < `retry_base_delay`.
    #[snafu(display("max_delay must be >= base_delay"))]
    MaxBelowBase,
    /// `retry_jitter` is outside `[0, 1]` (or not a number).
    #[snafu(display("jitter must be between 0 and 1"))]
    Jitter,
}

impl RetryPolicy {
    /// A policy allowing `max_retries` retries (so at most `max_retries + 1` attempts).
    ///
    /// # Errors
    ///
    /// [`RetryPolicyError`] for a zero delay, `max < base`, or a jitter outside `[0, 1]`.
    pub fn new(
        max_retries: u32,
        base: Duration,
        max: Duration,
        jitter: f64,
    ) -> Result<Self, RetryPolicyError> {
        if base.is_zero() {
            return Err(RetryPolicyError::BaseDelay);
        }
        if max.is_zero() {
            return Err(RetryPolicyError::MaxDelay);
        }
        if max < base {
            return Err(RetryPolicyError::MaxBelowBase);
        }
        if !(0.0..=1.0).contains(&jitter) {
            return Err(RetryPolicyError::Jitter);
        }
        Ok(Self {
            max_retries,
            base,
            max,
            jitter,
        })
    }

    /// How many retries are allowed.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Whether a delivery that has already been retried `retries` times may be retried again.
    pub fn should_retry(&self, retries: u32) -> bool {
        retries < self.max_retries
    }

    /// The delay before retry number `retries + 1`; `unit` is a uniform random number in `[0, 1)` that
    /// picks the jitter (0.5 means none).
    pub fn delay(&self, retries: u32, unit: f64) -> Duration {
        let exponential = self.base.as_secs_f64() * 2f64.powi(retries.min(512) as i32);
        let capped = exponential.min(self.max.as_secs_f64());
        let spread = (unit.clamp(0.0, 1.0) * 2.0 - 1.0) * self.jitter;
        let jittered = (capped * (1.0 + spread)).clamp(0.0, self.max.as_secs_f64());
        Duration::try_from_secs_f64(jittered).unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn invalid_settings_have_the_reference_messages() {
        let s = Duration::from_secs;
        assert_eq!(
            RetryPolicy::new(3, s(0), s(1), 0.1).unwrap_err().to_string(),
            "base_delay must be positive"
        );
        assert_eq!(
            RetryPolicy::new(3, s(1), s(0), 0.1).unwrap_err().to_string(),
            "max_delay must be positive"
        );
        assert_eq!(
            RetryPolicy::new(3, s(2), s(1), 0.1).unwrap_err().to_string(),
            "max_delay must be >= base_delay"
        );
        assert_eq!(
            RetryPolicy::new(3, s(1), s(2), 1.5).unwrap_err().to_string(),
            "jitter must be between 0 and 1"
        );
        assert!(RetryPolicy::new(3, s(1), s(2), f64::NAN).is_err());
    }

    #[test]
    fn jitter_spreads_around_the_exponential_delay() {
        let policy = RetryPolicy::new(3, Duration::from_secs(1), Duration::from_secs(60), 0.1).unwrap();
        assert_eq!(policy.delay(1, 0.0), Duration::from_millis(1800));
        assert_eq!(policy.delay(1, 0.5), Duration::from_secs(2));
        assert!(policy.delay(1, 0.999_999) <= Duration::from_millis(2200));
    }

    proptest! {
        #[test]
        fn delays_never_exceed_the_maximum(
            base_ms in 1u64..10_000, extra_ms in 0u64..100_000, jitter in 0.0f64..=1.0,
            retries in 0u32..10_000, unit in 0.0f64..1.0,
        ) {
            let (base, max) = (Duration::from_millis(base_ms), Duration::from_millis(base_ms + extra_ms));
            let policy = RetryPolicy::new(3, base, max, jitter).unwrap();
            let d = policy.delay(retries, unit);
            prop_assert!(d <= max);
            // Without jitter the sequence is monotone.
            let flat = RetryPolicy::new(3, base, max, 0.0).unwrap();
            prop_assert!(flat.delay(retries, unit) <= flat.delay(retries + 1, unit));
        }
    }
}
