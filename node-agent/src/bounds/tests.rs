use super::*;

#[test]
fn the_burst_is_bounded_in_device_time_whatever_the_share_and_option() {
    let max_ns = BURST_RANGE.end().as_nanos() as f64;
    for rate in [1u64, 1_000, 125_000, 1_000_000_000, MAX_REFILL_PER_S] {
        for target in [MIN_SHARE, 0.01, 0.3, 1.0] {
            for burst_ns in [0, 1, 5_000_000, 1_000_000_000, u64::MAX] {
                let burst = burst_tokens(rate, target, burst_ns);
                assert!(burst >= 1);
                let ns = burst_device_ns(burst, rate, target).unwrap();
                let npt = target * 1e9 / rate as f64;
                assert!(
                    ns <= max_ns * 1.001 + npt,
                    "rate {rate}, ρ {target}, burst option {burst_ns} ns: {burst} tokens = {ns} ns"
                );
            }
        }
    }
}

#[test]
fn tiny_shares_are_refused_not_clamped() {
    for tiny in [1e-12, 1e-6, MIN_SHARE / 2.0] {
        assert!(
            matches!(
                check_share("a", tiny),
                Err(CommitError::BelowMinimum { .. })
            ),
            "{tiny}"
        );
    }
    for bad in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(
                check_share("a", bad),
                Err(CommitError::RateOutOfRange { .. })
            ),
            "{bad}"
        );
    }
    check_share("a", MIN_SHARE).unwrap();
    check_share("a", 1.0).unwrap();
}

#[test]
fn burst_gpu_and_sample_bounds() {
    assert!(check_burst(Duration::ZERO).is_err());
    assert!(check_burst(Duration::from_micros(u64::MAX)).is_err());
    assert!(check_burst(Duration::from_millis(101)).is_err());
    check_burst(Duration::from_millis(5)).unwrap();
    assert!(check_gpu(MAX_GPUS).is_err());
    check_gpu(0).unwrap();
    assert!(check_sample(Duration::from_millis(100_000_000_000)).is_err());
    check_sample(Duration::from_millis(250)).unwrap();
}
