use super::*;

#[test]
fn rho_maps_to_device_time() {
    // 1 token = 10 ns of device time; ρ = 0.25 -> 25 ms of device time per s = 2.5e6 tokens/s.
    let p = bucket_params_for_share(0.25, 10.0, 5_000_000, Mode::Cap).unwrap();
    assert_eq!(p.refill_per_s, 25_000_000);
    assert_eq!(p.burst, 500_000);
    assert_eq!(p.target_share, 0.25);
}

#[test]
fn rejects_bad_input() {
    assert!(bucket_params_for_share(0.0, 10.0, 1, Mode::Cap).is_err());
    assert!(bucket_params_for_share(1.5, 10.0, 1, Mode::Cap).is_err());
    assert!(bucket_params_for_share(f64::NAN, 10.0, 1, Mode::Cap).is_err());
    assert!(bucket_params_for_share(0.5, 0.0, 1, Mode::Cap).is_err());
}

#[test]
fn estimate() {
    assert_eq!(estimate_ns_per_token(1_000, 10), Some(100.0));
    assert_eq!(estimate_ns_per_token(0, 10), None);
    assert_eq!(estimate_ns_per_token(10, 0), None);
}
