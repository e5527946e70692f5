//! Static: one allocation for the whole run, sized by the operator for the scenario's peak.

use crate::policies::PolicyContext;
use crate::policy::{Action, Decision, PipelineState, Policy};

use super::{clamp_replicas, decision};

/// Utilisation the operator plans for at peak (the same 70% HPA targets by default).
pub const PLAN_UTILISATION: f64 = 0.7;

/// A fixed allocation: replicas = ⌈peak × service time / (concurrency × 0.7)⌉ per stage on
/// whole GPUs; when those outnumber the GPUs, the GPUs are split between GPU stages in
/// proportion to their need, as time-sliced shares.
#[derive(Debug, Clone)]
pub struct Static {
    plan: Action,
}

impl Static {
    pub fn new(ctx: &PolicyContext) -> Self {
        let need: Vec<f64> = ctx
            .stages
            .iter()
            .map(|s| {
                ctx.peak_rate_rps * s.nominal_service_s
                    / (f64::from(s.spec.concurrency.max(1)) * PLAN_UTILISATION)
            })
            .collect();
        let mut replicas: Vec<u32> = ctx
            .stages
            .iter()
            .zip(&need)
            .map(|(s, n)| clamp_replicas(n.ceil().max(1.0) as u64, &s.spec))
            .collect();
        let mut rho: Vec<f64> = vec![1.0; ctx.stages.len()];
        let gpu: Vec<usize> = ctx.gpu_stages().collect();
        let whole: u32 = gpu.iter().map(|&i| replicas[i]).sum();
        if whole > ctx.gpus && !gpu.is_empty() {
            // Not enough whole GPUs: split them in proportion to need, as time-sliced shares.
            let total: f64 = gpu.iter().map(|&i| need[i]).sum();
            let f = (f64::from(ctx.gpus) / total).min(1.0);
            for &i in &gpu {
                let units = (need[i] * f).max(0.05);
                replicas[i] = clamp_replicas(units.ceil() as u64, &ctx.stages[i].spec);
                rho[i] = ((units / f64::from(replicas[i]) / 0.05).floor() * 0.05).clamp(0.05, 1.0);
            }
            let packs = |rho: &[f64], replicas: &[u32]| {
                let shares: Vec<f64> = gpu
                    .iter()
                    .flat_map(|&i| std::iter::repeat_n(rho[i], replicas[i] as usize))
                    .collect();
                crate::sim::placement::pack(&shares, ctx.gpus).is_some()
            };
            while !packs(&rho, &replicas) && gpu.iter().any(|&i| rho[i] > 0.05 + 1e-9) {
                for &i in &gpu {
                    rho[i] = (rho[i] - 0.05).max(0.05);
                }
            }
        }
        Self {
            plan: Action::uniform(replicas, rho),
        }
    }

    /// The allocation this plan holds.
    pub fn plan(&self) -> &Action {
        &self.plan
    }
}

impl Policy for Static {
    fn name(&self) -> &str {
        "static"
    }

    fn decide(&mut self, _state: &PipelineState) -> Decision {
        decision(self.plan.clone(), "static plan sized for the peak".into())
    }

    fn initial_action(&self) -> Option<Action> {
        Some(self.plan.clone())
    }
}
