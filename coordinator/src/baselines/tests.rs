use super::hpa::recommend;
use super::kpa::StageKpa;
use super::vpa::percentile;
use super::*;
use crate::policies::test_util::context;
use crate::policy::Policy;

/// HPA on a scripted utilisation sequence, checked against the formula step by step.
#[test]
fn hpa_follows_formula_and_stabilisation() {
    let cfg = HpaConfig::default();
    // Inside the tolerance: 0.75 / 0.7 = 1.07.
    assert_eq!(recommend(&cfg, 4, 4, 0.75), 4);
    // ceil(4 × 0.9 / 0.7) = ceil(5.14) = 6.
    assert_eq!(recommend(&cfg, 4, 4, 0.9), 6);
    // Two of six pods still starting count as 0%: 0.9 × 4/6 / 0.7 = 0.857 → scale down is not
    // taken on scale-up evaluation; stays at 6.
    assert_eq!(recommend(&cfg, 6, 4, 0.9), 6);
    // 1.0 × 4/5 / 0.7 = 1.143 > 1.1 → ceil(5 × 1.143) = 6.
    assert_eq!(recommend(&cfg, 5, 4, 1.0), 6);
    // ceil(10 × 0.2 / 0.7) = 3.
    assert_eq!(recommend(&cfg, 10, 10, 0.2), 3);

    let ctx = context(&[(1, 20)]);
    let mut h = Hpa::new(&ctx, cfg);
    // t=0: 2 pods at 100% → ceil(2/0.7)=3, within the 100%/4-pod rate limit.
    assert_eq!(h.stage_step(0, 0.0, 2, 2, 1.0), 3);
    // t=15: 3 pods at 100% → ceil(4.29)=5.
    assert_eq!(h.stage_step(0, 15.0, 3, 3, 1.0), 5);
    // t=30: 5 pods at 10% → raw ceil(0.71)=1, but the 300 s window still holds 5.
    assert_eq!(h.stage_step(0, 30.0, 5, 5, 0.1), 5);
    // t=315: the 5 from t=15 is now out of the window (315-300=15 is the boundary, kept);
    assert_eq!(h.stage_step(0, 315.0, 5, 5, 0.1), 5);
    // t=331: only the low recommendations from t=30..331 remain → 1.
    assert_eq!(h.stage_step(0, 331.0, 5, 5, 0.1), 1);
    // Rate limit: 2 pods at 100% with utilisation 10 (queue) → ceil(2×14.3)=29, limited to
    // max(2×2, 2+4)=6.
    assert_eq!(h.stage_step(0, 340.0, 2, 2, 10.0), 6);
}

/// KPA on a scripted concurrency sequence: stable average, panic entry and ratchet, exit.
#[test]
fn kpa_follows_stable_and_panic_windows() {
    let cfg = KpaConfig::default();
    let mut k = StageKpa::default();
    // 1 slot per pod → target 0.7 concurrent requests per pod.
    // Steady 1.3 concurrency on 2 ready pods: desired = ceil(1.3/0.7) = 2, no panic.
    let mut t = 0.0;
    for _ in 0..30 {
        assert_eq!(k.step(&cfg, 1, t, 2, 1.3), 2);
        t += 2.0;
    }
    assert!(!k.panicking());
    // A jump to 7.0: panic window (6 s = 3 samples, t in (t-6, t]) average
    // = (1.3+1.3+7)/3 = 3.2 → 4.57 pods/ready 2 = 2.29 ≥ 2 → panic.
    let d = k.step(&cfg, 1, t, 2, 7.0);
    assert!(k.panicking());
    assert_eq!(d, (9.6f64 / 3.0 / 0.7).ceil() as u32);
    t += 2.0;
    let d2 = k.step(&cfg, 1, t, 5, 7.0);
    assert_eq!(d2, (15.3f64 / 3.0 / 0.7).ceil() as u32);
    // The load drops: while panicking the count never goes down.
    t += 2.0;
    let d3 = k.step(&cfg, 1, t, 8, 0.7);
    assert_eq!(d3, d2.max(d3));
    assert!(d3 >= d2);
    // After 60 s without a breach panic ends and the stable window decides, limited to
    // halving the ready pods per tick.
    for _ in 0..31 {
        t += 2.0;
        k.step(&cfg, 1, t, 8, 0.7);
    }
    assert!(!k.panicking());
    t += 2.0;
    assert_eq!(
        k.step(&cfg, 1, t, 8, 0.7),
        4,
        "max-scale-down-rate 2 halves 8 → 4"
    );
    // Slots: a stage with 8 slots per pod targets 5.6 per pod.
    let mut k8 = StageKpa::default();
    assert_eq!(k8.step(&cfg, 8, 0.0, 3, 11.3), 3);
}

#[test]
fn vpa_percentiles_and_update_rule() {
    assert_eq!(percentile(&[3.0, 1.0, 2.0, 4.0], 50.0), 2.0);
    assert_eq!(percentile(&[3.0, 1.0, 2.0, 4.0], 90.0), 4.0);
    let ctx = context(&[(2, 2)]);
    let mut v = Vpa::new(&ctx, VpaConfig::default());
    // Share 1.0 at 20% demand: usage 0.2, target 0.2 × 1.15 = 0.23 → rounded up to 0.25, more
    // than 10% away from 1.0 → resized.
    let r = v.stage_step(0, 0.0, 1.0, 0.2);
    assert!((r - 0.25).abs() < 1e-9, "{r}");
    // Share 0.25 with demand 1.0: usage 0.25, P90 of {0.2, 0.25} = 0.25 → 0.2875 → 0.30.
    let r = v.stage_step(0, 60.0, 0.25, 1.0);
    assert!((r - 0.30).abs() < 1e-9, "{r}");
    // Share 0.35, demand 0.5: usage 0.175; P90 of {0.2, 0.25, 0.175} = 0.25 → 0.30;
    // |0.30 - 0.35| = 0.05 > 0.035 → resized down to 0.30.
    let r = v.stage_step(0, 120.0, 0.35, 0.5);
    assert!((r - 0.30).abs() < 1e-9, "{r}");
    // Share 0.30 and the same target: held.
    let r = v.stage_step(0, 180.0, 0.30, 0.5);
    assert!((r - 0.30).abs() < 1e-9, "{r}");
    // Samples older than the 300 s window drop out: at t = 400 only t > 100 remain
    // {0.175, 0.15, 0.03} → P90 0.175 → 0.20125 → 0.25.
    let r = v.stage_step(0, 400.0, 0.30, 0.1);
    assert!((r - 0.25).abs() < 1e-9, "{r}");
}

#[test]
fn threshold_cooldown_and_static_plan() {
    let ctx = context(&[(1, 10)]);
    let mut th = Threshold::new(&ctx, ThresholdConfig::default());
    let mut s = crate::policies::test_util::state(&ctx, 0.0, &[2], &[0.9], &[0]);
    assert_eq!(th.decide(&s).action.replicas, vec![3]);
    s.t_s = 30.0;
    s.stages[0].replicas_desired = 3;
    assert_eq!(th.decide(&s).action.replicas, vec![3], "cooldown holds");
    s.t_s = 60.0;
    s.stages[0].busy_fraction = 0.1;
    assert_eq!(th.decide(&s).action.replicas, vec![2]);
    let st = Static::new(&ctx);
    // peak 100 rps × 10 ms / 0.7 = 1.43 → 2.
    assert_eq!(st.plan().replicas, vec![2]);
}

/// `oracle-pr-NN` plans per-replica GPU shares (whole shares first, the rest on one replica)
/// that pack, and on a scenario where one share per stage must be cut evenly to pack (the
/// held-out document-OCR flash crowds, two GPU stages on 2 GPUs) it reaches a far lower P99.
#[test]
fn per_replica_oracle_packs_whole_shares_first() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios-heldout");
    let sc = crate::scenario::Scenario::load(&dir.join("document-ocr-burst.toml")).unwrap();
    let ctx = sc.context(1, None);
    let pr = crate::policies::build("oracle-pr-45", &ctx).unwrap();
    let a = pr.initial_action().expect("a plan");
    let mut all = Vec::new();
    for i in ctx.gpu_stages() {
        let v = a.explicit_shares(i).expect("per-replica shares").to_vec();
        assert_eq!(v.len(), a.replicas[i] as usize);
        assert!(v.iter().all(|&x| x > 0.0 && x <= 1.0), "{v:?}");
        all.extend(v);
    }
    assert!(
        crate::sim::placement::pack(&all, ctx.gpus).is_some(),
        "{all:?}"
    );
    let mut uniform = crate::policies::build("oracle-45", &ctx).unwrap();
    let mut per_replica = crate::policies::build("oracle-pr-45", &ctx).unwrap();
    let u = crate::sim::run(&sc, uniform.as_mut(), 1);
    let p = crate::sim::run(&sc, per_replica.as_mut(), 1);
    assert!(p.p99_s < u.p99_s / 2.0, "{} vs {}", p.p99_s, u.p99_s);
}
