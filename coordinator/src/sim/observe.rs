//! Observation: the state a live coordinator would assemble, the ground-truth bottleneck, and
//! the per-interval timeline.

use super::window::quantile_s;
use super::{RState, Sim, TimelinePoint};
use crate::policy::{PipelineState, Policy, StageState};

impl Sim<'_> {
    /// The ground-truth bottleneck: the stage with the highest offered utilisation
    /// λ·E\[S\] / (serving replicas × slots × share), λ the true mean arrival rate over the last
    /// control interval and E\[S\] the true mean service time.
    pub fn true_bottleneck(&self, t: f64) -> usize {
        let from = (t - self.sc.interval_s).max(0.0);
        let lambda = if t > from {
            self.sc
                .pattern
                .expected_arrivals(from, t, self.sc.duration_s)
                / (t - from)
        } else {
            self.sc.pattern.rate_at(0.0, self.sc.duration_s)
        };
        let mut best = (0, f64::NEG_INFINITY);
        for (i, s) in self.sc.stages.iter().enumerate() {
            let st = &self.stages[i];
            let serving: Vec<f64> = st
                .active
                .iter()
                .map(|&r| &st.replicas[r as usize])
                .filter(|rep| rep.state == RState::Serving)
                .map(|rep| rep.rho)
                .collect();
            let cap = if serving.iter().all(|&x| x == st.rho) {
                f64::from(serving.len() as u32 * s.concurrency) * st.rho
            } else {
                serving.iter().sum::<f64>() * f64::from(s.concurrency)
            };
            let u = if cap > 0.0 {
                lambda * s.service_s / cap
            } else {
                f64::INFINITY
            };
            if u > best.1 {
                best = (i, u);
            }
        }
        best.0
    }

    /// The state a live coordinator would assemble for the window since the last call.
    pub fn state(&mut self, t: f64) -> PipelineState {
        let len = (t - self.win_start).max(1e-9);
        let shares: Vec<Vec<f64>> = (0..self.sc.stages.len())
            .map(|i| {
                let v = self.stage_shares(i);
                if v.iter().all(|&x| x == self.stages[i].rho) {
                    Vec::new()
                } else {
                    v
                }
            })
            .collect();
        let stages = self
            .sc
            .stages
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let st = &mut self.stages[i];
                st.advance(t);
                let w = &st.win;
                let busy_fraction = if w.slot_area > 0.0 {
                    (w.busy_area / w.slot_area).min(1.0)
                } else if st.queue.is_empty() {
                    0.0
                } else {
                    1.0
                };
                StageState {
                    name: c.name.clone(),
                    kind: c.kind,
                    arrival_rate: w.arrivals as f64 / len,
                    completion_rate: w.completions as f64 / len,
                    queue_wait_p50_s: quantile_s(&w.wait, 0.5),
                    queue_wait_p95_s: quantile_s(&w.wait, 0.95),
                    queue_wait_p99_s: quantile_s(&w.wait, 0.99),
                    service_p50_s: quantile_s(&w.service, 0.5),
                    service_p95_s: quantile_s(&w.service, 0.95),
                    service_p99_s: quantile_s(&w.service, 0.99),
                    service_mean_s: if w.completions > 0 {
                        w.service_sum_s / w.completions as f64
                    } else {
                        0.0
                    },
                    mean_inflight: w.inflight_area / len,
                    queue_depth: st.queue.len() as u64,
                    busy_fraction,
                    replicas: st.count(RState::Serving),
                    replicas_desired: st.count(RState::Serving) + st.count(RState::Starting),
                    rho: st.rho,
                    shares: shares[i].clone(),
                    concurrency: c.concurrency,
                    min_replicas: c.min_replicas,
                    max_replicas: c.max_replicas,
                }
            })
            .collect();
        PipelineState {
            pipeline: self.sc.pipeline.clone(),
            t_s: t,
            interval_s: len,
            stages,
            e2e_p50_s: quantile_s(&self.e2e_win, 0.5),
            e2e_p99_s: quantile_s(&self.e2e_win, 0.99),
            arrival_rate: self.win_arrivals as f64 / len,
            completed: self.win_completed,
            dropped: self.win_dropped,
            slo_p99_s: self.sc.slo_p99_s,
            gpus: self.sc.gpus,
            cost_per_hour: self.cost_rate,
        }
    }

    pub(super) fn policy_tick(&mut self, policy: &mut dyn Policy, t: f64) {
        let state = self.state(t);
        for st in &mut self.stages {
            st.win.reset();
        }
        self.e2e_win.reset();
        self.win_start = t;
        self.win_arrivals = 0;
        self.win_completed = 0;
        self.win_dropped = 0;
        let truth = self.true_bottleneck(t);
        let d = policy.decide(&state);
        self.decisions += 1;
        if let Some(b) = d.bottleneck {
            self.bn_named += 1;
            if b == truth {
                self.bn_correct += 1;
            }
        }
        if self.apply(&d.action) {
            self.actions += 1;
        }
    }

    pub(super) fn timeline_tick(&mut self, t: f64) {
        let len = (t - self.tl_start).max(1e-9);
        let k = self.sc.stages.len();
        self.timeline.push(TimelinePoint {
            t_s: t,
            p50_s: quantile_s(&self.e2e_tl, 0.5),
            p99_s: quantile_s(&self.e2e_tl, 0.99),
            arrival_rate: self.tl_arrivals as f64 / len,
            cost_per_hour: self.cost_rate,
            replicas: (0..k).map(|i| self.desired(i)).collect(),
            serving: self
                .stages
                .iter()
                .map(|st| st.count(RState::Serving))
                .collect(),
            rho: self.stages.iter().map(|s| s.rho).collect(),
            bottleneck: self.true_bottleneck(t),
        });
        self.e2e_tl.reset();
        self.tl_arrivals = 0;
        self.tl_start = t;
    }
}
