//! The bounded candidate set offered each interval, each with the outcome the queueing model
//! predicts for it (end-to-end P99 and cost rate).

use serde::{Deserialize, Serialize};

use crate::policies::Prices;
use crate::policy::{Action, PipelineState, StageKind};

use super::calibration::Calibration;
use super::features::Planning;
use super::queueing::{predict_stage, tandem_p99};
use super::reward::Point;
use super::validator::{Limits, clamp_step, gpu_fits};

/// GPU share granularity.
pub const RHO_QUANTUM: f64 = 0.05;

/// What kind of move a candidate is; retrieval matches past episodes by kind and stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveKind {
    Hold,
    ScaleUp,
    ScaleDown,
    RhoUp,
    RhoDown,
    MoveShare,
    Combined,
    RightSize,
    Guard,
}

impl MoveKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MoveKind::Hold => "hold",
            MoveKind::ScaleUp => "scale_up",
            MoveKind::ScaleDown => "scale_down",
            MoveKind::RhoUp => "rho_up",
            MoveKind::RhoDown => "rho_down",
            MoveKind::MoveShare => "move_share",
            MoveKind::Combined => "combined",
            MoveKind::RightSize => "right_size",
            MoveKind::Guard => "guard",
        }
    }
}

/// Predicted outcome of an allocation over the next interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictedOutcome {
    pub p99_s: f64,
    pub cost_per_hour: f64,
    /// Predicted utilisation per stage.
    pub utilisation: Vec<f64>,
}

impl PredictedOutcome {
    /// The two objectives the reward compares.
    pub fn point(&self) -> Point {
        Point {
            p99_s: self.p99_s,
            cost_per_hour: self.cost_per_hour,
        }
    }
}

/// One candidate action.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Stable id within the interval: `c0` for hold, then `c1`, `c2`, … for the moves.
    pub id: String,
    pub kind: MoveKind,
    /// The stage the move is about, if one.
    pub stage: Option<usize>,
    /// Human-readable description, as shown to the LLM.
    pub label: String,
    pub action: Action,
    pub predicted: PredictedOutcome,
}

/// The candidate set of one interval: holding, which is always offered (changing nothing is
/// always possible, even when what is in place does not pack), and the moves.
///
/// Selectors, the prompt's ids and [`Candidates::iter`] number them in one order: index
/// [`Candidates::HOLD`] (0, id `c0`) is `hold`, index `i ≥ 1` (id `c{i}`) is `moves[i − 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidates {
    pub hold: Candidate,
    pub moves: Vec<Candidate>,
}

impl Candidates {
    /// The index of `hold`.
    pub const HOLD: usize = 0;

    /// Whether index `i` is `hold`.
    pub fn is_hold(i: usize) -> bool {
        i == Self::HOLD
    }

    /// Hold plus the moves.
    pub fn len(&self) -> usize {
        1 + self.moves.len()
    }

    /// Never: hold is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The candidate at index `i` (see the type's docs for the order).
    pub fn get(&self, i: usize) -> Option<&Candidate> {
        match i.checked_sub(1) {
            None => Some(&self.hold),
            Some(m) => self.moves.get(m),
        }
    }

    /// Every candidate in index order: hold first.
    pub fn iter(&self) -> impl Iterator<Item = &Candidate> {
        std::iter::once(&self.hold).chain(&self.moves)
    }

    /// The index of the candidate with id `id`.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.iter().position(|c| c.id == id)
    }
}

impl std::ops::Index<usize> for Candidates {
    type Output = Candidate;

    /// Panics when `i` is out of range, as a slice does.
    fn index(&self, i: usize) -> &Candidate {
        match self.get(i) {
            Some(c) => c,
            None => panic!("candidate index {i} out of range (len {})", self.len()),
        }
    }
}

/// Everything needed to predict outcomes.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    pub state: &'a PipelineState,
    pub planning: &'a Planning,
    pub prices: Prices,
    pub calibration: Calibration,
}

impl Model<'_> {
    /// Cost rate of an allocation before calibration.
    pub fn raw_cost(&self, a: &Action) -> f64 {
        self.state
            .stages
            .iter()
            .enumerate()
            .map(|(i, st)| match st.kind {
                StageKind::Cpu => f64::from(a.replicas[i]) * self.prices.cpu_replica_per_hour,
                StageKind::Gpu => f64::from(a.replicas[i]) * a.rho[i] * self.prices.gpu_per_hour,
            })
            .sum()
    }

    /// Uncalibrated end-to-end P99 and per-stage utilisation.
    pub fn raw_p99(&self, a: &Action) -> (f64, Vec<f64>) {
        let preds: Vec<_> = (0..self.state.stages.len())
            .map(|i| {
                predict_stage(
                    &self
                        .planning
                        .stage_load(self.state, i, a.replicas[i], a.rho[i]),
                )
            })
            .collect();
        let util = preds.iter().map(|p| p.utilisation).collect();
        (tandem_p99(&preds), util)
    }

    /// Calibrated prediction of an allocation's end-to-end P99, cost rate and utilisations.
    pub fn predict(&self, a: &Action) -> PredictedOutcome {
        let (p99, utilisation) = self.raw_p99(a);
        PredictedOutcome {
            p99_s: p99 * self.calibration.p99_scale,
            cost_per_hour: self.raw_cost(a) * self.calibration.cost_scale,
            utilisation,
        }
    }
}

/// Knobs of the candidate generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandidateConfig {
    /// Whether ρ moves are offered (the `sair-no-gpu-rate` ablation turns them off).
    pub gpu_rate: bool,
    /// Larger replica step offered besides ±1.
    pub big_step: u32,
    /// ρ step for ρ up/down moves.
    pub rho_step: f64,
    /// Lowest ρ a GPU replica may run at.
    pub rho_min: f64,
    /// Right-size targets, as fractions of the SLO.
    pub right_size_targets: [f64; 3],
    /// Whether ρ moves of one quantum ([`RHO_QUANTUM`]) are offered besides the `rho_step`
    /// ones (issue 15, item 5: a 0.1 step overshoots a share that needs 0.05 less or more;
    /// off in `sair`: measured, it cost more SLO than it saved in cost; `sair-fine-rho` turns it
    /// on).
    pub fine_rho: bool,
    /// Whether a GPU stage whose next replica does not pack at its current ρ is offered one
    /// more replica with every replica at the highest ρ that packs, when that adds capacity
    /// (issue 15, item 5: "+1 replica at rebalanced ρ"; without it, a stage whose GPUs are
    /// committed at its ρ can only grow by a ρ move, which the others' shares block). Off in
    /// `sair`: measured, it was almost never chosen and did not help; `sair-rebalance` turns it
    /// on.
    pub rebalance: bool,
    /// Per-replica GPU shares, growing (issue 15, item 2; `sair-per-replica-up`): on a GPU
    /// stage whose next replica does not pack at its ρ, one more replica at the largest share
    /// that packs while the serving ones keep theirs; once the shares differ, the smallest one
    /// step up, and (every replica serving) the shares evened out at their mean.
    pub replica_shares_up: bool,
    /// Per-replica GPU shares, trimming (`sair-per-replica-trim`): the newest replica's share
    /// one step down, a scale-down smaller than a replica that leaves the others' shares.
    pub replica_shares_trim: bool,
    /// "ρ to fit the load" on every GPU stage: the smallest share (on the `rho_step` grid) that
    /// keeps the stage's planned utilisation at or below this, on the replicas it has (issue
    /// 15, item 3: a GPU replica kept warm at a low share between bursts, and its share raised
    /// in one move when the burst forecast raises the load). `None` in `sair`; set by
    /// `sair-burst-memory`.
    pub fit_share: Option<f64>,
}

impl Default for CandidateConfig {
    fn default() -> Self {
        Self {
            gpu_rate: true,
            big_step: 2,
            rho_step: 0.1,
            rho_min: 0.1,
            right_size_targets: [0.35, 0.5, 0.7],
            fine_rho: false,
            rebalance: false,
            replica_shares_up: false,
            replica_shares_trim: false,
            fit_share: None,
        }
    }
}

fn quantise_rho(r: f64, min: f64) -> f64 {
    ((r / RHO_QUANTUM).round() * RHO_QUANTUM).clamp(min, 1.0)
}

/// Builds the candidate set: hold; ±1 and ±k replicas on the bottleneck and its neighbours;
/// ρ up/down on GPU stages; GPU share moved between GPU stages; a combined move (bottleneck
/// up, least-utilised stage down); and right-size moves (the cheapest allocation predicted to
/// meet a P99 target, stepped within the step limits). Every candidate respects bounds, step
/// limits and GPU packing; duplicates are dropped.
pub fn generate(
    m: &Model<'_>,
    bottleneck: usize,
    cfg: &CandidateConfig,
    limits: &Limits,
) -> Candidates {
    let s = m.state;
    let hold = Action::hold(s);
    let n = s.stages.len();
    let mut raw: Vec<(MoveKind, Option<usize>, String, Action)> = Vec::new();
    let name = |i: usize| s.stages[i].name.as_str();

    let mut around = vec![bottleneck];
    if bottleneck > 0 {
        around.push(bottleneck - 1);
    }
    if bottleneck + 1 < n {
        around.push(bottleneck + 1);
    }
    for &i in &around {
        for step in [1, cfg.big_step.max(2)] {
            let mut up = hold.clone();
            up.replicas[i] = up.replicas[i].saturating_add(step);
            raw.push((
                MoveKind::ScaleUp,
                Some(i),
                format!("{} +{step} replicas", name(i)),
                up,
            ));
            let mut down = hold.clone();
            down.replicas[i] = down.replicas[i].saturating_sub(step);
            raw.push((
                MoveKind::ScaleDown,
                Some(i),
                format!("{} -{step} replicas", name(i)),
                down,
            ));
        }
    }
    // Scale-down candidates for every other stage (over-provisioning is where cost hides).
    for i in (0..n).filter(|i| !around.contains(i)) {
        let mut down = hold.clone();
        down.replicas[i] = down.replicas[i].saturating_sub(1);
        raw.push((
            MoveKind::ScaleDown,
            Some(i),
            format!("{} -1 replica", name(i)),
            down,
        ));
    }
    let gpu: Vec<usize> = (0..n)
        .filter(|&i| s.stages[i].kind == StageKind::Gpu)
        .collect();
    if cfg.gpu_rate {
        let fine = cfg.fine_rho.then_some(RHO_QUANTUM);
        for &i in &gpu {
            for step in std::iter::once(cfg.rho_step).chain(fine) {
                for (kind, sign) in [(MoveKind::RhoUp, 1.0), (MoveKind::RhoDown, -1.0)] {
                    let mut a = hold.clone();
                    a.rho[i] = quantise_rho(a.rho[i] + sign * step, cfg.rho_min);
                    raw.push((
                        kind,
                        Some(i),
                        format!("{} rho -> {:.2}", name(i), a.rho[i]),
                        a,
                    ));
                }
            }
            if cfg.rebalance
                && let Some(a) = rebalanced_up(s, &hold, i, cfg.rho_min)
            {
                raw.push((
                    MoveKind::ScaleUp,
                    Some(i),
                    format!(
                        "{} +1 replica, every replica at rho {:.2} (rebalanced to pack)",
                        name(i),
                        a.rho[i]
                    ),
                    a,
                ));
            }
        }
        if let Some(cap) = cfg.fit_share {
            for &i in &gpu {
                if let Some(a) = fit_share(m, &hold, i, cap, cfg) {
                    let kind = if a.rho[i] > hold.rho[i] {
                        MoveKind::RhoUp
                    } else {
                        MoveKind::RhoDown
                    };
                    raw.push((
                        kind,
                        Some(i),
                        format!("{} rho -> {:.2} (fit to load)", name(i), a.rho[i]),
                        a,
                    ));
                }
            }
        }
        if cfg.replica_shares_up || cfg.replica_shares_trim {
            for &i in &gpu {
                raw.extend(per_replica_moves(s, &hold, i, cfg));
            }
        }
        for &from in &gpu {
            for &to in &gpu {
                if from == to {
                    continue;
                }
                let mut a = hold.clone();
                let moved = cfg.rho_step * f64::from(a.replicas[from]);
                a.rho[from] = quantise_rho(a.rho[from] - cfg.rho_step, cfg.rho_min);
                a.rho[to] = quantise_rho(
                    a.rho[to] + moved / f64::from(a.replicas[to].max(1)),
                    cfg.rho_min,
                );
                raw.push((
                    MoveKind::MoveShare,
                    Some(to),
                    format!("move GPU share from {} to {}", name(from), name(to)),
                    a,
                ));
            }
        }
    }
    // Combined: bottleneck +1 and the least utilised other stage −1.
    let pred_now = m.predict(&hold);
    if let Some(low) = (0..n)
        .filter(|&i| i != bottleneck)
        .min_by(|&a, &b| pred_now.utilisation[a].total_cmp(&pred_now.utilisation[b]))
    {
        let mut a = hold.clone();
        a.replicas[bottleneck] = a.replicas[bottleneck].saturating_add(1);
        a.replicas[low] = a.replicas[low].saturating_sub(1);
        raw.push((
            MoveKind::Combined,
            Some(bottleneck),
            format!("{} +1 and {} -1", name(bottleneck), name(low)),
            a,
        ));
    }
    for &frac in &cfg.right_size_targets {
        let target = frac * s.slo_p99_s;
        let a = right_size(m, target, cfg, limits);
        raw.push((
            MoveKind::RightSize,
            None,
            format!("right-size every stage for P99 <= {:.0} ms", target * 1e3),
            a,
        ));
    }

    let within_limits = |a: &Action| clamp_step(s, &limits.clamp_bounds(s, a), limits);
    let hold_action = within_limits(&hold);
    let mut out = Candidates {
        hold: Candidate {
            id: "c0".into(),
            kind: MoveKind::Hold,
            stage: None,
            label: "keep the current allocation".into(),
            predicted: m.predict(&hold_action),
            action: hold_action,
        },
        moves: Vec::new(),
    };
    for (kind, stage, label, a) in raw {
        let a = within_limits(&a);
        let shares_match = (0..n).all(|i| {
            a.explicit_shares(i)
                .is_none_or(|v| v.len() == a.replicas[i] as usize)
        });
        if !shares_match || !gpu_fits(s, &a) || out.iter().any(|c| c.action == a) {
            continue;
        }
        let predicted = m.predict(&a);
        out.moves.push(Candidate {
            id: format!("c{}", out.len()),
            kind,
            stage,
            label,
            action: a,
            predicted,
        });
    }
    out
}

/// GPU stage `i` at the smallest share on the `rho_step` grid whose planned utilisation on the
/// replicas it has is at most `cap` ([`CandidateConfig::fit_share`]); `None` when that is the
/// share it has (or the stage has per-replica shares, which a one-share move would flatten).
fn fit_share(
    m: &Model<'_>,
    hold: &Action,
    i: usize,
    cap: f64,
    cfg: &CandidateConfig,
) -> Option<Action> {
    let st = &m.state.stages[i];
    if !st.shares.is_empty() || cap.is_nan() || cap <= 0.0 {
        return None;
    }
    let at_one = m.planning.stage_load(m.state, i, hold.replicas[i], 1.0);
    let servers = f64::from(at_one.servers.max(1));
    let need = at_one.lambda * at_one.service_mean_s / (servers * cap);
    let step = cfg.rho_step.max(RHO_QUANTUM);
    let rho = ((need / step - 1e-9).ceil() * step).clamp(cfg.rho_min, 1.0);
    if !rho.is_finite() || (rho - st.rho).abs() < 1e-9 {
        return None;
    }
    let mut a = hold.clone();
    a.rho[i] = rho;
    Some(a)
}

/// The per-replica share moves on GPU stage `i` ([`CandidateConfig::replica_shares_up`],
/// [`CandidateConfig::replica_shares_trim`]).
fn per_replica_moves(
    s: &PipelineState,
    hold: &Action,
    i: usize,
    cfg: &CandidateConfig,
) -> Vec<(MoveKind, Option<usize>, String, Action)> {
    let st = &s.stages[i];
    let name = st.name.as_str();
    let cur = st.replica_shares();
    let mut out = Vec::new();
    // One more replica at the largest share that packs, the others keeping theirs: capacity
    // grows without cutting the replicas that serve while the new one starts.
    let mut up = hold.clone();
    up.replicas[i] = up.replicas[i].saturating_add(1);
    if cfg.replica_shares_up && up.replicas[i] <= st.max_replicas && !gpu_fits(s, &up) {
        let mut share = quantise_rho(st.rho.min(1.0) - RHO_QUANTUM, cfg.rho_min);
        loop {
            let mut a = hold.clone();
            let mut v = cur.clone();
            v.push(share);
            a.set_shares(i, v);
            if gpu_fits(s, &a) {
                out.push((
                    MoveKind::ScaleUp,
                    Some(i),
                    format!("{name} +1 replica at rho {share:.2}, serving replicas keep theirs"),
                    a,
                ));
                break;
            }
            let lower = quantise_rho(share - RHO_QUANTUM, cfg.rho_min);
            if lower >= share {
                break;
            }
            share = lower;
        }
    }
    if cfg.replica_shares_trim && cur.len() >= 2 {
        // The newest replica's share one step down: a scale-down smaller than a replica.
        let mut v = cur.clone();
        if let Some(last) = v.last_mut() {
            *last = quantise_rho(*last - cfg.rho_step, cfg.rho_min);
        }
        if v != cur {
            let mut a = hold.clone();
            let share = v[v.len() - 1];
            a.set_shares(i, v);
            out.push((
                MoveKind::RhoDown,
                Some(i),
                format!("{name} newest replica's rho -> {share:.2}, the others keep theirs"),
                a,
            ));
        }
    }
    if cfg.replica_shares_up && !st.shares.is_empty() {
        // The smallest share one step up.
        let mut v = cur.clone();
        if let Some(k) = (0..v.len()).min_by(|&x, &y| v[x].total_cmp(&v[y])) {
            v[k] = quantise_rho(v[k] + cfg.rho_step, cfg.rho_min);
            let share = v[k];
            let mut a = hold.clone();
            a.set_shares(i, v);
            out.push((
                MoveKind::RhoUp,
                Some(i),
                format!("{name} smallest replica share -> {share:.2}"),
                a,
            ));
        }
        // Every replica at the mean share (quantised down), once all of them serve.
        if st.replicas == st.replicas_desired && !cur.is_empty() {
            let mean = cur.iter().sum::<f64>() / cur.len() as f64;
            let even = ((mean / RHO_QUANTUM + 1e-9).floor() * RHO_QUANTUM).clamp(cfg.rho_min, 1.0);
            let mut a = hold.clone();
            a.set_shares(i, vec![even; cur.len()]);
            out.push((
                MoveKind::MoveShare,
                Some(i),
                format!("{name} every replica at rho {even:.2} (shares evened out)"),
                a,
            ));
        }
    }
    out
}

/// One more replica on GPU stage `i` at the highest quantised ρ at which every GPU replica
/// still packs, when one more at its current ρ does not; `None` when it packs anyway (plain
/// "+1" covers it), when no ρ down to `rho_min` packs, or when the rebalanced stage would not
/// have more total share (`replicas × ρ`, its capacity) than now.
fn rebalanced_up(s: &PipelineState, hold: &Action, i: usize, rho_min: f64) -> Option<Action> {
    let mut a = hold.clone();
    a.replicas[i] = a.replicas[i].checked_add(1)?;
    if gpu_fits(s, &a) {
        return None;
    }
    let now = f64::from(hold.replicas[i]) * hold.rho[i];
    let mut rho = quantise_rho(hold.rho[i] - RHO_QUANTUM, rho_min);
    // Bounded: one quantum per step from at most 1.0 down to rho_min.
    while rho < a.rho[i] {
        a.rho[i] = rho;
        if f64::from(a.replicas[i]) * rho <= now + 1e-9 {
            return None;
        }
        if gpu_fits(s, &a) {
            return Some(a);
        }
        rho = quantise_rho(rho - RHO_QUANTUM, rho_min);
    }
    None
}

/// Greedy cheapest allocation predicted to meet `target_p99_s`: start from the minimum that is
/// stable (utilisation < 1 at the smallest replica count), then repeatedly buy the increment
/// (one replica, or one ρ quantum on a GPU stage) with the largest P99 reduction per unit of
/// cost, until the target is met or nothing more fits.
pub fn right_size(
    m: &Model<'_>,
    target_p99_s: f64,
    cfg: &CandidateConfig,
    limits: &Limits,
) -> Action {
    let s = m.state;
    let n = s.stages.len();
    let mut a = Action::hold(s);
    for (i, st) in s.stages.iter().enumerate() {
        let lo = limits.min_replicas(st);
        a.replicas[i] = lo;
        if st.kind == StageKind::Gpu && cfg.gpu_rate {
            a.rho[i] = 1.0;
        }
        // Smallest replica count with utilisation below 0.9.
        while a.replicas[i] < limits.max_replicas(st) {
            let l = m.planning.stage_load(s, i, a.replicas[i], a.rho[i]);
            if l.lambda * l.service_mean_s / f64::from(l.servers.max(1)) < 0.9 {
                break;
            }
            a.replicas[i] += 1;
        }
        // With ρ control, a GPU stage may then give back share it does not need.
        if st.kind == StageKind::Gpu && cfg.gpu_rate {
            loop {
                let lower = quantise_rho(a.rho[i] - RHO_QUANTUM, cfg.rho_min);
                if lower >= a.rho[i] {
                    break;
                }
                let l = m.planning.stage_load(s, i, a.replicas[i], lower);
                if l.lambda * l.service_mean_s / f64::from(l.servers.max(1)) >= 0.85 {
                    break;
                }
                a.rho[i] = lower;
            }
        }
    }
    let mut p99 = m.raw_p99(&a).0 * m.calibration.p99_scale;
    let mut guard = 0;
    while p99 > target_p99_s && guard < 512 {
        guard += 1;
        let base_cost = m.raw_cost(&a);
        let mut best: Option<(f64, Action, f64)> = None;
        for i in 0..n {
            let st = &s.stages[i];
            let mut options = Vec::with_capacity(2);
            if a.replicas[i] < limits.max_replicas(st) {
                let mut b = a.clone();
                b.replicas[i] += 1;
                options.push(b);
            }
            if st.kind == StageKind::Gpu && cfg.gpu_rate && a.rho[i] < 1.0 {
                let mut b = a.clone();
                b.rho[i] = quantise_rho(a.rho[i] + RHO_QUANTUM, cfg.rho_min);
                options.push(b);
            }
            for b in options {
                if !gpu_fits(s, &b) {
                    continue;
                }
                let bp = m.raw_p99(&b).0 * m.calibration.p99_scale;
                let dc = (m.raw_cost(&b) - base_cost).max(1e-9);
                let gain = (p99 - bp) / dc;
                if best.as_ref().is_none_or(|(g, _, _)| gain > *g) {
                    best = Some((gain, b, bp));
                }
            }
        }
        match best {
            // Stop when nothing buys a measurable improvement (e.g. a GPU-bound target).
            Some((_, b, bp)) if p99 - bp > 1e-4 => {
                a = b;
                p99 = bp;
            }
            _ => break,
        }
    }
    a
}

#[cfg(test)]
mod tests;
