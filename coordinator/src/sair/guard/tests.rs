use super::*;
use crate::sair::test_util::pipeline;

#[test]
fn fires_only_after_a_sustained_breach_then_rests() {
    let mut g = Guard::new(GuardConfig::default());
    let l = Limits::default();
    let breach = |t: f64| {
        let mut s = pipeline(100.0, t);
        s.stages[1].queue_wait_p99_s = 0.2; // share = 0.15 / 3 = 50 ms
        s
    };
    assert!(g.check(&breach(0.0), &l).is_none(), "not sustained yet");
    let (i, a) = g.check(&breach(5.0), &l).expect("sustained for 5 s");
    assert_eq!(i, 1);
    assert_eq!(a.replicas, vec![2, 3, 1]);
    assert!(g.check(&breach(10.0), &l).is_none(), "refractory");
    assert!(g.check(&pipeline(100.0, 30.0), &l).is_none(), "no breach");
}
