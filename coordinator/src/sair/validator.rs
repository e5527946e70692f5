//! The validator: every action the policy applies passes through here. Bounds, GPU packing,
//! step limits and anti-oscillation. (The forced-exploration schedule, which picks within the
//! set this validator accepts, lives with the selectors: [`super::selector::explore`].)

use crate::policy::{Action, PipelineState, StageKind, StageState};

/// Why an action was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("action has {got} entries, the pipeline has {want} stages")]
    Shape { want: usize, got: usize },
    #[error("stage `{stage}`: {replicas} replicas outside [{min}, {max}]")]
    Replicas {
        stage: String,
        replicas: u32,
        min: u32,
        max: u32,
    },
    #[error("stage `{stage}`: rho {rho} outside [{min}, 1]")]
    Rho { stage: String, rho: f64, min: f64 },
    #[error("GPU shares do not pack into {gpus} GPUs with Σρ ≤ 1 each")]
    GpuPacking { gpus: u32 },
    #[error("stage `{stage}`: step {from} -> {to} exceeds the per-interval limit")]
    Step {
        stage: String,
        from: String,
        to: String,
    },
    #[error(
        "stage `{stage}`: serving capacity during the {startup_s:.0}s start-up window runs at utilisation {utilisation:.2} of forecast demand (limit {limit:.2})"
    )]
    StartupGap {
        stage: String,
        startup_s: f64,
        utilisation: f64,
        limit: f64,
    },
    #[error("stage `{stage}`: reverses a move made {ago_s:.0}s ago (cooldown {cooldown_s:.0}s)")]
    Oscillation {
        stage: String,
        ago_s: f64,
        cooldown_s: f64,
    },
}

/// Bounds and step limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub rho_min: f64,
    /// Largest ρ change per interval.
    pub max_rho_step: f64,
    /// Scale-up per interval: at most max(`min_up_step`, current) replicas (i.e. doubling).
    pub min_up_step: u32,
    /// No reversal of a stage's move within this many seconds unless the SLO is under pressure
    /// (90 s by default; [`super::build`] sets three decision intervals).
    pub cooldown_s: f64,
    /// A move that cuts a stage's serving capacity (ρ down, or replicas down) must leave the
    /// replicas already serving at or below this utilisation of forecast demand while the new
    /// ones start ([`startup_gap`]); `None` turns the check off (`sair-no-startup`).
    pub startup_max_utilisation: Option<f64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rho_min: 0.1,
            max_rho_step: 0.5,
            min_up_step: 2,
            cooldown_s: 90.0,
            startup_max_utilisation: Some(0.9),
        }
    }
}

impl Limits {
    /// Never fewer than one replica: scale-to-zero would drop every request.
    pub fn min_replicas(&self, st: &StageState) -> u32 {
        st.min_replicas.max(1)
    }

    pub fn max_replicas(&self, st: &StageState) -> u32 {
        st.max_replicas.max(self.min_replicas(st))
    }

    fn max_up(&self, cur: u32) -> u32 {
        cur.max(self.min_up_step)
    }

    fn max_down(&self, cur: u32) -> u32 {
        cur.div_ceil(2).max(1)
    }

    /// Clamps replicas and ρ into the stage bounds (CPU stages keep their ρ).
    pub fn clamp_bounds(&self, s: &PipelineState, a: &Action) -> Action {
        let mut out = a.clone();
        for (i, st) in s.stages.iter().enumerate() {
            out.replicas[i] = a.replicas[i].clamp(self.min_replicas(st), self.max_replicas(st));
            out.rho[i] = match st.kind {
                StageKind::Gpu => a.rho[i].clamp(self.rho_min, 1.0),
                StageKind::Cpu => st.rho,
            };
        }
        out
    }
}

/// Clamps an action to the per-interval step limits relative to what is requested now.
pub fn clamp_step(s: &PipelineState, a: &Action, l: &Limits) -> Action {
    let mut out = a.clone();
    for (i, st) in s.stages.iter().enumerate() {
        let cur = st.replicas_desired;
        let want = a.replicas[i];
        out.replicas[i] = if want > cur {
            want.min(cur.saturating_add(l.max_up(cur)))
        } else {
            want.max(cur.saturating_sub(l.max_down(cur)))
        };
        let dr = (a.rho[i] - st.rho).clamp(-l.max_rho_step, l.max_rho_step);
        out.rho[i] = st.rho + dr;
    }
    out
}

/// Whether the GPU replicas' shares pack into `s.gpus` GPUs with Σρ ≤ 1 on each (first-fit
/// decreasing). A pipeline reporting 0 GPUs is treated as unconstrained.
pub fn gpu_fits(s: &PipelineState, a: &Action) -> bool {
    if s.gpus == 0 {
        return true;
    }
    let mut shares: Vec<f64> = Vec::new();
    for (i, st) in s.stages.iter().enumerate() {
        if st.kind == StageKind::Gpu {
            shares.extend(resolved_shares(st, a, i));
        }
    }
    shares.sort_by(|x, y| y.total_cmp(x));
    let mut bins = vec![0.0f64; s.gpus as usize];
    'next: for r in shares {
        for b in &mut bins {
            if *b + r <= 1.0 + 1e-9 {
                *b += r;
                continue 'next;
            }
        }
        return false;
    }
    true
}

/// The share of each replica of stage `i` after `a` (the simulator's rule, [`Action`]'s docs):
/// one per replica asked for, serving ones first.
pub fn resolved_shares(st: &StageState, a: &Action, i: usize) -> Vec<f64> {
    let n = a.replicas.get(i).copied().unwrap_or(st.replicas_desired);
    a.resolve_shares(i, n, &st.replica_shares(), st.rho)
}

/// What the start-up check needs to know of the demand and the stages.
#[derive(Debug, Clone, Copy)]
pub struct StartupWindow<'a> {
    /// Forecast arrival rate per stage over the window.
    pub demand: &'a [f64],
    /// Mean service time per request at ρ = 1, per stage.
    pub service_mean_1: &'a [f64],
    /// The operator's start-up estimate per stage, seconds; a stage missing here is taken to
    /// need one (its new replicas do not count).
    pub startup_s: &'a [f64],
}

/// Rejects a move that cuts a stage's serving capacity below forecast demand while the
/// replicas it adds are still starting: only replicas serving now (and kept) count, at the new
/// ρ, which applies to them at once. A move that does not lower a stage's serving capacity is
/// never rejected here (holding, or adding replicas, is always allowed). With `limit` the
/// highest utilisation allowed during the window.
pub fn startup_gap(
    s: &PipelineState,
    a: &Action,
    w: &StartupWindow<'_>,
    limit: f64,
) -> Result<(), Vec<Rejection>> {
    let mut errs = Vec::new();
    for (i, st) in s.stages.iter().enumerate() {
        let (Some(&want), Some(&rho_new)) = (a.replicas.get(i), a.rho.get(i)) else {
            continue;
        };
        let startup_s = w.startup_s.get(i).copied().unwrap_or(f64::INFINITY);
        if startup_s <= 0.0 {
            continue;
        }
        let share = |rho: f64| match st.kind {
            StageKind::Gpu => rho.max(1e-3),
            StageKind::Cpu => 1.0,
        };
        let slots = |replicas: u32, rho: f64| {
            f64::from(replicas.saturating_mul(st.concurrency.max(1))) * share(rho)
        };
        let per_replica =
            st.kind == StageKind::Gpu && (!st.shares.is_empty() || a.explicit_shares(i).is_some());
        let (now, window) = if per_replica {
            // Serving capacity now and, while the new replicas start, of the serving replicas
            // kept at the shares the move gives them.
            let conc = f64::from(st.concurrency.max(1));
            let serving = st.replicas as usize;
            let now: f64 = st.replica_shares().iter().take(serving).sum::<f64>() * conc;
            let kept = serving.min(want as usize);
            let window: f64 = resolved_shares(st, a, i)
                .iter()
                .take(kept)
                .map(|&r| r.max(1e-3))
                .sum::<f64>()
                * conc;
            (now, window)
        } else {
            (
                slots(st.replicas, st.rho),
                slots(st.replicas.min(want), rho_new),
            )
        };
        if window >= now - 1e-9 {
            continue;
        }
        let svc = w
            .service_mean_1
            .get(i)
            .copied()
            .unwrap_or(st.service_mean_s);
        let demand = w.demand.get(i).copied().unwrap_or(st.arrival_rate);
        let utilisation = demand * svc / window.max(1e-9);
        if utilisation > limit {
            errs.push(Rejection::StartupGap {
                stage: st.name.clone(),
                startup_s,
                utilisation,
                limit,
            });
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Direction of the last move per stage and knob, with its time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct LastMove {
    replicas: Option<(i8, f64)>,
    rho: Option<(i8, f64)>,
}

/// Stateful validator: remembers recent moves for anti-oscillation.
#[derive(Debug, Clone, Default)]
pub struct Validator {
    pub limits: Limits,
    last: Vec<LastMove>,
}

fn sign_u(a: u32, b: u32) -> i8 {
    match b.cmp(&a) {
        std::cmp::Ordering::Greater => 1,
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
    }
}

fn sign_f(a: f64, b: f64) -> i8 {
    if b > a + 1e-9 {
        1
    } else if b < a - 1e-9 {
        -1
    } else {
        0
    }
}

impl Validator {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            last: Vec::new(),
        }
    }

    /// Checks an action against the current state. `slo_pressure` (the SLO is violated now or
    /// predicted to be under the current allocation) lifts the anti-oscillation rule.
    pub fn check(
        &self,
        s: &PipelineState,
        a: &Action,
        now_s: f64,
        slo_pressure: bool,
    ) -> Result<(), Vec<Rejection>> {
        let n = s.stages.len();
        if a.replicas.len() != n || a.rho.len() != n {
            return Err(vec![Rejection::Shape {
                want: n,
                got: a.replicas.len().min(a.rho.len()),
            }]);
        }
        let l = &self.limits;
        let mut errs = Vec::new();
        for (i, st) in s.stages.iter().enumerate() {
            let (lo, hi) = (l.min_replicas(st), l.max_replicas(st));
            if a.replicas[i] < lo || a.replicas[i] > hi {
                errs.push(Rejection::Replicas {
                    stage: st.name.clone(),
                    replicas: a.replicas[i],
                    min: lo,
                    max: hi,
                });
            }
            if st.kind == StageKind::Gpu
                && !(a.rho[i].is_finite() && a.rho[i] >= l.rho_min - 1e-9 && a.rho[i] <= 1.0 + 1e-9)
            {
                errs.push(Rejection::Rho {
                    stage: st.name.clone(),
                    rho: a.rho[i],
                    min: l.rho_min,
                });
            }
            if let Some(v) = a.explicit_shares(i) {
                if st.kind != StageKind::Gpu || v.len() != a.replicas[i] as usize {
                    errs.push(Rejection::Shape {
                        want: a.replicas[i] as usize,
                        got: v.len(),
                    });
                }
                if let Some(&bad) = v
                    .iter()
                    .find(|&&r| !(r.is_finite() && r >= l.rho_min - 1e-9 && r <= 1.0 + 1e-9))
                {
                    errs.push(Rejection::Rho {
                        stage: st.name.clone(),
                        rho: bad,
                        min: l.rho_min,
                    });
                }
            }
            let cur = st.replicas_desired;
            let step_ok = if a.replicas[i] > cur {
                a.replicas[i] - cur <= l.max_up(cur)
            } else {
                cur - a.replicas[i] <= l.max_down(cur)
            };
            let rho_ok =
                st.kind == StageKind::Cpu || (a.rho[i] - st.rho).abs() <= l.max_rho_step + 1e-9;
            if !step_ok || !rho_ok {
                errs.push(Rejection::Step {
                    stage: st.name.clone(),
                    from: format!("{}x{:.2}", cur, st.rho),
                    to: format!("{}x{:.2}", a.replicas[i], a.rho[i]),
                });
            }
            if !slo_pressure && let Some(last) = self.last.get(i) {
                let dirs = [
                    (last.replicas, sign_u(cur, a.replicas[i])),
                    (
                        last.rho,
                        if st.kind == StageKind::Gpu {
                            sign_f(st.rho, a.rho[i])
                        } else {
                            0
                        },
                    ),
                ];
                for (prev, dir) in dirs {
                    if let Some((pd, t)) = prev
                        && dir != 0
                        && dir == -pd
                        && now_s - t < l.cooldown_s
                    {
                        errs.push(Rejection::Oscillation {
                            stage: st.name.clone(),
                            ago_s: now_s - t,
                            cooldown_s: l.cooldown_s,
                        });
                    }
                }
            }
        }
        if !gpu_fits(s, a) {
            errs.push(Rejection::GpuPacking { gpus: s.gpus });
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// Records an applied action, for anti-oscillation.
    pub fn record(&mut self, s: &PipelineState, a: &Action, now_s: f64) {
        if self.last.len() != s.stages.len() {
            self.last = vec![LastMove::default(); s.stages.len()];
        }
        for (i, st) in s.stages.iter().enumerate() {
            let d = sign_u(st.replicas_desired, a.replicas[i]);
            if d != 0 {
                self.last[i].replicas = Some((d, now_s));
            }
            let d = sign_f(st.rho, a.rho[i]);
            if d != 0 && st.kind == StageKind::Gpu {
                self.last[i].rho = Some((d, now_s));
            }
        }
    }
}

#[cfg(test)]
mod tests;
