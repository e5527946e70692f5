//! The SAIR policy: an in-context reinforcement-learning controller.
//!
//! Each decision interval it turns the observed [`PipelineState`] into features, builds a
//! bounded set of candidate actions with outcomes predicted by a queueing model, scores them
//! with a Pareto-dominance reward, retrieves surprising past episodes from a durable experience
//! store, lets a selector (`model`, or `llm` with `model` as fallback) choose, checks the
//! choice with a validator (with forced exploration inside the safe set), and one interval
//! later labels the episode with its realised reward and surprisal. Between decisions a fast
//! guard scales up stages whose queues breach the SLO.
//!
//! Everything here is sans-IO except the experience store's file and the LLM client's
//! loopback HTTP, both behind small modules. Design and reasons: docs/policy.md.

pub mod candidates;
pub mod features;
pub mod guard;
pub mod llm;
pub mod queueing;
pub mod retrieval;
pub mod reward;
pub mod selector;
pub mod store;
pub mod validator;

use std::path::PathBuf;

use crate::policy::{Action, Decision, PipelineState, Policy};

use candidates::{Calibration, Candidate, CandidateConfig, Model, MoveKind, Prices};
use features::{History, Planning, bottleneck, feature_vector, validate_state};
use guard::{Guard, GuardConfig};
use retrieval::{ErrorModel, RetrievalConfig, retrieve};
use reward::{Point, RewardConfig};
use selector::{ModelSelector, SelectionInput, Selector};
use store::{CandidateBrief, Episode, Source, Store};
use validator::{Explorer, Limits, Validator};

/// Names this module builds, for the policy registry.
pub const NAMES: &[&str] = &[
    "sair",
    "sair-no-retrieval",
    "sair-no-surprisal",
    "sair-no-pareto",
    "sair-no-gpu-rate",
    "sair-no-negatives",
];

/// Configuration of the SAIR policy.
#[derive(Debug, Clone)]
pub struct SairConfig {
    pub name: String,
    /// Seconds between full decisions.
    pub interval_s: f64,
    pub guard: GuardConfig,
    pub prices: Prices,
    pub reward: RewardConfig,
    pub retrieval: RetrievalConfig,
    /// Whether retrieved episodes correct the model (`sair-no-retrieval` turns this off).
    pub use_retrieval: bool,
    pub candidates: CandidateConfig,
    pub limits: Limits,
    pub explore_rate0: f64,
    pub explore_tau: f64,
    pub seed: u64,
    /// Where the experience store lives; in memory only when `None`.
    pub state_dir: Option<PathBuf>,
    pub store_capacity: usize,
    /// The LLM selector's settings; the `model` selector when `None`.
    pub llm: Option<llm::LlmConfig>,
}

impl Default for SairConfig {
    fn default() -> Self {
        Self {
            name: "sair".into(),
            interval_s: 30.0,
            guard: GuardConfig::default(),
            prices: Prices::default(),
            reward: RewardConfig::default(),
            retrieval: RetrievalConfig::default(),
            use_retrieval: true,
            candidates: CandidateConfig::default(),
            limits: Limits::default(),
            explore_rate0: 0.05,
            explore_tau: 40.0,
            seed: 0,
            state_dir: None,
            store_capacity: 4096,
            llm: None,
        }
    }
}

impl SairConfig {
    /// Applies the ablation a registry name stands for; `None` for a name this module does
    /// not know.
    pub fn for_name(mut self, name: &str) -> Option<Self> {
        match name {
            "sair" => {}
            "sair-no-retrieval" => self.use_retrieval = false,
            "sair-no-surprisal" => self.retrieval.use_surprisal = false,
            "sair-no-pareto" => self.reward.pareto = false,
            "sair-no-gpu-rate" => self.candidates.gpu_rate = false,
            "sair-no-negatives" => self.retrieval.negatives = 0,
            _ => return None,
        }
        self.name = name.to_string();
        Some(self)
    }
}

/// Builds a SAIR policy (or ablation) by registry name.
pub fn build_with(name: &str, base: SairConfig) -> Option<Result<Sair, store::StoreError>> {
    base.for_name(name).map(Sair::new)
}

/// What a driver (the `sair` CLI, the simulator) knows that the policy needs.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Seed for exploration (one per run, so runs are reproducible).
    pub seed: u64,
    /// The scenario's control interval; 30 s when `None`.
    pub interval_s: Option<f64>,
    /// Prices per hour, when the driver knows them (the cost model is calibrated to the
    /// reported cost rate either way).
    pub prices: Option<Prices>,
    /// `--state-dir`: where the experience store lives (one directory per run).
    pub state_dir: Option<PathBuf>,
    /// `--llm-url`, `--llm-model`, and the API key already resolved from the variable named by
    /// `--llm-api-key-env` (see [`llm::LlmConfig::new`]).
    pub llm: Option<llm::LlmConfig>,
}

/// Builds a registry name into a boxed policy; `None` for a name this module does not know.
pub fn build(name: &str, inputs: Inputs) -> Option<Result<Box<dyn Policy>, store::StoreError>> {
    let base = SairConfig {
        seed: inputs.seed,
        interval_s: inputs.interval_s.unwrap_or(30.0),
        prices: inputs.prices.unwrap_or_default(),
        state_dir: inputs.state_dir,
        llm: inputs.llm,
        ..SairConfig::default()
    };
    build_with(name, base).map(|r| r.map(|p| Box::new(p) as Box<dyn Policy>))
}

/// An action waiting for its outcome.
#[derive(Debug, Clone)]
struct Pending {
    decision_id: u64,
    episode: Episode,
}

/// A decision as logged (kept for inspection and tests; the last 1,000).
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionLog {
    pub id: u64,
    pub t_s: f64,
    pub source: Source,
    pub bottleneck: Option<usize>,
    pub label: String,
    pub rationale: String,
    /// Filled one interval later.
    pub reward: Option<f64>,
}

/// Accumulates off-beat observations into one interval's outcome.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    p99_weighted: f64,
    weight: f64,
    p99_max: f64,
    cost_sum: f64,
    arrival_sum: f64,
    calls: u32,
}

impl Window {
    fn add(&mut self, s: &PipelineState) {
        let w = s.completed.max(1) as f64;
        self.p99_weighted += s.e2e_p99_s * w;
        self.weight += w;
        self.p99_max = self.p99_max.max(s.e2e_p99_s);
        self.cost_sum += s.cost_per_hour;
        self.arrival_sum += s.arrival_rate;
        self.calls += 1;
    }

    fn point(&self) -> Point {
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
}

/// The SAIR policy.
#[derive(Debug)]
pub struct Sair {
    cfg: SairConfig,
    history: History,
    validator: Validator,
    explorer: Explorer,
    guard: Guard,
    store: Option<Store>,
    memory: Vec<Episode>,
    error_model: ErrorModel,
    calibration: Calibration,
    selector: Box<dyn Selector>,
    fallback: ModelSelector,
    pending: Option<Pending>,
    last_full_t: Option<f64>,
    window: Window,
    next_id: u64,
    log: Vec<DecisionLog>,
}

impl Sair {
    /// Opens the experience store (recovering it) and builds the policy.
    pub fn new(cfg: SairConfig) -> Result<Self, store::StoreError> {
        let store = match &cfg.state_dir {
            Some(dir) => {
                let (st, rec) = Store::open(dir, cfg.store_capacity)?;
                if rec.dropped_bytes > 0 || rec.reason.is_some() {
                    tracing::warn!(
                        kept = rec.kept,
                        dropped_bytes = rec.dropped_bytes,
                        reason = rec.reason.as_deref().unwrap_or(""),
                        "experience store recovered a valid prefix; the rest was cut off"
                    );
                } else {
                    tracing::info!(kept = rec.kept, "experience store opened");
                }
                Some(st)
            }
            None => None,
        };
        let error_model = store.as_ref().map_or_else(ErrorModel::default, |s| {
            ErrorModel::from_episodes(s.episodes())
        });
        let fallback = ModelSelector {
            use_retrieval: cfg.use_retrieval,
            ..ModelSelector::default()
        };
        let selector: Box<dyn Selector> = match &cfg.llm {
            Some(l) => Box::new(llm::LlmSelector::new(l.clone(), fallback.clone())),
            None => Box::new(fallback.clone()),
        };
        Ok(Self {
            validator: Validator::new(cfg.limits),
            explorer: Explorer::new(cfg.explore_rate0, cfg.explore_tau, cfg.seed),
            guard: Guard::new(cfg.guard),
            history: History::default(),
            store,
            memory: Vec::new(),
            error_model,
            calibration: Calibration::default(),
            selector,
            fallback,
            pending: None,
            last_full_t: None,
            window: Window::default(),
            next_id: 0,
            log: Vec::new(),
            cfg,
        })
    }

    /// The decisions logged so far (the last 1,000).
    pub fn decisions(&self) -> &[DecisionLog] {
        &self.log
    }

    /// Measurements of the LLM selector's calls (empty for the model selector).
    pub fn llm_calls(&self) -> &[llm::CallStats] {
        self.selector.calls()
    }

    /// The episodes held (stored or in memory).
    pub fn episodes(&self) -> &[Episode] {
        match &self.store {
            Some(s) => s.episodes(),
            None => &self.memory,
        }
    }

    fn hold_decision(s: &PipelineState, why: String) -> Decision {
        Decision {
            action: Action::hold(s),
            bottleneck: None,
            rationale: why,
        }
    }

    /// Closes the pending episode with the outcome observed since it was taken.
    fn close_pending(&mut self, realised: Point, slo_s: f64) {
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

    fn push_log(&mut self, l: DecisionLog) {
        tracing::info!(
            policy = %self.cfg.name,
            decision = l.id,
            t_s = l.t_s,
            source = l.source.as_str(),
            bottleneck = l.bottleneck,
            action = %l.label,
            rationale = %l.rationale,
            "decision"
        );
        self.log.push(l);
        if self.log.len() > 1000 {
            self.log.remove(0);
        }
    }

    /// Off-beat call: only the guard may act.
    fn off_beat(&mut self, s: &PipelineState) -> Decision {
        let Some((i, a)) = self.guard.check(s, &self.cfg.limits) else {
            return Self::hold_decision(s, "between decisions; no guard breach".into());
        };
        if a == Action::hold(s) || self.validator.check(s, &a, s.t_s, true).is_err() {
            return Self::hold_decision(s, "guard breach, but no safe scale-up".into());
        }
        // The guard's move becomes an episode like any other: close the running one early.
        let now_point = self.window.point();
        self.close_pending(now_point, s.slo_p99_s);
        let planning = Planning::new(s, &self.history, self.cfg.interval_s);
        let model = Model {
            state: s,
            planning: &planning,
            prices: self.cfg.prices,
            calibration: self.calibration,
        };
        let pred = model.predict(&a);
        let predicted = Point {
            p99_s: pred.p99_s,
            cost_per_hour: pred.cost_per_hour,
        };
        let label = format!(
            "guard: {} {}x{:.2} -> {}x{:.2}",
            s.stages[i].name,
            s.stages[i].replicas_desired,
            s.stages[i].rho,
            a.replicas[i],
            a.rho[i]
        );
        let rationale = format!(
            "queue wait P99 {:.1} ms over the stage's SLO share for {:.0}s",
            s.stages[i].queue_wait_p99_s * 1e3,
            self.guard.cfg.sustain_s
        );
        let id = self.start_episode(
            s,
            Source::Guard,
            MoveKind::Guard,
            Some(i),
            &label,
            &a,
            now_point,
            predicted,
            Vec::new(),
            Some(i),
            feature_vector(s, &planning, &self.history),
        );
        self.validator.record(s, &a, s.t_s);
        self.push_log(DecisionLog {
            id,
            t_s: s.t_s,
            source: Source::Guard,
            bottleneck: Some(i),
            label,
            rationale: rationale.clone(),
            reward: None,
        });
        Decision {
            action: a,
            bottleneck: Some(i),
            rationale,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_episode(
        &mut self,
        s: &PipelineState,
        source: Source,
        kind: MoveKind,
        stage: Option<usize>,
        label: &str,
        a: &Action,
        before: Point,
        predicted: Point,
        candidates: Vec<CandidateBrief>,
        bottleneck: Option<usize>,
        features: Vec<f64>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let predicted_reward = reward::reward(before, predicted, s.slo_p99_s, &self.cfg.reward);
        self.pending = Some(Pending {
            decision_id: id,
            episode: Episode {
                t_s: s.t_s,
                features,
                kind,
                stage,
                label: label.to_string(),
                source,
                bottleneck,
                candidates,
                action: a.clone(),
                before,
                predicted,
                predicted_reward,
                realised: before,
                reward: 0.0,
                surprisal: 0.0,
            },
        });
        id
    }

    fn full_decision(&mut self, s: &PipelineState) -> Decision {
        let observed = self.window.point();
        let window_arrival = self.window.arrival_sum / f64::from(self.window.calls.max(1));
        let enough = self.window.weight >= 50.0;
        self.window = Window::default();
        self.last_full_t = Some(s.t_s);
        self.history.observe(s, window_arrival);
        let planning = Planning::new(s, &self.history, self.cfg.interval_s);

        // Calibrate the model on the allocation that was in place.
        let hold = Action::hold(s);
        {
            let m = Model {
                state: s,
                planning: &planning,
                prices: self.cfg.prices,
                calibration: Calibration::default(),
            };
            let (raw_p99, _) = m.raw_p99(&hold);
            if enough && raw_p99 > 0.0 && observed.p99_s > 0.0 {
                let ratio = (observed.p99_s / raw_p99).clamp(0.5, 3.0);
                self.calibration.p99_scale =
                    (0.7 * self.calibration.p99_scale.ln() + 0.3 * ratio.ln()).exp();
            }
            let raw_cost = m.raw_cost(&hold);
            if raw_cost > 0.0 && s.cost_per_hour > 0.0 {
                self.calibration.cost_scale = (s.cost_per_hour / raw_cost).clamp(0.1, 10.0);
            }
        }
        self.close_pending(observed, s.slo_p99_s);

        let model = Model {
            state: s,
            planning: &planning,
            prices: self.cfg.prices,
            calibration: self.calibration,
        };
        let b = bottleneck(s, &planning);
        let cands = candidates::generate(&model, b, &self.cfg.candidates, &self.cfg.limits);
        let features = feature_vector(s, &planning, &self.history);
        let predicted_reward: Vec<f64> = cands
            .iter()
            .map(|c| {
                reward::reward(
                    observed,
                    Point {
                        p99_s: c.predicted.p99_s,
                        cost_per_hour: c.predicted.cost_per_hour,
                    },
                    s.slo_p99_s,
                    &self.cfg.reward,
                )
            })
            .collect();
        let slo_pressure = observed.p99_s > s.slo_p99_s || cands[0].predicted.p99_s > s.slo_p99_s;
        let safe: Vec<bool> = cands
            .iter()
            .map(|c| {
                self.validator
                    .check(s, &c.action, s.t_s, slo_pressure)
                    .is_ok()
            })
            .collect();
        let neutral = reward::neutral(&self.cfg.reward);
        let all: &[Episode] = match &self.store {
            Some(st) => st.episodes(),
            None => &self.memory,
        };
        let idx = if self.cfg.use_retrieval || self.cfg.llm.is_some() {
            retrieve(all, &features, neutral, &self.cfg.retrieval)
        } else {
            Vec::new()
        };
        let eps: Vec<&Episode> = idx.iter().map(|&i| &all[i]).collect();
        let input = SelectionInput {
            state: s,
            features: &features,
            candidates: &cands,
            predicted_reward: &predicted_reward,
            safe: &safe,
            bottleneck: b,
            episodes: &eps,
            bandwidth: self.cfg.retrieval.bandwidth,
        };
        let mut sel = self.selector.select(&input);
        if sel.index >= cands.len() || !safe[sel.index] {
            let why = format!(
                "selector {} chose {} which the validator rejects",
                self.selector.name(),
                cands
                    .get(sel.index)
                    .map_or("an unknown id", |c| c.id.as_str())
            );
            let mut f = self.fallback.select(&input);
            f.source = Source::Fallback;
            f.rationale = format!("{why}; model: {}", f.rationale);
            tracing::warn!(reason = %why, "falling back to the model selector");
            sel = f;
        }
        drop(eps);
        if !slo_pressure {
            let explorable: Vec<usize> = (0..cands.len())
                .filter(|&i| safe[i] && cands[i].predicted.p99_s <= s.slo_p99_s)
                .collect();
            if let Some(i) = self.explorer.maybe_explore(&explorable)
                && i != sel.index
            {
                sel = selector::Selection {
                    index: i,
                    bottleneck: sel.bottleneck,
                    rationale: format!(
                        "forced exploration (rate {:.3}) instead of {}",
                        self.explorer.rate(),
                        cands[sel.index].id
                    ),
                    source: Source::Explore,
                };
            }
        }
        let chosen: &Candidate = &cands[sel.index];
        let action = chosen.action.clone();
        let briefs = cands
            .iter()
            .map(|c| CandidateBrief {
                label: c.label.clone(),
                p99_s: c.predicted.p99_s,
                cost_per_hour: c.predicted.cost_per_hour,
            })
            .collect();
        let predicted = Point {
            p99_s: chosen.predicted.p99_s,
            cost_per_hour: chosen.predicted.cost_per_hour,
        };
        let (kind, stage, label) = (chosen.kind, chosen.stage, chosen.label.clone());
        let id = self.start_episode(
            s,
            sel.source,
            kind,
            stage,
            &label,
            &action,
            observed,
            predicted,
            briefs,
            sel.bottleneck,
            features,
        );
        self.validator.record(s, &action, s.t_s);
        self.push_log(DecisionLog {
            id,
            t_s: s.t_s,
            source: sel.source,
            bottleneck: sel.bottleneck,
            label,
            rationale: sel.rationale.clone(),
            reward: None,
        });
        Decision {
            action,
            bottleneck: sel.bottleneck,
            rationale: sel.rationale,
        }
    }
}

impl Policy for Sair {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn decide(&mut self, s: &PipelineState) -> Decision {
        if let Err(e) = validate_state(s) {
            tracing::warn!(policy = %self.cfg.name, error = %e, "malformed state rejected; holding");
            return Self::hold_decision(s, format!("malformed state rejected: {e}"));
        }
        self.window.add(s);
        let full = self.last_full_t.is_none_or(|t| {
            s.t_s - t
                >= self.cfg.interval_s - 0.5 * self.cfg.guard.period_s.min(self.cfg.interval_s)
        });
        if full {
            self.full_decision(s)
        } else {
            self.off_beat(s)
        }
    }

    fn period_s(&self) -> Option<f64> {
        if self.cfg.guard.enabled {
            Some(self.cfg.guard.period_s.min(self.cfg.interval_s))
        } else {
            Some(self.cfg.interval_s)
        }
    }
}

#[cfg(test)]
pub(crate) mod test_util;
#[cfg(test)]
mod tests;
