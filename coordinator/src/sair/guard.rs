//! The fast guard: between decisions, a stage whose queue wait breaches its share of the SLO
//! for a few seconds is scaled up at once (in the manner of Knative's panic mode).
//!
//! The simulator and the live loop call the policy every `period_s()`; the SAIR policy asks
//! for the guard period (5 s) and makes full decisions only every decision interval (30 s). In
//! the calls in between ("off-beat") only the guard acts.

use crate::policy::{Action, PipelineState};

use super::validator::Limits;

/// Guard knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardConfig {
    pub enabled: bool,
    /// How often the policy asks to be called, seconds.
    pub period_s: f64,
    /// A stage breaches when its queue-wait P99 exceeds `share × SLO / stages`.
    pub share: f64,
    /// A breach must last this long (over consecutive calls) before the guard acts.
    pub sustain_s: f64,
    /// After acting on a stage, leave it alone this long (new replicas need to start).
    pub refractory_s: f64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            period_s: 5.0,
            share: 1.0,
            sustain_s: 5.0,
            refractory_s: 20.0,
        }
    }
}

/// Guard state per stage.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    pub cfg: GuardConfig,
    breach_since: Vec<Option<f64>>,
    last_fire: Vec<Option<f64>>,
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// Updates breach tracking with an observation; returns the stage to scale up and the
    /// action doing it, if the guard fires.
    pub fn check(&mut self, s: &PipelineState, limits: &Limits) -> Option<(usize, Action)> {
        let n = s.stages.len();
        if self.breach_since.len() != n {
            self.breach_since = vec![None; n];
            self.last_fire = vec![None; n];
        }
        if !self.cfg.enabled {
            return None;
        }
        let threshold = self.cfg.share * s.slo_p99_s / n as f64;
        let mut worst: Option<(usize, f64)> = None;
        for (i, st) in s.stages.iter().enumerate() {
            if st.queue_wait_p99_s > threshold {
                let since = *self.breach_since[i].get_or_insert(s.t_s);
                let sustained = s.t_s - since >= self.cfg.sustain_s - 1e-9;
                let resting = self.last_fire[i].is_some_and(|t| s.t_s - t < self.cfg.refractory_s);
                let room = st.replicas_desired < limits.max_replicas(st)
                    || (st.kind == crate::policy::StageKind::Gpu && st.rho < 0.999);
                if sustained && !resting && room {
                    let excess = st.queue_wait_p99_s / threshold;
                    if worst.is_none_or(|(_, e)| excess > e) {
                        worst = Some((i, excess));
                    }
                }
            } else {
                self.breach_since[i] = None;
            }
        }
        let (i, _) = worst?;
        let st = &s.stages[i];
        let mut a = Action::hold(s);
        if st.kind == crate::policy::StageKind::Gpu && st.rho < 0.999 {
            // A GPU stage running on a small share is faster fixed by a bigger share (service
            // time falls too) than by more slow replicas; fall back to replicas if it does not
            // pack.
            let mut b = a.clone();
            let up = (st.rho * 1.5).max(st.rho + 0.25).min(1.0);
            b.rho[i] = ((up / 0.05).round() * 0.05).min(1.0);
            b.rho[i] = b.rho[i].min(st.rho + limits.max_rho_step);
            if super::validator::gpu_fits(s, &b) {
                self.last_fire[i] = Some(s.t_s);
                self.breach_since[i] = None;
                return Some((i, b));
            }
        }
        let add = st.replicas_desired.div_ceil(2).max(1);
        a.replicas[i] = (st.replicas_desired + add).min(limits.max_replicas(st));
        self.last_fire[i] = Some(s.t_s);
        self.breach_since[i] = None;
        Some((i, a))
    }
}

#[cfg(test)]
mod tests;
