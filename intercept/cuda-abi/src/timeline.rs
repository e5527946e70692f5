//! The emulated devices' time lines, in a shared-memory file so that every process using the
//! emulator contends for the same emulated GPUs.
//!
//! File: `SAIR_EMU_STATE` (default `/dev/shm/sair-emu-<uid>.state`), a zero-initialised
//! `#[repr(C)]` [`TimelineLayout`]: zero is a valid initial state for every field, so the file is
//! created with `O_CREAT` + `ftruncate` and the magic is set with a CAS. Per device: `busy_until`
//! (CLOCK_MONOTONIC ns), total busy ns and kernel count. Per (pid, device) slot: busy ns, last
//! kernel end and first-seen time, which the NVML emulator turns into per-process utilisation.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU32, AtomicU64};

/// `b"SAIREMU1"` little-endian.
pub const TIMELINE_MAGIC: u64 = u64::from_le_bytes(*b"SAIREMU1");
/// Largest number of emulated devices.
pub const MAX_DEVICES: usize = 16;
/// Per-process slots.
pub const PROC_SLOTS: usize = 256;

/// One emulated device.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct DeviceLine {
    /// End of the last reserved kernel (CLOCK_MONOTONIC ns).
    pub busy_until: AtomicU64,
    /// Sum of kernel durations ever reserved.
    pub busy_ns: AtomicU64,
    /// Kernels ever reserved.
    pub kernels: AtomicU64,
}

/// Device time of one process on one device.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct ProcSlot {
    /// Owning pid, 0 = free.
    pub pid: AtomicU32,
    /// Device index.
    pub device: AtomicU32,
    /// Sum of this process's kernel durations on the device.
    pub busy_ns: AtomicU64,
    /// End of its last kernel.
    pub last_end: AtomicU64,
    /// Kernels launched.
    pub kernels: AtomicU64,
    /// CLOCK_MONOTONIC ns when the slot was claimed.
    pub first_ns: AtomicU64,
}

/// The whole file.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct TimelineLayout {
    /// [`TIMELINE_MAGIC`] once initialised.
    pub magic: AtomicU64,
    /// CLOCK_MONOTONIC ns of initialisation.
    pub created_ns: AtomicU64,
    pub reserved: [AtomicU64; 6],
    /// Devices.
    pub devices: [DeviceLine; MAX_DEVICES],
    /// Per-process accounting.
    pub procs: [ProcSlot; PROC_SLOTS],
}

const _: () =
    assert!(std::mem::size_of::<TimelineLayout>() == 64 + 64 * MAX_DEVICES + 64 * PROC_SLOTS);

/// Why the timeline file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("emulator state {path}: {op} failed: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("emulator state {path} is not a SAIR emulator timeline (magic {found:#x}); delete it")]
    BadMagic { path: PathBuf, found: u64 },
}

/// The default state file for this user.
pub fn default_state_path() -> PathBuf {
    #[allow(unsafe_code)]
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!("/dev/shm/sair-emu-{uid}.state"))
}

/// CLOCK_MONOTONIC in ns (vDSO).
#[inline]
#[allow(unsafe_code)]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC is always supported.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Opens (creating if needed) and maps the timeline for the rest of the process.
#[allow(unsafe_code)]
pub fn open_timeline(path: &Path) -> Result<&'static TimelineLayout, TimelineError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |op, source| TimelineError::Io {
        path: path.to_owned(),
        op,
        source,
    };
    let size = std::mem::size_of::<TimelineLayout>();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o666)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io("open", e))?;
    let len = file.metadata().map_err(|e| io("stat", e))?.len();
    if len < size as u64 {
        // Growing with zeros is idempotent, so racing creators agree.
        file.set_len(size as u64).map_err(|e| io("ftruncate", e))?;
    }
    // SAFETY: the file is at least `size` bytes; fd valid for the call; kernel picks the address.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if raw == libc::MAP_FAILED || raw.is_null() {
        return Err(io("mmap", std::io::Error::last_os_error()));
    }
    // SAFETY: a page-aligned MAP_SHARED mapping of `size` bytes that is never unmapped; every
    // field of TimelineLayout is an atomic or padding, valid for any bit pattern.
    let t: &'static TimelineLayout = unsafe { &*raw.cast::<TimelineLayout>() };
    match t.magic.compare_exchange(0, TIMELINE_MAGIC, AcqRel, Acquire) {
        Ok(_) => t.created_ns.store(now_ns(), Relaxed),
        Err(TIMELINE_MAGIC) => {}
        Err(found) => {
            return Err(TimelineError::BadMagic {
                path: path.to_owned(),
                found,
            });
        }
    }
    Ok(t)
}

impl TimelineLayout {
    /// Reserves `[start, end)` of `dur_ns` on `device` after the previous kernel, no earlier
    /// than `now`. Returns the interval.
    #[inline]
    pub fn reserve(&self, device: usize, now: u64, dur_ns: u64) -> (u64, u64) {
        let d = &self.devices[device];
        let mut cur = d.busy_until.load(Acquire);
        loop {
            let start = cur.max(now);
            let end = start + dur_ns;
            match d
                .busy_until
                .compare_exchange_weak(cur, end, AcqRel, Acquire)
            {
                Ok(_) => {
                    d.busy_ns.fetch_add(dur_ns, Relaxed);
                    d.kernels.fetch_add(1, Relaxed);
                    return (start, end);
                }
                Err(seen) => cur = seen,
            }
        }
    }

    /// The slot of (`pid`, `device`), claiming a free one or one whose process is gone.
    pub fn slot(&self, pid: u32, device: u32) -> Option<&ProcSlot> {
        if let Some(s) = self
            .procs
            .iter()
            .find(|s| s.pid.load(Acquire) == pid && s.device.load(Acquire) == device)
        {
            return Some(s);
        }
        let claim = |s: &ProcSlot, old: u32| {
            if s.pid.compare_exchange(old, pid, AcqRel, Acquire).is_ok() {
                s.device.store(device, Release);
                s.busy_ns.store(0, Relaxed);
                s.last_end.store(0, Relaxed);
                s.kernels.store(0, Relaxed);
                s.first_ns.store(now_ns(), Relaxed);
                true
            } else {
                false
            }
        };
        if let Some(s) = self.procs.iter().find(|s| claim(s, 0)) {
            return Some(s);
        }
        self.procs.iter().find(|s| {
            let old = s.pid.load(Acquire);
            !pid_alive(old) && claim(s, old)
        })
    }

    /// Records a kernel of `pid` in its slot.
    #[inline]
    pub fn account(&self, slot: &ProcSlot, dur_ns: u64, end: u64) {
        slot.busy_ns.fetch_add(dur_ns, Relaxed);
        slot.kernels.fetch_add(1, Relaxed);
        slot.last_end.fetch_max(end, Relaxed);
    }
}

impl ProcSlot {
    /// Busy ns of this slot's kernels that ran before `t`, assuming its still-pending work is
    /// contiguous up to `last_end` (exact for a process that synchronises; an upper bound on the
    /// pending part otherwise).
    #[inline]
    pub fn busy_before(&self, t: u64) -> u64 {
        let busy = self.busy_ns.load(Acquire);
        let pending = self.last_end.load(Acquire).saturating_sub(t);
        busy.saturating_sub(pending)
    }
}

impl DeviceLine {
    /// Device busy ns before `t` (pending work is contiguous up to `busy_until` by construction).
    #[inline]
    pub fn busy_before(&self, t: u64) -> u64 {
        let busy = self.busy_ns.load(Acquire);
        let pending = self.busy_until.load(Acquire).saturating_sub(t);
        busy.saturating_sub(pending)
    }
}

/// Whether `pid` names a live process (`kill(pid, 0)`).
#[allow(unsafe_code)]
pub fn pid_alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission; it sends nothing.
    let r = unsafe { libc::kill(p, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests;
