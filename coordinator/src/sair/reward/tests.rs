use proptest::prelude::*;

use super::*;

fn pt(p: f64, c: f64) -> Point {
    Point {
        p99_s: p,
        cost_per_hour: c,
    }
}

#[test]
fn relations_respect_tolerance() {
    let cfg = RewardConfig::default();
    let slo = 0.1;
    let base = pt(0.05, 10.0);
    assert_eq!(
        relation(base, pt(0.0501, 10.01), slo, &cfg),
        Relation::Equivalent
    );
    assert_eq!(
        relation(base, pt(0.05, 9.0), slo, &cfg),
        Relation::Dominates
    );
    assert_eq!(
        relation(base, pt(0.03, 11.0), slo, &cfg),
        Relation::Incomparable
    );
    assert_eq!(
        relation(base, pt(0.08, 10.0), slo, &cfg),
        Relation::Dominated
    );
}

#[test]
fn slo_violation_is_penalised_within_a_tier() {
    let cfg = RewardConfig::default();
    let prev = pt(0.05, 10.0);
    // Both incomparable (cheaper, slower); the one that breaks the SLO scores lower.
    let ok = reward(prev, pt(0.09, 8.0), 0.1, &cfg);
    let bad = reward(prev, pt(0.15, 8.0), 0.1, &cfg);
    assert!(ok > bad, "{ok} vs {bad}");
}

fn point() -> impl Strategy<Value = Point> {
    (0.001f64..2.0, 0.01f64..100.0).prop_map(|(p, c)| pt(p, c))
}

proptest! {
    /// Proposition 1 (docs/policy.md): for any two transitions x, y with tier(x) > tier(y),
    /// r(x) − r(y) > δ.
    #[test]
    fn tiers_are_separated_by_delta(
        a in point(), b in point(), c in point(), d in point(),
        slo in 0.01f64..1.0, delta in 0.01f64..2.0, band in 0.1f64..3.0,
    ) {
        let cfg = RewardConfig { delta, band, ..RewardConfig::default() };
        let tx = tier(relation(a, b, slo, &cfg));
        let ty = tier(relation(c, d, slo, &cfg));
        let (rx, ry) = (reward(a, b, slo, &cfg), reward(c, d, slo, &cfg));
        prop_assert!(rx.is_finite() && ry.is_finite());
        if tx > ty {
            prop_assert!(rx - ry > delta, "tier {tx} r={rx} vs tier {ty} r={ry}");
        }
        if ty > tx {
            prop_assert!(ry - rx > delta);
        }
    }

    /// A dominating transition always scores above neutral, a dominated one below.
    #[test]
    fn neutral_sits_between_tiers(a in point(), b in point(), slo in 0.01f64..1.0) {
        let cfg = RewardConfig::default();
        let r = reward(a, b, slo, &cfg);
        match relation(a, b, slo, &cfg) {
            Relation::Dominates => prop_assert!(r > neutral(&cfg)),
            Relation::Dominated => prop_assert!(r < neutral(&cfg)),
            _ => {}
        }
    }
}

/// Issue 15, item 5: a P99 rise inside the tolerance used to make a cut "dominate" however
/// little it saved; with consistent tiers the tier follows the score's sign.
#[test]
fn a_tolerated_rise_does_not_make_a_cut_dominate() {
    let cfg = RewardConfig {
        p99_floor_slo: 0.0,
        ..RewardConfig::default()
    };
    let slo = 0.15;
    // P99 +15 % (inside 5 % of the SLO, 7.5 ms), cost −5 %: the score is negative.
    let (prev, next) = (pt(0.040, 2.0), pt(0.046, 1.9));
    assert!(score(prev, next, slo, &cfg) < 0.0);
    assert_eq!(relation(prev, next, slo, &cfg), Relation::Incomparable);
    assert!(reward(prev, next, slo, &cfg) < neutral(&cfg));
    let tolerant = RewardConfig {
        consistent_tiers: false,
        ..cfg
    };
    assert_eq!(relation(prev, next, slo, &tolerant), Relation::Dominates);
    // A cut whose saving outweighs its P99 rise still dominates.
    let cheap = pt(0.041, 1.6);
    assert_eq!(relation(prev, cheap, slo, &cfg), Relation::Dominates);
}

/// Latency below `p99_floor_slo × SLO` buys nothing: a cut that keeps P99 under the floor
/// scores as a pure saving.
#[test]
fn p99_below_the_floor_is_not_worth_paying_for() {
    let cfg = RewardConfig::default();
    let slo = 0.15; // floor 52.5 ms
    let s = score(pt(0.030, 2.0), pt(0.050, 1.8), slo, &cfg);
    assert!((s - (2.0f64 / 1.8).ln()).abs() < 1e-12, "{s}");
    let off = RewardConfig {
        p99_floor_slo: 0.0,
        ..cfg
    };
    assert!(score(pt(0.030, 2.0), pt(0.050, 1.8), slo, &off) < 0.0);
}
