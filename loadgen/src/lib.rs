//! Open-loop load generation and a synthetic model server.
//!
//! This crate owns the workload patterns ([`pattern`]), shared with the coordinator's simulator
//! so that a simulated and a live run see the same arrivals, the open-loop driver of
//! `sair-loadgen` ([`driver`], [`endpoints`], [`recorder`], [`runner`], [`cli`]), and `sair-stage`
//! ([`stage`], [`cpu`], [`cuda`]), a synthetic model server for demos and benchmarks.
//!
//! It must not contain scaling policy, and the driver must never wait for a response before
//! sending the next scheduled request (no coordinated omission).
//!
//! Lints: the workspace's (`unsafe_code` denied); this root does not add
//! `#![forbid(unsafe_code)]` because [`cuda`] calls the CUDA driver API through `libloading`;
//! that module is the only place with `unsafe`, each item carries `#[allow(unsafe_code)]` and
//! each block a `// SAFETY:` comment. The binaries forbid it.

pub mod cli;
pub mod cpu;
pub mod cuda;
pub mod driver;
pub mod endpoints;
pub mod pattern;
pub mod recorder;
pub mod runner;
pub mod server_timing;
pub mod stage;
