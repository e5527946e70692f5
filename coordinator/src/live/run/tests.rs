use std::path::Path;
use std::time::Instant;

use super::within_bounds;
use crate::live::config::PipelinesFile;
use crate::live::observe::{Observer, PipelineSpec, StageAlloc};
use crate::policy::{Action, Decision, PipelineState};

const FILE: &str = r#"
[pipeline]
name = "p"
slo_p99_ms = 100
[[pipeline.stages]]
name = "pre"
kind = "cpu"
min_replicas = 1
max_replicas = 3
[[pipeline.stages]]
name = "infer"
kind = "gpu"
min_replicas = 1
max_replicas = 4
rho = 0.5
[cost]
cpu_replica = 1
gpu = 1
gpus = 1
"#;

fn setup() -> (PipelinesFile, PipelineState) {
    let f = PipelinesFile::parse(FILE, Path::new(".")).expect("valid");
    let sc = &f.scenario;
    let spec = PipelineSpec {
        name: sc.pipeline.clone(),
        stages: sc.context(0, None).specs(),
        slo_p99_s: sc.slo_p99_s,
        gpus: sc.gpus,
        prices: sc.prices,
    };
    let now = Instant::now();
    let alloc = [
        StageAlloc {
            serving: 1,
            desired: 1,
            rho: 1.0,
        },
        StageAlloc {
            serving: 1,
            desired: 1,
            rho: 0.5,
        },
    ];
    let state = Observer::new(spec, 3.0, now).peek(now, 0.0, &alloc).state;
    (f, state)
}

fn decide(replicas: Vec<u32>, rho: Vec<f64>) -> Decision {
    Decision::new(Action::uniform(replicas, rho), Some(1), "because")
}

#[test]
fn actions_are_kept_within_the_files_bounds_and_the_rationale_says_so() {
    let (f, state) = setup();
    let d = within_bounds(
        decide(vec![9, 1], vec![0.3, 1.7]),
        &f.scenario.stages,
        1,
        &state,
    );
    assert_eq!(d.action.replicas, [3, 1]);
    assert_eq!(d.action.rho, [1.0, 1.0]);
    assert!(
        d.rationale.starts_with("because (kept within bounds:"),
        "{}",
        d.rationale
    );
    assert!(
        d.rationale.contains("pre replicas 9 -> 3"),
        "{}",
        d.rationale
    );
    assert!(
        d.rationale.contains("infer rho 1.7 -> 1"),
        "{}",
        d.rationale
    );
    // Within bounds: untouched.
    let d = within_bounds(
        decide(vec![2, 2], vec![1.0, 0.5]),
        &f.scenario.stages,
        1,
        &state,
    );
    assert_eq!(d.rationale, "because");
    assert_eq!(d.action.replicas, [2, 2]);
}

#[test]
fn gpu_shares_are_cut_to_fit_as_in_the_simulator_and_a_malformed_action_holds() {
    let (f, state) = setup();
    // Three replicas at ρ 0.5 do not fit on one GPU: the added replicas are cut first, as the
    // simulator cuts them (two at 0.5 fit).
    let d = within_bounds(
        decide(vec![2, 3], vec![1.0, 0.5]),
        &f.scenario.stages,
        1,
        &state,
    );
    assert_eq!(d.action.replicas, [2, 2]);
    assert_eq!(d.action.rho, [1.0, 0.5]);
    assert!(d.rationale.contains("cut to fit 1 GPUs"), "{}", d.rationale);
    // Two whole GPUs' worth on one: the added replica is cut; one at ρ 1.0 fits.
    let d = within_bounds(
        decide(vec![1, 2], vec![1.0, 1.0]),
        &f.scenario.stages,
        1,
        &state,
    );
    assert_eq!(d.action.replicas, [1, 1]);
    assert_eq!(d.action.rho, [1.0, 1.0]);
    // The wrong number of stages.
    let d = within_bounds(decide(vec![1], vec![1.0]), &f.scenario.stages, 1, &state);
    assert_eq!(d.action.replicas, [1, 1]);
    assert!(
        d.rationale.starts_with("holding the allocation"),
        "{}",
        d.rationale
    );
    // A non-finite share keeps the share in force.
    let d = within_bounds(
        decide(vec![1, 1], vec![1.0, f64::NAN]),
        &f.scenario.stages,
        1,
        &state,
    );
    assert_eq!(d.action.rho, [1.0, 0.5]);
}
