use super::*;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1e-12)
}

#[test]
fn erlang_c_matches_known_values() {
    // M/M/1: P(wait) = ρ.
    assert!(close(erlang_c(1, 0.5), 0.5, 1e-9));
    // M/M/2 with a = 1: C = 1/3.
    assert!(close(erlang_c(2, 1.0), 1.0 / 3.0, 1e-9));
    // Textbook: c = 5, a = 4 → C ≈ 0.5541.
    assert!(close(erlang_c(5, 4.0), 0.5541, 1e-3));
    assert_eq!(erlang_c(3, 3.0), 1.0);
    assert_eq!(erlang_c(3, 0.0), 0.0);
}

#[test]
fn mm1_p99_wait_is_exact() {
    // M/M/1, λ = 8, μ = 10: P(W > t) = 0.8·e^{−2t} → W99 = ln(80)/2.
    let p = predict_stage(&StageLoad {
        lambda: 8.0,
        service_mean_s: 0.1,
        service_p99_s: 0.1 * 100f64.ln(),
        cs2: 1.0,
        ca2: 1.0,
        servers: 1,
        backlog: 0.0,
        horizon_s: 30.0,
    });
    assert!(close(p.wait_p99_s, 80f64.ln() / 2.0, 1e-9), "{p:?}");
    // Mean wait of M/M/1: ρ/(μ − λ) = 0.4.
    assert!(close(p.wait_mean_s, 0.4, 1e-9));
    assert!(close(p.utilisation, 0.8, 1e-12));
}

#[test]
fn deterministic_service_halves_the_wait() {
    let base = StageLoad {
        lambda: 30.0,
        service_mean_s: 0.1,
        service_p99_s: 0.1,
        cs2: 1.0,
        ca2: 1.0,
        servers: 4,
        backlog: 0.0,
        horizon_s: 30.0,
    };
    let exp = predict_stage(&base);
    let det = predict_stage(&StageLoad { cs2: 0.0, ..base });
    assert!(close(det.wait_mean_s, exp.wait_mean_s / 2.0, 1e-9));
}

#[test]
fn prediction_is_monotone_in_load_through_overload() {
    let mut last = 0.0;
    for i in 1..200 {
        let lambda = f64::from(i) * 0.2;
        let p = predict_stage(&StageLoad {
            lambda,
            service_mean_s: 0.5,
            service_p99_s: 1.0,
            cs2: 0.5,
            ca2: 1.0,
            servers: 8,
            backlog: 0.0,
            horizon_s: 30.0,
        });
        assert!(
            p.wait_p99_s >= last - 1e-9,
            "λ={lambda}: {} < {last}",
            p.wait_p99_s
        );
        last = p.wait_p99_s;
    }
    assert!(
        last > 30.0,
        "overload must show up as a long wait, got {last}"
    );
}

#[test]
fn cv2_from_lognormal_percentiles() {
    // σ = 0.5 → p99/p50 = e^{0.5·2.326}; cv² = e^{0.25} − 1.
    let p50 = 1.0;
    let p99 = (0.5f64 * 2.326_347_874).exp();
    assert!(close(service_cv2(p50, p99), 0.25f64.exp_m1(), 1e-6));
    assert_eq!(service_cv2(0.0, 1.0), 1.0);
}

#[test]
fn tandem_lies_between_max_and_sum() {
    let s = |m: f64, p: f64| StagePrediction {
        utilisation: 0.5,
        wait_mean_s: 0.0,
        wait_p99_s: 0.0,
        sojourn_mean_s: m,
        sojourn_p99_s: p,
    };
    let stages = [s(0.01, 0.03), s(0.05, 0.2), s(0.01, 0.02)];
    let t = tandem_p99(&stages);
    assert!((0.2..=0.25).contains(&t), "{t}");
}
