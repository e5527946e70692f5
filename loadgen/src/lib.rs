//! Open-loop load generation and a synthetic model server.
//!
//! This crate owns the workload patterns ([`pattern`]), shared with the coordinator's simulator
//! so that a simulated and a live run see the same arrivals, the open-loop driver of
//! `sair-loadgen` ([`driver`], [`recorder`], [`runner`], [`cli`]), and `sair-stage`
//! ([`stage`], [`cpu`], [`cuda`]), a synthetic model server for demos and benchmarks.
//!
//! It must not contain scaling policy, and the driver must never wait for a response before
//! sending the next scheduled request (no coordinated omission).
//!
//! Lints: `unsafe_code` is `deny` here (not the workspace's `forbid`) because [`cuda`] calls
//! the CUDA driver API through `libloading`; that module is the only place with `unsafe`, each
//! item carries `#[allow(unsafe_code)]` and each block a `// SAFETY:` comment.

pub mod cli;
pub mod cpu;
pub mod cuda;
pub mod driver;
pub mod pattern;
pub mod recorder;
pub mod runner;
pub mod server_timing;
pub mod stage;
