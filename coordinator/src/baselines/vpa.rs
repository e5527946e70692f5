//! A VerticalPodAutoscaler-style policy: replicas fixed at the operator's static plan, each replica's resource share (ρ of a
//! GPU for GPU stages, CPU share for CPU stages; both act as a speed factor) set from
//! percentiles of its usage over a sliding 5-minute window: target = P90 × (1 + 15% margin),
//! resized in place when it differs from the current share by more than 10%.

use std::collections::VecDeque;

use crate::policies::PolicyContext;
use crate::policy::{Decision, PipelineState, Policy};

use super::decision;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpaConfig {
    /// Recommender loop (`--recommender-interval`, 1 min).
    pub period_s: f64,
    /// Usage history kept (VPA keeps a decaying 24 h histogram; runs here are minutes long).
    pub window_s: f64,
    /// `--recommendation-margin-fraction` (0.15).
    pub margin: f64,
    /// Smallest share a replica may get (`minAllowed`).
    pub min_share: f64,
    /// Resize in place when the target differs from the current share by more than this
    /// fraction of it.
    pub update_threshold: f64,
}

impl Default for VpaConfig {
    fn default() -> Self {
        Self {
            period_s: 60.0,
            window_s: 300.0,
            margin: 0.15,
            min_share: 0.05,
            update_threshold: 0.1,
        }
    }
}

/// Nearest-rank percentile of unsorted samples; 0 when empty.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

#[derive(Debug, Clone)]
pub struct Vpa {
    cfg: VpaConfig,
    /// Replicas are fixed at the operator's static plan; VPA only right-sizes shares.
    plan: crate::policy::Action,
    usage: Vec<VecDeque<(f64, f64)>>,
}

impl Vpa {
    pub fn new(ctx: &PolicyContext, cfg: VpaConfig) -> Self {
        Self {
            cfg,
            plan: super::Static::new(ctx).plan().clone(),
            usage: vec![VecDeque::new(); ctx.stages.len()],
        }
    }

    /// Records a usage sample and returns the new share for one stage.
    /// `demand` is the busy fraction the replicas would show at the current share if nothing
    /// capped them.
    pub fn stage_step(&mut self, i: usize, t_s: f64, share: f64, demand: f64) -> f64 {
        let u = &mut self.usage[i];
        u.push_back((t_s, demand * share));
        while u
            .front()
            .is_some_and(|&(t, _)| t <= t_s - self.cfg.window_s)
        {
            u.pop_front();
        }
        let v: Vec<f64> = u.iter().map(|&(_, x)| x).collect();
        let target =
            (percentile(&v, 90.0) * (1.0 + self.cfg.margin)).clamp(self.cfg.min_share, 1.0);
        let target = ((target / 0.05).ceil() * 0.05).min(1.0);
        if (target - share).abs() > self.cfg.update_threshold * share {
            target
        } else {
            share
        }
    }
}

impl Policy for Vpa {
    fn name(&self) -> &str {
        "vpa"
    }

    fn decide(&mut self, state: &PipelineState) -> Decision {
        let mut a = crate::policy::Action::hold(state);
        a.replicas.clone_from(&self.plan.replicas);
        for (i, s) in state.stages.iter().enumerate() {
            // Usage as a requests-only container would show it: the work offered per replica
            // slot (observed arrivals × observed service time), so a saturated replica's demand
            // is visible rather than capped at its share.
            let slots = f64::from(s.replicas.max(1) * s.concurrency.max(1));
            let demand = if s.service_mean_s > 0.0 {
                s.arrival_rate * s.service_mean_s / slots
            } else {
                s.busy_fraction
            };
            a.rho[i] = self.stage_step(i, state.t_s, s.rho, demand).min(1.0);
        }
        decision(a, "vpa: share = P90 usage x 1.15, replicas fixed".into())
    }

    fn period_s(&self) -> Option<f64> {
        Some(self.cfg.period_s)
    }

    fn initial_action(&self) -> Option<crate::policy::Action> {
        Some(self.plan.clone())
    }
}
