//! What a run produces.

use serde::Serialize;

/// One point of a run's timeline (one per control interval).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePoint {
    pub t_s: f64,
    pub p50_s: f64,
    pub p99_s: f64,
    pub arrival_rate: f64,
    pub cost_per_hour: f64,
    /// Replicas asked for (serving + starting) per stage.
    pub replicas: Vec<u32>,
    /// Of those, the replicas serving (the rest are starting), per stage.
    pub serving: Vec<u32>,
    pub rho: Vec<f64>,
    /// The ground-truth bottleneck stage at this time.
    pub bottleneck: usize,
}

/// What one run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResult {
    pub arrivals: u64,
    pub completed: u64,
    pub dropped: u64,
    /// Still in the pipeline when the drain period after the run ended.
    pub unfinished: u64,
    /// Completed with end-to-end latency above the SLO.
    pub late: u64,
    pub p50_s: f64,
    pub p99_s: f64,
    pub mean_s: f64,
    /// (late + dropped + unfinished) / arrivals.
    pub slo_violation_rate: f64,
    /// Effective cost over the run: CPU replicas × share × price + Σρ × GPU price, in $.
    pub cost: f64,
    /// Every GPU hosting any replica billed whole, in $.
    pub whole_gpu_cost: f64,
    /// Policy calls whose (clamped) action changed the allocation.
    pub actions: u64,
    pub decisions: u64,
    pub bottleneck_named: u64,
    pub bottleneck_correct: u64,
    /// Actions reduced by the GPU packing or bounds.
    pub clamped: u64,
    pub events: u64,
    /// Mean queue wait per stage over the whole run, in seconds.
    pub stage_wait_mean_s: Vec<f64>,
    pub timeline: Vec<TimelinePoint>,
}

impl RunResult {
    /// Effective cost per 1,000 completed requests.
    pub fn cost_per_1k(&self) -> f64 {
        per_1k(self.cost, self.completed)
    }

    pub fn whole_gpu_cost_per_1k(&self) -> f64 {
        per_1k(self.whole_gpu_cost, self.completed)
    }

    /// Fraction of named bottlenecks that matched the ground truth; `None` if none named.
    pub fn bottleneck_accuracy(&self) -> Option<f64> {
        (self.bottleneck_named > 0)
            .then(|| self.bottleneck_correct as f64 / self.bottleneck_named as f64)
    }
}

fn per_1k(cost: f64, completed: u64) -> f64 {
    if completed == 0 {
        f64::NAN
    } else {
        cost / completed as f64 * 1000.0
    }
}
