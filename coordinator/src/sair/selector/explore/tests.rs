use super::*;

#[test]
fn exploration_decays_and_stays_in_the_safe_set() {
    let mut e = Explorer::new(0.5, 10.0, 7);
    let safe = [2, 5];
    let mut early = 0;
    for _ in 0..100 {
        if let Some(i) = e.maybe_explore(&safe) {
            assert!(safe.contains(&i));
            early += 1;
        }
    }
    let mut late = 0;
    for _ in 0..100 {
        if e.maybe_explore(&safe).is_some() {
            late += 1;
        }
    }
    assert!(early > late, "{early} then {late}");
    assert!(e.maybe_explore(&[]).is_none());
}
