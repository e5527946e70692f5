use super::*;
use crate::sair::test_util::{pipeline, stage};

fn gpu_only(service_s: f64, slo_s: f64) -> PipelineState {
    let mut s = pipeline(20.0, 0.0);
    s.stages = vec![stage("infer", StageKind::Gpu, service_s, 2, 1.0, 20.0)];
    s.slo_p99_s = slo_s;
    s
}

#[test]
fn short_service_gpu_stage_runs_hotter_than_a_long_one() {
    let cfg = DerivedCaps {
        max: 0.99,
        ..DerivedCaps::default()
    };
    let short = stage_caps(&cfg, &gpu_only(0.010, 0.3)).unwrap();
    let long = stage_caps(&cfg, &gpu_only(0.080, 0.3)).unwrap();
    assert!(short[0] > long[0], "short {short:?} long {long:?}");
    // The wait at the short stage's cap fits the budget: 0.8 × 300 ms − 20 ms service P99.
    let st = &gpu_only(0.010, 0.3).stages[0];
    let u = slo_utilisation(st, 0.22);
    assert!(u > 0.9, "{u}");
}

#[test]
fn cheap_cpu_stage_keeps_more_headroom_than_an_expensive_gpu_stage() {
    let cfg = DerivedCaps::default();
    let mut s = pipeline(100.0, 0.0);
    // Same service time and servers on both, so only the cost differs.
    s.stages = vec![
        stage("pre", StageKind::Cpu, 0.010, 2, 1.0, 100.0),
        stage("infer", StageKind::Gpu, 0.010, 2, 1.0, 100.0),
    ];
    let caps = stage_caps(&cfg, &s).unwrap();
    assert!(caps[0] < caps[1], "{caps:?}");
    // The CPU stage's cost factor is close to the floor: its replica is 4 % of a GPU's.
    let budget = (0.8 * s.slo_p99_s - 0.04) / 2.0;
    let u = slo_utilisation(&s.stages[0], budget);
    let expected = (u * (0.6 + 0.4 * 0.048 / 1.10)).clamp(cfg.min, cfg.max);
    assert!((caps[0] - expected).abs() < 1e-9, "{caps:?} {expected}");
}

#[test]
fn bounds_are_respected() {
    let cfg = DerivedCaps::default();
    // A tiny service time against a long SLO: the SLO factor is 0.99, the cap is `max`.
    let hot = stage_caps(&cfg, &gpu_only(0.001, 10.0)).unwrap();
    assert_eq!(hot, vec![cfg.max]);
    // Service alone overruns the SLO: no budget, the cap is `min`.
    let cold = stage_caps(&cfg, &gpu_only(0.5, 0.3)).unwrap();
    assert_eq!(cold, vec![cfg.min]);
    for st in [pipeline(5.0, 0.0), pipeline(200.0, 0.0)] {
        for c in stage_caps(&cfg, &st).unwrap() {
            assert!((cfg.min..=cfg.max).contains(&c), "{c}");
        }
    }
    // Nothing to derive from: the caller keeps its constants.
    let mut none = pipeline(5.0, 0.0);
    none.slo_p99_s = 0.0;
    assert!(stage_caps(&cfg, &none).is_none());
    none.stages.clear();
    none.slo_p99_s = 0.3;
    assert!(stage_caps(&cfg, &none).is_none());
}

#[test]
fn fixed_cpu_cap_leaves_gpu_stages_derived() {
    let derived = stage_caps(&DerivedCaps::default(), &pipeline(100.0, 0.0)).unwrap();
    let cfg = DerivedCaps {
        cpu_fixed: Some(0.4),
        ..DerivedCaps::default()
    };
    let fixed = stage_caps(&cfg, &pipeline(100.0, 0.0)).unwrap();
    assert_eq!(fixed[0], 0.4);
    assert_eq!(fixed[2], 0.4);
    assert_eq!(fixed[1], derived[1]);
}
