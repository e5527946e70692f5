//! `DryRun`: shadow mode. Records each stage's desired count and logs every call; starts and
//! stops nothing, so a coordinator can decide beside what runs today and be watched.

use std::collections::HashMap;

use crate::{Actuator, ActuatorError, BoxFuture, ReplicaStatus, StageRef};

#[cfg(test)]
mod tests;

/// Reports `serving = desired` for every stage it was told about: nothing runs, so "serving"
/// is what would be serving had the decision been carried out.
#[derive(Debug, Default)]
pub struct DryRun {
    desired: HashMap<StageRef, u32>,
}

impl DryRun {
    /// A dry-run actuator that knows no stage yet: `status` of a stage is an
    /// [`ActuatorError::UnknownStage`] until the stage was scaled or seeded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Seeds stages with their current counts (for example the pipelines file's `replicas`),
    /// so `status` answers before the first decision.
    pub fn with_stages(stages: impl IntoIterator<Item = (StageRef, u32)>) -> Self {
        Self {
            desired: stages.into_iter().collect(),
        }
    }
}

impl Actuator for DryRun {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    fn scale<'a>(
        &'a mut self,
        stage: &'a StageRef,
        replicas: u32,
    ) -> BoxFuture<'a, Result<(), ActuatorError>> {
        Box::pin(async move {
            let before = self.desired.insert(stage.clone(), replicas);
            tracing::info!(
                actuator = "dry-run",
                pipeline = %stage.pipeline,
                stage = %stage.stage,
                from = before,
                to = replicas,
                "dry run: would scale (nothing started or stopped)"
            );
            Ok(())
        })
    }

    fn status<'a>(
        &'a mut self,
        stage: &'a StageRef,
    ) -> BoxFuture<'a, Result<ReplicaStatus, ActuatorError>> {
        Box::pin(async move {
            let desired = *self
                .desired
                .get(stage)
                .ok_or_else(|| ActuatorError::UnknownStage {
                    actuator: "dry-run",
                    stage: stage.clone(),
                })?;
            tracing::debug!(actuator = "dry-run", %stage, desired, "dry run: status");
            Ok(ReplicaStatus {
                desired,
                serving: desired,
            })
        })
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            tracing::info!(
                actuator = "dry-run",
                stages = self.desired.len(),
                "dry run: shutdown (nothing was started)"
            );
        })
    }
}
