//! `sair-actuator` owns turning replica counts into running replicas: the [`Actuator`] trait
//! the live coordinator calls, [`dry_run::DryRun`] (shadow mode: records and logs, runs
//! nothing), the local process supervisor and [`retry::with_backoff`], which wraps any call in
//! bounded retries.
//!
//! It must not decide anything: how many replicas a stage should have comes from the
//! coordinator's policy, and an actuator only carries that number out and reports how far it
//! got ([`ReplicaStatus`]). It knows nothing of ρ, SLOs or the mesh.
#![forbid(unsafe_code)]

pub mod dry_run;
mod error;
pub mod kubernetes;
pub mod local;
pub mod metrics;
pub mod retry;

pub use error::ActuatorError;

use serde::{Deserialize, Serialize};

/// A boxed, sendable future: the trait's methods return one so that `dyn Actuator` works
/// without `async-trait` (the coordinator holds a `Box<dyn Actuator>` chosen by a flag).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// One stage of one pipeline: the unit an actuator scales.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StageRef {
    pub pipeline: String,
    pub stage: String,
}

impl StageRef {
    pub fn new(pipeline: impl Into<String>, stage: impl Into<String>) -> Self {
        Self {
            pipeline: pipeline.into(),
            stage: stage.into(),
        }
    }
}

impl std::fmt::Display for StageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.pipeline, self.stage)
    }
}

/// How far an actuator has got with a stage.
///
/// `desired` is the last count asked for; `serving` counts replicas that answer their
/// readiness check and receive traffic (for the local supervisor: listed in the stage's
/// endpoints file). `serving < desired` while replicas start (or restart), `serving > desired`
/// never: a replica being removed leaves the list before it is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub desired: u32,
    pub serving: u32,
}

/// Carries out replica counts. Implementations: `"dry-run"` ([`dry_run::DryRun`]), `"local"`
/// (the process supervisor), `"kubernetes"` (to come, docs/actuator.md).
///
/// `scale` returns once the change has been *started* (processes spawned or stopped, a
/// Deployment patched); it does not wait for new replicas to become ready — `status` reports
/// that. Calls are not retried inside: wrap them in [`retry::with_backoff`].
pub trait Actuator: Send {
    /// `"local"`, `"dry-run"`, `"kubernetes"`: a bounded set, used as a metric label.
    fn name(&self) -> &'static str;
    /// Make `stage` run `replicas` replicas.
    fn scale<'a>(
        &'a mut self,
        stage: &'a StageRef,
        replicas: u32,
    ) -> BoxFuture<'a, Result<(), ActuatorError>>;
    /// Desired and serving replicas of `stage`.
    fn status<'a>(
        &'a mut self,
        stage: &'a StageRef,
    ) -> BoxFuture<'a, Result<ReplicaStatus, ActuatorError>>;
    /// Stop what this actuator started (local: every replica; dry-run and Kubernetes: nothing
    /// to stop, the cluster keeps running). Never fails: what cannot be stopped is logged.
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()>;
}
