use super::*;
use crate::sair::test_util::pipeline;

#[test]
fn rejects_nan_and_negative_rates() {
    let mut s = pipeline(100.0, 0.0);
    assert!(validate_state(&s).is_ok());
    s.stages[0].arrival_rate = f64::NAN;
    assert!(matches!(
        validate_state(&s),
        Err(MalformedState::BadNumber {
            field: "arrival_rate",
            ..
        })
    ));
    let mut s = pipeline(100.0, 0.0);
    s.arrival_rate = -1.0;
    assert!(validate_state(&s).is_err());
    let mut s = pipeline(100.0, 0.0);
    s.stages[1].rho = 0.0;
    assert!(validate_state(&s).is_err());
    let mut s = pipeline(100.0, 0.0);
    s.stages.clear();
    assert_eq!(validate_state(&s), Err(MalformedState::NoStages));
}

#[test]
fn utilisation_trend_bottleneck_and_features() {
    let mut h = History::default();
    for (i, r) in [100.0, 120.0, 140.0, 160.0].into_iter().enumerate() {
        h.observe(&pipeline(r, i as f64 * 30.0), r);
    }
    let s = pipeline(160.0, 90.0);
    assert!((h.slope_per_interval() - 20.0).abs() < 1e-9);
    assert!((h.planning_rate(&s) - 180.0).abs() < 1e-9);
    let p = Planning::new(&s, &h, 30.0);
    // infer: 180 req/s × 10 ms / 2 replicas = 0.9.
    assert!((p.utilisation(&s, 1) - 0.9).abs() < 1e-9);
    assert_eq!(bottleneck(&s, &p), 1);
    let f = feature_vector(&s, &p, &h);
    assert_eq!(f.len(), 3 * 4 + 2);
    assert!(f.iter().all(|x| (0.0..=1.0).contains(x)));
}

#[test]
fn gpu_service_is_normalised_to_full_share() {
    let mut s = pipeline(50.0, 0.0);
    s.stages[1] =
        crate::sair::test_util::stage("infer", crate::policy::StageKind::Gpu, 0.010, 2, 0.5, 50.0);
    let mut h = History::default();
    h.observe(&s, 50.0);
    let p = Planning::new(&s, &h, 30.0);
    assert!((p.service_mean_1[1] - 0.010).abs() < 1e-12);
    assert!((p.stage_load(&s, 1, 2, 0.25).service_mean_s - 0.040).abs() < 1e-12);
}

#[test]
fn seasonal_forecast_sees_periodic_bursts_but_not_ramps_or_noise() {
    let mut h = History::default();
    // Bursts of two intervals every ten.
    for k in 0..25 {
        let r = if k % 10 == 8 || k % 10 == 9 {
            400.0
        } else {
            100.0
        };
        h.observe(&pipeline(r, 0.0), r);
    }
    // Next intervals (k = 25, 26) are calm, but k = 28 bursts: forecast for 26 + 1 ahead.
    assert_eq!(h.seasonal(), Some(100.0));
    h.observe(&pipeline(100.0, 0.0), 100.0); // k = 25
    h.observe(&pipeline(100.0, 0.0), 100.0); // k = 26
    h.observe(&pipeline(100.0, 0.0), 100.0); // k = 27: next is a burst
    assert_eq!(h.seasonal(), Some(400.0));
    assert!(h.planning_rate(&pipeline(100.0, 0.0)) >= 400.0);

    let mut ramp = History::default();
    for k in 0..40 {
        let r = 50.0 + 10.0 * f64::from(k);
        ramp.observe(&pipeline(r, 0.0), r);
    }
    assert_eq!(ramp.seasonal(), None);

    let mut noise = History::default();
    for k in 0..40u32 {
        let r = 100.0 + f64::from((k * 7919) % 13);
        noise.observe(&pipeline(r, 0.0), r);
    }
    assert_eq!(noise.seasonal(), None);
}

/// Issue 15, item 5: full decisions plan on the interval's mean rate, not on the 5 s sample
/// the state carries (the guard's window).
#[test]
fn planning_uses_the_interval_mean_not_the_short_sample() {
    let sample = pipeline(70.0, 30.0);
    let mut mean = History::planning_on_mean(true);
    mean.observe(&sample, 80.0);
    assert!((mean.planning_rate(&sample) - 80.0).abs() < 1e-9);
    let p = Planning::new(&sample, &mean, 30.0);
    assert!((p.lambda[1] - 80.0).abs() < 1e-9, "{:?}", p.lambda);
    let mut short = History::planning_on_mean(false);
    short.observe(&sample, 80.0);
    assert!((short.planning_rate(&sample) - 70.0).abs() < 1e-9);
}
