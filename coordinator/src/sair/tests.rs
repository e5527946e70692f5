use super::test_util::pipeline;
use super::*;
use crate::policy::StageKind;

/// A toy plant: applies the decided allocation and reports the state the queueing model
/// predicts for it (good enough to exercise the control loop end to end).
fn step(prev: &PipelineState, d: &Decision, rate: f64, t: f64) -> PipelineState {
    let mut s = pipeline(rate, t);
    for (i, st) in s.stages.iter_mut().enumerate() {
        let base = match st.kind {
            StageKind::Gpu => 0.010,
            StageKind::Cpu => [0.004, 0.0, 0.002][i],
        };
        *st = test_util::stage(
            &st.name,
            st.kind,
            base,
            d.action.replicas[i],
            d.action.rho[i],
            rate,
        );
    }
    let h = features::History::default();
    let p = features::Planning::new(&s, &h, 30.0);
    let m = Model {
        state: &s,
        planning: &p,
        prices: Prices::default(),
        calibration: Calibration::default(),
    };
    let out = m.predict(&d.action);
    s.e2e_p99_s = out.p99_s.min(10.0);
    s.cost_per_hour = out.cost_per_hour;
    let snapshot = s.clone();
    for (i, st) in s.stages.iter_mut().enumerate() {
        let pred = queueing::predict_stage(&p.stage_load(
            &snapshot,
            i,
            d.action.replicas[i],
            d.action.rho[i],
        ));
        st.queue_wait_p99_s = pred.wait_p99_s.min(10.0);
    }
    let _ = prev;
    s
}

#[test]
fn full_decisions_at_the_interval_guard_in_between() {
    let mut p = Sair::new(SairConfig::default()).unwrap();
    assert_eq!(p.period_s(), Some(5.0));
    let mut s = pipeline(100.0, 0.0);
    for k in 0..13 {
        let t = k as f64 * 5.0;
        let d = p.decide(&s);
        s = step(&s, &d, 100.0, t + 5.0);
    }
    let full = p
        .decisions()
        .iter()
        .filter(|l| l.source != store::Source::Guard)
        .count();
    assert_eq!(full, 3, "decisions at t = 0, 30, 60: {:?}", p.decisions());
    assert_eq!(p.episodes().len(), 2, "two episodes closed with rewards");
    assert!(p.decisions()[0].reward.is_some());
}

#[test]
fn malformed_state_holds() {
    let mut p = Sair::new(SairConfig::default()).unwrap();
    let mut s = pipeline(100.0, 0.0);
    s.stages[2].service_mean_s = f64::NAN;
    let d = p.decide(&s);
    assert_eq!(d.action, Action::hold(&s));
    assert!(d.rationale.contains("malformed"));
    assert!(p.decisions().is_empty());
}

fn run(
    p: &mut Sair,
    start: Action,
    rates: impl Fn(f64) -> f64,
    seconds: u32,
) -> Vec<(f64, f64, f64)> {
    let mut d = Decision {
        action: start,
        bottleneck: None,
        rationale: String::new(),
    };
    let mut s = step(&pipeline(1.0, 0.0), &d, rates(0.0), 0.0);
    let mut trace = Vec::new();
    for k in 0..seconds / 5 {
        let t = f64::from(k) * 5.0;
        d = p.decide(&s);
        s = step(&s, &d, rates(t + 5.0), t + 5.0);
        // The toy plant applies requested replicas at once.
        trace.push((t, s.e2e_p99_s, s.cost_per_hour));
    }
    trace
}

#[test]
fn closed_loop_cuts_cost_of_an_over_provisioned_pipeline_within_the_slo() {
    let mut p = Sair::new(SairConfig {
        explore_rate0: 0.0,
        ..SairConfig::default()
    })
    .unwrap();
    let big = Action {
        replicas: vec![8, 2, 6],
        rho: vec![1.0, 1.0, 1.0],
    };
    let trace = run(&mut p, big, |_| 80.0, 900);
    let (first, last) = (trace[0], *trace.last().unwrap());
    tracing::info!(?first, ?last, "over-provisioned");
    assert!(last.2 < first.2 * 0.85, "cost {} -> {}", first.2, last.2);
    assert!(last.1 <= 0.15, "P99 {} over the SLO", last.1);
}

#[test]
fn closed_loop_scales_up_under_a_ramp() {
    let mut p = Sair::new(SairConfig {
        explore_rate0: 0.0,
        ..SairConfig::default()
    })
    .unwrap();
    let small = Action {
        replicas: vec![1, 1, 1],
        rho: vec![1.0, 1.0, 1.0],
    };
    let trace = run(&mut p, small, |t| 40.0 + t / 10.0, 900);
    let late: Vec<_> = trace.iter().filter(|x| x.0 >= 600.0).collect();
    let violating = late.iter().filter(|x| x.1 > 0.15).count();
    assert!(
        violating <= late.len() / 10,
        "{violating} of {} late windows over the SLO",
        late.len()
    );
}

#[test]
fn experience_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("sair-policy-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = SairConfig {
        state_dir: Some(dir.clone()),
        ..SairConfig::default()
    };
    let mut p = Sair::new(cfg.clone()).unwrap();
    run(
        &mut p,
        Action {
            replicas: vec![2, 2, 1],
            rho: vec![1.0; 3],
        },
        |_| 100.0,
        300,
    );
    let n = p.episodes().len();
    assert!(n >= 8, "{n}");
    drop(p);
    let p2 = Sair::new(cfg).unwrap();
    assert_eq!(p2.episodes().len(), n);
    assert_eq!(p2.episodes()[0].features.len(), 14);
}

#[test]
fn registry_names_build() {
    for n in NAMES {
        let p = build_with(n, SairConfig::default()).unwrap().unwrap();
        assert_eq!(p.name(), *n);
    }
    assert!(build_with("hpa", SairConfig::default()).is_none());
    let p = build(
        "sair-no-gpu-rate",
        Inputs {
            interval_s: Some(15.0),
            ..Inputs::default()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(p.name(), "sair-no-gpu-rate");
    assert_eq!(p.period_s(), Some(5.0));
}

#[test]
fn closed_loop_rides_bursts_within_the_slo() {
    let mut p = Sair::new(SairConfig {
        explore_rate0: 0.0,
        ..SairConfig::default()
    })
    .unwrap();
    let small = Action {
        replicas: vec![1, 1, 1],
        rho: vec![1.0, 1.0, 1.0],
    };
    let trace = run(
        &mut p,
        small,
        |t| if (t as u32 % 300) < 60 { 150.0 } else { 60.0 },
        900,
    );
    let late: Vec<_> = trace.iter().filter(|x| x.0 >= 60.0).collect();
    let violating = late.iter().filter(|x| x.1 > 0.15).count();
    tracing::info!(violating, windows = late.len(), "bursts");
    assert!(
        violating * 20 <= late.len(),
        "{violating} of {} windows over the SLO: {trace:?}",
        late.len()
    );
    // It sheds capacity between bursts: the cheapest window is well below the peak allocation.
    let max = late.iter().map(|x| x.2).fold(0.0, f64::max);
    let min = late.iter().map(|x| x.2).fold(f64::INFINITY, f64::min);
    assert!(min < 0.8 * max, "cost stays flat: {min}..{max}");
}

mod prop {
    use proptest::prelude::*;

    use super::*;

    fn arb_state() -> impl Strategy<Value = PipelineState> {
        (
            proptest::collection::vec(
                (
                    0.0f64..500.0,
                    0.0005f64..0.05,
                    1u32..8,
                    prop_oneof![Just(StageKind::Cpu), Just(StageKind::Gpu)],
                    0u64..5000,
                    0.0f64..0.5,
                ),
                1..6,
            ),
            0.01f64..1.0,
            0.0f64..3.0,
        )
            .prop_map(|(stages, slo, p99)| {
                let mut s = pipeline(100.0, 0.0);
                s.slo_p99_s = slo;
                s.e2e_p99_s = p99;
                s.gpus = 8;
                s.stages = stages
                    .into_iter()
                    .enumerate()
                    .map(|(i, (rate, svc, reps, kind, depth, wait))| {
                        let mut st = test_util::stage(&format!("s{i}"), kind, svc, reps, 1.0, rate);
                        st.queue_depth = depth;
                        st.queue_wait_p99_s = wait;
                        st
                    })
                    .collect();
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Whatever it observes, the policy answers with an allocation inside the bounds that
        /// packs onto the GPUs, at every call (full and off-beat).
        #[test]
        fn decisions_are_always_within_bounds(states in proptest::collection::vec(arb_state(), 1..8)) {
            let mut p = Sair::new(SairConfig::default()).unwrap();
            for (k, mut s) in states.into_iter().enumerate() {
                s.t_s = k as f64 * 10.0;
                let d = p.decide(&s);
                prop_assert_eq!(d.action.replicas.len(), s.stages.len());
                for (i, st) in s.stages.iter().enumerate() {
                    prop_assert!(d.action.replicas[i] >= st.min_replicas.max(1));
                    prop_assert!(d.action.replicas[i] <= st.max_replicas.max(1));
                    prop_assert!(d.action.rho[i] > 0.0 && d.action.rho[i] <= 1.0);
                }
                if validator::gpu_fits(&s, &Action::hold(&s)) {
                    prop_assert!(validator::gpu_fits(&s, &d.action));
                }
            }
        }
    }
}
