//! The segment's bytes: a `#[repr(C)]` struct of atomics, versioned, with reserved space.
//!
//! ```text
//! offset size  block     field
//!      0    8  header    magic            b"SAIRSHM\0" as little-endian u64
//!      8    2  header    version_major    readers refuse any other major
//!     10    2  header    version_minor    additive changes only (fields taken from reserved)
//!     12    4  header    header_flags     0
//!     16    8  header    total_size       size_of::<SegmentLayout>() = 512
//!     24   40  header    reserved
//!     64    8  control   generation       bumped by the agent after every parameter change
//!     72    4  control   mode             0 off, 1 cap, 2 share
//!     76    4  control   gpu_index
//!     80    8  control   refill_per_s     tokens per second
//!     88    8  control   burst            tokens
//!     96    8  control   cost_scale       f64 bits: tokens per (block × thread)
//!    104    8  control   target_share     f64 bits: ρ the agent aims for (informational)
//!    112    4  control   retired          1 = replaced by a new file: re-open it
//!    116   12  control   reserved
//!    128    8  bucket    credited         tokens ever credited (refills), capped at consumed + burst
//!    136    8  bucket    consumed         tokens ever taken (= tokens consumed counter)
//!    144    8  bucket    last_refill_ns   CLOCK_MONOTONIC time up to which credit was granted
//!    152    8  bucket    reserved
//!    160    8  counters  launches
//!    168    8  counters  throttled_launches
//!    176    8  counters  throttled_ns
//!    184    8  counters  reserved
//!    192  256  pids      attached pids    64 × u32, 0 = free slot
//!    448   64  tail      reserved
//! ```
//!
//! The control block is written by the agent only and read with relaxed loads on every launch;
//! the bucket and counters share one cache line written by every launching process; the pid
//! table is written when a process attaches (not on the launch path) and read by the agent to
//! map NVML per-process utilisation to segments.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};

/// `b"SAIRSHM\0"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SAIRSHM\0");
/// Readers refuse a segment with another major version.
pub const VERSION_MAJOR: u16 = 1;
/// Minor versions only add fields carved out of reserved bytes; readers accept any minor.
pub const VERSION_MINOR: u16 = 0;
/// Size of a segment file in bytes.
pub const SEGMENT_SIZE: usize = 512;
/// Number of pid slots in a segment.
pub const PID_SLOTS: usize = 64;

/// What the library does with launches of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Mode {
    /// No limit: launches pass through, counted.
    Off = 0,
    /// Never more than the refill rate, even on an idle GPU.
    Cap = 1,
    /// Work-conserving share. The library enforces the refill rate exactly as in `Cap`; work
    /// conservation is the agent's job (it raises the rate of a `Share` segment while the
    /// other segments of its GPU leave time unused). See docs/gpu.md.
    Share = 2,
}

impl Mode {
    /// Decodes the raw field; `None` for a value this version does not know.
    pub fn from_raw(raw: u32) -> Option<Mode> {
        match raw {
            0 => Some(Mode::Off),
            1 => Some(Mode::Cap),
            2 => Some(Mode::Share),
            _ => None,
        }
    }

    /// The lower-case name used on command lines (`off`, `cap`, `share`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Cap => "cap",
            Mode::Share => "share",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Mode::Off),
            "cap" => Ok(Mode::Cap),
            "share" => Ok(Mode::Share),
            other => Err(format!(
                "unknown mode {other:?}: expected off, cap or share"
            )),
        }
    }
}

/// Bucket parameters the agent writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Limit mode.
    pub mode: Mode,
    /// Tokens credited per second.
    pub refill_per_s: u64,
    /// Largest number of tokens the bucket holds after an idle period.
    pub burst: u64,
    /// Tokens charged per (grid block × thread per block).
    pub cost_scale: f64,
    /// The share ρ the agent aims for (informational for the library).
    pub target_share: f64,
}

impl Default for Params {
    /// `cap` at 1 000 000 tokens/s, burst 100 000 tokens, cost scale 1, ρ = 1.
    fn default() -> Self {
        Params {
            mode: Mode::Cap,
            refill_per_s: 1_000_000,
            burst: 100_000,
            cost_scale: 1.0,
            target_share: 1.0,
        }
    }
}

/// The control block (and header flags) as stored, undecoded: what a validator looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControlSnapshot {
    /// Parameter generation.
    pub generation: u64,
    /// The mode field; [`Mode::from_raw`] says whether it is known.
    pub mode_raw: u32,
    /// GPU index.
    pub gpu_index: u32,
    /// Tokens per second.
    pub refill_per_s: u64,
    /// Bucket depth in tokens.
    pub burst: u64,
    /// Tokens per (block × thread).
    pub cost_scale: f64,
    /// Target share ρ.
    pub target_share: f64,
    /// Retired flag (0 or 1).
    pub retired: u32,
    /// Header flags (0 in this version).
    pub header_flags: u32,
}

impl ControlSnapshot {
    /// The decoded parameters, or `None` for an unknown mode.
    pub fn params(&self) -> Option<Params> {
        Some(Params {
            mode: Mode::from_raw(self.mode_raw)?,
            refill_per_s: self.refill_per_s,
            burst: self.burst,
            cost_scale: self.cost_scale,
            target_share: self.target_share,
        })
    }
}

/// Snapshot of a segment's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Launches seen (charged, throttled or not).
    pub launches: u64,
    /// Launches that had to wait for tokens.
    pub throttled_launches: u64,
    /// Total time launches spent waiting, in nanoseconds.
    pub throttled_ns: u64,
    /// Tokens taken from the bucket.
    pub tokens_consumed: u64,
}

/// Segment header: identifies the file and its layout.
#[derive(Debug)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// [`VERSION_MAJOR`].
    pub version_major: std::sync::atomic::AtomicU16,
    /// [`VERSION_MINOR`].
    pub version_minor: std::sync::atomic::AtomicU16,
    /// Always 0 in this version.
    pub header_flags: AtomicU32,
    /// [`SEGMENT_SIZE`].
    pub total_size: AtomicU64,
    /// Zero; reserved for later minor versions.
    pub reserved: [u8; 40],
}

/// Parameters written by the agent, read on every launch.
#[derive(Debug)]
#[repr(C)]
pub struct Control {
    /// Bumped (after the other fields) on every parameter change.
    pub generation: AtomicU64,
    /// [`Mode`] as `u32`.
    pub mode: AtomicU32,
    /// GPU this segment's processes run on.
    pub gpu_index: AtomicU32,
    /// Tokens per second.
    pub refill_per_s: AtomicU64,
    /// Bucket depth in tokens.
    pub burst: AtomicU64,
    /// `f64::to_bits` of tokens per (block × thread).
    pub cost_scale_bits: AtomicU64,
    /// `f64::to_bits` of the target share ρ.
    pub target_share_bits: AtomicU64,
    /// 1 once the agent replaced the file: processes should re-open the path.
    pub retired: AtomicU32,
    /// Zero; reserved.
    pub reserved: [u8; 12],
}

/// Token bucket state, written by every launching process.
#[derive(Debug)]
#[repr(C)]
pub struct BucketState {
    /// Tokens ever credited. Never above `consumed + burst` after a refill.
    pub credited: AtomicU64,
    /// Tokens ever taken; a launch's ticket is the value after its `fetch_add`.
    pub consumed: AtomicU64,
    /// `CLOCK_MONOTONIC` ns up to which credit has been granted.
    pub last_refill_ns: AtomicU64,
    /// Zero; reserved.
    pub reserved: AtomicI64,
}

/// Counters, in the same cache line as the bucket.
#[derive(Debug)]
#[repr(C)]
pub struct CounterBlock {
    /// Launches seen.
    pub launches: AtomicU64,
    /// Launches that waited.
    pub throttled_launches: AtomicU64,
    /// Nanoseconds spent waiting.
    pub throttled_ns: AtomicU64,
    /// Zero; reserved.
    pub reserved: AtomicU64,
}

/// The whole segment. Every field is an atomic or reserved bytes, so it may be shared by
/// processes that write concurrently.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct SegmentLayout {
    /// Identification.
    pub header: Header,
    /// Agent-written parameters.
    pub control: Control,
    /// Token bucket.
    pub bucket: BucketState,
    /// Counters.
    pub counters: CounterBlock,
    /// Pids of attached processes (0 = free).
    pub pids: [AtomicU32; PID_SLOTS],
    /// Zero; reserved.
    pub tail_reserved: [u8; 64],
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<SegmentLayout>() == SEGMENT_SIZE);
    assert!(std::mem::align_of::<SegmentLayout>() == 64);
    assert!(size_of::<Header>() == 64);
    assert!(size_of::<Control>() == 64);
    assert!(offset_of!(SegmentLayout, header) == 0);
    assert!(offset_of!(SegmentLayout, control) == 64);
    assert!(offset_of!(SegmentLayout, bucket) == 128);
    assert!(offset_of!(SegmentLayout, counters) == 160);
    assert!(offset_of!(SegmentLayout, pids) == 192);
    assert!(offset_of!(SegmentLayout, tail_reserved) == 448);
    assert!(offset_of!(Header, version_major) == 8);
    assert!(offset_of!(Header, version_minor) == 10);
    assert!(offset_of!(Header, total_size) == 16);
    assert!(offset_of!(Control, mode) == 8);
    assert!(offset_of!(Control, gpu_index) == 12);
    assert!(offset_of!(Control, refill_per_s) == 16);
    assert!(offset_of!(Control, burst) == 24);
    assert!(offset_of!(Control, cost_scale_bits) == 32);
    assert!(offset_of!(Control, target_share_bits) == 40);
    assert!(offset_of!(Control, retired) == 48);
    assert!(offset_of!(BucketState, consumed) == 8);
    assert!(offset_of!(BucketState, last_refill_ns) == 16);
    assert!(offset_of!(CounterBlock, throttled_ns) == 16);
};

/// The initial bytes of a segment for `gpu` and `params`, as written to a new file.
///
/// The bucket starts full (`credited = burst`) with `last_refill_ns = now_ns`.
pub fn initial_bytes(gpu: u32, params: &Params, now_ns: u64) -> [u8; SEGMENT_SIZE] {
    let mut b = [0u8; SEGMENT_SIZE];
    let mut put = |off: usize, bytes: &[u8]| b[off..off + bytes.len()].copy_from_slice(bytes);
    put(0, &MAGIC.to_le_bytes());
    put(8, &VERSION_MAJOR.to_le_bytes());
    put(10, &VERSION_MINOR.to_le_bytes());
    put(16, &(SEGMENT_SIZE as u64).to_le_bytes());
    put(64, &1u64.to_le_bytes());
    put(72, &(params.mode as u32).to_le_bytes());
    put(76, &gpu.to_le_bytes());
    put(80, &params.refill_per_s.to_le_bytes());
    put(88, &params.burst.to_le_bytes());
    put(96, &params.cost_scale.to_bits().to_le_bytes());
    put(104, &params.target_share.to_bits().to_le_bytes());
    put(128, &params.burst.to_le_bytes());
    put(144, &now_ns.to_le_bytes());
    b
}

impl SegmentLayout {
    /// The parameters as currently written (relaxed loads; `None` mode field is reported as
    /// `Off` here, the launch path treats it as a bypass).
    pub fn params(&self) -> Params {
        let c = &self.control;
        Params {
            mode: Mode::from_raw(c.mode.load(Relaxed)).unwrap_or(Mode::Off),
            refill_per_s: c.refill_per_s.load(Relaxed),
            burst: c.burst.load(Relaxed),
            cost_scale: f64::from_bits(c.cost_scale_bits.load(Relaxed)),
            target_share: f64::from_bits(c.target_share_bits.load(Relaxed)),
        }
    }

    /// Writes every parameter, then bumps the generation (release). A change of mode forgives
    /// the debt of launches that were waiting (or abandoned their wait when the limit was
    /// lifted), so a segment switched back to `cap` starts from an empty, not a negative, bucket.
    pub fn set_params(&self, p: &Params) {
        let c = &self.control;
        let old_mode = c.mode.swap(p.mode as u32, Relaxed);
        if old_mode != p.mode as u32 {
            use std::sync::atomic::Ordering::{AcqRel, Acquire};
            // credited = max(credited, consumed), on the wrapping counters.
            loop {
                let cur = self.bucket.credited.load(Acquire);
                let consumed = self.bucket.consumed.load(Acquire);
                if crate::bucket::ahead(cur, consumed) >= 0
                    || self
                        .bucket
                        .credited
                        .compare_exchange(cur, consumed, AcqRel, Relaxed)
                        .is_ok()
                {
                    break;
                }
            }
        }
        c.refill_per_s.store(p.refill_per_s, Relaxed);
        c.burst.store(p.burst, Relaxed);
        c.cost_scale_bits.store(p.cost_scale.to_bits(), Relaxed);
        c.target_share_bits.store(p.target_share.to_bits(), Relaxed);
        c.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Every control field as raw bits, for validation (the agent's integrity check, `status`).
    /// Unlike [`Self::params`] nothing is decoded, so an unknown mode or a NaN share shows.
    pub fn control_snapshot(&self) -> ControlSnapshot {
        let c = &self.control;
        ControlSnapshot {
            generation: c.generation.load(std::sync::atomic::Ordering::Acquire),
            mode_raw: c.mode.load(Relaxed),
            gpu_index: c.gpu_index.load(Relaxed),
            refill_per_s: c.refill_per_s.load(Relaxed),
            burst: c.burst.load(Relaxed),
            cost_scale: f64::from_bits(c.cost_scale_bits.load(Relaxed)),
            target_share: f64::from_bits(c.target_share_bits.load(Relaxed)),
            retired: c.retired.load(Relaxed),
            header_flags: self.header.header_flags.load(Relaxed),
        }
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        Counters {
            launches: self.counters.launches.load(Relaxed),
            throttled_launches: self.counters.throttled_launches.load(Relaxed),
            throttled_ns: self.counters.throttled_ns.load(Relaxed),
            tokens_consumed: self.bucket.consumed.load(Relaxed),
        }
    }

    /// Records `pid` in a free slot (or one already holding it). Returns false when the table
    /// is full. Not for the launch path.
    pub fn attach_pid(&self, pid: u32) -> bool {
        if self.pids.iter().any(|s| s.load(Relaxed) == pid) {
            return true;
        }
        self.pids
            .iter()
            .any(|s| s.compare_exchange(0, pid, Relaxed, Relaxed).is_ok())
    }

    /// Frees the slot holding `pid`, if any.
    pub fn detach_pid(&self, pid: u32) {
        for s in &self.pids {
            let _ = s.compare_exchange(pid, 0, Relaxed, Relaxed);
        }
    }

    /// Pids currently recorded (the agent prunes dead ones with [`Self::detach_pid`]).
    pub fn attached_pids(&self) -> Vec<u32> {
        self.pids
            .iter()
            .map(|s| s.load(Relaxed))
            .filter(|&p| p != 0)
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
