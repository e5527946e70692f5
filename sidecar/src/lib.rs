//! `sair-sidecar`: the request-path proxy that sits beside one model-server replica.
//!
//! It owns admission (a FIFO queue in front of a concurrency limit), the exact measurement of
//! queue wait and service time per request, chaining a response on to the next stage, the
//! stage's Prometheus metrics and the windowed `StageReport` sent to the node agent.
//!
//! It must not make scaling decisions, must not block the request path on reporting, and must
//! never let a malformed request or a failing peer take the process down.

pub mod admission;
pub mod balance;
pub mod config;
pub mod error;
pub mod layer;
pub mod metrics;
pub mod pool;
pub mod report;
pub mod server;
pub mod stack;
pub mod window;

pub use config::{Config, ConfigError};
pub use server::{Sidecar, SidecarError};
