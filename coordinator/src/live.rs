//! The live coordinator (`sair-coordinator`): reads the pipelines file ([`config`]), builds the
//! [`crate::policy::PipelineState`] from what the agents publish on the mesh ([`observe`],
//! sans-IO), runs the policy every interval and carries its decisions out ([`run`]): ρ targets
//! on the mesh, replica counts through an actuator. It serves its status API ([`api`]) and
//! its metrics ([`metrics`]), and journals its decisions ([`journal`]). docs/coordinator.md is the operator's guide.

pub mod api;
pub mod config;
pub mod journal;
pub mod metrics;
pub mod observe;
pub mod policy;
pub mod run;
