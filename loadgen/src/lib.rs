//! Open-loop load generation and a synthetic model server.
//!
//! This crate owns the workload patterns (`pattern`), shared with the coordinator's simulator
//! so that a simulated and a live run see the same arrivals, the open-loop driver of
//! `sair-loadgen`, and `sair-stage`, a synthetic model server for demos and benchmarks.
//!
//! It must not contain scaling policy, and the driver must never wait for a response before
//! sending the next scheduled request (no coordinated omission).

pub mod pattern;
