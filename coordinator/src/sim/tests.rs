use std::path::Path;

use super::*;
use crate::policy::{Action, Decision, PipelineState};
use crate::scenario::Scenario;

/// Holds the allocation it is given.
struct Hold;

impl Policy for Hold {
    fn name(&self) -> &str {
        "hold"
    }
    fn decide(&mut self, s: &PipelineState) -> Decision {
        Decision::new(Action::hold(s), None, "")
    }
}

fn mmc(lambda: f64, service_ms: f64, replicas: u32, slots: u32, duration_s: f64) -> Scenario {
    let text = format!(
        r#"
[pipeline]
name = "mmc"
slo_p99_ms = 100
[[pipeline.stages]]
name = "s"
kind = "cpu"
service_ms = {service_ms}
dist = "exp"
concurrency = {slots}
min_replicas = {replicas}
max_replicas = {replicas}
[workload]
pattern = "poisson"
rate = {lambda}
duration_s = {duration_s}
[cost]
cpu_replica = 0.048
gpu = 1.1
"#
    );
    Scenario::parse("mmc", &text, Path::new(".")).unwrap()
}

/// Erlang C mean wait in queue for M/M/c.
fn erlang_c_wait(lambda: f64, mu: f64, c: u32) -> f64 {
    let a = lambda / mu;
    let rho = a / f64::from(c);
    let mut term = 1.0;
    let mut sum = 0.0;
    for k in 0..c {
        if k > 0 {
            term *= a / f64::from(k);
        }
        sum += term;
    }
    let top = term * a / f64::from(c) / (1.0 - rho);
    let p_wait = top / (sum + top);
    p_wait / (f64::from(c) * mu - lambda)
}

fn check_mmc(rho: f64, replicas: u32, slots: u32, seed: u64) {
    let c = replicas * slots;
    let service_s = 0.001;
    let lambda = rho * f64::from(c) / service_s;
    let sc = mmc(lambda, service_s * 1e3, replicas, slots, 500.0);
    let r = run(&sc, &mut Hold, seed);
    let want = erlang_c_wait(lambda, 1.0 / service_s, c);
    let got = r.stage_wait_mean_s[0];
    let err = (got - want).abs() / want;
    tracing::info!(rho, c, got, want, err, "M/M/c mean wait");
    assert!(
        err < 0.05,
        "rho {rho} c {c}: simulated mean wait {got:.6}s vs Erlang C {want:.6}s ({:.1}% off)",
        err * 100.0
    );
    assert_eq!(r.dropped, 0);
    assert_eq!(r.unfinished, 0);
}

#[test]
fn erlang_c_at_half_load() {
    check_mmc(0.5, 2, 1, 11);
    check_mmc(0.5, 1, 4, 12);
}

#[test]
fn erlang_c_at_eighty_percent_load() {
    check_mmc(0.8, 2, 1, 21);
    check_mmc(0.8, 1, 4, 22);
}

#[test]
fn erlang_c_reference_values() {
    // M/M/1: Wq = ρ/(μ-λ).
    assert!((erlang_c_wait(0.5, 1.0, 1) - 1.0).abs() < 1e-12);
    // M/M/2, a = 1: P(wait) = 1/3, Wq = 1/3 / (2-1).
    assert!((erlang_c_wait(1.0, 1.0, 2) - 1.0 / 3.0).abs() < 1e-12);
}

fn three_stage(gpus: u32) -> Scenario {
    let text = format!(
        r#"
[pipeline]
name = "p"
slo_p99_ms = 80
[[pipeline.stages]]
name = "pre"
kind = "cpu"
service_ms = 4.0
cv = 0.3
min_replicas = 1
max_replicas = 8
startup_s = 5
[[pipeline.stages]]
name = "infer"
kind = "gpu"
service_ms = 6.0
concurrency = 2
min_replicas = 1
max_replicas = 4
startup_s = 10
rho = 0.5
[[pipeline.stages]]
name = "post"
kind = "cpu"
service_ms = 2.0
dist = "const"
min_replicas = 1
max_replicas = 8
[workload]
pattern = "burst"
rate = 100
peak = 300
duration_s = 300
burst_every_s = 100
burst_len_s = 30
[cost]
cpu_replica = 0.048
gpu = 1.10
gpus = {gpus}
[control]
interval_s = 30
"#
    );
    Scenario::parse("p", &text, Path::new(".")).unwrap()
}

#[test]
fn same_seed_same_result() {
    let sc = three_stage(2);
    for name in crate::policies::BASELINES {
        let mut a = crate::policies::build(name, &sc.context(7, None)).unwrap();
        let mut b = crate::policies::build(name, &sc.context(7, None)).unwrap();
        let ra = run(&sc, a.as_mut(), 7);
        let rb = run(&sc, b.as_mut(), 7);
        assert_eq!(ra, rb, "{name} is not deterministic");
        assert!(ra.completed > 20_000, "{name}: {}", ra.completed);
    }
    let mut c = crate::policies::build("hpa", &sc.context(8, None)).unwrap();
    let mut d = crate::policies::build("hpa", &sc.context(7, None)).unwrap();
    assert_ne!(run(&sc, c.as_mut(), 8), run(&sc, d.as_mut(), 7));
}

#[test]
fn gpu_packing_clamps_and_costs_by_share() {
    let sc = three_stage(1);
    let mut sim = Sim::new(&sc, 1);
    // One GPU: infer at 4 replicas × 0.5 does not fit; it is clamped to 2.
    let a = Action {
        replicas: vec![1, 4, 1],
        rho: vec![1.0, 0.5, 1.0],
        shares: Vec::new(),
    };
    assert!(sim.apply(&a));
    assert_eq!(sim.desired(1), 2);
    assert_eq!(sim.clamped, 1);
    // Effective cost: 2 CPU replicas + 2 × 0.5 GPU; whole: the one GPU.
    assert!((sim.cost_rate - (2.0 * 0.048 + 1.0 * 1.10)).abs() < 1e-9);
    assert!((sim.whole_rate - (2.0 * 0.048 + 1.10)).abs() < 1e-9);
    // Shrinking ρ frees the GPU share and the bill follows it.
    let b = Action {
        replicas: vec![1, 2, 1],
        rho: vec![1.0, 0.25, 1.0],
        shares: Vec::new(),
    };
    assert!(sim.apply(&b));
    assert!((sim.cost_rate - (2.0 * 0.048 + 0.5 * 1.10)).abs() < 1e-9);
    assert!(!sim.apply(&b), "the same allocation is no action");
}

#[test]
fn startup_delay_and_drain() {
    let sc = three_stage(2);
    let mut sim = Sim::new(&sc, 1);
    let a = Action {
        replicas: vec![3, 1, 1],
        rho: vec![1.0, 0.5, 1.0],
        shares: Vec::new(),
    };
    sim.apply(&a);
    let s = sim.state(1.0);
    assert_eq!(s.stages[0].replicas, 1, "new replicas are still starting");
    assert_eq!(s.stages[0].replicas_desired, 3);
    // Scale back down before they start: the starting ones are cancelled.
    sim.apply(&Action {
        replicas: vec![1, 1, 1],
        rho: vec![1.0, 0.5, 1.0],
        shares: Vec::new(),
    });
    assert_eq!(sim.desired(0), 1);
}

#[test]
fn bottleneck_ground_truth_moves_with_allocation() {
    let sc = three_stage(2);
    let sim = Sim::new(&sc, 1);
    // At 100 rps: pre 0.4/1, infer 0.6/(2×0.5)=0.6, post 0.2 → infer.
    assert_eq!(sim.true_bottleneck(30.0), 1);
    let mut sim = Sim::new(&sc, 1);
    sim.apply(&Action {
        replicas: vec![1, 2, 1],
        rho: vec![1.0, 1.0, 1.0],
        shares: Vec::new(),
    });
    // infer now serves 0.6/(2×... ) only once its new replica is up; the serving one has ρ=1:
    // 0.6/2 = 0.3 < pre 0.4 → pre.
    assert_eq!(sim.true_bottleneck(30.0), 0);
}

/// Issue 15, item 7: the timeline tells serving replicas from starting ones.
#[test]
fn timeline_separates_serving_from_starting() {
    let sc = three_stage(2);
    let mut sim = Sim::new(&sc, 1);
    sim.apply(&Action {
        replicas: vec![3, 1, 1],
        rho: vec![1.0, 0.5, 1.0],
        shares: Vec::new(),
    });
    sim.timeline_tick(1.0);
    let p = &sim.timeline[0];
    assert_eq!(p.replicas[0], 3);
    assert_eq!(p.serving[0], 1, "two replicas still starting");
}

/// Issue 15, item 2: per-replica GPU shares. A new replica comes up at a small share while the
/// serving one keeps its own; packing and billing follow each replica's share; an action with
/// one share per stage and an unchanged ρ keeps the shares; a changed ρ sets them all.
#[test]
fn per_replica_shares_pack_bill_and_serve_per_replica() {
    let sc = three_stage(1);
    let mut sim = Sim::new(&sc, 1);
    // infer starts with one replica at 0.5 on the one GPU; add one at 0.3.
    let mut a = Action::uniform(vec![1, 1, 1], vec![1.0, 0.5, 1.0]);
    a.set_shares(1, vec![0.5, 0.3]);
    assert_eq!(a.replicas[1], 2);
    assert!((a.rho[1] - 0.4).abs() < 1e-12, "rho is the shares' mean");
    assert!(sim.apply(&a));
    assert_eq!(sim.stage_shares(1), [0.5, 0.3]);
    assert!((sim.cost_rate - (2.0 * 0.048 + 0.8 * 1.10)).abs() < 1e-9);
    let s = sim.state(1.0);
    assert_eq!(s.stages[1].replicas, 1, "the new replica is starting");
    assert_eq!(s.stages[1].replicas_desired, 2);
    assert_eq!(s.stages[1].shares, [0.5, 0.3]);
    assert!((s.stages[1].rho - 0.4).abs() < 1e-12);
    // Holding (one share per stage, ρ unchanged) keeps each replica's share.
    assert!(!sim.apply(&Action::hold(&s)));
    assert_eq!(sim.stage_shares(1), [0.5, 0.3]);
    // A third replica at 0.3 does not pack on the one GPU (1.1): it is cut back.
    let mut over = Action::hold(&s);
    over.set_shares(1, vec![0.5, 0.3, 0.3]);
    let clamped = sim.clamped;
    assert!(!sim.apply(&over));
    assert_eq!(sim.clamped, clamped + 1);
    assert_eq!(sim.stage_shares(1), [0.5, 0.3]);
    // A share raised beyond what packs is cut back to the share in place.
    let mut raise = Action::hold(&s);
    raise.set_shares(1, vec![0.8, 0.3]);
    assert!(!sim.apply(&raise));
    assert_eq!(sim.stage_shares(1), [0.5, 0.3]);
    // One fewer replica drops the newest share.
    let mut down = Action::hold(&s);
    down.replicas[1] = 1;
    assert!(sim.apply(&down));
    assert_eq!(sim.stage_shares(1), [0.5]);
    assert!(
        sim.state(2.0).stages[1].shares.is_empty(),
        "one share again"
    );
    // A changed ρ with one share per stage sets every replica's.
    let mut b = Action::uniform(vec![1, 2, 1], vec![1.0, 0.45, 1.0]);
    assert!(sim.apply(&b));
    assert_eq!(sim.stage_shares(1), [0.45, 0.45]);
    b.rho[1] = 0.45;
    assert!(!sim.apply(&b));
}

/// Each replica carries its own share (its requests are served at work / share), and a stage
/// without start-up serves at both shares at once; the state's ρ is their mean.
#[test]
fn per_replica_shares_reach_each_replica() {
    let mut sc = three_stage(2);
    sc.stages[1].startup_s = 0.0;
    sc.stages[1].dist = crate::scenario::ServiceDist::Const;
    let mut sim = Sim::new(&sc, 1);
    let mut a = Action::uniform(vec![1, 1, 1], vec![1.0, 0.5, 1.0]);
    a.set_shares(1, vec![1.0, 0.25]);
    assert!(sim.apply(&a));
    let st = &sim.stages[1];
    let shares: Vec<f64> = st
        .active
        .iter()
        .map(|&r| st.replicas[r as usize].rho)
        .collect();
    assert_eq!(shares, [1.0, 0.25]);
    let s = sim.state(1.0);
    assert_eq!(s.stages[1].replicas, 2);
    assert!((s.stages[1].rho - 0.625).abs() < 1e-12);
}
