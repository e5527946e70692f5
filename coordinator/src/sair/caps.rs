//! Per-stage utilisation caps derived from the SLO share and the cost (issue 15, item 4), for
//! the opt-in `sair-derived-caps` variant; `sair` keeps its two constants (CPU 0.4, GPU 0.65).
//!
//! A stage's cap is the product of two factors, clamped to `[min, max]`:
//!
//! 1. **SLO share.** The queueing slack is what the SLO leaves once every stage has served
//!    once: `headroom × SLO − Σ service P99`. Each stage gets an equal part of it as its
//!    queue-wait budget. Queueing delay at utilisation `u` scales with the service time
//!    (`W99 ∝ E[S] / (c (1 − u))` in M/G/c), so the same budget lets a stage whose service
//!    time is a small fraction of the SLO run hotter than one whose service time is most of
//!    it. The factor is the highest `u` whose predicted queue-wait P99
//!    ([`queueing::predict_stage`], Erlang C with the Allen–Cunneen correction, at the stage's
//!    current servers and service variability, Poisson arrivals) fits the budget.
//! 2. **Cost.** Headroom on a stage costs what its unit of capacity, one replica, costs (CPU:
//!    the CPU replica price; GPU: ρ × the GPU price). Relative to the pipeline's most
//!    expensive replica this is `r ∈ (0, 1]`, and the factor is
//!    `cost_floor + (1 − cost_floor) × r`. A CPU replica costs a few percent of a GPU share,
//!    so a CPU stage keeps about `1 − cost_floor` more headroom, as the two constants did,
//!    while the stage with the most expensive replicas is capped by its SLO share alone.

use crate::policies::Prices;
use crate::policy::{PipelineState, StageKind, StageState};

use super::queueing::{self, StageLoad};

/// Settings of the derivation.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedCaps {
    /// Fraction of the SLO the stages' service and queueing must fit in (the model selector's
    /// feasibility headroom).
    pub headroom: f64,
    /// Lowest cap ever derived.
    pub min: f64,
    /// Highest cap ever derived: above it a burst leaves no room while replicas start.
    pub max: f64,
    /// The cost factor of a stage whose capacity costs nothing next to the pipeline's most
    /// expensive stage.
    pub cost_floor: f64,
    pub prices: Prices,
    /// A fixed cap for CPU stages in place of the derived one (the `sair-derived-gpu-caps`
    /// variant keeps `sair`'s 0.4 there: CPU headroom is what absorbs a burst); `None` derives
    /// every stage's cap.
    pub cpu_fixed: Option<f64>,
}

impl Default for DerivedCaps {
    fn default() -> Self {
        Self {
            headroom: 0.8,
            min: 0.3,
            max: 0.85,
            cost_floor: 0.6,
            prices: Prices::default(),
            cpu_fixed: None,
        }
    }
}

/// Mean service time of a stage, falling back to its P50 when the interval measured none.
fn service_mean(st: &StageState) -> f64 {
    if st.service_mean_s > 0.0 {
        st.service_mean_s
    } else {
        st.service_p50_s.max(0.0)
    }
}

/// Servers of a stage: replicas asked for × concurrency slots, at least 1.
fn servers(st: &StageState) -> u32 {
    st.replicas_desired
        .max(st.replicas)
        .max(1)
        .saturating_mul(st.concurrency.max(1))
}

/// The highest utilisation in `[0, 0.99]` at which the stage's predicted queue-wait P99 stays
/// within `budget_s` (bisection: the predicted wait grows with utilisation).
pub fn slo_utilisation(st: &StageState, budget_s: f64) -> f64 {
    let es = service_mean(st);
    if es <= 0.0 {
        return 0.99;
    }
    if budget_s.is_nan() || budget_s <= 0.0 {
        return 0.0;
    }
    let c = servers(st);
    let cs2 = queueing::service_cv2(st.service_p50_s, st.service_p99_s);
    let wait = |u: f64| {
        queueing::predict_stage(&StageLoad {
            lambda: u * f64::from(c) / es,
            service_mean_s: es,
            service_p99_s: st.service_p99_s.max(es),
            cs2,
            ca2: 1.0,
            servers: c,
            backlog: 0.0,
            horizon_s: 0.0,
        })
        .wait_p99_s
    };
    let (mut lo, mut hi) = (0.0, 0.99);
    if wait(hi) <= budget_s {
        return hi;
    }
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if wait(mid) <= budget_s {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Cost per hour of one replica of a stage, its unit of capacity.
fn replica_cost(st: &StageState, prices: &Prices) -> f64 {
    match st.kind {
        StageKind::Cpu => prices.cpu_replica_per_hour,
        StageKind::Gpu => st.rho.clamp(0.0, 1.0) * prices.gpu_per_hour,
    }
}

/// Each stage's utilisation cap, in pipeline order (see the module docs). `None` when the
/// state carries too little to derive one (no stages, no SLO); the caller then keeps its
/// constants.
pub fn stage_caps(cfg: &DerivedCaps, s: &PipelineState) -> Option<Vec<f64>> {
    if s.stages.is_empty() || s.slo_p99_s.is_nan() || s.slo_p99_s <= 0.0 {
        return None;
    }
    let service: f64 = s
        .stages
        .iter()
        .map(|st| st.service_p99_s.max(service_mean(st)))
        .sum();
    let budget = (cfg.headroom * s.slo_p99_s - service).max(0.0) / s.stages.len() as f64;
    let costs: Vec<f64> = s
        .stages
        .iter()
        .map(|st| replica_cost(st, &cfg.prices))
        .collect();
    let top = costs.iter().copied().fold(0.0, f64::max);
    Some(
        s.stages
            .iter()
            .zip(&costs)
            .map(|(st, &cost)| {
                if let (StageKind::Cpu, Some(c)) = (st.kind, cfg.cpu_fixed) {
                    return c;
                }
                let r = if top > 0.0 { cost / top } else { 1.0 };
                let cost_factor = cfg.cost_floor + (1.0 - cfg.cost_floor) * r.clamp(0.0, 1.0);
                (slo_utilisation(st, budget) * cost_factor).clamp(cfg.min, cfg.max)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests;
