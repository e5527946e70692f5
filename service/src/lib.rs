//! `sair-service`: the plumbing every SAIR binary shares, written once.
//!
//! It owns the process edge of a service: exit codes ([`exit`]), tracing set-up ([`logging`]),
//! the shutdown signal ([`shutdown`]), the accept loop with backoff ([`accept`]), the admin HTTP
//! server with `/metrics`, `/healthz` and `/readyz` ([`admin`]), the flags > `SAIR_*` env >
//! TOML configuration overlay ([`config`]), the duration syntax ([`duration`]), the one JSON
//! line that announces bound addresses ([`announce`]) and the gossip-mesh flags every member
//! binary shares ([`mesh`]: flags and addresses only, no mesh type).
//!
//! It must not know any SAIR component: it depends on no other `sair-*` crate, holds no policy
//! and no wire types, and never reads or writes the process environment except through
//! [`config::ProcessEnv`] (and `RUST_LOG` in [`logging::init_tracing`]).

#![forbid(unsafe_code)]

pub mod accept;
pub mod admin;
pub mod announce;
pub mod config;
pub mod duration;
pub mod error;
pub mod exit;
pub mod logging;
pub mod mesh;
pub mod metrics;
pub mod shutdown;

pub use error::ConfigError;
pub use exit::Exit;
