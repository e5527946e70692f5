use super::*;

/// Counts arrivals of `sched` in `[from, to)`.
fn count(sched: &[f64], from: f64, to: f64) -> usize {
    sched.iter().filter(|&&t| t >= from && t < to).count()
}

/// Asserts that the arrivals in each window match the pattern's integral within 5 standard
/// deviations of a Poisson count (plus 1 for tiny windows). The seed is fixed, so this is
/// deterministic; the bound only keeps the test honest about what "the right rate" means.
fn assert_rate_over_time(p: &Pattern, duration: f64, window: f64, seed: u64) {
    p.validate().unwrap();
    let sched = schedule(p, duration, seed);
    let mut from = 0.0;
    while from < duration {
        let to = (from + window).min(duration);
        let expected = p.expected_arrivals(from, to, duration);
        let got = count(&sched, from, to) as f64;
        let tol = 5.0 * expected.sqrt() + 1.0;
        assert!(
            (got - expected).abs() <= tol,
            "{} window [{from}, {to}): got {got}, expected {expected:.1} ± {tol:.1}",
            p.name()
        );
        from = to;
    }
}

#[test]
fn poisson_rate_is_constant() {
    let p = Pattern::Poisson { rate: 500.0 };
    assert_rate_over_time(&p, 20.0, 1.0, 1);
    let sched = schedule(&p, 20.0, 1);
    // Total within 2% of 10 000.
    assert!(
        (sched.len() as f64 - 10_000.0).abs() < 200.0,
        "{}",
        sched.len()
    );
}

#[test]
fn poisson_gaps_are_exponential() {
    let rate = 1000.0;
    let sched = schedule(&Pattern::Poisson { rate }, 30.0, 9);
    let gaps: Vec<f64> = sched.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
    // Exponential: mean = 1/rate, coefficient of variation = 1.
    assert!((mean * rate - 1.0).abs() < 0.03, "mean gap {mean}");
    let cv = var.sqrt() / mean;
    assert!((cv - 1.0).abs() < 0.05, "cv {cv}");
}

#[test]
fn ramp_rises_linearly() {
    let p = Pattern::Ramp {
        rate: 100.0,
        peak: 1100.0,
    };
    assert_eq!(p.rate_at(0.0, 10.0), 100.0);
    assert_eq!(p.rate_at(5.0, 10.0), 600.0);
    assert_eq!(p.rate_at(10.0, 10.0), 1100.0);
    assert_rate_over_time(&p, 10.0, 1.0, 2);
    let sched = schedule(&p, 10.0, 2);
    // First second ≈ 150 arrivals, last second ≈ 1050.
    assert!(count(&sched, 0.0, 1.0) < 250);
    assert!(count(&sched, 9.0, 10.0) > 900);
}

#[test]
fn burst_is_at_peak_only_inside_bursts() {
    let p = Pattern::Burst {
        rate: 100.0,
        peak: 2000.0,
        every_s: 4.0,
        len_s: 1.0,
    };
    // No burst at t = 0: the first one starts at every_s.
    assert_eq!(p.rate_at(0.5, 20.0), 100.0);
    assert_eq!(p.rate_at(4.0, 20.0), 2000.0);
    assert_eq!(p.rate_at(4.999, 20.0), 2000.0);
    assert_eq!(p.rate_at(5.0, 20.0), 100.0);
    assert_eq!(p.rate_at(8.5, 20.0), 2000.0);
    assert_eq!(p.max_rate(3.9), 100.0);
    assert_eq!(p.max_rate(20.0), 2000.0);
    assert_rate_over_time(&p, 20.0, 0.5, 3);
    let sched = schedule(&p, 20.0, 3);
    let inside = count(&sched, 12.0, 13.0) as f64;
    let outside = count(&sched, 13.0, 16.0) as f64 / 3.0;
    assert!(inside > 1800.0 && outside < 150.0, "{inside} {outside}");
}

#[test]
fn sine_moves_between_trough_and_crest() {
    let p = Pattern::Sine {
        rate: 100.0,
        peak: 900.0,
        period_s: 10.0,
    };
    assert!((p.rate_at(0.0, 30.0) - 100.0).abs() < 1e-9);
    assert!((p.rate_at(5.0, 30.0) - 900.0).abs() < 1e-9);
    assert!((p.rate_at(2.5, 30.0) - 500.0).abs() < 1e-9);
    assert!((p.max_rate(2.5) - 500.0).abs() < 1e-9);
    assert_eq!(p.max_rate(30.0), 900.0);
    assert_rate_over_time(&p, 30.0, 1.0, 4);
}

#[test]
fn step_changes_rate_at_the_step() {
    let p = Pattern::Step {
        rate: 200.0,
        peak: 1000.0,
        at_s: 5.0,
    };
    assert_eq!(p.rate_at(4.999, 10.0), 200.0);
    assert_eq!(p.rate_at(5.0, 10.0), 1000.0);
    assert_eq!(p.max_rate(4.0), 200.0);
    assert_rate_over_time(&p, 10.0, 1.0, 5);
}

#[test]
fn trace_is_piecewise_constant_and_speed_compresses_time() {
    let points = parse_trace_csv("second,rps\n0,100\n10,500\n20,50\n").unwrap();
    assert_eq!(points, vec![(0.0, 100.0), (10.0, 500.0), (20.0, 50.0)]);
    let p = Pattern::Trace {
        points: points.clone(),
        speed: 1.0,
    };
    assert_eq!(p.rate_at(9.99, 30.0), 100.0);
    assert_eq!(p.rate_at(10.0, 30.0), 500.0);
    assert_eq!(p.rate_at(25.0, 30.0), 50.0);
    assert_eq!(p.max_rate(5.0), 100.0);
    assert_eq!(p.max_rate(30.0), 500.0);
    assert_rate_over_time(&p, 30.0, 1.0, 6);

    let fast = Pattern::Trace { points, speed: 2.0 };
    // The 10 s point now arrives at 5 s; rates are unchanged.
    assert_eq!(fast.rate_at(4.99, 15.0), 100.0);
    assert_eq!(fast.rate_at(5.0, 15.0), 500.0);
    assert_eq!(fast.rate_at(10.0, 15.0), 50.0);
    assert_rate_over_time(&fast, 15.0, 1.0, 7);
}

#[test]
fn trace_before_first_point_is_silent() {
    let p = Pattern::Trace {
        points: vec![(5.0, 300.0)],
        speed: 1.0,
    };
    let sched = schedule(&p, 10.0, 8);
    assert_eq!(count(&sched, 0.0, 5.0), 0);
    assert!(count(&sched, 5.0, 10.0) > 1300);
}

#[test]
fn same_seed_same_schedule_other_seed_differs() {
    let p = Pattern::Burst {
        rate: 50.0,
        peak: 500.0,
        every_s: 2.0,
        len_s: 0.5,
    };
    let a = schedule(&p, 10.0, 42);
    let b = schedule(&p, 10.0, 42);
    let c = schedule(&p, 10.0, 43);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.windows(2).all(|w| w[0] <= w[1]), "sorted");
    assert!(a.iter().all(|&t| (0.0..10.0).contains(&t)));
}

#[test]
fn invalid_patterns_name_the_parameter() {
    let cases: Vec<(Pattern, &str)> = vec![
        (Pattern::Poisson { rate: -1.0 }, "`rate`"),
        (Pattern::Poisson { rate: f64::NAN }, "`rate`"),
        (
            Pattern::Ramp {
                rate: 10.0,
                peak: 5.0,
            },
            "`peak`",
        ),
        (
            Pattern::Burst {
                rate: 1.0,
                peak: 2.0,
                every_s: 0.0,
                len_s: 1.0,
            },
            "`burst-every`",
        ),
        (
            Pattern::Burst {
                rate: 1.0,
                peak: 2.0,
                every_s: 1.0,
                len_s: 2.0,
            },
            "`burst-len`",
        ),
        (
            Pattern::Sine {
                rate: 1.0,
                peak: 2.0,
                period_s: -3.0,
            },
            "`period`",
        ),
        (
            Pattern::Step {
                rate: 1.0,
                peak: 2.0,
                at_s: f64::INFINITY,
            },
            "`step-at`",
        ),
        (
            Pattern::Trace {
                points: vec![(0.0, 1.0)],
                speed: 0.0,
            },
            "`speed`",
        ),
        (
            Pattern::Trace {
                points: vec![],
                speed: 1.0,
            },
            "trace",
        ),
        (
            Pattern::Trace {
                points: vec![(2.0, 1.0), (1.0, 1.0)],
                speed: 1.0,
            },
            "trace point 1",
        ),
    ];
    for (p, needle) in cases {
        let err = p.validate().unwrap_err().to_string();
        assert!(err.contains(needle), "{p:?}: {err:?} lacks {needle:?}");
        assert!(schedule(&p, 10.0, 1).is_empty(), "{p:?} scheduled");
    }
    assert!(matches!(
        Pattern::Ramp {
            rate: 10.0,
            peak: 5.0
        }
        .validate(),
        Err(PatternError::PeakBelowRate { .. })
    ));
}

#[test]
fn bad_trace_lines_are_reported_with_line_numbers() {
    assert_eq!(parse_trace_csv(""), Err(PatternError::EmptyTrace));
    assert_eq!(
        parse_trace_csv("second,rps\n# nothing\n"),
        Err(PatternError::EmptyTrace)
    );
    let cases = [
        ("0,1\n1,x\n", 2, "rps"),
        ("0,1\n\n1,2,3\n", 3, "2 fields"),
        ("0,1\n-1,2\n", 2, "second"),
        ("0,1\n1,-2\n", 2, "rps"),
        ("0,1\n0,2\n", 2, "increase"),
        ("second,rps\nfoo,1\n", 2, "second"),
    ];
    for (text, line, needle) in cases {
        match parse_trace_csv(text) {
            Err(PatternError::BadTraceLine { line: l, reason }) => {
                assert_eq!(l, line, "{text:?}");
                assert!(reason.contains(needle), "{text:?}: {reason}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    // Whitespace, comments and CRLF are accepted.
    assert_eq!(
        parse_trace_csv("# t,rps\r\n 0 , 10 \r\n\r\n2.5,20\r\n").unwrap(),
        vec![(0.0, 10.0), (2.5, 20.0)]
    );
}

#[test]
fn zero_rate_or_duration_gives_an_empty_schedule() {
    assert!(schedule(&Pattern::Poisson { rate: 0.0 }, 10.0, 1).is_empty());
    assert!(schedule(&Pattern::Poisson { rate: 10.0 }, 0.0, 1).is_empty());
    assert!(schedule(&Pattern::Poisson { rate: 10.0 }, f64::NAN, 1).is_empty());
}

#[test]
fn patterns_round_trip_through_serde() {
    let patterns = vec![
        Pattern::Poisson { rate: 1.0 },
        Pattern::Ramp {
            rate: 1.0,
            peak: 2.0,
        },
        Pattern::Burst {
            rate: 1.0,
            peak: 2.0,
            every_s: 3.0,
            len_s: 1.0,
        },
        Pattern::Sine {
            rate: 1.0,
            peak: 2.0,
            period_s: 60.0,
        },
        Pattern::Step {
            rate: 1.0,
            peak: 2.0,
            at_s: 5.0,
        },
        Pattern::Trace {
            points: vec![(0.0, 1.0), (1.0, 2.0)],
            speed: 1.5,
        },
    ];
    for p in patterns {
        let json = serde_json::to_string(&p).unwrap();
        assert!(
            json.contains(&format!("\"kind\":\"{}\"", p.name())),
            "{json}"
        );
        let back: Pattern = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }
}

mod properties {
    use super::super::*;
    use proptest::prelude::*;

    fn any_pattern() -> impl Strategy<Value = Pattern> {
        let rp = (0.0..500.0f64, 0.0..500.0f64).prop_map(|(a, b)| (a.min(b), a.max(b)));
        prop_oneof![
            (0.0..500.0f64).prop_map(|rate| Pattern::Poisson { rate }),
            rp.clone()
                .prop_map(|(rate, peak)| Pattern::Ramp { rate, peak }),
            (rp.clone(), 0.1..5.0f64, 0.01..1.0f64).prop_map(|((rate, peak), every_s, f)| {
                Pattern::Burst {
                    rate,
                    peak,
                    every_s,
                    len_s: every_s * f,
                }
            }),
            (rp.clone(), 0.1..20.0f64).prop_map(|((rate, peak), period_s)| Pattern::Sine {
                rate,
                peak,
                period_s
            }),
            (rp, 0.0..10.0f64).prop_map(|((rate, peak), at_s)| Pattern::Step { rate, peak, at_s }),
            (prop::collection::vec(0.0..500.0f64, 1..8), 0.1..4.0f64).prop_map(|(rps, speed)| {
                Pattern::Trace {
                    points: rps
                        .into_iter()
                        .enumerate()
                        .map(|(i, r)| (i as f64, r))
                        .collect(),
                    speed,
                }
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Valid patterns give sorted, in-range, reproducible schedules, and no rate exceeds
        /// the thinning bound.
        #[test]
        fn schedules_are_sorted_in_range_and_bounded(p in any_pattern(), d in 0.1..5.0f64, seed: u64) {
            prop_assert!(p.validate().is_ok());
            let s = schedule(&p, d, seed);
            prop_assert!(s.windows(2).all(|w| w[0] <= w[1]));
            prop_assert!(s.iter().all(|&t| (0.0..d).contains(&t)));
            prop_assert_eq!(&s, &schedule(&p, d, seed));
            let max = p.max_rate(d);
            for i in 0..=100 {
                let t = d * i as f64 / 100.0;
                let r = p.rate_at(t, d);
                prop_assert!(r >= 0.0 && r <= max + 1e-9, "rate {} > max {} at {}", r, max, t);
            }
        }
    }
}
