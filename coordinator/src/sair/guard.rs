//! The fast guard: between decisions, a stage whose queue wait breaches its share of the SLO
//! for a few seconds is scaled up at once (in the manner of Knative's panic mode).
//!
//! The simulator and the live loop call the policy every `period_s()`; the SAIR policy asks
//! for the guard period (5 s) and makes full decisions only every decision interval (30 s). In
//! the calls in between ("off-beat") only the guard acts.

use crate::policy::{Action, PipelineState};

use crate::policy::StageKind;

use super::validator::{Limits, gpu_fits};

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
    /// Utilisation the guard sizes a breaching stage for.
    pub target_utilisation: f64,
    /// When a GPU stage's next replica does not pack at its ρ, add replicas at the largest
    /// shares that pack (at least [`GUARD_MIN_SHARE`]) while the serving ones keep theirs
    /// (issue 15, item 2; `sair-per-replica-guard` and `sair-per-replica`).
    pub per_replica: bool,
}

/// The smallest share the guard starts a replica at: a smaller one adds little capacity for
/// a whole start-up.
pub const GUARD_MIN_SHARE: f64 = 0.2;

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            period_s: 5.0,
            share: 1.0,
            sustain_s: 5.0,
            refractory_s: 20.0,
            target_utilisation: 0.7,
            per_replica: false,
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
        let mut firing: Vec<(usize, f64)> = Vec::new();
        for (i, st) in s.stages.iter().enumerate() {
            if st.queue_wait_p99_s > threshold {
                let since = *self.breach_since[i].get_or_insert(s.t_s);
                let excess = st.queue_wait_p99_s / threshold;
                // A breach three times over needs no confirmation.
                let sustained = s.t_s - since >= self.cfg.sustain_s - 1e-9 || excess >= 3.0;
                let resting = self.last_fire[i].is_some_and(|t| s.t_s - t < self.cfg.refractory_s);
                let room = st.replicas_desired < limits.max_replicas(st)
                    || (st.kind == StageKind::Gpu && st.rho < 0.999);
                if sustained && !resting && room {
                    firing.push((i, excess));
                }
            } else {
                self.breach_since[i] = None;
            }
        }
        let worst = firing.iter().max_by(|a, b| a.1.total_cmp(&b.1))?.0;
        let mut a = Action::hold(s);
        for &(i, _) in &firing {
            let st = &s.stages[i];
            let need = demand_utilisation(s, i) / self.cfg.target_utilisation;
            // A breach is evidence of too little capacity even when the measured rates lag: at
            // least half as much again.
            let mut need = need.max(1.5);
            if st.kind == StageKind::Gpu && st.rho < 0.999 {
                // A bigger share is instant and also shortens service; replicas take a start-up.
                let rho = (st.rho * need).min(1.0).min(st.rho + limits.max_rho_step);
                a.rho[i] = ((rho / 0.05).ceil() * 0.05).min(1.0);
                need *= st.rho / a.rho[i];
            }
            if need > 1.0 + 1e-9 {
                let cur = st.replicas_desired.max(1);
                let want = (f64::from(cur) * need).ceil() as u32;
                let cap = cur.saturating_add(cur.max(limits.min_up_step));
                a.replicas[i] = want.max(cur + 1).min(cap).min(limits.max_replicas(st));
            }
            // Shrink a GPU stage's step until the shares pack.
            while st.kind == StageKind::Gpu
                && !gpu_fits(s, &a)
                && a.replicas[i] > st.replicas_desired
            {
                a.replicas[i] -= 1;
            }
            if st.kind == StageKind::Gpu && !gpu_fits(s, &a) {
                a.rho[i] = st.rho;
            }
            if self.cfg.per_replica
                && st.kind == StageKind::Gpu
                && a.replicas[i] == st.replicas_desired
                && (a.rho[i] - st.rho).abs() < 1e-12
                && need > 1.0 + 1e-9
            {
                self.add_at_free_shares(s, &mut a, i, need, limits);
            }
            self.last_fire[i] = Some(s.t_s);
            self.breach_since[i] = None;
        }
        Some((worst, a))
    }
}

impl Guard {
    /// Adds replicas to GPU stage `i` at the largest quantised shares that pack (down to
    /// [`GUARD_MIN_SHARE`]), the replicas in place keeping theirs, until they add the share
    /// `need` asks for or nothing more packs; within the step and replica limits.
    fn add_at_free_shares(
        &self,
        s: &PipelineState,
        a: &mut Action,
        i: usize,
        need: f64,
        limits: &Limits,
    ) {
        let st = &s.stages[i];
        let cur = st.replicas_desired.max(1);
        let cap = cur
            .saturating_add(cur.max(limits.min_up_step))
            .min(limits.max_replicas(st));
        let wanted = (need - 1.0) * f64::from(cur) * st.rho;
        let mut v = st.replica_shares();
        let mut added = 0.0;
        while added < wanted - 1e-9 && (v.len() as u32) < cap {
            let top = (st.rho.min(1.0) / 0.05 + 1e-9).floor() as u32;
            let bottom = (GUARD_MIN_SHARE / 0.05 - 1e-9).ceil() as u32;
            let mut placed = false;
            for k in (bottom..=top.max(bottom)).rev() {
                let q = f64::from(k) * 0.05;
                let mut b = a.clone();
                let mut w = v.clone();
                w.push(q);
                b.set_shares(i, w);
                if gpu_fits(s, &b) {
                    v.push(q);
                    added += q;
                    *a = b;
                    placed = true;
                    break;
                }
            }
            if !placed {
                break;
            }
        }
    }
}

/// Offered utilisation of stage `i`'s serving capacity: demand (the larger of its own and the
/// pipeline's arrival rate, plus its backlog drained over 10 s) × mean service time / slots.
fn demand_utilisation(s: &PipelineState, i: usize) -> f64 {
    let st = &s.stages[i];
    let lambda = st.arrival_rate.max(s.arrival_rate) + st.queue_depth as f64 / 10.0;
    let svc = if st.service_mean_s > 0.0 {
        st.service_mean_s
    } else {
        st.service_p50_s
    };
    let slots = f64::from(st.replicas.max(1) * st.concurrency.max(1));
    lambda * svc / slots
}

#[cfg(test)]
mod tests;
