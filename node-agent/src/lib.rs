//! `sair-node-agent`: one per node.
//!
//! It owns the GPU-share segments of its node (creation, adoption after restart, garbage
//! collection), turns target shares ρ into token-bucket parameters with a feedback loop on
//! measured GPU utilisation, keeps Σρ ≤ 1 per GPU, and collects `StageReport`s from sidecars.
//!
//! It must not sit on the request path or the kernel-launch path: it only writes parameters
//! that the interception library reads with atomics.
//!
//! Sans-IO cores: [`controller`] (ρ feedback), [`commit`] (the commitment check, Σρ ≤ 1), [`registry`] (GC rule),
//! [`reports`] (latest report per replica), [`bounds`] (one check per operator-supplied value),
//! [`integrity`] (is a segment's control block valid and what the agent wrote). Drivers: [`segments`] (files under the shm dir),
//! [`measure`] (NVML), [`ingest`] (QUIC), [`daemon`] (the control loop and `run`, with
//! `sair_service::admin` serving `/metrics`, `/healthz`, `/readyz`), [`ops`] (`set-rate`, `status`, `remove`), [`target`] (where targets
//! come from), [`mesh`] (the gossip mesh member: publishes the node's facts, takes the leader's ρ).

#![forbid(unsafe_code)]

pub mod bounds;
pub mod commit;
pub mod config;
pub mod controller;
pub mod daemon;
pub mod error;
pub mod ingest;
pub mod integrity;
pub mod measure;
pub mod mesh;
pub mod metrics;
pub mod ops;
pub mod registry;
pub mod reports;
pub mod segments;
pub mod target;

pub use error::AgentError;
