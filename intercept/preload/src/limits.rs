//! The launch-path decision: given the mapped segment and a launch's work, grant it now, make it
//! wait for its tokens, or pass it through for a named reason. Safe code; no syscall except the
//! bounded sleeps of a launch that is throttled, no lock, no allocation, no logging.

use sair_shm::bucket::{Bucket, Grant, Poll};
use sair_shm::{Mode, SegmentLayout};
use std::sync::atomic::Ordering::Relaxed;

/// Why a launch went through unthrottled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Bypass {
    /// Neither `SAIR_SHM_PATH` nor `SAIR_SEGMENT` is set: this process is not managed.
    NotConfigured = 1,
    /// The segment file does not exist (yet).
    Missing = 2,
    /// The file is shorter than a segment.
    Truncated = 3,
    /// Wrong magic: not a segment or corrupt.
    BadMagic = 4,
    /// Another layout major version.
    WrongVersion = 5,
    /// The header declares another size.
    SizeMismatch = 6,
    /// The file could not be opened or mapped.
    Unreadable = 7,
    /// The mode field holds a value this build does not know.
    UnknownMode = 8,
    /// A limiting mode with a zero refill rate.
    ZeroRate = 9,
    /// Another thread is attaching the segment right now.
    Attaching = 10,
    /// The file at the path is marked retired (it should have been replaced or removed, or
    /// someone wrote the flag): not attached, tried again shortly, never re-mapped per launch.
    Retired = 11,
}

impl Bypass {
    /// Decodes the value stored in an atomic.
    pub fn from_u8(v: u8) -> Option<Bypass> {
        use Bypass::*;
        [
            NotConfigured,
            Missing,
            Truncated,
            BadMagic,
            WrongVersion,
            SizeMismatch,
            Unreadable,
            UnknownMode,
            ZeroRate,
            Attaching,
            Retired,
        ]
        .into_iter()
        .find(|b| *b as u8 == v)
    }
}

/// What happened to a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Passed through unthrottled and uncounted (fail open).
    Bypass(Bypass),
    /// Mode `off`: counted, not limited.
    Unlimited,
    /// Enough tokens: launched at once.
    Granted,
    /// Recorded by stream capture, not run: not charged (the graph launch is).
    Recorded,
    /// Waited for its tokens.
    Throttled {
        /// Time spent waiting.
        waited_ns: u64,
    },
}

/// Longest single sleep of a throttled launch, so that rate changes and mode changes are seen
/// quickly and the wake-up error stays small.
pub const MAX_SLEEP_NS: u64 = 200_000;
/// Below this estimated wait a throttled launch spins instead of sleeping.
pub const SPIN_BELOW_NS: u64 = 10_000;

/// Tokens charged for `units` (grid blocks × threads per block) at `scale`: at least 1.
#[inline]
pub fn cost_of(units: u64, scale: f64) -> u64 {
    let c = (units as f64 * scale).round();
    if c >= 1.0 {
        if c >= u64::MAX as f64 {
            u64::MAX
        } else {
            c as u64
        }
    } else {
        1
    }
}

/// Decides (and, when throttled, waits) for a launch of `units` on `seg`. `now` reads the
/// shared clock; `pause` waits about the given ns (bounded by [`MAX_SLEEP_NS`]).
#[inline]
pub fn grant(
    seg: &SegmentLayout,
    units: u64,
    now: &impl Fn() -> u64,
    pause: &impl Fn(u64),
) -> Verdict {
    let c = &seg.control;
    let mode = match Mode::from_raw(c.mode.load(Relaxed)) {
        Some(m) => m,
        None => return Verdict::Bypass(Bypass::UnknownMode),
    };
    let cost = cost_of(units, f64::from_bits(c.cost_scale_bits.load(Relaxed)));
    if mode == Mode::Off {
        // Counted (launches and tokens) so that the agent can measure device time per token
        // before it sets a limit; the debt this leaves is forgiven when the mode changes.
        seg.counters.launches.fetch_add(1, Relaxed);
        seg.bucket.consumed.fetch_add(cost, Relaxed);
        return Verdict::Unlimited;
    }
    let rate = c.refill_per_s.load(Relaxed);
    if rate == 0 {
        return Verdict::Bypass(Bypass::ZeroRate);
    }
    let burst = c.burst.load(Relaxed);
    let bucket = Bucket::new(seg);
    match bucket.charge(cost, rate, burst, now) {
        Grant::Now => Verdict::Granted,
        Grant::Wait { ticket } => wait(seg, bucket, ticket, now, pause),
    }
}

#[cold]
fn wait(
    seg: &SegmentLayout,
    bucket: Bucket<'_>,
    ticket: u64,
    now: &impl Fn() -> u64,
    pause: &impl Fn(u64),
) -> Verdict {
    let c = &seg.control;
    let start = now();
    let mut t = start;
    loop {
        // Re-read the parameters every round: a rate or mode change reaches waiting launches.
        let limited = matches!(
            Mode::from_raw(c.mode.load(Relaxed)),
            Some(Mode::Cap | Mode::Share)
        );
        let rate = c.refill_per_s.load(Relaxed);
        if !limited || rate == 0 || c.retired.load(Relaxed) != 0 {
            break;
        }
        match bucket.poll(ticket, t, rate, c.burst.load(Relaxed)) {
            Poll::Ready => break,
            Poll::Pending { wait_ns } => pause(wait_ns.min(MAX_SLEEP_NS)),
        }
        t = now();
    }
    let waited_ns = t.saturating_sub(start);
    bucket.record_throttle(waited_ns);
    Verdict::Throttled { waited_ns }
}

/// The production `pause`: spin for very short waits, otherwise sleep (a `nanosleep` syscall,
/// only ever made by a launch that is being throttled).
pub fn pause(wait_ns: u64) {
    if wait_ns < SPIN_BELOW_NS {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
    } else {
        std::thread::sleep(std::time::Duration::from_nanos(wait_ns.min(MAX_SLEEP_NS)));
    }
}

#[cfg(test)]
mod tests;
