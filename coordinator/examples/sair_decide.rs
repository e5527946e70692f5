//! Times the SAIR policy's decisions (model selector) on a synthetic five-stage pipeline with
//! two GPU stages, with the experience store filling up as it goes.
//!
//! `cargo run --release -p sair-coordinator --example sair_decide [-- DECISIONS]`

use std::time::Instant;

use sair_coordinator::policy::{PipelineState, Policy, StageKind, StageState};
use sair_coordinator::sair::{Sair, SairConfig};

fn stage(name: &str, kind: StageKind, service_s: f64, replicas: u32, rate: f64) -> StageState {
    let util = (rate * service_s / f64::from(replicas)).min(1.0);
    StageState {
        name: name.into(),
        kind,
        arrival_rate: rate,
        completion_rate: rate,
        queue_wait_p50_s: 0.001,
        queue_wait_p95_s: 0.004,
        queue_wait_p99_s: 0.008,
        service_p50_s: service_s * 0.9,
        service_p95_s: service_s * 1.5,
        service_p99_s: service_s * 2.0,
        service_mean_s: service_s,
        mean_inflight: util * f64::from(replicas),
        queue_depth: 0,
        busy_fraction: util,
        replicas,
        replicas_desired: replicas,
        rho: 1.0,
        shares: Vec::new(),
        concurrency: 4,
        min_replicas: 1,
        max_replicas: 32,
    }
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let mut p = match Sair::new(SairConfig::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot build the policy: {e}");
            std::process::exit(1);
        }
    };
    let mut times = Vec::with_capacity(n as usize);
    for k in 0..n {
        let t = f64::from(k) * 30.0;
        let rate = 200.0 + 150.0 * (t / 600.0).sin();
        let s = PipelineState {
            pipeline: "bench".into(),
            t_s: t,
            interval_s: 30.0,
            stages: vec![
                stage("decode", StageKind::Cpu, 0.004, 4, rate),
                stage("detect", StageKind::Gpu, 0.006, 2, rate),
                stage("crop", StageKind::Cpu, 0.002, 2, rate),
                stage("classify", StageKind::Gpu, 0.004, 1, rate),
                stage("post", StageKind::Cpu, 0.001, 1, rate),
            ],
            e2e_p50_s: 0.03,
            e2e_p99_s: 0.08,
            arrival_rate: rate,
            completed: (rate * 30.0) as u64,
            dropped: 0,
            slo_p99_s: 0.2,
            gpus: 4,
            cost_per_hour: 4.0,
        };
        let started = Instant::now();
        let d = p.decide(&s);
        times.push(started.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(d);
    }
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "decisions={n} episodes={} p50={:.0}us p99={:.0}us max={:.0}us",
        p.episodes().len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}
