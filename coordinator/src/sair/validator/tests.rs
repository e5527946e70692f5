use proptest::prelude::*;

use super::*;
use crate::sair::test_util::pipeline;

#[test]
fn bounds_steps_and_packing() {
    let s = pipeline(100.0, 0.0);
    let v = Validator::default();
    let ok = Action::hold(&s);
    assert!(v.check(&s, &ok, 0.0, false).is_ok());
    let mut a = ok.clone();
    a.replicas[0] = 0;
    assert!(matches!(
        v.check(&s, &a, 0.0, false).unwrap_err()[0],
        Rejection::Replicas { .. }
    ));
    let mut a = ok.clone();
    a.replicas[0] = 9; // 2 → 9 is more than doubling
    assert!(matches!(
        v.check(&s, &a, 0.0, false).unwrap_err()[0],
        Rejection::Step { .. }
    ));
    let mut a = ok.clone();
    a.replicas[1] = 3; // three whole-GPU replicas on 2 GPUs
    assert!(
        v.check(&s, &a, 0.0, false)
            .unwrap_err()
            .contains(&Rejection::GpuPacking { gpus: 2 })
    );
    a.rho[1] = 0.5; // 3 × 0.5 packs as 0.5 + 0.5 | 0.5
    assert!(v.check(&s, &a, 0.0, false).is_ok());
    let mut a = ok.clone();
    a.rho[1] = 0.05;
    assert!(v.check(&s, &a, 0.0, false).is_err());
}

#[test]
fn no_reversal_within_cooldown_unless_slo_pressure() {
    let s = pipeline(100.0, 0.0);
    let mut v = Validator::default();
    let mut up = Action::hold(&s);
    up.replicas[0] = 3;
    v.record(&s, &up, 0.0);
    let mut s2 = pipeline(100.0, 30.0);
    s2.stages[0].replicas_desired = 3;
    let mut down = Action::hold(&s2);
    down.replicas[0] = 2;
    assert!(matches!(
        v.check(&s2, &down, 30.0, false).unwrap_err()[0],
        Rejection::Oscillation { .. }
    ));
    assert!(
        v.check(&s2, &down, 30.0, true).is_ok(),
        "SLO pressure lifts the rule"
    );
    assert!(
        v.check(&s2, &down, 200.0, false).is_ok(),
        "after the cooldown"
    );
}

proptest! {
    /// Whatever is asked, clamping to bounds and steps yields an action the validator accepts
    /// (packing aside, which the candidate generator filters).
    #[test]
    fn clamped_actions_validate(reps in proptest::collection::vec(0u32..40, 3), rhos in proptest::collection::vec(-1.0f64..2.0, 3)) {
        let s = pipeline(100.0, 0.0);
        let l = Limits::default();
        let v = Validator::new(l);
        let a = Action::uniform(reps, rhos);
        let c = clamp_step(&s, &l.clamp_bounds(&s, &a), &l);
        if gpu_fits(&s, &c) {
            prop_assert!(v.check(&s, &c, 0.0, false).is_ok(), "{c:?}");
        }
    }
}

/// Issue 15, item 1: voice-assistant's ASR split from 1 × ρ 1.0 to 2 × ρ 0.65 cut the only
/// serving replica's share at once while the new one started. Only serving replicas count,
/// at the new ρ, while a start-up is under way.
#[test]
fn a_cut_below_demand_during_start_up_is_rejected() {
    let mut s = pipeline(80.0, 0.0);
    s.stages[1].replicas = 1;
    s.stages[1].replicas_desired = 1;
    let demand = vec![80.0; 3];
    let svc = vec![0.004, 0.010, 0.002];
    let startup = vec![10.0, 60.0, 10.0];
    let w = StartupWindow {
        demand: &demand,
        service_mean_1: &svc,
        startup_s: &startup,
    };
    let mut split = Action::hold(&s);
    split.replicas[1] = 2;
    split.rho[1] = 0.65;
    // One serving replica at ρ 0.65 against 80 req/s × 10 ms: utilisation 1.23.
    let errs = startup_gap(&s, &split, &w, 0.9).unwrap_err();
    assert!(
        matches!(&errs[0], Rejection::StartupGap { stage, utilisation, .. } if stage == "infer" && *utilisation > 1.2),
        "{errs:?}"
    );
    // Holding, or adding a replica at the share in place, never loses serving capacity.
    assert!(startup_gap(&s, &Action::hold(&s), &w, 0.9).is_ok());
    let mut add = Action::hold(&s);
    add.replicas[1] = 2;
    assert!(startup_gap(&s, &add, &w, 0.9).is_ok());
    // A small cut that the serving replica carries is allowed.
    let mut cut = Action::hold(&s);
    cut.rho[1] = 0.95;
    assert!(startup_gap(&s, &cut, &w, 0.9).is_ok());
    // With no start-up (replicas serve at once) the window is empty.
    let instant = vec![0.0; 3];
    let w0 = StartupWindow {
        startup_s: &instant,
        ..w
    };
    assert!(startup_gap(&s, &split, &w0, 0.9).is_ok());
    // An unknown start-up is taken to be one.
    let w_unknown = StartupWindow {
        startup_s: &[],
        ..w
    };
    assert!(startup_gap(&s, &split, &w_unknown, 0.9).is_err());
}
