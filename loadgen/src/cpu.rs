//! The CPU work of `sair-stage`: a real compute loop (integer hashing, kept alive with
//! `black_box`) that runs until the calling thread has consumed the requested CPU time.
//!
//! Calibration at start-up measures how many loop iterations take about 20 µs of thread CPU
//! time; the loop then checks the thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`) once per chunk
//! of that size. Measuring CPU time rather than counting a fixed number of iterations keeps the
//! work exact when the thread is preempted: on a busy machine the wall-clock service time grows
//! (as a real model server's would) while the CPU consumed stays `--cpu-ms`.

use nix::time::{ClockId, clock_gettime};
use std::hint::black_box;

/// Target CPU time of one chunk between clock reads.
const CHUNK_NS: u64 = 20_000;

/// Calling thread's CPU time in nanoseconds (0 if the clock is unavailable, which Linux never
/// reports for this clock).
pub fn thread_cpu_ns() -> u64 {
    match clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID) {
        Ok(t) => (t.tv_sec() as u64) * 1_000_000_000 + t.tv_nsec() as u64,
        Err(_) => 0,
    }
}

fn work(iters: u64, mut x: u64) -> u64 {
    for i in 0..iters {
        // xorshift64* step mixed with the counter: cheap, not vectorisable away.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x = x.wrapping_mul(0x2545_F491_4F6C_DD1D).wrapping_add(i);
    }
    black_box(x)
}

/// A calibrated CPU burner.
#[derive(Debug, Clone, Copy)]
pub struct Burner {
    /// Iterations per chunk (about 20 µs of CPU time).
    pub chunk_iters: u64,
    /// Measured iterations per millisecond of CPU time.
    pub iters_per_ms: f64,
}

impl Burner {
    /// Calibrates on the calling thread (takes about 50 ms): the fastest of several timed
    /// runs, so a preemption during calibration cannot make chunks too small.
    pub fn calibrate() -> Burner {
        const N: u64 = 200_000;
        let mut best = u64::MAX;
        let mut x = 1;
        for _ in 0..15 {
            let t0 = thread_cpu_ns();
            x = work(N, x);
            best = best.min(thread_cpu_ns().saturating_sub(t0).max(1));
        }
        black_box(x);
        let iters_per_ns = N as f64 / best as f64;
        Burner {
            chunk_iters: ((iters_per_ns * CHUNK_NS as f64) as u64).max(1),
            iters_per_ms: iters_per_ns * 1e6,
        }
    }

    /// Computes until the calling thread has used `ms` milliseconds of CPU time.
    pub fn burn(&self, ms: f64) {
        if ms <= 0.0 || !ms.is_finite() {
            return;
        }
        let target = (ms * 1e6) as u64;
        let start = thread_cpu_ns();
        let mut x = start | 1;
        while thread_cpu_ns().saturating_sub(start) < target {
            x = work(self.chunk_iters, x);
        }
        black_box(x);
    }
}

#[cfg(test)]
mod tests;
