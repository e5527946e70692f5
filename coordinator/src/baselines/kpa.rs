//! Knative's Knative Pod Autoscaler (KPA), per stage, on observed concurrency (requests in the
//! stage, queued or served, as Knative's queue-proxy counts them).
//!
//! Every 2 s: `desired = ceil(average concurrency / target)` over the 60 s stable window; the
//! panic window is 10% of it (6 s); when the panic window's desired pods reach 200% of the
//! ready pods the stage panics: it scales on the panic window and never scales down until the
//! stable window has passed without another breach. Scale-up rate ≤ 1000×, scale-down ≤ 2×
//! per tick.

use std::collections::VecDeque;

use crate::policies::PolicyContext;
use crate::policy::{Decision, PipelineState, Policy, StageSpec};

use super::{clamp_replicas, decision, hold_full_share};

/// Knative Serving's autoscaler defaults (config-autoscaler).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KpaConfig {
    /// `container-concurrency-target-percentage` (70%), applied to the stage's slots.
    pub target_utilisation: f64,
    /// `stable-window` (60 s).
    pub stable_window_s: f64,
    /// `panic-window-percentage` (10% of the stable window).
    pub panic_window_pct: f64,
    /// `panic-threshold-percentage` (200%).
    pub panic_threshold_pct: f64,
    /// `max-scale-up-rate` (1000).
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate` (2).
    pub max_scale_down_rate: f64,
    /// The autoscaler's tick (2 s).
    pub tick_s: f64,
}

impl Default for KpaConfig {
    fn default() -> Self {
        Self {
            target_utilisation: 0.7,
            stable_window_s: 60.0,
            panic_window_pct: 10.0,
            panic_threshold_pct: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            tick_s: 2.0,
        }
    }
}

/// One stage's KPA state.
#[derive(Debug, Clone, Default)]
pub struct StageKpa {
    /// (time, observed concurrency) samples within the stable window.
    samples: VecDeque<(f64, f64)>,
    /// When the stage last breached the panic threshold; `None` when not panicking.
    panic_since: Option<f64>,
    max_panic_pods: u32,
}

impl StageKpa {
    /// Whether the stage is in panic mode.
    pub fn panicking(&self) -> bool {
        self.panic_since.is_some()
    }

    /// One tick: records the concurrency observed and returns the desired pods.
    pub fn step(
        &mut self,
        cfg: &KpaConfig,
        slots_per_pod: u32,
        t_s: f64,
        ready: u32,
        concurrency: f64,
    ) -> u32 {
        let target = f64::from(slots_per_pod.max(1)) * cfg.target_utilisation;
        self.samples.push_back((t_s, concurrency));
        while self
            .samples
            .front()
            .is_some_and(|&(t, _)| t <= t_s - cfg.stable_window_s)
        {
            self.samples.pop_front();
        }
        let panic_window = cfg.stable_window_s * cfg.panic_window_pct / 100.0;
        let avg = |from: f64| {
            let (sum, n) = self
                .samples
                .iter()
                .filter(|&&(t, _)| t > from)
                .fold((0.0, 0u32), |(s, n), &(_, c)| (s + c, n + 1));
            if n == 0 { 0.0 } else { sum / f64::from(n) }
        };
        let stable = avg(t_s - cfg.stable_window_s);
        let panic = avg(t_s - panic_window);
        let ready_f = f64::from(ready.max(1));
        let max_up = (cfg.max_scale_up_rate * ready_f).ceil();
        let max_down = (ready_f / cfg.max_scale_down_rate).floor();
        let limit = |d: f64| d.max(max_down).min(max_up);
        let desired_stable = limit((stable / target).ceil());
        let desired_panic = limit((panic / target).ceil());
        let over = (panic / target) / ready_f >= cfg.panic_threshold_pct / 100.0;
        if over {
            self.panic_since = Some(t_s);
        } else if self
            .panic_since
            .is_some_and(|p| t_s - p >= cfg.stable_window_s)
        {
            self.panic_since = None;
            self.max_panic_pods = 0;
        }
        let mut desired = desired_stable as u32;
        if self.panic_since.is_some() {
            desired = desired.max(desired_panic as u32);
            if desired > self.max_panic_pods {
                self.max_panic_pods = desired;
            } else {
                desired = self.max_panic_pods;
            }
        }
        desired
    }
}

/// The KPA, one per stage; ρ held at 1.
#[derive(Debug, Clone)]
pub struct Kpa {
    cfg: KpaConfig,
    specs: Vec<StageSpec>,
    stages: Vec<StageKpa>,
}

impl Kpa {
    pub fn new(ctx: &PolicyContext, cfg: KpaConfig) -> Self {
        Self {
            cfg,
            specs: ctx.specs(),
            stages: vec![StageKpa::default(); ctx.stages.len()],
        }
    }
}

impl Policy for Kpa {
    fn name(&self) -> &str {
        "kpa"
    }

    fn decide(&mut self, state: &PipelineState) -> Decision {
        let mut a = hold_full_share(state);
        for (i, s) in state.stages.iter().enumerate() {
            let d = self.stages[i].step(
                &self.cfg,
                self.specs[i].concurrency,
                state.t_s,
                s.replicas,
                s.mean_inflight,
            );
            a.replicas[i] = clamp_replicas(u64::from(d), &self.specs[i]);
        }
        decision(a, "kpa: ceil(concurrency / (slots x 0.7)) per stage".into())
    }

    fn period_s(&self) -> Option<f64> {
        Some(self.cfg.tick_s)
    }
}
