//! The one error type of the crate: every variant names the stage and what to do.

use std::path::PathBuf;
use std::time::Duration;

use crate::StageRef;

/// Why an actuator call failed. Each variant carries the stage (and replica, file or program)
/// concerned, so a log line or an API answer is actionable on its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActuatorError {
    /// The actuator was given no configuration for this stage.
    #[error("stage {stage} is not known to the {actuator} actuator (is it in the pipelines file?)")]
    UnknownStage {
        actuator: &'static str,
        stage: StageRef,
    },
    /// A stage's configuration cannot be carried out (checked before anything starts).
    #[error("stage {stage}: invalid configuration: {reason}")]
    InvalidConfig { stage: StageRef, reason: String },
    /// More replicas were asked for than the actuator will run.
    #[error("stage {stage}: {requested} replicas asked for, at most {max} allowed")]
    TooManyReplicas {
        stage: StageRef,
        requested: u32,
        max: u32,
    },
    /// A program named by a stage's command could not be found.
    #[error(
        "stage {stage}: program {program:?} not found beside {beside} nor on PATH (build it, or give a path)"
    )]
    ProgramNotFound {
        stage: StageRef,
        program: String,
        beside: PathBuf,
    },
    /// A process could not be started.
    #[error("stage {stage} replica {replica}: cannot start {program}: {source}")]
    Spawn {
        stage: StageRef,
        replica: u32,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A process exited or failed before it was ready.
    #[error("stage {stage} replica {replica}: {what} did not start: {reason}")]
    StartFailed {
        stage: StageRef,
        replica: u32,
        what: &'static str,
        reason: String,
    },
    /// A process did not become ready within its bound.
    #[error("stage {stage} replica {replica}: {what} not ready within {waited:?}")]
    NotReady {
        stage: StageRef,
        replica: u32,
        what: &'static str,
        waited: Duration,
    },
    /// A file the actuator maintains (an endpoints list, the segment directory) could not be
    /// written.
    #[error("stage {stage}: cannot write {path}: {source}")]
    File {
        stage: StageRef,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A retry policy that cannot be used (see `retry::Backoff::try_new`).
    #[error("invalid retry backoff: {0}")]
    InvalidBackoff(String),
    /// The actuator's background task is gone (it was shut down, or it panicked).
    #[error("the {actuator} actuator has stopped; no further calls are possible")]
    Stopped { actuator: &'static str },
    /// A Kubernetes API call failed or was refused (`kubernetes::KubeError` names the call and
    /// the fix; it decides what is retryable).
    #[error("stage {stage}: {source}")]
    Kubernetes {
        stage: StageRef,
        #[source]
        // Boxed: a Kubernetes error carries the call and the server's message, and would
        // otherwise make every `Result<_, ActuatorError>` of the crate large.
        source: Box<crate::kubernetes::KubeError>,
    },
}

impl ActuatorError {
    /// Whether another attempt may succeed. Configuration mistakes and unknown stages will
    /// fail the same way every time, so `retry::with_backoff` returns them at once.
    pub fn is_retryable(&self) -> bool {
        if let ActuatorError::Kubernetes { source, .. } = self {
            return source.is_retryable();
        }
        !matches!(
            self,
            ActuatorError::UnknownStage { .. }
                | ActuatorError::InvalidConfig { .. }
                | ActuatorError::TooManyReplicas { .. }
                | ActuatorError::ProgramNotFound { .. }
                | ActuatorError::InvalidBackoff(_)
                | ActuatorError::Stopped { .. }
        )
    }
}
