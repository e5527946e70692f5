//! The `model` selector: ranks the candidates by predicted reward, corrected by what retrieved
//! episodes say similar moves really did, with feasibility first.

use crate::policy::StageKind;

use super::super::candidates::Candidate;
use super::super::caps::{self, DerivedCaps};
use super::super::retrieval::similarity;
use super::super::store::{Episode, Source};
use super::{Selection, SelectionInput, Selector};

/// Whether a move buys capacity (+1), sheds it (−1) or neither (0), by its predicted cost
/// against what it starts from.
fn direction(from_cost: f64, to_cost: f64) -> i8 {
    let tol = 0.01 * from_cost.abs();
    if to_cost > from_cost + tol {
        1
    } else if to_cost < from_cost - tol {
        -1
    } else {
        0
    }
}

/// How much a past episode's move tells about a candidate: 1 for the same kind on the same
/// stage, 0.3 for the same kind elsewhere, 0 otherwise, and 0 when the two go opposite ways
/// (a right-size that bought capacity says nothing of one that sheds it). `hold_cost` is the
/// predicted cost of holding now, what the candidate starts from.
fn action_match(c: &Candidate, e: &Episode, hold_cost: f64) -> f64 {
    let now = direction(hold_cost, c.predicted.cost_per_hour);
    let then = direction(e.before.cost_per_hour, e.predicted.cost_per_hour);
    if c.kind != e.kind || now * then < 0 {
        0.0
    } else if c.stage == e.stage {
        1.0
    } else {
        0.3
    }
}

/// Kernel-regression correction of a candidate's predicted reward by the retrieved episodes:
/// `Σ w_j (r_j − r̂_j) / (1 + Σ w_j)` with `w_j = similarity × action match` (the 1 in the
/// denominator shrinks towards no correction when little evidence matches). Returns the
/// correction and the total weight.
pub fn correction(input: &SelectionInput<'_>, c: &Candidate) -> (f64, f64) {
    let (mut num, mut den) = (0.0, 0.0);
    let hold_cost = input.candidates.hold.predicted.cost_per_hour;
    for e in input.episodes {
        let w = similarity(input.features, &e.features, input.bandwidth)
            * action_match(c, e, hold_cost);
        if w > 0.0 {
            num += w * (e.reward - e.predicted_reward);
            den += w;
        }
    }
    (num / (1.0 + den), den)
}

/// Whether `best`, a move costlier than hold and predicted no faster, wins only because
/// hold's own correction is negative: without that correction hold would rank at least as
/// high. What followed a past hold differs from its prediction (the outcome observed then)
/// only by what the load did meanwhile (a burst starting, one ending), an error every
/// candidate of that state shares; charged to hold alone it made the selector buy capacity it
/// predicted to be useless (issue 15: decode grew 9 → 15 replicas at 6 % busy between bursts,
/// docs/results.md). The costlier move still wins on its own evidence.
fn buys_nothing_on_holds_luck(
    input: &SelectionInput<'_>,
    scores: &[(f64, f64, f64)],
    best: usize,
) -> bool {
    let (hold, c) = (
        &input.candidates.hold.predicted,
        &input.candidates[best].predicted,
    );
    best != 0
        && c.cost_per_hour > hold.cost_per_hour
        && c.p99_s >= 0.99 * hold.p99_s
        && scores[0].1 < 0.0
        && input.predicted_reward[0] >= scores[best].0
}

/// The `model` selector.
///
/// Feasibility first: among the safe candidates, only those predicted to keep P99 within
/// `headroom × SLO` compete on (corrected) reward. If none is predicted feasible, the one with
/// the lowest predicted P99 is taken (ties within 5 % broken by reward). Without this, the
/// Pareto tiers alone would let an absurd but cheaper move (incomparable: cost down, P99 up
/// a hundredfold) outrank holding under rising load (dominated: P99 slightly up, cost equal).
#[derive(Debug, Clone)]
pub struct ModelSelector {
    /// Whether retrieved episodes correct predictions (`sair-no-retrieval` turns this off).
    pub use_retrieval: bool,
    /// Fraction of the SLO a candidate's predicted P99 must stay within to be feasible.
    pub headroom: f64,
    /// Highest predicted utilisation of a GPU stage for a candidate to be feasible: queueing
    /// tails and start-up delays punish allocations run hot more than the mean model says.
    pub max_utilisation: f64,
    /// The same for a CPU stage. A CPU replica costs a few percent of a GPU's share, so its
    /// headroom is nearly free while its queue tail costs P99 like any other; and a CPU stage
    /// has no fast lever (no ρ) to absorb a burst while replicas start. The `sair-one-cap`
    /// ablation sets it to `max_utilisation`.
    pub cpu_max_utilisation: f64,
    /// Per-stage caps derived from each stage's SLO share and replica cost ([`caps`]), in place
    /// of the two constants above; `None` (the constants) in `sair`, set by the opt-in
    /// `sair-derived-caps`.
    pub derived_caps: Option<DerivedCaps>,
}

impl Default for ModelSelector {
    fn default() -> Self {
        Self {
            use_retrieval: true,
            headroom: 0.8,
            max_utilisation: 0.65,
            cpu_max_utilisation: 0.4,
            derived_caps: None,
        }
    }
}

impl ModelSelector {
    /// Score of every candidate: predicted reward plus correction.
    pub fn scores(&self, input: &SelectionInput<'_>) -> Vec<(f64, f64, f64)> {
        input
            .candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (corr, w) = if self.use_retrieval {
                    correction(input, c)
                } else {
                    (0.0, 0.0)
                };
                (input.predicted_reward[i] + corr, corr, w)
            })
            .collect()
    }
}

impl Selector for ModelSelector {
    fn name(&self) -> &'static str {
        "model"
    }

    fn select(&mut self, input: &SelectionInput<'_>) -> Selection {
        let scores = self.scores(input);
        let limit = self.headroom * input.state.slo_p99_s;
        let p99 = |i: usize| input.candidates[i].predicted.p99_s;
        let safe: Vec<usize> = input.offerable().collect();
        let derived = self
            .derived_caps
            .as_ref()
            .and_then(|d| caps::stage_caps(d, input.state));
        let cap = |k: usize| {
            if let Some(c) = derived.as_ref().and_then(|d| d.get(k)) {
                return *c;
            }
            match input.state.stages.get(k).map(|st| st.kind) {
                Some(StageKind::Cpu) => self.cpu_max_utilisation,
                _ => self.max_utilisation,
            }
        };
        let cool = |i: usize| {
            input.candidates[i]
                .predicted
                .utilisation
                .iter()
                .enumerate()
                .all(|(k, u)| *u <= cap(k))
        };
        let feasible: Vec<usize> = safe
            .iter()
            .copied()
            .filter(|&i| p99(i) <= limit && cool(i))
            .collect();
        let contenders = if feasible.is_empty() {
            let min = safe.iter().map(|&i| p99(i)).fold(f64::INFINITY, f64::min);
            safe.into_iter().filter(|&i| p99(i) <= min * 1.05).collect()
        } else {
            feasible
        };
        // Never empty: hold is always offerable, and the lowest P99 is within 5 % of itself.
        let mut best = contenders[0];
        for &i in &contenders {
            if scores[i].0 > scores[best].0 {
                best = i;
            }
        }
        if contenders.contains(&0) && buys_nothing_on_holds_luck(input, &scores, best) {
            best = 0;
        }
        let c = &input.candidates[best];
        let (s, corr, w) = scores[best];
        Selection {
            index: best,
            bottleneck: Some(input.bottleneck),
            rationale: format!(
                "{} ({}): predicted P99 {:.1} ms, cost {:.3}/h, reward {:.3} (correction {:+.3} from weight {:.2})",
                c.id,
                c.label,
                c.predicted.p99_s * 1e3,
                c.predicted.cost_per_hour,
                s,
                corr,
                w
            ),
            source: Source::Model,
        }
    }
}

#[cfg(test)]
mod tests;
