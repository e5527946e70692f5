//! Pareto-dominance reward over (P99, cost) between consecutive intervals.
//!
//! `r = tier · (B + δ) + B · σ(s)`, with `tier` = 2 when the transition dominates (no
//! objective worse beyond tolerance, at least one better), 0 when it is dominated, 1 otherwise
//! (incomparable or equivalent); `σ(x) = (1 + x/(1+|x|))/2`, so the in-tier term lies in
//! `(0, B)`; and `s = w_p·ln(P̃99/P̃99') + w_c·ln(cost/cost') − κ·ln(max(1, P99'/SLO))`, the
//! weighted log-improvement minus the SLO-violation penalty, where `P̃99 = max(P99, f·SLO)`
//! ([`RewardConfig::p99_floor_slo`]: latency far inside the SLO is not worth paying for). Log ratios are scale-free and
//! never saturate (a linear, clamped score made every candidate look alike in an overload);
//! the algebraic sigmoid keeps far-apart scores distinguishable in floating point. Because the
//! in-tier term is confined to `(0, B)`, any two transitions one tier apart differ by more than
//! δ (docs/policy.md, Proposition 1). The `sair-no-pareto` ablation uses `s` alone.
//!
//! The tiers agree with the score's sign ([`RewardConfig::consistent_tiers`]): the noise
//! tolerance may not turn a move whose weighted score is negative into a dominating one. `s`
//! is a difference of potentials (`w_p·ln P99 + w_c·ln cost`), so a selector that only leaves
//! hold for a higher reward cannot walk round a cycle of predicted moves.

use serde::{Deserialize, Serialize};

/// A point in objective space.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub p99_s: f64,
    pub cost_per_hour: f64,
}

/// How one interval compares with the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Dominates,
    Equivalent,
    Incomparable,
    Dominated,
}

/// Reward parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RewardConfig {
    /// P99 changes below `max(p99_tol_rel·P99, p99_tol_slo·SLO)` are noise.
    pub p99_tol_rel: f64,
    pub p99_tol_slo: f64,
    /// Cost changes below `cost_tol_rel·cost` are noise.
    pub cost_tol_rel: f64,
    /// Width of the in-tier band, B.
    pub band: f64,
    /// Separation margin between tiers, δ.
    pub delta: f64,
    pub w_p99: f64,
    pub w_cost: f64,
    /// SLO-violation penalty weight κ.
    pub slo_penalty: f64,
    /// Tiered Pareto shaping on (default) or the weighted sum alone (ablation).
    pub pareto: bool,
    /// Tiers agree with the score's sign (default): a transition is `Dominates` only when its
    /// score `s ≥ 0` and `Dominated` only when `s ≤ 0`, otherwise `Incomparable`. Without it
    /// (the `sair-tolerant-tiers` ablation) a P99 rise inside the tolerance is free, so a chain
    /// of small cuts each "dominates" while the step back over their sum does not: a limit
    /// cycle (docs/policy.md, "Consistent tiers").
    pub consistent_tiers: bool,
    /// P99 below `p99_floor_slo × SLO` buys nothing in the score: the improvement term takes
    /// `max(P99, floor)` on both sides, so a pipeline far inside its SLO trades its spare
    /// latency for cost instead of weighing every millisecond against every cent. 0 turns it
    /// off (the `sair-no-p99-floor` ablation).
    pub p99_floor_slo: f64,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self {
            p99_tol_rel: 0.05,
            p99_tol_slo: 0.05,
            cost_tol_rel: 0.02,
            band: 1.0,
            delta: 0.5,
            w_p99: 1.0,
            w_cost: 1.0,
            slo_penalty: 2.0,
            pareto: true,
            consistent_tiers: true,
            p99_floor_slo: 0.35,
        }
    }
}

fn cmp_with_tol(prev: f64, next: f64, tol: f64) -> i8 {
    if next < prev - tol {
        1
    } else if next > prev + tol {
        -1
    } else {
        0
    }
}

/// Classifies the transition `prev → next` with the noise tolerances; with
/// [`RewardConfig::consistent_tiers`], a tolerated change may not flip the score's sign (a
/// `Dominates` whose score is negative, or a `Dominated` whose score is positive, is
/// `Incomparable`).
pub fn relation(prev: Point, next: Point, slo_s: f64, cfg: &RewardConfig) -> Relation {
    let tp = (cfg.p99_tol_rel * prev.p99_s).max(cfg.p99_tol_slo * slo_s);
    let tc = cfg.cost_tol_rel * prev.cost_per_hour.abs();
    let p = cmp_with_tol(prev.p99_s, next.p99_s, tp);
    let c = cmp_with_tol(prev.cost_per_hour, next.cost_per_hour, tc);
    let r = match (p, c) {
        (0, 0) => Relation::Equivalent,
        (a, b) if a >= 0 && b >= 0 => Relation::Dominates,
        (a, b) if a <= 0 && b <= 0 => Relation::Dominated,
        _ => Relation::Incomparable,
    };
    if !cfg.consistent_tiers {
        return r;
    }
    let s = score(prev, next, slo_s, cfg);
    match r {
        Relation::Dominates if s < 0.0 => Relation::Incomparable,
        Relation::Dominated if s > 0.0 => Relation::Incomparable,
        r => r,
    }
}

/// The tier of a relation: 2 dominating, 1 incomparable or equivalent, 0 dominated.
pub fn tier(r: Relation) -> u8 {
    match r {
        Relation::Dominates => 2,
        Relation::Equivalent | Relation::Incomparable => 1,
        Relation::Dominated => 0,
    }
}

/// The weighted improvement minus the SLO penalty (`s` in the module docs).
pub fn score(prev: Point, next: Point, slo_s: f64, cfg: &RewardConfig) -> f64 {
    // Floors keep the logs finite: 1 ms and 1e-6/h are below anything that matters.
    let p = |x: f64| x.clamp(1e-3, 1e4);
    let c = |x: f64| x.max(1e-6);
    let floor = cfg.p99_floor_slo * slo_s;
    let dp = (p(prev.p99_s.max(floor)) / p(next.p99_s.max(floor))).ln();
    let dc = (c(prev.cost_per_hour) / c(next.cost_per_hour)).ln();
    let violation = (p(next.p99_s) / slo_s).max(1.0).ln();
    let s = cfg.w_p99 * dp + cfg.w_cost * dc - cfg.slo_penalty * violation;
    if s.is_finite() { s } else { 0.0 }
}

/// Algebraic sigmoid onto (0, 1): decays like 1/x, so large scores stay ordered.
fn squash(x: f64) -> f64 {
    0.5 * (1.0 + x / (1.0 + x.abs()))
}

/// The reward of the transition `prev → next`.
pub fn reward(prev: Point, next: Point, slo_s: f64, cfg: &RewardConfig) -> f64 {
    let s = score(prev, next, slo_s, cfg);
    if !cfg.pareto {
        return s;
    }
    let t = f64::from(tier(relation(prev, next, slo_s, cfg)));
    t * (cfg.band + cfg.delta) + cfg.band * squash(s)
}

/// The reward of "nothing changed" (an equivalent transition with no violation): episodes
/// above it are positive exemplars, below it negative.
pub fn neutral(cfg: &RewardConfig) -> f64 {
    if cfg.pareto {
        cfg.band + cfg.delta + cfg.band * 0.5
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests;
