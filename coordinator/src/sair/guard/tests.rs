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
