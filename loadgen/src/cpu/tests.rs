use super::*;

#[test]
fn burn_consumes_the_requested_cpu_time() {
    let b = Burner::calibrate();
    assert!(b.chunk_iters > 0 && b.iters_per_ms > 0.0, "{b:?}");
    let t0 = thread_cpu_ns();
    b.burn(30.0);
    let used_ms = (thread_cpu_ns() - t0) as f64 / 1e6;
    // At most one chunk (~20 µs, more if the machine is slower than at calibration) over.
    assert!((30.0..32.0).contains(&used_ms), "used {used_ms} ms");
}

#[test]
fn zero_and_invalid_durations_do_nothing() {
    let b = Burner::calibrate();
    let t0 = thread_cpu_ns();
    b.burn(0.0);
    b.burn(-1.0);
    b.burn(f64::NAN);
    assert!(thread_cpu_ns() - t0 < 1_000_000);
}
