//! Launches recorded by stream capture are not run, so they are not charged (the graph is
//! charged when it is launched). The begin/end capture hooks keep a count of captures in
//! progress in this process; only while it is non-zero does a launch ask the real driver
//! (`cuStreamIsCapturing`, a user-space driver call, no syscall) whether its stream is
//! capturing. With no capture in progress the launch path pays one relaxed atomic load.
//!
//! A count that drifts high (a capture ended through an entry point we do not hook) only costs
//! that extra driver call; one that stays at zero only means captured launches are charged.

use sair_cuda_abi::driver::*;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicUsize};

static CAPTURES: AtomicI64 = AtomicI64::new(0);
static IS_CAPTURING: AtomicUsize = AtomicUsize::new(0);
static IS_CAPTURING_PTSZ: AtomicUsize = AtomicUsize::new(0);

type FnIsCapturing = unsafe extern "C" fn(CUstream, *mut i32) -> CUresult;

/// After a real begin-capture call.
pub fn began(r: CUresult) -> CUresult {
    if r == CUDA_SUCCESS {
        CAPTURES.fetch_add(1, Relaxed);
    }
    r
}

/// After a real end-capture call: the capture is over unless the stream was not capturing.
pub fn ended(r: CUresult) -> CUresult {
    if r == CUDA_SUCCESS || (900..=909).contains(&r) {
        // Saturating at zero.
        let _ = CAPTURES.fetch_update(Relaxed, Relaxed, |n| (n > 0).then(|| n - 1));
    }
    r
}

/// Whether a launch on `stream` is being recorded rather than run.
#[inline]
pub fn recording(stream: CUstream, ptds: bool) -> bool {
    CAPTURES.load(Relaxed) > 0 && stream_is_capturing(stream, ptds)
}

#[cold]
#[allow(unsafe_code)]
fn stream_is_capturing(stream: CUstream, ptds: bool) -> bool {
    let f: Option<FnIsCapturing> = if ptds {
        crate::real::cuda(&IS_CAPTURING_PTSZ, "cuStreamIsCapturing_ptsz\0")
            .or_else(|| crate::real::cuda(&IS_CAPTURING, "cuStreamIsCapturing\0"))
    } else {
        crate::real::cuda(&IS_CAPTURING, "cuStreamIsCapturing\0")
    };
    let Some(f) = f else { return false };
    let mut status = 0i32;
    // SAFETY: the real cuStreamIsCapturing with the launch's stream and a valid out-pointer.
    let r = unsafe { f(stream, &mut status) };
    // CU_STREAM_CAPTURE_STATUS_ACTIVE = 1; an invalidated capture (2) records nothing either.
    r == CUDA_SUCCESS && status != 0
}
