//! The segment this process charges, mapped lazily on the first launch.
//!
//! The launch path loads one atomic pointer. Only when it is null (first launch, after a fork,
//! after the agent retired the file, or while failing open) does it take the cold path, which
//! may read the environment, open and map the file and log — at most once per second, and the
//! reason for failing open is logged once per kind.
//!
//! Environment: `SAIR_SHM_PATH` (a segment file), else `SAIR_SHM_DIR` (default
//! `/var/run/sair/shm`) joined with `SAIR_SEGMENT`. Neither set: the process is unmanaged.

use crate::limits::Bypass;
use sair_shm::clock::monotonic_ns;
use sair_shm::{Segment, SegmentLayout, ShmError};
use std::path::PathBuf;
use std::sync::Once;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64};

static SEG: AtomicPtr<SegmentLayout> = AtomicPtr::new(std::ptr::null_mut());
static ATTACHING: AtomicBool = AtomicBool::new(false);
static RETRY_AT_NS: AtomicU64 = AtomicU64::new(0);
static REASON: AtomicU8 = AtomicU8::new(0);
static LOGGED: AtomicU32 = AtomicU32::new(0);
static FORK_HANDLER: Once = Once::new();

/// How long a process failing open waits before trying to attach again.
pub const RETRY_NS: u64 = 1_000_000_000;
/// How long a process waits before re-opening a path whose file is marked retired: the agent
/// replaces the file or repairs the flag within a control period.
pub const RETIRED_RETRY_NS: u64 = 10_000_000;

/// The attached segment, or why launches pass through.
#[allow(unsafe_code)]
#[inline]
pub fn segment() -> Result<&'static SegmentLayout, Bypass> {
    let p = SEG.load(Acquire);
    if !p.is_null() {
        // SAFETY: SEG only ever holds null or a pointer from `Segment::leak`, a mapping that is
        // never unmapped, so it is valid for 'static.
        let seg: &'static SegmentLayout = unsafe { &*p };
        if seg.control.retired.load(Relaxed) == 0 {
            return Ok(seg);
        }
        // The agent replaced the file: drop this mapping (leaked) and re-open now.
        if SEG
            .compare_exchange(p, std::ptr::null_mut(), AcqRel, Relaxed)
            .is_ok()
        {
            RETRY_AT_NS.store(0, Release);
            REASON.store(0, Release);
        }
    }
    slow()
}

#[cold]
#[inline(never)]
fn slow() -> Result<&'static SegmentLayout, Bypass> {
    let reason = Bypass::from_u8(REASON.load(Acquire));
    if reason == Some(Bypass::NotConfigured) {
        return Err(Bypass::NotConfigured);
    }
    if monotonic_ns() < RETRY_AT_NS.load(Acquire) {
        return Err(reason.unwrap_or(Bypass::Attaching));
    }
    if ATTACHING.swap(true, AcqRel) {
        return wait_for_other_attacher();
    }
    FORK_HANDLER.call_once(register_fork_handler);
    let result = match configured_path() {
        None => Err((
            Bypass::NotConfigured,
            "no SAIR_SHM_PATH or SAIR_SEGMENT".to_owned(),
        )),
        Some(path) => Segment::open(&path).map_err(|e| (classify(&e), e.to_string())),
    };
    let out = match result {
        Ok(seg) if seg.is_retired() => {
            // Never leak a mapping per launch on a file that says "re-open me" while it is
            // still the one at the path: drop it (munmap) and look again in 10 ms.
            drop(seg);
            let reason = Bypass::Retired;
            REASON.store(reason as u8, Release);
            RETRY_AT_NS.store(monotonic_ns() + RETIRED_RETRY_NS, Release);
            record_once(reason, "the segment file at the path is marked retired");
            Err(reason)
        }
        Ok(seg) => {
            seg.layout().attach_pid(std::process::id());
            let leaked = seg.leak();
            SEG.store(std::ptr::from_ref(leaked).cast_mut(), Release);
            REASON.store(0, Release);
            Ok(leaked)
        }
        Err((reason, detail)) => {
            REASON.store(reason as u8, Release);
            RETRY_AT_NS.store(monotonic_ns() + RETRY_NS, Release);
            record_once(reason, &detail);
            Err(reason)
        }
    };
    ATTACHING.store(false, Release);
    out
}

/// Another thread is attaching (microseconds: env read, open, mmap): wait for it, bounded, so
/// that launches racing the first one are charged too.
#[allow(unsafe_code)]
fn wait_for_other_attacher() -> Result<&'static SegmentLayout, Bypass> {
    let start = monotonic_ns();
    while ATTACHING.load(Acquire) && monotonic_ns() - start < 50_000_000 {
        std::thread::yield_now();
    }
    let p = SEG.load(Acquire);
    if p.is_null() {
        return Err(Bypass::from_u8(REASON.load(Acquire)).unwrap_or(Bypass::Attaching));
    }
    // SAFETY: SEG only ever holds null or a pointer from `Segment::leak` (never unmapped).
    Ok(unsafe { &*p })
}

fn configured_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SAIR_SHM_PATH").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    let name = std::env::var("SAIR_SEGMENT")
        .ok()
        .filter(|n| !n.is_empty())?;
    let dir = std::env::var_os("SAIR_SHM_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(sair_shm::DEFAULT_SHM_DIR));
    Some(sair_shm::segment_path(&dir, &name).unwrap_or_else(|_| dir.join(name)))
}

fn classify(e: &ShmError) -> Bypass {
    match e {
        ShmError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Bypass::Missing
        }
        ShmError::Io { .. } | ShmError::InvalidName { .. } | ShmError::InvalidParams { .. } => {
            Bypass::Unreadable
        }
        ShmError::Truncated { .. } => Bypass::Truncated,
        ShmError::BadMagic { .. } => Bypass::BadMagic,
        ShmError::VersionMismatch { .. } => Bypass::WrongVersion,
        ShmError::SizeMismatch { .. } => Bypass::SizeMismatch,
    }
}

/// Logs the first occurrence of each fail-open reason on stderr (never on the launch path:
/// only the cold attach path calls this).
fn record_once(reason: Bypass, detail: &str) {
    let bit = 1u32 << (reason as u8);
    if LOGGED.fetch_or(bit, Relaxed) & bit == 0 && reason != Bypass::NotConfigured {
        eprintln!("sair-intercept: launches pass through unthrottled ({reason:?}): {detail}");
    }
}

#[allow(unsafe_code)]
fn register_fork_handler() {
    extern "C" fn child() {
        // The child is a new process: forget the mapping (it stays mapped, leaked) so that the
        // first launch re-attaches and records the child's pid. Atomics only: fork-safe.
        SEG.store(std::ptr::null_mut(), Relaxed);
        ATTACHING.store(false, Relaxed);
        RETRY_AT_NS.store(0, Relaxed);
        REASON.store(0, Relaxed);
    }
    // SAFETY: `child` is an `extern "C" fn()` that only stores to atomics, which is safe in the
    // child after fork; registering has no other precondition.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}
