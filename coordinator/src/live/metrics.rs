//! Every metric of the live coordinator: names, descriptions, and pre-resolved handles.
//!
//! Labels come from bounded sets: `pipeline` and `stage` from the pipelines file, `source` from
//! [`DecisionSource`] (plus `none`), `action` from [`ActionKind`], `reason` from
//! [`RefusedReason`]. The actuator's own `sair_actuator_*` counters (every failed attempt,
//! every give-up) and the mesh's `sair_mesh_*` are served on the same `/metrics`.

use metrics::{Counter, Gauge, Histogram, Unit};

use crate::policy::{DecisionSource, StageKind};

/// Wall time of one policy decision (the `decide` call, an LLM round trip included).
pub const DECISION_SECONDS: &str = "sair_coordinator_decision_seconds";
/// Buckets of [`DECISION_SECONDS`]: a model decision takes microseconds to milliseconds, an LLM
/// round trip one to twenty seconds (its timeout).
pub const DECISION_BUCKETS: &[f64] = &[
    0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0,
];
/// Decisions recorded, by who chose them.
pub const DECISIONS_TOTAL: &str = "sair_coordinator_decisions_total";
/// Decisions that held the allocation because a stage had no fresh report.
pub const STALE_HOLDS_TOTAL: &str = "sair_coordinator_stale_holds_total";
/// Stages without a fresh report at the last look.
pub const STALE_STAGES: &str = "sair_coordinator_stale_stages";
/// Actions that could not be carried out (after the actuator's retries), by kind.
pub const ACTION_FAILURES_TOTAL: &str = "sair_coordinator_action_failures_total";
/// ρ targets published on the mesh.
pub const RHO_PUBLISHED_TOTAL: &str = "sair_coordinator_rho_published_total";
/// Report values refused, by reason.
pub const REPORTS_REFUSED_TOTAL: &str = "sair_coordinator_reports_refused_total";
/// 1 while this coordinator leads (decides and acts), 0 while it stands by.
pub const LEADER: &str = "sair_coordinator_leader";
/// Replicas asked for per stage: the count in force, as this coordinator last decided it; before
/// that, its starting allocation, or under a gate (the Kubernetes Lease) the Deployments'
/// counts, which a coordinator that does not lead follows.
pub const REPLICAS: &str = "sair_coordinator_replicas";
/// Replicas serving per stage, as the actuator reports them (ready pods under Kubernetes).
pub const REPLICAS_SERVING: &str = "sair_coordinator_replicas_serving";
/// The ρ target in force per GPU stage (CPU stages have none).
pub const RHO: &str = "sair_coordinator_rho";
/// The allocation's cost rate as `sair eval` bills it: a CPU replica whole, a GPU replica by
/// its share ρ, replicas asked for (`[cost]` prices of the pipelines file).
pub const EFFECTIVE_COST_PER_HOUR: &str = "sair_coordinator_effective_cost_per_hour";
/// Prompt tokens sent to the policy's LLM (the server's count where it reports usage, else
/// the estimate); stays 0 without an LLM.
pub const LLM_PROMPT_TOKENS_TOTAL: &str = "sair_coordinator_llm_prompt_tokens_total";

/// What an action changes (the `action` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// A replica count, through the actuator.
    Replicas,
    /// A ρ target, on the mesh.
    Rho,
}

impl ActionKind {
    pub const ALL: [ActionKind; 2] = [ActionKind::Replicas, ActionKind::Rho];

    pub const fn as_str(self) -> &'static str {
        match self {
            ActionKind::Replicas => "replicas",
            ActionKind::Rho => "rho",
        }
    }
}

/// Why a report value was not taken (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedReason {
    /// Not a valid StageReport of the key it sits under.
    Invalid,
    /// A stage the pipelines file does not have.
    UnknownStage,
}

impl RefusedReason {
    pub const ALL: [RefusedReason; 2] = [RefusedReason::Invalid, RefusedReason::UnknownStage];

    pub const fn as_str(self) -> &'static str {
        match self {
            RefusedReason::Invalid => "invalid",
            RefusedReason::UnknownStage => "unknown_stage",
        }
    }
}

/// The `source` label values: every [`DecisionSource`], then `none`.
const SOURCES: [Option<DecisionSource>; 7] = [
    Some(DecisionSource::Model),
    Some(DecisionSource::Llm),
    Some(DecisionSource::Guard),
    Some(DecisionSource::Explore),
    Some(DecisionSource::Fallback),
    Some(DecisionSource::Baseline),
    None,
];

/// Describes every metric above to the installed recorder. Call once at start-up.
pub fn describe() {
    metrics::describe_histogram!(
        DECISION_SECONDS,
        Unit::Seconds,
        "Wall time of one policy decision (an LLM round trip included)"
    );
    metrics::describe_counter!(
        DECISIONS_TOTAL,
        "Decisions recorded, by source (model, llm, guard, explore, fallback, baseline, none)"
    );
    metrics::describe_counter!(
        STALE_HOLDS_TOTAL,
        "Decisions that held the allocation because a stage had no fresh report"
    );
    metrics::describe_gauge!(
        STALE_STAGES,
        "Stages without a fresh report at the last look"
    );
    metrics::describe_counter!(
        ACTION_FAILURES_TOTAL,
        "Actions not carried out after the actuator's retries (replicas) or refused by the mesh (rho)"
    );
    metrics::describe_counter!(RHO_PUBLISHED_TOTAL, "ρ targets published on the mesh");
    metrics::describe_counter!(
        REPORTS_REFUSED_TOTAL,
        "Report values not taken, by reason (invalid, unknown_stage)"
    );
    metrics::describe_counter!(
        LLM_PROMPT_TOKENS_TOTAL,
        "Prompt tokens sent to the policy's LLM (server count, else estimate)"
    );
    metrics::describe_gauge!(
        REPLICAS,
        "Replicas asked for per stage (the decision in force)"
    );
    metrics::describe_gauge!(
        REPLICAS_SERVING,
        "Replicas serving per stage, as the actuator reports them"
    );
    metrics::describe_gauge!(RHO, "ρ target in force per GPU stage");
    metrics::describe_gauge!(
        EFFECTIVE_COST_PER_HOUR,
        "Cost rate of the allocation, GPUs billed by their share ρ (per hour, the [cost] prices)"
    );
    metrics::describe_gauge!(
        LEADER,
        "1 while this coordinator leads (decides and acts), 0 while it stands by"
    );
}

/// The handles of one pipeline, resolved once.
#[derive(Debug, Clone)]
pub struct LiveMetrics {
    pub decision_seconds: Histogram,
    decisions: [Counter; 7],
    pub stale_holds: Counter,
    pub stale_stages: Gauge,
    failures: [Counter; 2],
    pub rho_published: Counter,
    refused: [Counter; 2],
    pub leader: Gauge,
    /// Set from the policy's cumulative count after each decision.
    pub llm_prompt_tokens: Counter,
    /// Per stage, in the pipelines file's order.
    stages: Vec<StageGauges>,
    pub effective_cost_per_hour: Gauge,
}

/// The allocation gauges of one stage.
#[derive(Debug, Clone)]
struct StageGauges {
    replicas: Gauge,
    serving: Gauge,
    /// GPU stages only.
    rho: Option<Gauge>,
}

impl LiveMetrics {
    /// Handles for `pipeline` and its `stages` (name and kind, in the file's order) on the
    /// installed recorder.
    pub fn new<'a>(pipeline: &str, stages: impl IntoIterator<Item = (&'a str, StageKind)>) -> Self {
        let p = pipeline.to_owned();
        let stages = stages
            .into_iter()
            .map(|(name, kind)| {
                let s = name.to_owned();
                StageGauges {
                    replicas: metrics::gauge!(REPLICAS, "pipeline" => p.clone(), "stage" => s.clone()),
                    serving: metrics::gauge!(REPLICAS_SERVING, "pipeline" => p.clone(), "stage" => s.clone()),
                    rho: (kind == StageKind::Gpu)
                        .then(|| metrics::gauge!(RHO, "pipeline" => p.clone(), "stage" => s)),
                }
            })
            .collect();
        Self {
            stages,
            effective_cost_per_hour: metrics::gauge!(EFFECTIVE_COST_PER_HOUR, "pipeline" => p.clone()),
            decision_seconds: metrics::histogram!(DECISION_SECONDS, "pipeline" => p.clone()),
            decisions: SOURCES.map(|s| {
                let source = s.map_or("none", DecisionSource::as_str);
                metrics::counter!(DECISIONS_TOTAL, "pipeline" => p.clone(), "source" => source)
            }),
            stale_holds: metrics::counter!(STALE_HOLDS_TOTAL, "pipeline" => p.clone()),
            stale_stages: metrics::gauge!(STALE_STAGES, "pipeline" => p.clone()),
            failures: ActionKind::ALL.map(|k| {
                metrics::counter!(ACTION_FAILURES_TOTAL, "pipeline" => p.clone(), "action" => k.as_str())
            }),
            rho_published: metrics::counter!(RHO_PUBLISHED_TOTAL, "pipeline" => p.clone()),
            refused: RefusedReason::ALL.map(|r| {
                metrics::counter!(REPORTS_REFUSED_TOTAL, "pipeline" => p.clone(), "reason" => r.as_str())
            }),
            leader: metrics::gauge!(LEADER),
            llm_prompt_tokens: metrics::counter!(LLM_PROMPT_TOKENS_TOTAL, "pipeline" => p.clone()),
        }
    }

    /// Counts one decision of `source` (`None`: it carried no explanation).
    pub fn decision(&self, source: Option<DecisionSource>) {
        if let Some(i) = SOURCES.iter().position(|s| *s == source) {
            self.decisions[i].increment(1);
        }
    }

    /// Sets stage `i`'s allocation: replicas serving and asked for, and ρ (GPU stages).
    pub fn allocation(&self, i: usize, serving: u32, desired: u32, rho: f64) {
        if let Some(g) = self.stages.get(i) {
            g.serving.set(f64::from(serving));
            g.replicas.set(f64::from(desired));
            if let Some(r) = &g.rho {
                r.set(rho);
            }
        }
    }

    /// Counts one action that could not be carried out.
    pub fn failure(&self, kind: ActionKind) {
        if let Some(i) = ActionKind::ALL.iter().position(|k| *k == kind) {
            self.failures[i].increment(1);
        }
    }

    /// Counts `n` report values refused for `reason`.
    pub fn refused(&self, reason: RefusedReason, n: u64) {
        if let Some(i) = RefusedReason::ALL.iter().position(|r| *r == reason) {
            self.refused[i].increment(n);
        }
    }
}
