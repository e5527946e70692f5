//! Fixtures for policy tests: a context of CPU stages and a hand-made state.

use super::{PolicyContext, Prices, StagePlan};
use crate::policy::{PipelineState, StageKind, StageSpec, StageState};

/// CPU stages with the given (min, max) replicas, 10 ms nominal service, 1 slot, peak 100 rps.
pub fn context(bounds: &[(u32, u32)]) -> PolicyContext {
    PolicyContext {
        pipeline: "test".into(),
        stages: bounds
            .iter()
            .enumerate()
            .map(|(i, &(min, max))| StagePlan {
                spec: StageSpec {
                    name: format!("s{i}"),
                    kind: StageKind::Cpu,
                    concurrency: 1,
                    min_replicas: min,
                    max_replicas: max,
                },
                startup_s: 0.0,
                nominal_service_s: 0.01,
                initial_replicas: min,
                initial_rho: 1.0,
            })
            .collect(),
        slo_p99_s: 0.1,
        gpus: 0,
        prices: Prices {
            cpu_replica_per_hour: 0.048,
            gpu_per_hour: 1.1,
        },
        interval_s: 30.0,
        peak_rate_rps: 100.0,
        seed: 1,
        state_dir: None,
        llm: None,
        known_workload: None,
    }
}

/// A state with the given replicas (serving = desired), busy fractions and queue depths.
pub fn state(
    ctx: &PolicyContext,
    t_s: f64,
    replicas: &[u32],
    busy: &[f64],
    depth: &[u64],
) -> PipelineState {
    PipelineState {
        pipeline: ctx.pipeline.clone(),
        t_s,
        interval_s: ctx.interval_s,
        stages: ctx
            .stages
            .iter()
            .enumerate()
            .map(|(i, p)| StageState {
                name: p.spec.name.clone(),
                kind: p.spec.kind,
                arrival_rate: 10.0,
                completion_rate: 10.0,
                queue_wait_p50_s: 0.0,
                queue_wait_p95_s: 0.0,
                queue_wait_p99_s: 0.0,
                service_p50_s: 0.01,
                service_p95_s: 0.01,
                service_p99_s: 0.01,
                service_mean_s: 0.01,
                mean_inflight: busy[i] * f64::from(replicas[i]),
                queue_depth: depth[i],
                busy_fraction: busy[i],
                replicas: replicas[i],
                replicas_desired: replicas[i],
                rho: 1.0,
                shares: Vec::new(),
                concurrency: 1,
                min_replicas: p.spec.min_replicas,
                max_replicas: p.spec.max_replicas,
            })
            .collect(),
        e2e_p50_s: 0.01,
        e2e_p99_s: 0.02,
        arrival_rate: 10.0,
        completed: 300,
        dropped: 0,
        slo_p99_s: ctx.slo_p99_s,
        gpus: ctx.gpus,
        cost_per_hour: 0.1,
    }
}
