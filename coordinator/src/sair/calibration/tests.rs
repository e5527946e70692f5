use super::*;

fn sample(raw_p99_s: f64, observed_p99_s: f64, p99_trusted: bool) -> CalibrationSample {
    CalibrationSample {
        raw_p99_s,
        observed_p99_s,
        p99_trusted,
        raw_cost_per_hour: 2.0,
        observed_cost_per_hour: 3.0,
    }
}

#[test]
fn p99_scale_moves_towards_the_observed_ratio_and_is_clamped() {
    let mut c = Calibration::default();
    c.update(&sample(0.1, 0.2, true));
    // exp(0.3 ln 2)
    assert!((c.p99_scale - 2f64.powf(0.3)).abs() < 1e-12, "{c:?}");
    assert!((c.cost_scale - 1.5).abs() < 1e-12, "{c:?}");
    for _ in 0..200 {
        c.update(&sample(0.1, 100.0, true));
    }
    assert!(
        (c.p99_scale - 3.0).abs() < 1e-6,
        "ratio clamped to 3: {c:?}"
    );
}

#[test]
fn untrusted_or_empty_intervals_leave_the_p99_scale_alone() {
    let mut c = Calibration::default();
    c.update(&sample(0.1, 0.2, false));
    c.update(&sample(0.0, 0.2, true));
    c.update(&sample(0.1, 0.0, true));
    assert_eq!(c.p99_scale, 1.0);
    let mut e = sample(0.1, 0.1, true);
    e.observed_cost_per_hour = 0.0;
    let before = c.cost_scale;
    c.update(&e);
    assert_eq!(c.cost_scale, before);
}
