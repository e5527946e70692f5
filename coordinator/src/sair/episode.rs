//! Episodes from open to close: what the policy saw during an interval
//! ([`IntervalObservations`]), the episode a decision opens ([`EpisodeStart`]), and closing it
//! one interval later with its realised reward and surprisal, into the experience store.

use crate::policy::{Action, CandidateView, Decision, Explanation, PipelineState, Prediction};

use super::candidates::MoveKind;
use super::reward::{self, Point};
use super::store::{CandidateBrief, Episode, Source};
use super::{DecisionLog, Sair};

/// An interval's observations must cover at least this many completions (weights) before its
/// P99 calibrates the model.
const TRUSTED_WEIGHT: f64 = 50.0;

/// Accumulates the calls within one decision interval into that interval's outcome.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct IntervalObservations {
    p99_weighted: f64,
    weight: f64,
    p99_max: f64,
    cost_sum: f64,
    arrival_sum: f64,
    calls: u32,
}

impl IntervalObservations {
    pub(super) fn add(&mut self, s: &PipelineState) {
        let w = s.completed.max(1) as f64;
        self.p99_weighted += s.e2e_p99_s * w;
        self.weight += w;
        self.p99_max = self.p99_max.max(s.e2e_p99_s);
        self.cost_sum += s.cost_per_hour;
        self.arrival_sum += s.arrival_rate;
        self.calls += 1;
    }

    /// The interval's outcome: P99 weighted by completions, mean cost rate.
    pub(super) fn point(&self) -> Point {
        let calls = f64::from(self.calls.max(1));
        Point {
            p99_s: if self.weight > 0.0 {
                self.p99_weighted / self.weight
            } else {
                0.0
            },
            cost_per_hour: self.cost_sum / calls,
        }
    }

    /// Mean pipeline arrival rate over the interval's calls.
    pub(super) fn mean_arrival_rate(&self) -> f64 {
        self.arrival_sum / f64::from(self.calls.max(1))
    }

    /// Whether enough requests completed for the interval's P99 to calibrate the model.
    pub(super) fn p99_trusted(&self) -> bool {
        self.weight >= TRUSTED_WEIGHT
    }
}

/// An action waiting for its outcome.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    decision_id: u64,
    episode: Episode,
}

/// What a decision (full or guard) knows when it opens an episode; the predicted reward is
/// derived from `before` and `predicted`.
#[derive(Debug, Clone)]
pub(super) struct EpisodeStart {
    pub source: Source,
    pub kind: MoveKind,
    /// The stage the move is about, if one.
    pub stage: Option<usize>,
    pub label: String,
    pub action: Action,
    /// The outcome observed before the action.
    pub before: Point,
    /// The outcome predicted for the action.
    pub predicted: Point,
    /// The candidates that were offered (none for a guard move).
    pub candidates: Vec<CandidateBrief>,
    /// The same candidates as the decision's explanation shows them (with actions, predicted
    /// rewards, safety and which was chosen).
    pub views: Vec<CandidateView>,
    pub bottleneck: Option<usize>,
    pub features: Vec<f64>,
}

impl Sair {
    /// Opens an episode for `e`, records the action for anti-oscillation, logs the decision and
    /// returns it.
    pub(super) fn apply(
        &mut self,
        s: &PipelineState,
        e: EpisodeStart,
        rationale: String,
    ) -> Decision {
        let id = self.next_id;
        self.next_id += 1;
        let predicted_reward = reward::reward(e.before, e.predicted, s.slo_p99_s, &self.cfg.reward);
        let (action, bottleneck, source, label) = (e.action, e.bottleneck, e.source, e.label);
        let explain = Explanation {
            source: source.into(),
            candidates: e.views,
            predicted: Some(Prediction {
                p99_s: e.predicted.p99_s,
                cost_per_hour: e.predicted.cost_per_hour,
                reward: Some(predicted_reward),
            }),
            label: Some(label.clone()),
            id: Some(id),
        };
        self.pending = Some(Pending {
            decision_id: id,
            episode: Episode {
                t_s: s.t_s,
                features: e.features,
                kind: e.kind,
                stage: e.stage,
                label: label.clone(),
                source,
                bottleneck,
                candidates: e.candidates,
                action: action.clone(),
                before: e.before,
                predicted: e.predicted,
                predicted_reward,
                realised: e.before,
                reward: 0.0,
                surprisal: 0.0,
            },
        });
        self.validator.record(s, &action, s.t_s);
        self.push_log(DecisionLog {
            id,
            t_s: s.t_s,
            source,
            bottleneck,
            label,
            rationale: rationale.clone(),
            reward: None,
        });
        Decision::new(action, bottleneck, rationale).explained(explain)
    }

    /// Closes the pending episode with the outcome observed since it was taken: its reward and
    /// surprisal, the error model, the log, and the experience store.
    pub(super) fn close_pending(&mut self, realised: Point, slo_s: f64) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        let r = reward::reward(p.episode.before, realised, slo_s, &self.cfg.reward);
        let surprisal = self.error_model.surprisal(p.episode.predicted_reward, r);
        self.error_model.update(p.episode.predicted_reward, r);
        p.episode.realised = realised;
        p.episode.reward = r;
        p.episode.surprisal = surprisal;
        tracing::info!(
            policy = %self.cfg.name,
            decision = p.decision_id,
            source = p.episode.source.as_str(),
            action = %p.episode.label,
            reward = r,
            predicted_reward = p.episode.predicted_reward,
            surprisal,
            p99_ms = realised.p99_s * 1e3,
            cost_per_hour = realised.cost_per_hour,
            "decision reward"
        );
        self.last_reward = Some((p.decision_id, r));
        if let Some(l) = self.log.iter_mut().rev().find(|l| l.id == p.decision_id) {
            l.reward = Some(r);
        }
        match &mut self.store {
            Some(st) => {
                if let Err(e) = st.append(p.episode).and_then(|()| st.sync()) {
                    tracing::error!(error = %e, "experience store write failed; episode kept in memory only");
                }
            }
            None => {
                self.memory.push(p.episode);
                if self.memory.len() > self.cfg.store_capacity {
                    let excess = self.memory.len() - self.cfg.store_capacity;
                    self.memory.drain(..excess);
                }
            }
        }
    }
}
