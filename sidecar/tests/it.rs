//! Loopback integration tests of `sair-sidecar`: real sockets, real tiny model servers.
//! One test binary (modules under `tests/it/`) so the crate links once.

// Test code may unwrap (house rule); fixtures are not #[test] fns, so say it here.
#![allow(clippy::unwrap_used)]

#[path = "it/support.rs"]
mod support;

#[path = "it/bounds.rs"]
mod bounds;
#[path = "it/chain.rs"]
mod chain;
#[path = "it/faults.rs"]
mod faults;
#[path = "it/flags.rs"]
mod flags;
#[path = "it/grpc.rs"]
mod grpc;
#[path = "it/metrics.rs"]
mod metrics;
#[path = "it/report.rs"]
mod report;
#[path = "it/retry.rs"]
mod retry;
#[path = "it/shutdown.rs"]
mod shutdown;
#[path = "it/streaming.rs"]
mod streaming;
#[path = "it/threads.rs"]
mod threads;
#[path = "it/timing.rs"]
mod timing;
