//! Calibration of the queueing model to what is observed.
//!
//! The queueing model predicts P99 and cost from first principles; the world differs (start-up
//! delays, correlated tails, prices the driver does not know). Each full decision compares the
//! model's uncalibrated prediction for the allocation that was in place over the interval with
//! what was observed, and scales later predictions by the ratio:
//!
//! - P99: an EWMA in log space (weight 0.3 on the new ratio), the ratio clamped to [0.5, 3], and
//!   only from an interval with enough completions to trust its P99;
//! - cost: the latest ratio, clamped to [0.1, 10] (the cost rate is not noisy).

/// How far the model's predictions are scaled to match observations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Observed / predicted P99 of the allocation in place (EWMA), clamped.
    pub p99_scale: f64,
    /// Observed / computed cost rate, clamped.
    pub cost_scale: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Self {
            p99_scale: 1.0,
            cost_scale: 1.0,
        }
    }
}

/// One interval's evidence: the model's uncalibrated prediction for the allocation that was in
/// place, next to what was observed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationSample {
    /// Uncalibrated P99 predicted for the allocation in place.
    pub raw_p99_s: f64,
    /// P99 observed over the interval (weighted by completions).
    pub observed_p99_s: f64,
    /// Whether the interval completed enough requests for its P99 to count.
    pub p99_trusted: bool,
    /// Uncalibrated cost rate of the allocation in place.
    pub raw_cost_per_hour: f64,
    /// Cost rate reported now.
    pub observed_cost_per_hour: f64,
}

/// Weights of the running P99 scale and of a new ratio in the log-space EWMA (they sum to 1;
/// written out so that the arithmetic is exactly what it always was).
const P99_KEEP: f64 = 0.7;
const P99_NEW: f64 = 0.3;

impl Calibration {
    /// Folds one interval's evidence in (see the module docs). A sample with a zero on either
    /// side leaves its scale as it was.
    pub fn update(&mut self, e: &CalibrationSample) {
        if e.p99_trusted && e.raw_p99_s > 0.0 && e.observed_p99_s > 0.0 {
            let ratio = (e.observed_p99_s / e.raw_p99_s).clamp(0.5, 3.0);
            self.p99_scale = (P99_KEEP * self.p99_scale.ln() + P99_NEW * ratio.ln()).exp();
        }
        if e.raw_cost_per_hour > 0.0 && e.observed_cost_per_hour > 0.0 {
            self.cost_scale = (e.observed_cost_per_hour / e.raw_cost_per_hour).clamp(0.1, 10.0);
        }
    }
}

#[cfg(test)]
mod tests;
