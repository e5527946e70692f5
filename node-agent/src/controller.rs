//! The ρ feedback controller (sans-IO): measured share over the last windows → new refill rate.
//!
//! Why it is shaped this way (see docs/node-agent.md):
//! - **Gain normalisation.** The correction is *relative*: the new rate is the consumed rate
//!   scaled by `target / measured`. Written with the device time of one token,
//!   `ns_per_token = Σ busy_ns / Σ tokens` over the last `history` windows, it is
//!   `rate = ρ × 1e9 / ns_per_token`. Nothing in it has a unit of tokens, so the same settings
//!   work on a GPU that runs 10⁴ tokens/s and on one that runs 10¹² (HAMi-core#274 broke on
//!   large GPUs because its correction was an absolute number of tokens).
//! - **Consumption-normalised, hence no windup.** Scaling the *consumed* rate, not the
//!   configured one, means a process that asks for less than ρ (demand-limited, or descheduled
//!   for part of a window) does not see its rate pushed up to make up for it, and a window
//!   inflated by a saved-up burst does not push it down: the estimate is device time per token,
//!   which neither changes. There is no integrator to wind up; while the bucket binds
//!   (`tokens = rate × window`) the update is exactly `rate ← rate × target / measured`.
//! - **Damping and bounds.** Busy time and tokens are summed over `history` windows before
//!   dividing, which averages out NVML's 1 % quantisation; after the first calibration a step
//!   changes the rate by at most `max_step`×, and a dead band skips writes for tiny changes.
//! - **Probing.** A share too small for a 1 %-resolution meter to see reads 0; while launches
//!   wait and the meter reads 0, the rate grows by `probe_step`× per period until it is seen.

use std::collections::VecDeque;
use std::time::Duration;

/// Tunables of [`Controller`]. All are relative, none depends on the GPU's speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerConfig {
    /// Largest factor one step may change the rate by (and 1/it the smallest), once calibrated.
    pub max_step: f64,
    /// Relative change below which the rate is left alone.
    pub dead_band: f64,
    /// Factor the rate grows by per period while the bucket binds but the meter reads 0.
    pub probe_step: f64,
    /// Windows over which busy time and tokens are summed for the ns-per-token estimate.
    pub history: usize,
    /// Lower bound on the refill rate, tokens/s.
    pub min_rate: u64,
    /// Upper bound on the refill rate, tokens/s.
    pub max_rate: u64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            max_step: 2.0,
            dead_band: 0.01,
            probe_step: 10.0,
            history: 10,
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
    /// Within the dead band.
    OnTarget,
}

/// The controller's answer for one segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateDecision {
    /// Write this refill rate (tokens/s).
    Set {
        /// New refill rate.
        rate: u64,
    },
    /// Leave the rate as it is.
    Keep(Hold),
}

/// Per-segment controller state. The daemon persists [`Controller::ns_per_token`] next to the
/// segments so a restarted agent is calibrated from its first period.
#[derive(Debug, Clone, PartialEq)]
pub struct Controller {
    config: ControllerConfig,
    /// (busy ns, tokens) of the last windows with both non-zero.
    windows: VecDeque<(f64, u64)>,
    /// Estimate inherited from a previous agent, used until a window of our own exists.
    resumed: Option<f64>,
    calibrated: bool,
}

impl Controller {
    /// A fresh, uncalibrated controller.
    pub fn new(config: ControllerConfig) -> Self {
        Controller {
            config,
            windows: VecDeque::new(),
            resumed: None,
            calibrated: false,
        }
    }

    /// A controller that resumes from a persisted estimate: the rate in the segment was already
    /// calibrated by a previous agent, so no calibration jump happens (a restart changes no
    /// running process's rate).
    pub fn resume(config: ControllerConfig, ns_per_token: Option<f64>) -> Self {
        let resumed = ns_per_token.filter(|v| v.is_finite() && *v > 0.0);
        Controller {
            config,
            windows: VecDeque::new(),
            resumed,
            calibrated: resumed.is_some(),
        }
    }

    /// The current device-ns-per-token estimate.
    pub fn ns_per_token(&self) -> Option<f64> {
        let (busy, tokens) = self.windows.iter().fold((0.0, 0u64), |(b, t), (wb, wt)| {
            (b + wb, t.saturating_add(*wt))
        });
        if tokens > 0 && busy > 0.0 {
            Some(busy / tokens as f64)
        } else {
            self.resumed
        }
    }

    /// The rate that gives `target` with the current estimate, if calibrated.
    pub fn feed_forward(&self, target: f64) -> Option<u64> {
        self.ns_per_token()
            .map(|npt| self.clamp_rate(target * 1e9 / npt))
    }

    fn clamp_rate(&self, r: f64) -> u64 {
        let c = &self.config;
        if !r.is_finite() {
            return c.max_rate;
        }
        r.round().clamp(c.min_rate as f64, c.max_rate as f64) as u64
    }

    /// Records the device time per token of a window without deciding anything (segments in
    /// mode `off` are measured this way, so that a later `cap` starts calibrated).
    pub fn learn(&mut self, obs: &Observation) {
        let window_ns = obs.window.as_nanos() as f64;
        if let Some(m) = obs.measured
            && m.is_finite()
            && m > 0.0
            && obs.tokens > 0
            && window_ns > 0.0
        {
            self.windows.push_back((m * window_ns, obs.tokens));
            while self.windows.len() > self.config.history.max(1) {
                self.windows.pop_front();
            }
        }
    }

    /// One control step.
    pub fn step(&mut self, obs: &Observation) -> RateDecision {
        let c = self.config;
        let measured = obs.measured.filter(|m| m.is_finite() && *m >= 0.0);
        // 1. Learn the device time of a token.
        self.learn(obs);
        let (Some(m), true) = (measured, obs.tokens > 0) else {
            return RateDecision::Keep(Hold::Idle);
        };
        let Some(ff) = self.feed_forward(obs.target) else {
            // Launches wait but the meter reads 0: the rate is far too low to be seen. Probe
            // upwards until the share becomes measurable, then calibrate.
            if m == 0.0 && obs.throttled_launches > 0 {
                let rate = self.clamp_rate(obs.rate.max(1) as f64 * c.probe_step);
                if rate != obs.rate {
                    return RateDecision::Set { rate };
                }
            }
            return RateDecision::Keep(Hold::Uncalibrated);
        };
        // 2. First calibration: jump to the feed-forward rate, however far it is.
        if !self.calibrated {
            self.calibrated = true;
            return if ff == obs.rate {
                RateDecision::Keep(Hold::OnTarget)
            } else {
                RateDecision::Set { rate: ff }
            };
        }
        // 3. Afterwards: bounded steps towards it, nothing inside the dead band.
        let current = obs.rate.max(1) as f64;
        let proposed = (ff as f64).clamp(current / c.max_step, current * c.max_step);
        if (proposed / current - 1.0).abs() < c.dead_band {
            return RateDecision::Keep(Hold::OnTarget);
        }
        let rate = self.clamp_rate(proposed);
        if rate == obs.rate {
            RateDecision::Keep(Hold::OnTarget)
        } else {
            RateDecision::Set { rate }
        }
    }
}

/// Burst (tokens) for a refill rate: `burst_ns` of device time at the current calibration,
/// which is `ns_per_token = target × 1e9 / rate`, bounded in time by
/// [`crate::bounds::burst_tokens`] (never more than 100 ms of device time).
pub fn burst_for(rate: u64, target: f64, burst_ns: u64) -> u64 {
    crate::bounds::burst_tokens(rate, target, burst_ns)
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
