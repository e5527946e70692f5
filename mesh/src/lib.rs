//! The SAIR gossip mesh: node agents and coordinators find each other, detect failures and
//! share state over QUIC with mutual TLS, without a central store.
//!
//! What it owns: member identity ([`id`]), the versioned frames members exchange ([`message`],
//! [`frame`]), SWIM membership and failure detection on `foca` ([`swim`]), per-member
//! versioned key–value state with control/bulk priority ([`state`]), epoch-fenced leadership
//! ([`leader`]), all held by the sans-IO [`core::MeshCore`]; and the thin parts that touch the
//! world: the [`transport`] trait with its QUIC and in-process implementations, cluster
//! certificates ([`certs`]) and the tokio [`driver`].
//!
//! What it must not do: know what the keys mean (ρ targets, replica intents and reports belong
//! to the node agent and the coordinator), act on decisions, or read configuration from the
//! environment. The core holds no socket, task or clock.

#![forbid(unsafe_code)]

pub mod certs;
pub mod config;
pub mod core;
pub mod driver;
pub mod error;
pub mod frame;
pub mod id;
pub mod leader;
pub mod message;
pub mod metrics;
pub mod state;
pub mod swim;
pub mod transport;

#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

pub use config::MeshConfig;
pub use core::{Action, Event, MeshCore};
pub use driver::Mesh;
pub use id::{MemberId, Role};
pub use leader::{Admission, Candidacy, Decision, Epoch, Fence};
pub use state::{Change, Class, StateLimits};
