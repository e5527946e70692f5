use super::*;
use crate::sair::test_util::pipeline;

#[test]
fn fires_only_after_a_sustained_breach_then_rests() {
    let mut g = Guard::new(GuardConfig::default());
    let l = Limits::default();
    let breach = |t: f64| {
        let mut s = pipeline(100.0, t);
        s.stages[1].queue_wait_p99_s = 0.1; // share = 0.15 / 3 = 50 ms: twice over
        s.gpus = 4;
        s
    };
    assert!(g.check(&breach(0.0), &l).is_none(), "not sustained yet");
    let (i, a) = g.check(&breach(5.0), &l).expect("sustained for 5 s");
    assert_eq!(i, 1);
    assert_eq!(a.replicas, vec![2, 3, 1]);
    assert!(g.check(&breach(10.0), &l).is_none(), "refractory");
    assert!(g.check(&pipeline(100.0, 30.0), &l).is_none(), "no breach");
    // Three times over: no confirmation needed; a GPU stage on a small share gets share first.
    let mut s = pipeline(100.0, 60.0);
    s.stages[1].queue_wait_p99_s = 0.2;
    s.stages[1].rho = 0.4;
    let (i, a) = g.check(&s, &l).expect("immediate");
    assert_eq!(i, 1);
    assert!(a.rho[1] >= 0.6 - 1e-9, "{a:?}");
}

/// Issue 15, item 2: with per-replica shares, a breaching GPU stage whose GPUs are committed
/// (ρ 1, no whole GPU free) gets a replica at the share left (≥ 0.2), the serving ones keeping
/// theirs; without, the guard cannot add one.
#[test]
fn per_replica_guard_adds_replicas_at_the_free_shares() {
    let l = Limits::default();
    let mut s = pipeline(250.0, 0.0);
    s.stages[1].queue_wait_p99_s = 0.2; // three times over: fires at once
    // infer: 2 replicas at ρ 1; another GPU stage holds 0.7 of the third GPU.
    s.stages.push(crate::sair::test_util::stage(
        "extra",
        StageKind::Gpu,
        0.001,
        1,
        0.7,
        250.0,
    ));
    s.gpus = 3;
    let plain = Guard::new(GuardConfig::default()).check(&s, &l);
    assert!(
        plain.is_none_or(|(_, a)| a.replicas[1] == 2 && a.shares.is_empty()),
        "the plain guard cannot add a replica at ρ 1"
    );
    let mut g = Guard::new(GuardConfig {
        per_replica: true,
        ..GuardConfig::default()
    });
    let (i, a) = g.check(&s, &l).expect("fires");
    assert_eq!(i, 1);
    let shares = a.explicit_shares(1).expect("per-replica shares");
    assert_eq!(shares.len(), 3, "{shares:?}");
    assert_eq!(&shares[..2], [1.0, 1.0], "the serving replicas keep theirs");
    assert!((shares[2] - 0.3).abs() < 1e-9, "{shares:?}");
    assert_eq!(a.replicas[1], 3);
    assert!(gpu_fits(&s, &a), "{a:?}");
}
