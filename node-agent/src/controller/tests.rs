use super::*;
use proptest::prelude::*;

/// A GPU stage as the controller sees it: one segment whose process would use `demand` of the
/// GPU if unthrottled, on a GPU where one token costs `npt` ns of device time. The reading is
/// `distort(true share)`, quantised to NVML's 1 %.
struct Plant {
    npt: f64,
    demand: f64,
    /// Exponent applied to the true share before reporting (a non-linear meter); 1 = exact.
    distort: f64,
}

impl Plant {
    fn observe(&self, target: f64, rate: u64, window: Duration) -> Observation {
        let allowed = rate as f64 * self.npt / 1e9;
        let share = allowed.min(self.demand).min(1.0);
        let reported = (share.powf(self.distort) * 100.0).round() / 100.0;
        let tokens = (share * window.as_nanos() as f64 / self.npt).round() as u64;
        Observation {
            target,
            measured: Some(reported),
            window,
            tokens,
            throttled_launches: u64::from(allowed < self.demand),
            rate,
        }
    }

    fn reported(&self, rate: u64) -> f64 {
        let allowed = rate as f64 * self.npt / 1e9;
        allowed.min(self.demand).min(1.0).powf(self.distort)
    }
}

/// Runs `steps` control periods; returns the reported share after each.
fn simulate(
    plant: &Plant,
    ctl: &mut Controller,
    target: f64,
    rate: &mut u64,
    period: Duration,
    steps: usize,
) -> Vec<f64> {
    let mut out = Vec::new();
    for _ in 0..steps {
        let obs = plant.observe(target, *rate, period);
        if let RateDecision::Set { rate: r } = ctl.step(&obs) {
            *rate = r;
        }
        out.push(plant.reported(*rate));
    }
    out
}

/// The agent's initial guess, off by orders of magnitude on most simulated GPUs.
fn initial_rate(target: f64) -> u64 {
    (target * 1e9 / 8.0) as u64
}

#[test]
fn probes_then_calibrates_on_an_exact_meter() {
    let plant = Plant {
        npt: 0.01,
        demand: 1.0,
        distort: 1.0,
    };
    let mut ctl = Controller::new(ControllerConfig::default());
    let mut rate = initial_rate(0.3);
    // The initial guess is 800x too low: the share is invisible to a 1 % meter, so the rate
    // is probed upwards, then calibrated in one jump.
    let shares = simulate(
        &plant,
        &mut ctl,
        0.3,
        &mut rate,
        Duration::from_millis(100),
        6,
    );
    assert!((shares[4] - 0.3).abs() < 0.01, "{shares:?}");
    let npt = ctl.ns_per_token().unwrap();
    assert!((npt / 0.01 - 1.0).abs() < 0.05, "estimated {npt}");
    // Steady: no more writes.
    let obs = plant.observe(0.3, rate, Duration::from_millis(100));
    assert_eq!(ctl.step(&obs), RateDecision::Keep(Hold::OnTarget));
}

#[test]
fn idle_and_uncalibrated_segments_are_left_alone() {
    let mut ctl = Controller::new(ControllerConfig::default());
    let obs = Observation {
        target: 0.5,
        measured: Some(0.0),
        window: Duration::from_millis(100),
        tokens: 0,
        throttled_launches: 0,
        rate: 1000,
    };
    assert_eq!(ctl.step(&obs), RateDecision::Keep(Hold::Idle));
    let obs = Observation {
        measured: None,
        tokens: 10,
        ..obs
    };
    assert_eq!(ctl.step(&obs), RateDecision::Keep(Hold::Idle));
    assert_eq!(ctl.ns_per_token(), None);
}

#[test]
fn demand_limited_segment_does_not_wind_up() {
    // The process wants 20 % but may have 60 %: the rate must not grow without bound.
    let plant = Plant {
        npt: 5.0,
        demand: 0.2,
        distort: 1.0,
    };
    let mut ctl = Controller::new(ControllerConfig::default());
    let mut rate = initial_rate(0.6);
    simulate(
        &plant,
        &mut ctl,
        0.6,
        &mut rate,
        Duration::from_millis(100),
        200,
    );
    let ff = 0.6 * 1e9 / 5.0;
    assert!(
        (rate as f64 / ff - 1.0).abs() < 0.05,
        "rate {rate} wound away from the calibrated {ff}"
    );
    // When demand rises, the share comes back to target quickly, not after a burst of windup.
    let busy = Plant {
        demand: 1.0,
        ..plant
    };
    let shares = simulate(
        &busy,
        &mut ctl,
        0.6,
        &mut rate,
        Duration::from_millis(100),
        30,
    );
    assert!((shares[0] - 0.6).abs() < 0.02, "{shares:?}");
    assert!((shares.last().unwrap() - 0.6).abs() < 0.02, "{shares:?}");
}

#[test]
fn windows_with_a_stalled_process_do_not_move_the_rate() {
    // A process descheduled for part of some windows (demand 0.5–1.0 of what ρ allows): the
    // rate must stay at the calibrated value instead of chasing the dips.
    let npt = 7.8;
    let mut ctl = Controller::new(ControllerConfig::default());
    let mut rate = initial_rate(0.9);
    let period = Duration::from_millis(100);
    let mut rates = Vec::new();
    for k in 0..100u32 {
        let demand = if k % 7 == 3 { 0.6 } else { 1.0 };
        let plant = Plant {
            npt,
            demand,
            distort: 1.0,
        };
        let obs = plant.observe(0.9, rate, period);
        if let RateDecision::Set { rate: r } = ctl.step(&obs) {
            rate = r;
        }
        rates.push(rate);
    }
    let ff = 0.9 * 1e9 / npt;
    for r in &rates[10..] {
        assert!(
            (*r as f64 / ff - 1.0).abs() < 0.03,
            "{r} vs {ff}: {rates:?}"
        );
    }
}

#[test]
fn resumed_controller_does_not_jump() {
    let mut ctl = Controller::resume(ControllerConfig::default(), Some(10.0));
    let plant = Plant {
        npt: 10.0,
        demand: 1.0,
        distort: 1.0,
    };
    let rate = (0.4 * 1e9 / 10.0) as u64;
    let obs = plant.observe(0.4, rate, Duration::from_millis(100));
    assert_eq!(ctl.step(&obs), RateDecision::Keep(Hold::OnTarget));
}

#[test]
fn burst_is_device_time_at_current_calibration() {
    // 1e6 tokens/s for ρ = 0.5 → 500 ns per token; 5 ms of device time is 10 000 tokens.
    assert_eq!(burst_for(1_000_000, 0.5, 5_000_000), 10_000);
    assert_eq!(burst_for(1, 1.0, 1), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Converges on GPUs whose token cost differs by eight orders of magnitude, with a
    /// non-linear meter, and settles within 3 s at 100–200 ms periods.
    #[test]
    fn settles_within_three_seconds_on_any_gpu(
        log_npt in -4.0f64..4.0,
        target in 0.05f64..1.0,
        distort in 0.85f64..1.15,
        period_ms in 100u64..=200,
    ) {
        let plant = Plant { npt: 10f64.powf(log_npt), demand: 1.0, distort };
        let mut ctl = Controller::new(ControllerConfig::default());
        let mut rate = initial_rate(target);
        let period = Duration::from_millis(period_ms);
        let steps = (3000 / period_ms) as usize;
        let shares = simulate(&plant, &mut ctl, target, &mut rate, period, steps + 20);
        // Settled: from 3 s on, every reading is within 2.5 points (NVML rounds to 1 %).
        for (i, s) in shares.iter().enumerate().skip(steps) {
            prop_assert!((s - target).abs() < 0.025,
                "step {i}: share {s} target {target} npt {} shares {shares:?}", plant.npt);
        }
    }

    /// A change of target on a calibrated segment settles within 3 s as well.
    #[test]
    fn follows_a_target_change(
        log_npt in -4.0f64..4.0,
        from in 0.05f64..1.0,
        to in 0.05f64..1.0,
    ) {
        let plant = Plant { npt: 10f64.powf(log_npt), demand: 1.0, distort: 1.0 };
        let mut ctl = Controller::new(ControllerConfig::default());
        let mut rate = initial_rate(from);
        let period = Duration::from_millis(150);
        simulate(&plant, &mut ctl, from, &mut rate, period, 20);
        // set-rate rescales the rate in the segment by to/from; the loop corrects the rest.
        rate = ((rate as f64) * to / from).round().max(1.0) as u64;
        let shares = simulate(&plant, &mut ctl, to, &mut rate, period, 40);
        for s in shares.iter().skip(20) {
            prop_assert!((s - to).abs() < 0.025, "{shares:?}");
        }
    }
}
