//! Versioned shared-memory layout of the GPU-share token bucket, shared by the interceptor
//! (`libsair_intercept.so`) and the node agent.
//!
//! This crate owns the bytes of a segment file and the arithmetic that runs on them:
//! - [`layout`]: the `#[repr(C)]` [`SegmentLayout`] with magic, major/minor version, total size
//!   and reserved bytes, compile-time size/offset assertions and the initial image;
//! - [`segment`]: [`Segment`], a mapped segment file with crash-safe create (temp file + rename),
//!   validated open, setters/getters for the agent and a counters snapshot;
//! - [`bucket`]: the lock-free, cross-process token bucket used on every kernel launch (atomics
//!   only, no syscall, no allocation); it takes `now_ns` as an argument;
//! - [`share`]: how a target share ρ becomes bucket parameters;
//! - [`clock`]: the shared `CLOCK_MONOTONIC` clock (vDSO, no real syscall).
//!
//! It must not contain any cross-process lock, any policy (the agent decides rates), nor any
//! logging: the interceptor calls [`bucket`] on its launch path.
//!
//! Where unsafe lives: [`clock::monotonic_ns`] (`clock_gettime`), and in [`segment`] the
//! `mmap`/`munmap` of the segment file and the one cast of the mapping to `&SegmentLayout`.

pub mod bucket;
pub mod clock;
pub mod layout;
pub mod segment;
pub mod share;

pub use bucket::{Bucket, Grant};
pub use layout::{
    ControlSnapshot, Counters, MAGIC, Mode, Params, SEGMENT_SIZE, SegmentLayout, VERSION_MAJOR,
    VERSION_MINOR,
};
pub use segment::{
    Access, DEFAULT_SHM_DIR, SEGMENT_EXT, Segment, ShmError, list_segments, segment_path,
    validate_segment_name,
};
pub use share::{bucket_params_for_share, estimate_ns_per_token};
