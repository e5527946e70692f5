//! Kubernetes HorizontalPodAutoscaler (autoscaling/v2), per stage, on the busy fraction of the
//! stage's concurrency slots (the analogue of CPU utilisation).
//!
//! `desired = ceil(current × utilisation / target)`, skipped inside the tolerance; pods still
//! starting count as 0% utilisation when scaling up; scale-up at most max(100%, 4 pods) per
//! period; scale-down stabilised by taking the highest recommendation of the last 300 s.

use std::collections::VecDeque;

use crate::policies::PolicyContext;
use crate::policy::{Decision, PipelineState, Policy, StageSpec};

use super::{clamp_replicas, decision, hold_full_share};

/// The defaults of the HPA controller and the autoscaling/v2 behaviour field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HpaConfig {
    /// Target utilisation (`averageUtilization: 70`, the usual setting).
    pub target: f64,
    /// `--horizontal-pod-autoscaler-tolerance` (0.1).
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-sync-period` (15 s).
    pub sync_s: f64,
    /// `behavior.scaleDown.stabilizationWindowSeconds` (300).
    pub downscale_window_s: f64,
    /// Default scale-up policies: 100% or 4 pods per 15 s, whichever is more.
    pub scale_up_percent: f64,
    pub scale_up_pods: u32,
}

impl Default for HpaConfig {
    fn default() -> Self {
        Self {
            target: 0.7,
            tolerance: 0.1,
            sync_s: 15.0,
            downscale_window_s: 300.0,
            scale_up_percent: 100.0,
            scale_up_pods: 4,
        }
    }
}

/// The HPA's raw recommendation for one stage, before stabilisation and rate limits.
///
/// `spec` = the replicas asked for, `ready` = the ones serving, `utilisation` = busy fraction
/// averaged over the ready ones.
pub fn recommend(cfg: &HpaConfig, spec: u32, ready: u32, utilisation: f64) -> u32 {
    if ready == 0 {
        return spec;
    }
    let ratio = utilisation / cfg.target;
    if (ratio - 1.0).abs() <= cfg.tolerance {
        return spec;
    }
    if ratio > 1.0 && spec > ready {
        // Unready pods are assumed to use 0% when scaling up; recompute over all of them.
        let new_ratio = utilisation * f64::from(ready) / f64::from(spec) / cfg.target;
        if new_ratio <= 1.0 + cfg.tolerance {
            return spec;
        }
        return (f64::from(spec) * new_ratio).ceil() as u32;
    }
    (f64::from(ready) * ratio).ceil() as u32
}

/// The HPA, one independent controller per stage; ρ held at 1.
#[derive(Debug, Clone)]
pub struct Hpa {
    cfg: HpaConfig,
    specs: Vec<StageSpec>,
    /// Recommendations (time, replicas) inside the scale-down window, per stage.
    recs: Vec<VecDeque<(f64, u32)>>,
}

impl Hpa {
    pub fn new(ctx: &PolicyContext, cfg: HpaConfig) -> Self {
        Self {
            cfg,
            specs: ctx.specs(),
            recs: vec![VecDeque::new(); ctx.stages.len()],
        }
    }

    /// One stage's final desired replicas at time `t_s`.
    pub fn stage_step(
        &mut self,
        i: usize,
        t_s: f64,
        spec: u32,
        ready: u32,
        utilisation: f64,
    ) -> u32 {
        let bounds = &self.specs[i];
        let raw = clamp_replicas(
            u64::from(recommend(&self.cfg, spec, ready, utilisation)),
            bounds,
        );
        let recs = &mut self.recs[i];
        recs.push_back((t_s, raw));
        while recs
            .front()
            .is_some_and(|&(t, _)| t < t_s - self.cfg.downscale_window_s)
        {
            recs.pop_front();
        }
        let down = recs.iter().map(|&(_, r)| r).max().unwrap_or(raw);
        // Scale-up window is 0: the up recommendation is the raw one.
        let mut out = spec.max(raw).min(down);
        let limit = ((f64::from(spec) * (1.0 + self.cfg.scale_up_percent / 100.0)) as u32)
            .max(spec + self.cfg.scale_up_pods);
        out = out.min(limit);
        clamp_replicas(u64::from(out), bounds)
    }
}

impl Policy for Hpa {
    fn name(&self) -> &str {
        "hpa"
    }

    fn decide(&mut self, state: &PipelineState) -> Decision {
        let mut a = hold_full_share(state);
        for (i, s) in state.stages.iter().enumerate() {
            a.replicas[i] = self.stage_step(
                i,
                state.t_s,
                s.replicas_desired,
                s.replicas,
                s.busy_fraction,
            );
        }
        decision(a, "hpa: ceil(current x utilisation / 0.7) per stage".into())
    }

    fn period_s(&self) -> Option<f64> {
        Some(self.cfg.sync_s)
    }
}
