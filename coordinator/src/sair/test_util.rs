//! Fixtures for the SAIR policy's unit tests.

use crate::policy::{PipelineState, StageKind, StageState};

/// A stage with `replicas` replicas, observed at `util` busy fraction under `rate` req/s.
pub fn stage(
    name: &str,
    kind: StageKind,
    service_s: f64,
    replicas: u32,
    rho: f64,
    rate: f64,
) -> StageState {
    let measured = match kind {
        StageKind::Gpu => service_s / rho,
        StageKind::Cpu => service_s,
    };
    let util = (rate * measured / f64::from(replicas)).min(1.0);
    StageState {
        name: name.into(),
        kind,
        arrival_rate: rate,
        completion_rate: rate,
        queue_wait_p50_s: 0.0,
        queue_wait_p95_s: 0.0,
        queue_wait_p99_s: 0.0,
        service_p50_s: measured * 0.9,
        service_p95_s: measured * 1.5,
        service_p99_s: measured * 2.0,
        service_mean_s: measured,
        mean_inflight: util * f64::from(replicas),
        queue_depth: 0,
        busy_fraction: util,
        replicas,
        replicas_desired: replicas,
        rho,
        shares: Vec::new(),
        concurrency: 1,
        min_replicas: 1,
        max_replicas: 16,
    }
}

/// A three-stage pipeline (cpu → gpu → cpu) at `rate` req/s, with 2 GPUs.
pub fn pipeline(rate: f64, t_s: f64) -> PipelineState {
    PipelineState {
        pipeline: "test".into(),
        t_s,
        interval_s: 30.0,
        stages: vec![
            stage("pre", StageKind::Cpu, 0.004, 2, 1.0, rate),
            stage("infer", StageKind::Gpu, 0.010, 2, 1.0, rate),
            stage("post", StageKind::Cpu, 0.002, 1, 1.0, rate),
        ],
        e2e_p50_s: 0.02,
        e2e_p99_s: 0.05,
        arrival_rate: rate,
        completed: (rate * 30.0) as u64,
        dropped: 0,
        slo_p99_s: 0.15,
        gpus: 2,
        cost_per_hour: 2.0 * 0.048 + 2.0 * 1.10 + 0.048,
    }
}
