//! A VerticalPodAutoscaler-style policy: replicas fixed, each replica's resource share (ρ of a
//! GPU for GPU stages, CPU share for CPU stages; both act as a speed factor) set from
//! percentiles of its usage over a sliding window: target = P90 × (1 + 15% margin), applied
//! when the current share is outside [P50, P95] × (1 + margin).

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
}

impl Default for VpaConfig {
    fn default() -> Self {
        Self {
            period_s: 60.0,
            window_s: 600.0,
            margin: 0.15,
            min_share: 0.05,
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
    usage: Vec<VecDeque<(f64, f64)>>,
}

impl Vpa {
    pub fn new(ctx: &PolicyContext, cfg: VpaConfig) -> Self {
        Self {
            cfg,
            usage: vec![VecDeque::new(); ctx.stages.len()],
        }
    }

    /// Records a usage sample and returns the new share for one stage.
    pub fn stage_step(&mut self, i: usize, t_s: f64, share: f64, busy: f64) -> f64 {
        let u = &mut self.usage[i];
        u.push_back((t_s, busy * share));
        while u
            .front()
            .is_some_and(|&(t, _)| t <= t_s - self.cfg.window_s)
        {
            u.pop_front();
        }
        let v: Vec<f64> = u.iter().map(|&(_, x)| x).collect();
        let m = 1.0 + self.cfg.margin;
        let clamp = |x: f64| x.clamp(self.cfg.min_share, 1.0);
        let target = clamp(percentile(&v, 90.0) * m);
        let lower = clamp(percentile(&v, 50.0) * m);
        let upper = clamp(percentile(&v, 95.0) * m);
        if share < lower || share > upper {
            (target / 0.05).ceil() * 0.05
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
        for (i, s) in state.stages.iter().enumerate() {
            a.rho[i] = self
                .stage_step(i, state.t_s, s.rho, s.busy_fraction)
                .min(1.0);
        }
        decision(a, "vpa: share = P90 usage x 1.15, replicas fixed".into())
    }

    fn period_s(&self) -> Option<f64> {
        Some(self.cfg.period_s)
    }
}
