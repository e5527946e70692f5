//! The SAIR coordinator: policy interface, policies (the in-context RL policy and the
//! baselines), the pipeline simulator, and the `sair` command-line tool.
//!
//! It owns decisions: what each stage's replicas and GPU share should be. It must not sit on
//! the request path, and a policy must see only what production can observe ([`policy`]'s
//! [`policy::PipelineState`]), in simulation as live.

#![forbid(unsafe_code)]

pub mod baselines;
pub mod eval;
pub mod inject;
pub mod live;
pub mod policies;
pub mod policy;
pub mod record;
pub mod sair;
pub mod scenario;
pub mod sim;
