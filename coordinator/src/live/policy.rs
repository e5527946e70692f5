//! The live coordinator's policies: every name `sair eval` accepts, built by the same
//! constructors ([`crate::policies::build`]), with one live difference. `static` sizes its
//! plan for the peak of a scenario's `[workload]`; a pipelines file without one plans no peak,
//! so live `static` then holds the file's starting allocation ([`StartingAllocation`]) — the
//! "fixed allocation" baseline an operator compares SAIR against.

use crate::policies::{self, PolicyContext, UnknownPolicy};
use crate::policy::{Action, Decision, DecisionSource, Explanation, PipelineState, Policy};

use super::config::PipelinesFile;

/// `static` without a planned peak: the starting allocation of the pipelines file, held.
#[derive(Debug, Clone)]
pub struct StartingAllocation {
    plan: Action,
}

impl StartingAllocation {
    /// The file's starting replicas and shares.
    pub fn new(file: &PipelinesFile) -> Self {
        let stages = &file.scenario.stages;
        Self {
            plan: Action {
                replicas: stages.iter().map(|s| s.initial_replicas).collect(),
                rho: stages
                    .iter()
                    .map(|s| match s.kind {
                        crate::policy::StageKind::Gpu => s.initial_rho,
                        crate::policy::StageKind::Cpu => 1.0,
                    })
                    .collect(),
                shares: Vec::new(),
            },
        }
    }
}

impl Policy for StartingAllocation {
    fn name(&self) -> &str {
        "static"
    }

    fn decide(&mut self, _state: &PipelineState) -> Decision {
        Decision::new(
            self.plan.clone(),
            None,
            "static: the pipelines file's starting allocation, held (no [workload] peak to size a plan for)",
        )
        .explained(Explanation::from_source(DecisionSource::Baseline))
    }

    fn initial_action(&self) -> Option<Action> {
        Some(self.plan.clone())
    }
}

/// The policy called `name` for the pipeline of `file`, described to it by `ctx`.
pub fn build(
    name: &str,
    file: &PipelinesFile,
    ctx: &PolicyContext,
) -> Result<Box<dyn Policy>, UnknownPolicy> {
    if name == "static" && file.planned_peak_rps().is_none() {
        return Ok(Box::new(StartingAllocation::new(file)));
    }
    policies::build(name, ctx)
}
