//! How much smaller a topic's batches get once compressed, learned from the batches encoded so far.
//!
//! A drain fills a Produce request by the size its batches will have as sent, before they are
//! compressed: it needs an expected ratio (compressed / uncompressed size of the records). The
//! estimate is kept per topic (the producer has one codec, so per topic and codec): data of one topic
//! compresses alike, and an incompressible topic must not inherit the ratio of a compressible one. A
//! worse ratio is taken at once (plus a step), a better one only by a small step per batch, and the
//! expected size carries a margin on top ([`ESTIMATION_FACTOR`]). The estimate can still be low (a
//! topic whose data changes); the sender's hard cap on the encoded request is what keeps a request
//! within `max_request_size`.

/// The margin on the learned ratio when a batch's compressed size is estimated.
pub(crate) const ESTIMATION_FACTOR: f32 = 1.05;
/// How much the ratio may improve (shrink) per batch.
const IMPROVING_STEP: f32 = 0.005;
/// How much the ratio worsens at least, when a batch compressed worse than expected.
const DETERIORATING_STEP: f32 = 0.05;
/// The bounds of the learned ratio (a compressed batch can be a little larger than its records).
const MIN_RATIO: f32 = 0.01;
const MAX_RATIO: f32 = 1.5;

/// The learned compression ratio of one topic's batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CompressionRatio(f32);

impl Default for CompressionRatio {
    /// Nothing known yet: batches are expected not to shrink.
    fn default() -> Self {
        Self(1.0)
    }
}

impl CompressionRatio {
    /// The ratio to expect of the next batch, margin included.
    pub(crate) fn estimate(self) -> f32 {
        self.0 * ESTIMATION_FACTOR
    }

    /// Learns from a batch whose records compressed at `observed` (compressed / uncompressed).
    pub(crate) fn observe(&mut self, observed: f32) {
        if !observed.is_finite() || observed < 0.0 {
            return;
        }
        let next = if observed > self.0 {
            (self.0 + DETERIORATING_STEP).max(observed)
        } else {
            (self.0 - IMPROVING_STEP).max(observed)
        };
        self.0 = next.clamp(MIN_RATIO, MAX_RATIO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worse_ratio_is_taken_at_once_with_a_step() {
        let mut ratio = CompressionRatio(0.1);
        ratio.observe(0.12);
        assert!((ratio.0 - 0.15).abs() < 1e-6, "{ratio:?}");
        ratio.observe(0.9);
        assert!((ratio.0 - 0.9).abs() < 1e-6, "{ratio:?}");
    }

    #[test]
    fn a_better_ratio_is_approached_by_small_steps() {
        let mut ratio = CompressionRatio::default();
        for _ in 0..10 {
            ratio.observe(0.05);
        }
        assert!((ratio.0 - 0.95).abs() < 1e-5, "{ratio:?}");
        ratio.observe(0.948);
        assert!((ratio.0 - 0.948).abs() < 1e-6, "{ratio:?}");
    }

    /// One incompressible batch among compressible ones keeps the estimate up: the mix never
    /// settles on a ratio the incompressible batches exceed.
    #[test]
    fn mixed_batches_keep_the_estimate_above_the_worst() {
        let mut ratio = CompressionRatio::default();
        for _ in 0..20 {
            ratio.observe(1.0);
            for _ in 0..4 {
                ratio.observe(0.08);
            }
            assert!(ratio.estimate() >= 0.9, "{ratio:?}");
        }
    }

    #[test]
    fn nonsense_observations_are_ignored_and_bounds_hold() {
        let mut ratio = CompressionRatio::default();
        ratio.observe(f32::NAN);
        ratio.observe(f32::INFINITY);
        ratio.observe(-1.0);
        assert_eq!(ratio, CompressionRatio::default());
        ratio.observe(50.0);
        assert!((ratio.0 - MAX_RATIO).abs() < 1e-6);
        for _ in 0..1000 {
            ratio.observe(0.0);
        }
        assert!((ratio.0 - MIN_RATIO).abs() < 1e-6);
    }
}
