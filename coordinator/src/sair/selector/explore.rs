//! Forced exploration: now and then, a decision takes a random safe candidate instead of the
//! selector's choice, at a rate that decays with the number of decisions, so the experience
//! store also holds what the selector would not have tried. The policy offers it only the
//! candidates the validator accepts and the model predicts to meet the SLO, and only when the
//! SLO is not under pressure.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Forced exploration at a decaying rate: `rate0 / (1 + n / tau)` after `n` decisions.
#[derive(Debug, Clone)]
pub struct Explorer {
    pub rate0: f64,
    pub tau: f64,
    decisions: u64,
    rng: ChaCha8Rng,
}

impl Explorer {
    pub fn new(rate0: f64, tau: f64, seed: u64) -> Self {
        Self {
            rate0,
            tau,
            decisions: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate0 / (1.0 + self.decisions as f64 / self.tau.max(1e-9))
    }

    /// Counts one decision; with the current rate, returns an index into `safe` (the
    /// validated candidates predicted to meet the SLO) to explore instead.
    pub fn maybe_explore(&mut self, safe: &[usize]) -> Option<usize> {
        let rate = self.rate();
        self.decisions += 1;
        if safe.is_empty() || self.rng.random::<f64>() >= rate {
            return None;
        }
        Some(safe[self.rng.random_range(0..safe.len())])
    }
}

#[cfg(test)]
mod tests;
