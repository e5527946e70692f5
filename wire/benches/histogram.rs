//! Cost of `LatencyHistogram`: record, merge, quantile, encode and decode, and the encoded
//! size, for a window-sized histogram (latencies log-normal around 20 ms, about 3 decades)
//! and a full one (every bucket).
//!
//! A plain harness (`harness = false`, no criterion): each case runs a fixed number of
//! iterations after a warm-up, 7 times, and prints the fastest and the median run in ns per
//! operation, with `std::hint::black_box` keeping the work. On a shared machine the fastest
//! run is the figure to compare (other load only ever adds time). Numbers are for comparison
//! on one machine.
//!
//! Run: `cargo bench -p sair-wire --bench histogram`

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use sair_wire::LatencyHistogram;
use sair_wire::histogram::BUCKETS;

/// A deterministic pseudo-random latency: log-normal-ish around 20 ms (xorshift, no deps).
fn samples(n: usize) -> Vec<f64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            let mut u = 0.0;
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                u += (x >> 11) as f64 / (1u64 << 53) as f64;
            }
            // Sum of 4 uniforms ≈ normal(2, 0.58); spread over ±1.5 decades around 20 ms.
            0.020 * 10f64.powf((u - 2.0) * 1.3)
        })
        .collect()
}

fn full() -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    for index in 0..=BUCKETS {
        let (lo, hi) = LatencyHistogram::bucket_bounds(index);
        let mid = if hi.is_finite() {
            (lo * hi).sqrt()
        } else {
            lo * 2.0
        };
        h.record_n(mid, 1 << 33);
    }
    h
}

/// Fastest and median ns per operation over 7 runs of `iters` calls of `f`.
fn time(name: &str, iters: u64, mut f: impl FnMut()) {
    for _ in 0..iters / 10 + 1 {
        f();
    }
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "{name:<40} min {:>9.1} ns/op   median {:>9.1} ns/op",
        runs[0], runs[3]
    );
}

fn main() {
    let config = bincode::config::standard();
    let xs = samples(10_000);
    let mut window = LatencyHistogram::new();
    for &x in &xs {
        window.record(x);
    }
    let full = full();
    let window_bytes = bincode::encode_to_vec(&window, config).unwrap();
    let full_bytes = bincode::encode_to_vec(&full, config).unwrap();
    println!(
        "window histogram: {} samples, {} buckets held, {} bytes encoded",
        window.count(),
        window.buckets().count(),
        window_bytes.len()
    );
    println!(
        "full histogram: {} buckets, {} bytes encoded (bound {})",
        full.buckets().count(),
        full_bytes.len(),
        sair_wire::histogram::MAX_ENCODED_BYTES
    );

    let mut h = window.clone();
    let mut i = 0usize;
    time("record (into a window histogram)", 2_000_000, || {
        h.record(black_box(xs[i % xs.len()]));
        i += 1;
    });
    time("merge window into window", 200_000, || {
        let mut a = window.clone();
        a.merge(black_box(&window));
        black_box(a);
    });
    time("clone window (subtract from merge)", 200_000, || {
        black_box(window.clone());
    });
    time("merge full into full", 50_000, || {
        let mut a = full.clone();
        a.merge(black_box(&full));
        black_box(a);
    });
    time("quantile(0.99) of window", 1_000_000, || {
        black_box(window.quantile(black_box(0.99)));
    });
    time("encode window", 200_000, || {
        black_box(bincode::encode_to_vec(black_box(&window), config).unwrap());
    });
    time("decode window", 200_000, || {
        let (h, _): (LatencyHistogram, usize) =
            bincode::decode_from_slice(black_box(&window_bytes), config).unwrap();
        black_box(h);
    });
    time("encode full", 50_000, || {
        black_box(bincode::encode_to_vec(black_box(&full), config).unwrap());
    });
    time("decode full", 50_000, || {
        let (h, _): (LatencyHistogram, usize) =
            bincode::decode_from_slice(black_box(&full_bytes), config).unwrap();
        black_box(h);
    });
}
