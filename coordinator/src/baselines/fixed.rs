//! Static: one allocation for the whole run, sized by the operator for the scenario's peak.

use crate::policies::PolicyContext;
use crate::policy::{Action, Decision, PipelineState, Policy, StageKind};

use super::{clamp_replicas, decision};

/// Utilisation the operator plans for at peak (the same 70% HPA targets by default).
pub const PLAN_UTILISATION: f64 = 0.7;

/// A fixed allocation: replicas = ⌈peak × service time / (concurrency × 0.7)⌉ per stage,
/// whole GPUs, or equal time-sliced shares when the GPU replicas outnumber the GPUs.
#[derive(Debug, Clone)]
pub struct Static {
    plan: Action,
}

impl Static {
    pub fn new(ctx: &PolicyContext) -> Self {
        let mut replicas: Vec<u32> = ctx
            .stages
            .iter()
            .map(|s| {
                let need = ctx.peak_rate_rps * s.nominal_service_s
                    / (f64::from(s.spec.concurrency.max(1)) * PLAN_UTILISATION);
                clamp_replicas(need.ceil().max(1.0) as u64, &s.spec)
            })
            .collect();
        let gpu_replicas: u32 = ctx.gpu_stages().map(|i| replicas[i]).sum();
        let mut share = 1.0;
        if ctx.gpus == 0 {
            for i in ctx.gpu_stages() {
                replicas[i] = ctx.stages[i].spec.min_replicas;
            }
        } else if gpu_replicas > ctx.gpus {
            // Time-slice: k replicas per GPU at 1/k each.
            let per_gpu = gpu_replicas.div_ceil(ctx.gpus);
            share = 1.0 / f64::from(per_gpu);
        }
        let rho = ctx
            .stages
            .iter()
            .map(|s| match s.spec.kind {
                StageKind::Gpu => share,
                StageKind::Cpu => 1.0,
            })
            .collect();
        Self {
            plan: Action { replicas, rho },
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
