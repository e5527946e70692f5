//! The ρ feedback controller (sans-IO): measured share over the last window → new refill rate.
//!
//! Why it is shaped this way (see docs/node-agent.md):
//! - **Gain normalisation.** Every correction is *relative* — the rate is multiplied by
//!   `clamp(target / measured, 1/max_step, max_step) ^ gain` — so the same gains work on a GPU
//!   that runs 10⁴ tokens/s and on one that runs 10¹² tokens/s. HAMi-core#274 broke on large GPUs
//!   because its correction was an absolute number of tokens.
//! - **Feed-forward calibration.** The device time of one token is measured, not assumed:
//!   `ns_per_token = measured × window / Δtokens`. The first time a segment has such an estimate
//!   its rate jumps straight to `ρ × 1e9 / ns_per_token`, so even an initial guess that is off by
//!   a factor of 10⁶ settles in one or two periods.
//! - **Anti-windup.** The rate is lowered whenever the segment got more than ρ, but raised
//!   only while the bucket is the binding constraint (some launch waited in the window). A
//!   segment whose process asks for less than ρ is *demand-limited*: raising its rate would
//!   only store up a burst for later. Its rate always stays within `[ff / band, ff × band]` of
//!   the calibrated feed-forward rate `ff`.
//! - **Damping.** `gain < 1` and a small dead band keep NVML's 1 %-quantised readings from
//!   making the rate jitter.

use std::time::Duration;

/// Tunables of [`Controller`]. All are relative, none depends on the GPU's speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerConfig {
    /// Largest factor one step may change the rate by (and 1/it the smallest).
    pub max_step: f64,
    /// Exponent applied to the clamped ratio (damping), in (0, 1].
    pub gain: f64,
    /// Relative error below which the rate is left alone.
    pub dead_band: f64,
    /// The rate stays within `[ff / band, ff × band]` of the feed-forward rate.
    pub band: f64,
    /// Factor the rate grows by per period while the bucket binds but the segment's share is
    /// too small for the meter to see (uncalibrated, reading 0): a fast probe upwards.
    pub probe_step: f64,
    /// Weight of a new ns-per-token sample in its moving average, in (0, 1].
    pub ewma: f64,
    /// Bounds on the refill rate, tokens/s.
    pub min_rate: u64,
    /// Upper bound on the refill rate, tokens/s.
    pub max_rate: u64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            max_step: 2.0,
            gain: 0.7,
            dead_band: 0.01,
            band: 4.0,
            probe_step: 10.0,
            ewma: 0.5,
            min_rate: 1,
            max_rate: 1 << 50,
        }
    }
}

/// What the agent saw for one segment over the last control window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Target share ρ in (0, 1] (the effective one, for `share` mode).
    pub target: f64,
    /// Measured share of the GPU's time over the window, `None` when it could not be measured.
    pub measured: Option<f64>,
    /// Length of the window.
    pub window: Duration,
    /// Tokens consumed in the window.
    pub tokens: u64,
    /// Launches that waited for tokens in the window (the bucket was binding).
    pub throttled_launches: u64,
    /// The refill rate in force during the window, tokens/s.
    pub rate: u64,
}

/// Why the rate was left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// No measurement or no tokens in the window: nothing to learn from.
    Idle,
    /// Not yet calibrated and nothing to calibrate from.
    Uncalibrated,
    /// The process used less than its rate allows; the bucket was not binding.
    DemandLimited,
    /// Within the dead band.
    OnTarget,
}

/// The controller's answer for one segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Write this refill rate (tokens/s).
    Set {
        /// New refill rate.
        rate: u64,
    },
    /// Leave the rate as it is.
    Keep(Hold),
}

/// Per-segment controller state. Plain data: the daemon persists `ns_per_token` next to the
/// segments so a restarted agent is calibrated from its first period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Controller {
    config: ControllerConfig,
    ns_per_token: Option<f64>,
    calibrated: bool,
}

impl Controller {
    /// A fresh, uncalibrated controller.
    pub fn new(config: ControllerConfig) -> Self {
        Controller {
            config,
            ns_per_token: None,
            calibrated: false,
        }
    }

    /// A controller that resumes from a persisted estimate: the rate in the segment was already
    /// calibrated by a previous agent, so no feed-forward jump happens (a restart changes no
    /// running process's rate).
    pub fn resume(config: ControllerConfig, ns_per_token: Option<f64>) -> Self {
        let ns_per_token = ns_per_token.filter(|v| v.is_finite() && *v > 0.0);
        Controller {
            config,
            ns_per_token,
            calibrated: ns_per_token.is_some(),
        }
    }

    /// The current device-ns-per-token estimate.
    pub fn ns_per_token(&self) -> Option<f64> {
        self.ns_per_token
    }

    /// The rate that gives `target` with the current estimate, if calibrated.
    pub fn feed_forward(&self, target: f64) -> Option<u64> {
        self.ns_per_token
            .map(|npt| self.clamp_rate(target * 1e9 / npt))
    }

    fn clamp_rate(&self, r: f64) -> u64 {
        let c = &self.config;
        if !r.is_finite() {
            return c.max_rate;
        }
        r.round().clamp(c.min_rate as f64, c.max_rate as f64) as u64
    }

    /// One control step.
    pub fn step(&mut self, obs: &Observation) -> Decision {
        let c = self.config;
        let window_ns = obs.window.as_nanos() as f64;
        let measured = obs.measured.filter(|m| m.is_finite() && *m >= 0.0);
        // 1. Learn the device time of a token.
        if let Some(m) = measured
            && m > 0.0
            && obs.tokens > 0
            && window_ns > 0.0
        {
            let sample = m * window_ns / obs.tokens as f64;
            self.ns_per_token = Some(match self.ns_per_token {
                Some(old) => old + c.ewma * (sample - old),
                None => sample,
            });
        }
        let (Some(m), true) = (measured, obs.tokens > 0) else {
            return Decision::Keep(Hold::Idle);
        };
        let Some(ff) = self.feed_forward(obs.target) else {
            // Launches wait but the meter reads 0: the rate is far too low to be seen. Probe
            // upwards until the share becomes measurable, then calibrate.
            if m == 0.0 && obs.throttled_launches > 0 {
                let rate = self.clamp_rate(obs.rate.max(1) as f64 * c.probe_step);
                if rate != obs.rate {
                    return Decision::Set { rate };
                }
            }
            return Decision::Keep(Hold::Uncalibrated);
        };
        // 2. First calibration: jump to the feed-forward rate.
        if !self.calibrated {
            self.calibrated = true;
            return if ff == obs.rate {
                Decision::Keep(Hold::OnTarget)
            } else {
                Decision::Set { rate: ff }
            };
        }
        let ff = ff as f64;
        let current = obs.rate.max(1) as f64;
        // 3. Relative correction. Downwards always (the segment got more than ρ); upwards only
        // while the bucket binds, otherwise the process is demand-limited and raising the rate
        // would only wind up (anti-windup).
        let ratio = if m > 0.0 { obs.target / m } else { c.max_step };
        let proposed = if obs.throttled_launches > 0 || ratio < 1.0 {
            if (ratio - 1.0).abs() < c.dead_band {
                current
            } else {
                current * ratio.clamp(1.0 / c.max_step, c.max_step).powf(c.gain)
            }
        } else {
            current
        };
        let bounded = proposed.clamp(ff / c.band, ff * c.band);
        let rate = self.clamp_rate(bounded);
        if rate == obs.rate {
            if obs.throttled_launches > 0 || ratio < 1.0 {
                Decision::Keep(Hold::OnTarget)
            } else {
                Decision::Keep(Hold::DemandLimited)
            }
        } else {
            Decision::Set { rate }
        }
    }
}

/// Burst (tokens) for a refill rate: `burst_ns` of device time at the current calibration,
/// which is `ns_per_token = target × 1e9 / rate`.
pub fn burst_for(rate: u64, target: f64, burst_ns: u64) -> u64 {
    if target.is_nan() || target <= 0.0 {
        return rate.max(1);
    }
    let tokens = burst_ns as f64 * rate as f64 / (target * 1e9);
    (tokens.round() as u64).max(1)
}

/// What a `share` segment may aim for: its own ρ, or more while the GPU has time nobody with a
/// guarantee uses. `reserved_by_others` is Σ max(ρ_j, measured_j) over the *active* other
/// segments of the GPU (an active segment always gets its guarantee back), `unmanaged` the
/// busy time of processes outside any segment, `headroom` the slice left free so newcomers
/// show up in the measurements.
pub fn share_target(rho: f64, reserved_by_others: f64, unmanaged: f64, headroom: f64) -> f64 {
    (1.0 - headroom - reserved_by_others - unmanaged)
        .max(rho)
        .min(1.0)
}

#[cfg(test)]
mod tests;
