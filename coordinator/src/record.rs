//! Decision records: one JSON object per decision, the time, what the policy saw (a summary of
//! the state), what it did, who chose it and why, the candidates with their predictions, and
//! the reward once it is known.
//!
//! One record shape serves every reader: `sair eval` (`decisions.jsonl`), the live
//! coordinator (`GET /v1/decisions`) and `sair demo` (`decisions.json`). A [`Recorder`] turns
//! each `decide` call into a record and fills the rewards in later from
//! [`Policy::last_reward`]; [`Recording`] wraps a policy so a driver that only knows
//! [`Policy`] (the simulator) records without being changed.
//!
//! Calls whose decision carries no explanation decided nothing (SAIR between full decisions,
//! when the guard finds no breach) and are not recorded: they would bury the decisions under
//! one hold every guard period.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::policy::{
    Action, CandidateView, Decision, PipelineState, Policy, Prediction, StageKind,
};

/// One stage as a record summarises it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    pub name: String,
    pub kind: StageKind,
    /// Replicas serving.
    pub replicas: u32,
    /// Replicas requested (serving plus starting).
    pub replicas_desired: u32,
    /// GPU share per replica (1.0 for CPU stages).
    pub rho: f64,
    /// Arrivals per second.
    pub arrival_rate: f64,
    pub queue_wait_p99_s: f64,
    pub service_p99_s: f64,
    /// Busy fraction of the concurrency slots, in [0, 1].
    pub busy_fraction: f64,
}

/// What the policy saw, in short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateSummary {
    pub e2e_p99_s: f64,
    pub e2e_p50_s: f64,
    /// Requests per second entering the pipeline.
    pub arrival_rate: f64,
    pub cost_per_hour: f64,
    pub slo_p99_s: f64,
    pub stages: Vec<StageSummary>,
}

impl StateSummary {
    pub fn of(s: &PipelineState) -> Self {
        Self {
            e2e_p99_s: s.e2e_p99_s,
            e2e_p50_s: s.e2e_p50_s,
            arrival_rate: s.arrival_rate,
            cost_per_hour: s.cost_per_hour,
            slo_p99_s: s.slo_p99_s,
            stages: s
                .stages
                .iter()
                .map(|st| StageSummary {
                    name: st.name.clone(),
                    kind: st.kind,
                    replicas: st.replicas,
                    replicas_desired: st.replicas_desired,
                    rho: st.rho,
                    arrival_rate: st.arrival_rate,
                    queue_wait_p99_s: st.queue_wait_p99_s,
                    service_p99_s: st.service_p99_s,
                    busy_fraction: st.busy_fraction,
                })
                .collect(),
        }
    }
}

/// One decision, as written to `decisions.jsonl` and served by `/v1/decisions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Seconds since the start of the run (simulation) or of the coordinator (live).
    pub time: f64,
    pub pipeline: String,
    /// The policy's name (`sair`, `hpa`, …).
    pub policy: String,
    /// The policy's own index of the decision (what [`Policy::last_reward`] names); `None`
    /// for policies that do not score their decisions.
    pub decision: Option<u64>,
    pub state: StateSummary,
    /// The allocation asked for, per stage in pipeline order (`state.stages` names them).
    pub action: Action,
    /// A short description of the action, when the policy gives one (`scale asr 1 -> 2`).
    pub label: Option<String>,
    /// `model`, `llm`, `guard`, `explore`, `fallback` or `baseline`; `none` when the decision
    /// carried no explanation.
    pub source: String,
    /// The stage the policy named as the bottleneck, by name.
    pub bottleneck: Option<String>,
    pub rationale: String,
    /// The policy's prediction for the chosen action.
    pub predicted: Option<Prediction>,
    /// What was on offer (empty for the guard and the baselines).
    pub candidates: Vec<CandidateView>,
    /// The reward the policy gave the decision once its outcome was observed (one interval
    /// later, for SAIR); `None` until then, and always for the baselines.
    pub reward: Option<f64>,
}

impl DecisionRecord {
    /// The record of `d`, decided by `policy` on `s`.
    pub fn new(policy: &str, s: &PipelineState, d: &Decision) -> Self {
        let explain = d.explain.as_ref();
        Self {
            time: s.t_s,
            pipeline: s.pipeline.clone(),
            policy: policy.to_string(),
            decision: explain.and_then(|e| e.id),
            state: StateSummary::of(s),
            action: d.action.clone(),
            label: explain.and_then(|e| e.label.clone()),
            source: explain.map_or("none", |e| e.source.as_str()).to_string(),
            bottleneck: d
                .bottleneck
                .and_then(|i| s.stages.get(i))
                .map(|st| st.name.clone()),
            rationale: d.rationale.clone(),
            predicted: explain.and_then(|e| e.predicted),
            candidates: explain.map(|e| e.candidates.clone()).unwrap_or_default(),
            reward: None,
        }
    }
}

/// The decisions of one policy, newest last, bounded; fills rewards in as they become known.
#[derive(Debug, Clone)]
pub struct Recorder {
    records: VecDeque<DecisionRecord>,
    capacity: usize,
}

impl Recorder {
    /// Keeps the newest `capacity` records (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            records: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Keeps every record (a simulation run, whose length bounds it).
    pub fn unbounded() -> Self {
        Self::new(usize::MAX)
    }

    /// Records one `decide` call: fills in the reward `last_reward` names (the policy's
    /// [`Policy::last_reward`] read after the call), then appends the decision when it carries
    /// an explanation. Returns whether a record was appended.
    pub fn observe(
        &mut self,
        policy: &str,
        s: &PipelineState,
        d: &Decision,
        last_reward: Option<(u64, f64)>,
    ) -> bool {
        if let Some((id, r)) = last_reward {
            self.fill_reward(id, r);
        }
        if d.explain.is_none() {
            return false;
        }
        if self.records.len() >= self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(DecisionRecord::new(policy, s, d));
        true
    }

    /// Sets the reward of the record of decision `id`, if it is still held and has none yet;
    /// returns whether one was set.
    pub fn fill_reward(&mut self, id: u64, reward: f64) -> bool {
        // Rewards arrive one decision late, so the record is at the back: search from there.
        match self
            .records
            .iter_mut()
            .rev()
            .find(|r| r.decision == Some(id))
        {
            Some(r) if r.reward.is_none() => {
                r.reward = Some(reward);
                true
            }
            _ => false,
        }
    }

    /// Every record held, oldest first.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = &DecisionRecord> + ExactSizeIterator {
        self.records.iter()
    }

    /// The newest `n` records, oldest first (`GET /v1/decisions?limit=n`).
    pub fn latest(&self, n: usize) -> Vec<&DecisionRecord> {
        let skip = self.records.len().saturating_sub(n);
        self.records.iter().skip(skip).collect()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records, oldest first.
    pub fn into_records(self) -> Vec<DecisionRecord> {
        self.records.into()
    }
}

/// A policy that records its own decisions: forwards every call to the wrapped policy and
/// feeds a [`Recorder`].
pub struct Recording {
    inner: Box<dyn Policy>,
    recorder: Recorder,
}

impl Recording {
    pub fn new(inner: Box<dyn Policy>, recorder: Recorder) -> Self {
        Self { inner, recorder }
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    pub fn into_recorder(self) -> Recorder {
        self.recorder
    }
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("policy", &self.inner.name())
            .field("records", &self.recorder.len())
            .finish()
    }
}

impl Policy for Recording {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn decide(&mut self, state: &PipelineState) -> Decision {
        let d = self.inner.decide(state);
        let last = self.inner.last_reward();
        self.recorder.observe(self.inner.name(), state, &d, last);
        d
    }

    fn period_s(&self) -> Option<f64> {
        self.inner.period_s()
    }

    fn initial_action(&self) -> Option<Action> {
        self.inner.initial_action()
    }

    fn last_reward(&self) -> Option<(u64, f64)> {
        self.inner.last_reward()
    }
}

#[cfg(test)]
mod tests;
