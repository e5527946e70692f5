//! The classic autoscalers SAIR is compared against, each as its source specifies it and with
//! the source's defaults: a static plan, Kubernetes HPA, VPA, a threshold autoscaler and
//! Knative's KPA. Every one is a sans-IO struct: it gets a [`PipelineState`] and returns a
//! [`Decision`]; none names a bottleneck. Sources and modelling choices: docs/baselines.md.

mod fixed;
mod hpa;
mod kpa;
mod oracle;
mod threshold;
mod vpa;

pub use fixed::Static;
pub use hpa::{Hpa, HpaConfig, recommend};
pub use kpa::{Kpa, KpaConfig, StageKpa};
pub use oracle::Oracle;
pub use oracle::target as oracle_target;
pub use threshold::{Threshold, ThresholdConfig};
pub use vpa::{Vpa, VpaConfig, percentile};

use crate::policy::{Action, Decision, DecisionSource, Explanation, PipelineState, StageSpec};

/// A decision without a named bottleneck, explained as a baseline's (no candidates: a
/// baseline computes its action, it does not choose among predicted ones).
fn decision(action: Action, rationale: String) -> Decision {
    Decision::new(action, None, rationale)
        .explained(Explanation::from_source(DecisionSource::Baseline))
}

/// Clamps a replica count to a stage's bounds.
fn clamp_replicas(n: u64, spec: &StageSpec) -> u32 {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    n.clamp(spec.min_replicas, spec.max_replicas)
}

/// The current allocation with every share set to 1 (policies that do not touch ρ).
fn hold_full_share(state: &PipelineState) -> Action {
    let mut a = Action::hold(state);
    a.rho.iter_mut().for_each(|r| *r = 1.0);
    a
}

#[cfg(test)]
mod tests;
