//! The clock every process of a node agrees on.
//!
//! `CLOCK_MONOTONIC` is system-wide on Linux: every process reads the same time line, so a
//! timestamp written into a segment by one process means the same instant to another. glibc and
//! musl serve `clock_gettime(CLOCK_MONOTONIC)` from the vDSO (a user-space read of a page the
//! kernel keeps up to date), so the launch path makes no real system call when it reads it.

/// Nanoseconds on `CLOCK_MONOTONIC` (system-wide, vDSO-served).
#[allow(unsafe_code)]
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call and
    // CLOCK_MONOTONIC is always supported on Linux, so the call only writes `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}
