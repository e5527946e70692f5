//! `sair-sidecar`: the request-path proxy that sits beside one model-server replica.
//!
//! It owns admission (a FIFO queue in front of a concurrency limit), the exact measurement of
//! queue wait and service time per request, chaining a response on to the next stage, the
//! stage's Prometheus metrics and the windowed `StageReport` sent to the node agent.
//!
//! It must not make scaling decisions, must not block the request path on reporting, and must
//! never let a malformed request or a failing peer take the process down.
//!
//! Module map, request path first; each module's code uses only modules listed before it (no
//! import cycle):
//! - [`metrics`] names, label enums and handles; [`timing`] the instants of one request and
//!   the one place queue wait is computed; [`window`] the sans-IO report window;
//!   [`display`] error formatting.
//! - [`budget`] the one memory budget of buffered bodies; [`retry`] the connect-retry backoff.
//! - [`body`] reading a body under a limit ([`body::BodyError`]); [`upstream`] the connection
//!   pool to the model server and the next stage ([`upstream::UpstreamError`]);
//!   [`admission`] the request queue; [`headers`] pipeline context, hop-by-hop, Server-Timing;
//!   [`config`] the configuration; [`balance`] next-stage discovery and P2C.
//! - [`error`] [`error::ProxyError`], which picks status, body and metric labels;
//!   [`tally`] how a request ended, written to Prometheus and the window at once;
//!   [`stream`] the response body, and a streamed answer's end-of-request work.
//! - [`layer`] the tower layers; [`context`] the parts they are built from; [`stack`] builds
//!   them bottom-up; [`edge`] the hyper-facing service.
//! - [`report`] (the StageReport sender) and [`server`] (listeners, tasks, shutdown) drive it.

#![forbid(unsafe_code)]

pub mod admission;
pub mod balance;
pub mod body;
pub mod budget;
pub mod config;
pub mod context;
pub mod display;
pub mod edge;
pub mod error;
pub mod headers;
pub mod layer;
pub mod metrics;
pub mod report;
pub mod retry;
pub mod server;
pub mod stack;
pub mod stream;
pub mod tally;
pub mod timing;
pub mod upstream;
pub mod window;

pub use config::{Config, ConfigError};
pub use server::{Sidecar, SidecarError};
