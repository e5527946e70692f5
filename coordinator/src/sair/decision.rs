//! The decision path, as named steps.
//!
//! A full decision (once per decision interval):
//!
//! 1. [`observe`](Sair::observe): close the interval's observations and update the history;
//!    then [`calibrate`](Sair::calibrate) the model on the allocation that was in place and
//!    label the previous episode with the interval's outcome ([`Sair::close_pending`]);
//! 2. [`offer`](Sair::offer): the candidates, each with its predicted outcome, predicted reward
//!    and whether the validator accepts it now;
//! 3. [`retrieve`](Sair::retrieve): the past episodes most worth showing the selector;
//! 4. [`select`](Sair::select): the selector's choice, and the `model` selector's instead when
//!    the validator rejects it;
//! 5. [`explore`](Sair::explore): at a decaying rate, a random safe candidate instead;
//! 6. [`Sair::apply`]: open the episode, record and log the action.
//!
//! Between full decisions, [`guard_decision`](Sair::guard_decision): only the guard may act.

use crate::policy::{Action, CandidateView, Decision, DecisionSource, PipelineState, StageKind};

use super::Sair;
use super::calibration::CalibrationSample;
use super::candidates::{self, Candidates, Model, MoveKind};
use super::episode::{EpisodeStart, IntervalObservations};
use super::features::{Planning, bottleneck, feature_vector};
use super::retrieval::retrieve;
use super::reward::{self, Point};
use super::selector::{Selection, SelectionInput, Selector};
use super::store::{CandidateBrief, Episode, Source};
use super::validator::{StartupWindow, startup_gap};

/// Per stage, whether an action sheds replicas (fewer than requested now) and whether it sheds
/// GPU share (a lower ρ).
pub(super) fn shed_parts(s: &PipelineState, a: &Action) -> Vec<(bool, bool)> {
    s.stages
        .iter()
        .enumerate()
        .map(|(i, st)| {
            (
                a.replicas.get(i).is_some_and(|&r| r < st.replicas_desired),
                st.kind == StageKind::Gpu && a.rho.get(i).is_some_and(|&r| r < st.rho - 1e-9),
            )
        })
        .collect()
}

/// What burst memory and the burst hold forbid on one stage: shedding its replicas, shedding
/// its GPU share.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Held {
    pub replicas: bool,
    pub share: bool,
}

/// Whether an action sheds something `held` forbids, on any stage.
pub(super) fn breaks_hold(s: &PipelineState, a: &Action, held: &[Held]) -> bool {
    shed_parts(s, a)
        .iter()
        .zip(held)
        .any(|(&(r, p), h)| (r && h.replicas) || (p && h.share))
}

/// What this interval offers the selector.
#[derive(Debug)]
struct Offer {
    candidates: Candidates,
    /// Per candidate, in candidate order.
    predicted_reward: Vec<f64>,
    /// Per candidate: whether the validator accepts it now.
    safe: Vec<bool>,
    /// The SLO is violated now or predicted to be under the allocation in place; lifts the
    /// anti-oscillation rule and forbids exploration.
    slo_pressure: bool,
    bottleneck: usize,
    features: Vec<f64>,
    /// Per stage, under the allocation in place.
    utilisation: Vec<f64>,
}

impl Sair {
    /// A full decision: the steps of the module docs, in order.
    pub(super) fn full_decision(&mut self, s: &PipelineState) -> Decision {
        let interval = self.observe(s);
        let observed = interval.point();
        let planning = Planning::new(s, &self.history, self.cfg.interval_s);
        self.calibrate(s, &planning, &interval);
        self.close_pending(observed, s.slo_p99_s);
        // The burst forecast raises what the candidates plan for, after calibration (which
        // compares the model with what the allocation in place did under the load it saw).
        let (planning, forecast) = self.burst_planning(s, planning);
        let offer = self.offer(s, &planning, observed, forecast);
        let retrieved = self.retrieve(&offer.features);
        let selection = self.select(s, &offer, &retrieved);
        let selection = self.explore(s, &offer, selection);
        let chosen = &offer.candidates[selection.index];
        let start = EpisodeStart {
            source: selection.source,
            kind: chosen.kind,
            stage: chosen.stage,
            label: chosen.label.clone(),
            action: chosen.action.clone(),
            before: observed,
            predicted: chosen.predicted.point(),
            candidates: offer
                .candidates
                .iter()
                .map(|c| CandidateBrief {
                    label: c.label.clone(),
                    p99_s: c.predicted.p99_s,
                    cost_per_hour: c.predicted.cost_per_hour,
                })
                .collect(),
            bottleneck: selection.bottleneck,
            views: offer
                .candidates
                .iter()
                .enumerate()
                .map(|(i, c)| CandidateView {
                    label: c.label.clone(),
                    action: c.action.clone(),
                    predicted_p99_s: c.predicted.p99_s,
                    predicted_cost_per_hour: c.predicted.cost_per_hour,
                    predicted_reward: offer.predicted_reward.get(i).copied().unwrap_or(0.0),
                    safe: offer.safe.get(i).copied().unwrap_or(false),
                    chosen: i == selection.index,
                })
                .collect(),
            features: offer.features,
        };
        self.apply(s, start, selection.rationale)
    }

    /// Step 1: ends the interval: its observations are taken out and its mean arrival rate
    /// enters the history. (The caller then calibrates the model and closes the previous
    /// episode with the interval's outcome.)
    fn observe(&mut self, s: &PipelineState) -> IntervalObservations {
        let interval = std::mem::take(&mut self.observations);
        self.last_full_t = Some(s.t_s);
        self.history.observe(s, interval.mean_arrival_rate());
        interval
    }

    /// Compares the uncalibrated model's prediction for the allocation that was in place with
    /// what the interval observed ([`super::calibration`]).
    fn calibrate(
        &mut self,
        s: &PipelineState,
        planning: &Planning,
        interval: &IntervalObservations,
    ) {
        let raw = Model {
            state: s,
            planning,
            prices: self.cfg.prices,
            calibration: Default::default(),
        };
        let in_place = Action::hold(s);
        self.calibration.update(&CalibrationSample {
            raw_p99_s: raw.raw_p99(&in_place).0,
            observed_p99_s: interval.point().p99_s,
            p99_trusted: interval.p99_trusted(),
            raw_cost_per_hour: raw.raw_cost(&in_place),
            observed_cost_per_hour: s.cost_per_hour,
        });
    }

    /// A stage's start-up (the operator's estimate; the longest known one, or two intervals,
    /// when it has none).
    fn startup_estimate_s(&self, i: usize) -> f64 {
        self.cfg
            .startup_s
            .get(i)
            .copied()
            .unwrap_or_else(|| {
                self.cfg
                    .startup_s
                    .iter()
                    .copied()
                    .fold(2.0 * self.cfg.interval_s, f64::max)
            })
            .max(0.0)
    }

    /// How long before a burst stage `i` must start getting ready for `peak` req/s: one
    /// decision interval (the longest a decision can wait for the next) when a higher ρ on the
    /// replicas it has can carry the peak (ρ acts at once), else its start-up as well.
    fn burst_lead_s(&self, s: &PipelineState, i: usize, service_mean_1: f64, peak: f64) -> f64 {
        let st = &s.stages[i];
        let by_share = st.kind == StageKind::Gpu
            && f64::from(st.replicas_desired.max(1) * st.concurrency.max(1))
                * self.model.max_utilisation
                >= peak * service_mean_1;
        if by_share {
            self.cfg.interval_s
        } else {
            self.cfg.interval_s + self.startup_estimate_s(i)
        }
    }

    /// What the holds forbid per stage ([`Held`]):
    ///
    /// - the burst hold (`holding`: the guard fired lately) forbids shedding anything, until a
    ///   recurrence is learned; from then on it keeps only GPU replicas (warm: a cold start
    ///   costs its billed start-up and the burst's first seconds, a low share costs little),
    ///   and burst memory decides the rest;
    /// - burst memory forbids shedding a stage's replicas while the next burst may come within
    ///   its start-up plus one interval, and its GPU share within one interval.
    pub(super) fn held(&self, s: &PipelineState, holding: bool) -> Vec<Held> {
        let memory = self.cfg.burst_memory.is_some();
        let learned = memory && self.bursts.learned();
        (0..s.stages.len())
            .map(|i| {
                let gpu = s.stages[i].kind == StageKind::Gpu;
                let replicas_lead = self.cfg.interval_s + self.startup_estimate_s(i);
                let soon = |lead: f64| memory && self.bursts.likely(s.t_s, lead);
                Held {
                    replicas: (holding && (!learned || gpu)) || soon(replicas_lead),
                    share: (holding && !learned) || (gpu && soon(self.cfg.interval_s)),
                }
            })
            .collect()
    }

    /// Burst memory's part of the planning loads ([`super::burst`]): each stage whose lead time
    /// reaches into the next expected burst plans for the learned peak (never for less than
    /// it did). Returns whether the forecast raised any stage.
    pub(super) fn burst_planning(
        &self,
        s: &PipelineState,
        mut planning: Planning,
    ) -> (Planning, bool) {
        if self.cfg.burst_memory.is_none() {
            return (planning, false);
        }
        let Some(peak) = self.bursts.next(s.t_s).map(|w| w.peak) else {
            return (planning, false);
        };
        let mut raised = false;
        for i in 0..planning.lambda.len().min(s.stages.len()) {
            let lead = self.burst_lead_s(s, i, planning.service_mean_1[i], peak);
            let l = planning.lambda[i];
            let f = self.bursts.floor(s.t_s, lead, l);
            if f > l {
                planning.lambda[i] = f;
                raised = true;
            }
        }
        (planning, raised)
    }

    /// Step 2: the candidates with their predictions, rewards and safety. `forecast`: the
    /// burst forecast raised the planning loads, so a scale-up is not a reversal to hold back.
    fn offer(
        &self,
        s: &PipelineState,
        planning: &Planning,
        observed: Point,
        forecast: bool,
    ) -> Offer {
        let model = Model {
            state: s,
            planning,
            prices: self.cfg.prices,
            calibration: self.calibration,
        };
        let b = bottleneck(s, planning);
        let candidates = candidates::generate(&model, b, &self.cfg.candidates, &self.cfg.limits);
        // With consistent tiers, each move is ranked against holding's prediction: the same
        // model on both sides, so a noisy interval's P99 does not make a cut look free.
        let base = if self.cfg.reward.consistent_tiers {
            candidates.hold.predicted.point()
        } else {
            observed
        };
        let predicted_reward = candidates
            .iter()
            .map(|c| reward::reward(base, c.predicted.point(), s.slo_p99_s, &self.cfg.reward))
            .collect();
        let slo_pressure =
            observed.p99_s > s.slo_p99_s || candidates.hold.predicted.p99_s > s.slo_p99_s;
        let holding = self
            .last_guard_t
            .is_some_and(|t| s.t_s - t < self.cfg.burst_hold_intervals * self.cfg.interval_s);
        let held = self.held(s, holding);
        let pressure = slo_pressure || forecast;
        let window = StartupWindow {
            demand: &planning.lambda,
            service_mean_1: &planning.service_mean_1,
            startup_s: &self.cfg.startup_s,
        };
        let safe = candidates
            .iter()
            .map(|c| {
                self.validator.check(s, &c.action, s.t_s, pressure).is_ok()
                    && self
                        .cfg
                        .limits
                        .startup_max_utilisation
                        .is_none_or(|u| startup_gap(s, &c.action, &window, u).is_ok())
                    && !breaks_hold(s, &c.action, &held)
            })
            .collect();
        Offer {
            predicted_reward,
            safe,
            slo_pressure,
            bottleneck: b,
            features: feature_vector(s, planning, &self.history),
            utilisation: (0..s.stages.len())
                .map(|i| planning.utilisation(s, i))
                .collect(),
            candidates,
        }
    }

    /// Step 3: indices into [`Sair::episodes`] of the episodes to show the selector, best
    /// first; none when neither the model's correction nor an LLM would read them.
    fn retrieve(&self, features: &[f64]) -> Vec<usize> {
        if self.cfg.use_retrieval || self.llm.is_some() {
            let neutral = reward::neutral(&self.cfg.reward);
            retrieve(self.episodes(), features, neutral, &self.cfg.retrieval)
        } else {
            Vec::new()
        }
    }

    /// Step 4: the selector's choice, validated: a choice the validator rejects (or an index
    /// out of range) is replaced by the `model` selector's, with source `fallback`.
    fn select(&mut self, s: &PipelineState, offer: &Offer, retrieved: &[usize]) -> Selection {
        let all: &[Episode] = match &self.store {
            Some(st) => st.episodes(),
            None => &self.memory,
        };
        let episodes: Vec<&Episode> = retrieved.iter().map(|&i| &all[i]).collect();
        let input = SelectionInput {
            state: s,
            features: &offer.features,
            utilisation: &offer.utilisation,
            candidates: &offer.candidates,
            predicted_reward: &offer.predicted_reward,
            safe: &offer.safe,
            bottleneck: offer.bottleneck,
            episodes: &episodes,
            bandwidth: self.cfg.retrieval.bandwidth,
        };
        let selector: &mut dyn Selector = match &mut self.llm {
            Some(l) => l,
            None => &mut self.model,
        };
        let chosen = selector.select(&input);
        if offer.safe.get(chosen.index).copied().unwrap_or(false) {
            return chosen;
        }
        let why = format!(
            "selector {} chose {} which the validator rejects",
            selector.name(),
            offer
                .candidates
                .get(chosen.index)
                .map_or("an unknown id", |c| c.id.as_str())
        );
        tracing::warn!(reason = %why, "falling back to the model selector");
        let mut f = self.model.select(&input);
        f.source = Source::Fallback;
        f.rationale = format!("{why}; model: {}", f.rationale);
        f
    }

    /// Step 5: forced exploration, only when the SLO is not under pressure, among the safe
    /// candidates predicted to meet the SLO.
    fn explore(&mut self, s: &PipelineState, offer: &Offer, selection: Selection) -> Selection {
        if offer.slo_pressure {
            return selection;
        }
        let explorable: Vec<usize> = (0..offer.candidates.len())
            .filter(|&i| offer.safe[i] && offer.candidates[i].predicted.p99_s <= s.slo_p99_s)
            .collect();
        match self.explorer.maybe_explore(&explorable) {
            Some(i) if i != selection.index => Selection {
                index: i,
                bottleneck: selection.bottleneck,
                rationale: format!(
                    "forced exploration (rate {:.3}) instead of {}",
                    self.explorer.rate(),
                    offer.candidates[selection.index].id
                ),
                source: Source::Explore,
            },
            _ => selection,
        }
    }

    /// Between full decisions only the guard may act: a stage whose queue breaches its share
    /// of the SLO is scaled up at once, as an episode of its own.
    pub(super) fn guard_decision(&mut self, s: &PipelineState) -> Decision {
        let Some((i, a)) = self.guard.check(s, &self.cfg.limits) else {
            return Self::hold_decision(s, None, "between decisions; no guard breach".into());
        };
        if a == Action::hold(s) {
            let why = "guard breach, but no room: every breaching stage is at its replica bound or its GPUs are fully committed";
            tracing::info!(stage = %s.stages[i].name, reason = why, "guard cannot act");
            return Self::hold_decision(s, Some(DecisionSource::Guard), why.into());
        }
        if let Err(errs) = self.validator.check(s, &a, s.t_s, true) {
            let why = errs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            tracing::info!(stage = %s.stages[i].name, reason = %why, "guard cannot act: the validator rejects its scale-up");
            return Self::hold_decision(
                s,
                Some(DecisionSource::Guard),
                format!("guard breach, but no safe scale-up: {why}"),
            );
        }
        self.last_guard_t = Some(s.t_s);
        // The guard's move becomes an episode like any other: close the running one early.
        let now = self.observations.point();
        self.close_pending(now, s.slo_p99_s);
        let planning = Planning::new(s, &self.history, self.cfg.interval_s);
        let model = Model {
            state: s,
            planning: &planning,
            prices: self.cfg.prices,
            calibration: self.calibration,
        };
        let st = &s.stages[i];
        let start = EpisodeStart {
            source: Source::Guard,
            kind: MoveKind::Guard,
            stage: Some(i),
            label: format!(
                "guard: {} {}x{:.2} -> {}x{:.2}",
                st.name, st.replicas_desired, st.rho, a.replicas[i], a.rho[i]
            ),
            before: now,
            predicted: model.predict(&a).point(),
            candidates: Vec::new(),
            views: Vec::new(),
            bottleneck: Some(i),
            features: feature_vector(s, &planning, &self.history),
            action: a,
        };
        let rationale = format!(
            "queue wait P99 {:.1} ms over the stage's SLO share for {:.0}s",
            st.queue_wait_p99_s * 1e3,
            self.guard.cfg.sustain_s
        );
        self.apply(s, start, rationale)
    }
}
