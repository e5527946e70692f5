//! Burst memory (issue 15, item 3): recurring bursts learned from the arrival history, so that
//! the policy provisions for a burst *before* it starts from its first recurrence on, instead
//! of waiting for the seasonal forecast's two full periods.
//!
//! Sans-IO: [`BurstMemory::observe`] takes each call's time and short-window arrival rate
//! (every 5 s in the simulator and live); everything is in seconds of the state's clock,
//! derived from what the memory saw, so a time-compressed live run (the demo's 5 s interval)
//! learns its own periods.
//!
//! - **Onset**: the rate is at least `rise` × the calm rate (an exponentially weighted mean of
//!   the samples outside bursts) on two consecutive calls. A slow ramp moves the calm rate
//!   with it and never rises that fast.
//! - **End**: the rate is back below `fall` × the calm rate of before the onset on two
//!   consecutive calls. The burst's peak (the highest mean of two consecutive samples) and its
//!   length are recorded.
//! - **Recurrence**: from the second onset on, the period is the median of the gaps between
//!   the last onsets, and the next burst is expected one period after the last onset, within a
//!   tolerance of a tenth of the period (or the spread of the gaps seen, if larger), lasting as
//!   long as the longest burst recorded, at the highest peak recorded. A burst seen once is
//!   therefore predicted at its next period.
//!
//! The forecast only ever *raises* what the policy plans for ([`BurstMemory::floor`]); it never
//! lowers a rate or holds back a scale-up.

use std::collections::VecDeque;

/// Burst-memory knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstConfig {
    /// A sample this many times the calm rate (twice in a row) starts a burst.
    pub rise: f64,
    /// A sample below this many times the calm rate (twice in a row) ends it.
    pub fall: f64,
    /// Weight of a new calm sample in the calm rate's moving mean.
    pub calm_weight: f64,
    /// Tolerance of the predicted onset, as a fraction of the period.
    pub tolerance: f64,
    /// Gaps between onsets remembered (the period is their median).
    pub remember: usize,
}

impl Default for BurstConfig {
    fn default() -> Self {
        Self {
            rise: 1.5,
            fall: 1.25,
            calm_weight: 0.2,
            tolerance: 0.1,
            remember: 4,
        }
    }
}

/// Where the next burst is expected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstWindow {
    /// The expected onset, seconds on the state's clock.
    pub onset_s: f64,
    /// Earliest and latest times the burst may be running (onset − tolerance … onset + the
    /// longest burst + tolerance).
    pub from_s: f64,
    pub until_s: f64,
    /// The rate to provision for: the highest burst peak recorded, req/s.
    pub peak: f64,
    /// The learned period, seconds.
    pub period_s: f64,
}

impl BurstWindow {
    /// Whether the burst may be running at any time in `[t_s, t_s + lead_s]`.
    pub fn within(&self, t_s: f64, lead_s: f64) -> bool {
        t_s + lead_s.max(0.0) >= self.from_s && t_s <= self.until_s
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Running {
    onset_s: f64,
    /// Calm rate before the onset.
    calm: f64,
    peak: f64,
    last: f64,
    below: u32,
}

/// What the arrival history says about recurring bursts.
#[derive(Debug, Clone, Default)]
pub struct BurstMemory {
    pub cfg: BurstConfig,
    calm: Option<f64>,
    /// A first sample over the rise threshold: (time, rate).
    rising: Option<(f64, f64)>,
    running: Option<Running>,
    onsets: VecDeque<f64>,
    /// Length and peak of each finished burst (the last `remember + 1`).
    bursts: VecDeque<(f64, f64)>,
}

impl BurstMemory {
    pub fn new(cfg: BurstConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// Takes one call's short-window arrival rate at time `t_s`.
    pub fn observe(&mut self, t_s: f64, rate: f64) {
        if !(rate.is_finite() && rate >= 0.0 && t_s.is_finite()) {
            return;
        }
        if let Some(mut r) = self.running {
            r.peak = r.peak.max((rate + r.last) / 2.0);
            r.last = rate;
            r.below = if rate < self.cfg.fall * r.calm {
                r.below + 1
            } else {
                0
            };
            if r.below >= 2 {
                self.bursts.push_back(((t_s - r.onset_s).max(0.0), r.peak));
                while self.bursts.len() > self.cfg.remember + 1 {
                    self.bursts.pop_front();
                }
                self.running = None;
                self.calm = Some(r.calm);
            } else {
                self.running = Some(r);
            }
            return;
        }
        let Some(calm) = self.calm else {
            self.calm = Some(rate);
            return;
        };
        if rate >= self.cfg.rise * calm.max(1e-9) {
            match self.rising {
                Some((t0, r0)) => {
                    self.rising = None;
                    self.onsets.push_back(t0);
                    while self.onsets.len() > self.cfg.remember + 1 {
                        self.onsets.pop_front();
                    }
                    self.running = Some(Running {
                        onset_s: t0,
                        calm,
                        peak: (rate + r0) / 2.0,
                        last: rate,
                        below: 0,
                    });
                }
                None => self.rising = Some((t_s, rate)),
            }
            return;
        }
        // A lone high sample was noise: it does not move the calm rate either.
        if self.rising.take().is_none() {
            self.calm = Some(calm + self.cfg.calm_weight * (rate - calm));
        }
    }

    /// The learned period (median gap between the last onsets) and the spread of the gaps.
    fn period(&self) -> Option<(f64, f64)> {
        if self.onsets.len() < 2 {
            return None;
        }
        let mut gaps: Vec<f64> = self
            .onsets
            .iter()
            .zip(self.onsets.iter().skip(1))
            .map(|(a, b)| b - a)
            .collect();
        gaps.sort_by(f64::total_cmp);
        let n = gaps.len();
        let p = if n % 2 == 1 {
            gaps[n / 2]
        } else {
            (gaps[n / 2 - 1] + gaps[n / 2]) / 2.0
        };
        let spread = gaps.iter().map(|g| (g - p).abs()).fold(0.0, f64::max);
        (p > 0.0).then_some((p, spread))
    }

    /// Whether a recurrence has been seen (a period is known).
    pub fn learned(&self) -> bool {
        self.period().is_some()
    }

    /// Whether a burst is running now (its onset seen, its end not yet).
    pub fn running(&self) -> bool {
        self.running.is_some()
    }

    /// Whether, by what has been learned, a burst may be running at some time in
    /// `[t_s, t_s + lead_s]`: one is running now, or a recurrence is expected by then. Always
    /// `false` before a recurrence has been seen.
    pub fn likely(&self, t_s: f64, lead_s: f64) -> bool {
        self.next(t_s)
            .is_some_and(|w| self.running() || w.within(t_s, lead_s))
    }

    /// The next expected burst at time `t_s` (the one running or the next to come), once a
    /// recurrence has been seen; `None` before.
    pub fn next(&self, t_s: f64) -> Option<BurstWindow> {
        let (p, spread) = self.period()?;
        let last = *self.onsets.back()?;
        let tol = (self.cfg.tolerance * p).max(spread);
        let len = self
            .bursts
            .iter()
            .map(|b| b.0)
            .fold(0.0, f64::max)
            .max(self.running.map_or(0.0, |r| t_s - r.onset_s));
        let peak = self
            .bursts
            .iter()
            .map(|b| b.1)
            .chain(self.running.map(|r| r.peak))
            .fold(0.0, f64::max);
        // The first expected onset whose window has not passed yet.
        let behind = t_s - (last + p + len + tol);
        let skip = if behind > 0.0 {
            (behind / p).ceil()
        } else {
            0.0
        };
        let onset = last + p * (1.0 + skip);
        Some(BurstWindow {
            onset_s: onset,
            from_s: onset - tol,
            until_s: onset + len + tol,
            peak,
            period_s: p,
        })
    }

    /// The rate to plan a stage for when its capacity must be ready `lead_s` from now: the
    /// expected peak when the next burst may be running by then, else `rate` itself. Never
    /// below `rate`.
    pub fn floor(&self, t_s: f64, lead_s: f64, rate: f64) -> f64 {
        match self.next(t_s) {
            Some(w) if self.running() || w.within(t_s, lead_s) => rate.max(w.peak),
            _ => rate,
        }
    }
}

#[cfg(test)]
mod tests;
