//! The policy interface shared by the production loop and the simulator.
//!
//! Each control interval a [`Policy`] receives the observable [`PipelineState`] and returns a
//! [`Decision`]. Nothing here exposes what production could not observe (the true service-time
//! distribution, future arrivals), so a policy that does well in simulation is entitled to the
//! same inputs live.

use serde::{Deserialize, Serialize};

/// Whether a stage runs on CPU replicas or on shares of GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    Cpu,
    Gpu,
}

/// Static facts about a stage that the operator configured (bounds, not behaviour).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSpec {
    pub name: String,
    pub kind: StageKind,
    /// Concurrency slots per replica.
    pub concurrency: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
}

/// What was observed of one stage over the last interval (aggregated from StageReports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageState {
    pub name: String,
    pub kind: StageKind,
    /// Arrivals per second over the interval.
    pub arrival_rate: f64,
    /// Completions per second over the interval.
    pub completion_rate: f64,
    pub queue_wait_p50_s: f64,
    pub queue_wait_p95_s: f64,
    pub queue_wait_p99_s: f64,
    pub service_p50_s: f64,
    pub service_p95_s: f64,
    pub service_p99_s: f64,
    /// Mean service time over the interval (what a queueing model needs).
    pub service_mean_s: f64,
    pub mean_inflight: f64,
    pub queue_depth: u64,
    /// Busy fraction of the concurrency slots, in [0, 1].
    pub busy_fraction: f64,
    /// Replicas currently serving (not counting ones still starting).
    pub replicas: u32,
    /// Replicas requested (serving plus starting).
    pub replicas_desired: u32,
    /// GPU share per replica, in (0, 1]; 1.0 for CPU stages. When the replicas' shares differ
    /// ([`StageState::shares`]), their mean.
    pub rho: f64,
    /// Per-replica GPU shares (issue 15, item 2), one per replica asked for, in the stage's
    /// replica order: serving replicas first (oldest first), then starting ones. Empty when every
    /// replica runs at `rho` (always so for CPU stages, and live for now: the live coordinator
    /// applies one share per stage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<f64>,
    /// Concurrency slots per replica.
    pub concurrency: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
}

impl StageState {
    /// The share of each replica asked for (serving first, then starting): `shares` when it
    /// names one per replica, else `rho` for each.
    pub fn replica_shares(&self) -> Vec<f64> {
        if !self.shares.is_empty() && self.shares.len() == self.replicas_desired as usize {
            self.shares.clone()
        } else {
            vec![self.rho; self.replicas_desired as usize]
        }
    }
}

/// What was observed of the whole pipeline over the last interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineState {
    pub pipeline: String,
    /// Seconds since the start of the run (simulation) or of the coordinator (live).
    pub t_s: f64,
    pub interval_s: f64,
    pub stages: Vec<StageState>,
    pub e2e_p50_s: f64,
    pub e2e_p99_s: f64,
    /// Requests per second entering the pipeline.
    pub arrival_rate: f64,
    pub completed: u64,
    pub dropped: u64,
    pub slo_p99_s: f64,
    /// GPUs available to the pipeline's GPU stages.
    pub gpus: u32,
    /// Cost rate of the current allocation, per hour.
    pub cost_per_hour: f64,
}

/// The allocation a policy asks for, per stage, in pipeline order.
///
/// # Per-replica GPU shares
/// By default every replica of a stage runs at `rho[i]`. What an action does to a GPU stage's
/// shares ([`Action::resolve_shares`], applied alike to every policy by the simulator):
/// - `shares[i]` non-empty: the share of each replica, in the stage's replica order (serving
///   first, then starting; replicas the action adds last), `replicas[i]` of them, `rho[i]`
///   their mean;
/// - else `rho[i]` differs from the stage's current `rho`: every replica at `rho[i]`;
/// - else (`rho` unchanged): the replicas kept keep their shares, new ones start at `rho[i]`.
///
/// Fewer replicas drop the newest shares first. With one share per stage (every policy but
/// `sair-per-replica`) this is exactly the one-ρ-per-stage rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub replicas: Vec<u32>,
    /// GPU share per replica for GPU stages; ignored (kept at 1.0) for CPU stages.
    pub rho: Vec<f64>,
    /// Per-replica GPU shares by stage (see the type's docs); empty, or an empty entry, for one
    /// share per stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<Vec<f64>>,
}

impl Action {
    /// One share per stage: every replica of stage `i` at `rho[i]`.
    pub fn uniform(replicas: Vec<u32>, rho: Vec<f64>) -> Self {
        Self {
            replicas,
            rho,
            shares: Vec::new(),
        }
    }

    /// The allocation currently in place, i.e. "no change" (per-replica shares are kept, as
    /// `rho` is unchanged).
    pub fn hold(state: &PipelineState) -> Self {
        Self::uniform(
            state.stages.iter().map(|s| s.replicas_desired).collect(),
            state.stages.iter().map(|s| s.rho).collect(),
        )
    }

    /// The per-replica shares asked for stage `i`, if any.
    pub fn explicit_shares(&self, i: usize) -> Option<&[f64]> {
        self.shares
            .get(i)
            .map(Vec::as_slice)
            .filter(|v| !v.is_empty())
    }

    /// Sets stage `i`'s per-replica shares (and its replica count and mean ρ to match); a
    /// stage the action does not have is left alone.
    pub fn set_shares(&mut self, i: usize, shares: Vec<f64>) {
        if i >= self.replicas.len() || i >= self.rho.len() {
            return;
        }
        if self.shares.len() < self.replicas.len() {
            self.shares.resize(self.replicas.len(), Vec::new());
        }
        self.replicas[i] = shares.len() as u32;
        self.rho[i] = mean_share(&shares, self.rho[i]);
        self.shares[i] = shares;
    }

    /// The share of each of `n` replicas of stage `i` after this action, given the shares in
    /// place (`current`, replica order) and the stage's current ρ (see the type's docs).
    pub fn resolve_shares(&self, i: usize, n: u32, current: &[f64], current_rho: f64) -> Vec<f64> {
        let rho = self.rho.get(i).copied().unwrap_or(current_rho);
        resolve_shares(self.explicit_shares(i), n, rho, current, current_rho)
    }

    /// Collapses per-replica shares to one per stage, the largest (what the live coordinator
    /// applies: it sets one share per stage for now).
    pub fn collapse_shares(&mut self) {
        for (i, v) in std::mem::take(&mut self.shares).into_iter().enumerate() {
            if let (Some(max), Some(r)) = (
                v.iter().copied().filter(|x| x.is_finite()).reduce(f64::max),
                self.rho.get_mut(i),
            ) {
                *r = max;
            }
        }
    }
}

/// The per-replica shares rule of [`Action`]: `explicit` shares (padded with `rho` or cut to
/// `n`), else all at `rho` when it differs from `current_rho`, else the `current` shares kept
/// (cut to `n`) and new replicas at `rho`.
pub fn resolve_shares(
    explicit: Option<&[f64]>,
    n: u32,
    rho: f64,
    current: &[f64],
    current_rho: f64,
) -> Vec<f64> {
    let n = n as usize;
    let base: &[f64] = match explicit {
        Some(v) => v,
        None if (rho - current_rho).abs() > 1e-12 => &[],
        None => current,
    };
    let mut out: Vec<f64> = base.iter().copied().take(n).collect();
    out.resize(n, rho);
    out
}

/// The mean of `shares`, exactly the common value when they are all equal; `empty` when there
/// are none.
pub fn mean_share(shares: &[f64], empty: f64) -> f64 {
    match shares.first() {
        None => empty,
        Some(&f) if shares.iter().all(|&x| x == f) => f,
        Some(_) => shares.iter().sum::<f64>() / shares.len() as f64,
    }
}

/// A policy's answer for one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    /// Index of the stage the policy names as the bottleneck, if it names one.
    pub bottleneck: Option<usize>,
    pub rationale: String,
    /// Why this action: who chose it and what else was on offer, with predictions. `None`
    /// when the call decided nothing (SAIR between full decisions, when the guard finds no
    /// breach): a decision log ([`crate::record`]) skips those calls.
    #[serde(default)]
    pub explain: Option<Explanation>,
}

impl Decision {
    /// A decision without an explanation (add one with [`Decision::explained`]).
    pub fn new(action: Action, bottleneck: Option<usize>, rationale: impl Into<String>) -> Self {
        Self {
            action,
            bottleneck,
            rationale: rationale.into(),
            explain: None,
        }
    }

    /// The same decision with `explain` attached.
    pub fn explained(mut self, explain: Explanation) -> Self {
        self.explain = Some(explain);
        self
    }
}

/// Who or what chose a decision's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionSource {
    /// SAIR's `model` selector (queueing model plus retrieved episodes).
    Model,
    /// SAIR's `llm` selector.
    Llm,
    /// SAIR's guard: a queue breached its SLO share between (or at) full decisions. Guard
    /// no-ops (a breach it could not act on) carry this source too, with the reason.
    Guard,
    /// SAIR's forced exploration, among safe candidates.
    Explore,
    /// The selector's choice was rejected (or the state was malformed) and SAIR fell back to
    /// the `model` selector's choice, or to holding.
    Fallback,
    /// A baseline policy (static, HPA, VPA, threshold, KPA, oracle).
    Baseline,
}

impl DecisionSource {
    /// The lowercase name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionSource::Model => "model",
            DecisionSource::Llm => "llm",
            DecisionSource::Guard => "guard",
            DecisionSource::Explore => "explore",
            DecisionSource::Fallback => "fallback",
            DecisionSource::Baseline => "baseline",
        }
    }
}

impl std::fmt::Display for DecisionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A predicted outcome of an action over the next interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Predicted end-to-end P99, seconds.
    pub p99_s: f64,
    /// Predicted cost rate, per hour.
    pub cost_per_hour: f64,
    /// The policy's predicted reward for it, when the policy has a reward.
    pub reward: Option<f64>,
}

/// One candidate action that was on offer, as the policy predicted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateView {
    /// Human-readable description (`scale asr 2 -> 3`, …).
    #[serde(default)]
    pub label: String,
    pub action: Action,
    pub predicted_p99_s: f64,
    pub predicted_cost_per_hour: f64,
    pub predicted_reward: f64,
    /// Whether the validator accepted it when the choice was made.
    pub safe: bool,
    /// Whether it is the action taken.
    pub chosen: bool,
}

/// Why a decision's action was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub source: DecisionSource,
    /// What was on offer (empty for the guard and the baselines, which choose from no set).
    #[serde(default)]
    pub candidates: Vec<CandidateView>,
    /// The policy's prediction for the chosen action, when it makes one.
    #[serde(default)]
    pub predicted: Option<Prediction>,
    /// A short description of the chosen action, when the policy names it.
    #[serde(default)]
    pub label: Option<String>,
    /// The policy's own index of this decision, the one [`Policy::last_reward`] names when
    /// the decision's reward becomes known; `None` when the policy does not score decisions.
    #[serde(default)]
    pub id: Option<u64>,
}

impl Explanation {
    /// An explanation with only a source (what the baselines give).
    pub fn from_source(source: DecisionSource) -> Self {
        Self {
            source,
            candidates: Vec::new(),
            predicted: None,
            label: None,
            id: None,
        }
    }
}

/// A scaling policy: the SAIR controller or a baseline.
pub trait Policy: Send {
    /// A short, stable name (`hpa`, `sair`, ...), used on the command line and in results.
    fn name(&self) -> &str;

    /// Decides the allocation for the next interval from what was observed in the last one.
    fn decide(&mut self, state: &PipelineState) -> Decision;

    /// How often the policy wants to be asked, in seconds (HPA syncs every 15 s, the SAIR
    /// loop every 30 s). `None` means the scenario's control interval.
    fn period_s(&self) -> Option<f64> {
        None
    }

    /// The allocation the policy wants in place when the run starts (the `static` plan);
    /// `None` keeps the scenario's initial allocation. Added for the simulator; optional.
    fn initial_action(&self) -> Option<Action> {
        None
    }

    /// The reward of the most recent decision whose outcome is known, as
    /// `(Explanation::id, reward)`. SAIR learns a decision's reward one interval later (or
    /// when the guard acts first): right after a `decide` call, this names the decision before
    /// it. A decision log polls it after each call and fills that record's `reward`
    /// ([`crate::record::Recorder::observe`]). `None` for policies without a reward (the
    /// baselines) and before the first reward.
    fn last_reward(&self) -> Option<(u64, f64)> {
        None
    }

    /// Prompt tokens this policy has sent to its LLM so far: the server's count where it
    /// reports `usage`, else the prompt builder's estimate. 0 for policies without an LLM.
    /// Cumulative, so that a live coordinator exports it as a counter.
    fn llm_prompt_tokens(&self) -> u64 {
        0
    }
}
