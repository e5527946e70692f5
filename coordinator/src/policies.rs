//! The policy registry: turns a name from the command line into a boxed [`Policy`].
//!
//! Drivers (the simulator, `sair eval`, the live loop) describe the pipeline once in a
//! [`PolicyContext`]; [`build`] hands it to the baseline or to the SAIR module. The context
//! carries only what an operator configures (bounds, prices, the SLO, a static capacity plan),
//! never what production could not observe.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::baselines;
use crate::policy::{Policy, StageKind, StageSpec};

/// The baselines of the paper plus Knative's KPA, in the order results list them.
pub const BASELINES: &[&str] = &["static", "hpa", "vpa", "threshold", "kpa"];

/// One stage as the operator configured it.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    pub spec: StageSpec,
    /// Seconds a new replica takes before it serves.
    pub startup_s: f64,
    /// The operator's nominal service time per request on one replica (GPU: at ρ = 1), as
    /// configured in the scenario. Only the `static` plan uses it.
    pub nominal_service_s: f64,
    /// Replicas at the start of the run.
    pub initial_replicas: u32,
    /// GPU share (GPU stages) or CPU share (CPU stages) per replica at the start, in (0, 1].
    pub initial_rho: f64,
}

/// Prices per hour, as the operator configures them (a scenario's `[cost]`). A GPU is billed
/// by the share ρ its replicas hold (the paper's assumption); a CPU replica whole.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub cpu_replica_per_hour: f64,
    pub gpu_per_hour: f64,
}

impl Default for Prices {
    /// The prices every shipped scenario uses.
    fn default() -> Self {
        Self {
            cpu_replica_per_hour: 0.048,
            gpu_per_hour: 1.10,
        }
    }
}

/// What every policy may know about the pipeline before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyContext {
    pub pipeline: String,
    pub stages: Vec<StagePlan>,
    pub slo_p99_s: f64,
    pub gpus: u32,
    pub prices: Prices,
    /// The scenario's control interval.
    pub interval_s: f64,
    /// The highest arrival rate the operator plans for (the `static` plan sizes for it).
    pub peak_rate_rps: f64,
    pub seed: u64,
    /// Where a learning policy keeps its durable state; in memory when `None`.
    pub state_dir: Option<PathBuf>,
    /// The LLM selector's server for the `sair*` policies; `None` uses the `model` selector.
    pub llm: Option<crate::sair::selector::llm::LlmConfig>,
    /// The scenario's whole workload, future included. Only the `oracle` reads it: no policy
    /// anyone can run may (live, it is `None`).
    pub known_workload: Option<KnownWorkload>,
}

/// A workload known in advance (the simulator's scenario), for the `oracle` only.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownWorkload {
    pub pattern: sair_loadgen::pattern::Pattern,
    pub duration_s: f64,
}

impl PolicyContext {
    /// The stage specs in pipeline order.
    pub fn specs(&self) -> Vec<StageSpec> {
        self.stages.iter().map(|s| s.spec.clone()).collect()
    }

    /// Indices of GPU stages.
    pub fn gpu_stages(&self) -> impl Iterator<Item = usize> + '_ {
        self.stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.spec.kind == StageKind::Gpu)
            .map(|(i, _)| i)
    }
}

/// Why a policy name could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UnknownPolicy {
    #[error("unknown policy `{name}`; known policies: {}", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
    #[error("policy `{name}` could not start: {reason}")]
    Failed { name: String, reason: String },
}

/// Every name [`build`] accepts.
pub fn known() -> Vec<String> {
    BASELINES
        .iter()
        .chain(crate::sair::NAMES.iter())
        .map(|s| (*s).to_string())
        .collect()
}

/// Builds the policy called `name` for the pipeline described by `ctx`.
pub fn build(name: &str, ctx: &PolicyContext) -> Result<Box<dyn Policy>, UnknownPolicy> {
    match name {
        "static" => Ok(Box::new(baselines::Static::new(ctx))),
        "hpa" => Ok(Box::new(baselines::Hpa::new(
            ctx,
            baselines::HpaConfig::default(),
        ))),
        "vpa" => Ok(Box::new(baselines::Vpa::new(
            ctx,
            baselines::VpaConfig::default(),
        ))),
        "threshold" => Ok(Box::new(baselines::Threshold::new(
            ctx,
            baselines::ThresholdConfig::default(),
        ))),
        "kpa" => Ok(Box::new(baselines::Kpa::new(
            ctx,
            baselines::KpaConfig::default(),
        ))),
        name if baselines::oracle_target(name).is_some() => {
            let target = baselines::oracle_target(name).unwrap_or(0.6);
            match baselines::Oracle::new(name, ctx, target) {
                Some(o) => Ok(Box::new(o)),
                None => Err(UnknownPolicy::Failed {
                    name: name.to_string(),
                    reason: "the oracle needs the scenario's workload (sair eval only)".into(),
                }),
            }
        }
        // Extension point: the SAIR policy and its ablations (crate::sair owns the names).
        name if name.starts_with("sair") => build_sair(name, ctx),
        _ => Err(UnknownPolicy::Unknown {
            name: name.to_string(),
            known: known(),
        }),
    }
}

fn build_sair(name: &str, ctx: &PolicyContext) -> Result<Box<dyn Policy>, UnknownPolicy> {
    let inputs = crate::sair::Inputs {
        seed: ctx.seed,
        interval_s: Some(ctx.interval_s),
        prices: Some(ctx.prices),
        state_dir: ctx.state_dir.clone(),
        llm: ctx.llm.clone(),
        startup_s: ctx.stages.iter().map(|s| s.startup_s).collect(),
    };
    match crate::sair::build(name, inputs) {
        Some(Ok(p)) => Ok(p),
        Some(Err(e)) => Err(UnknownPolicy::Failed {
            name: name.to_string(),
            reason: e.to_string(),
        }),
        None => Err(UnknownPolicy::Unknown {
            name: name.to_string(),
            known: known(),
        }),
    }
}

#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
#[cfg(test)]
mod tests;
