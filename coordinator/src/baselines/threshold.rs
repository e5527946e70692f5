//! A threshold autoscaler (step scaling as in cloud auto-scaling groups): per stage, one
//! replica up when busy > 80% or the queue grew, one down when busy < 30% with an empty queue,
//! then a 60 s cooldown for that stage.

use crate::policies::PolicyContext;
use crate::policy::{Decision, PipelineState, Policy, StageSpec};

use super::{clamp_replicas, decision, hold_full_share};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdConfig {
    pub up_busy: f64,
    pub down_busy: f64,
    pub cooldown_s: f64,
    /// Evaluation period; the scenario's control interval when `None`.
    pub period_s: Option<f64>,
}

impl Default for ThresholdConfig {
    fn default() -> Self {
        Self {
            up_busy: 0.8,
            down_busy: 0.3,
            cooldown_s: 60.0,
            period_s: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Threshold {
    cfg: ThresholdConfig,
    specs: Vec<StageSpec>,
    last_action_t: Vec<Option<f64>>,
    last_depth: Vec<u64>,
    interval_s: f64,
}

impl Threshold {
    pub fn new(ctx: &PolicyContext, cfg: ThresholdConfig) -> Self {
        Self {
            cfg,
            specs: ctx.specs(),
            last_action_t: vec![None; ctx.stages.len()],
            last_depth: vec![0; ctx.stages.len()],
            interval_s: ctx.interval_s,
        }
    }
}

impl Policy for Threshold {
    fn name(&self) -> &str {
        "threshold"
    }

    fn decide(&mut self, state: &PipelineState) -> Decision {
        let mut a = hold_full_share(state);
        for (i, s) in state.stages.iter().enumerate() {
            let grew = s.queue_depth > self.last_depth[i];
            self.last_depth[i] = s.queue_depth;
            let cooling =
                self.last_action_t[i].is_some_and(|t| state.t_s - t < self.cfg.cooldown_s);
            if cooling {
                continue;
            }
            let cur = s.replicas_desired;
            let want = if s.busy_fraction > self.cfg.up_busy || grew {
                u64::from(cur) + 1
            } else if s.busy_fraction < self.cfg.down_busy && s.queue_depth == 0 {
                u64::from(cur.saturating_sub(1))
            } else {
                u64::from(cur)
            };
            let n = clamp_replicas(want, &self.specs[i]);
            if n != cur {
                self.last_action_t[i] = Some(state.t_s);
            }
            a.replicas[i] = n;
        }
        decision(
            a,
            "threshold: +1 above 80% busy or growing queue, -1 below 30%".into(),
        )
    }

    fn period_s(&self) -> Option<f64> {
        Some(self.cfg.period_s.unwrap_or(self.interval_s))
    }
}
