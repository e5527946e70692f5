//! Oracle: not a policy anyone can run. It reads the scenario's future arrival rate and the
//! true mean service times, and provisions each stage ahead of its start-up time to a target
//! utilisation. Run at several targets (`oracle-30` … `oracle-90`), its (P99, cost) points
//! trace the frontier that any policy could reach in a scenario; `sair eval` reports every
//! other policy's distance to it (docs/baselines.md).

use sair_loadgen::pattern::Pattern;

use crate::policies::PolicyContext;
use crate::policy::{Action, Decision, PipelineState, Policy, StageKind};

use super::{clamp_replicas, decision};

/// Share granularity, as the SAIR policy's.
const RHO_QUANTUM: f64 = 0.05;

/// The oracle at one target utilisation.
#[derive(Debug, Clone)]
pub struct Oracle {
    name: String,
    ctx: PolicyContext,
    pattern: Pattern,
    duration_s: f64,
    target: f64,
    /// `oracle-pr-NN`: GPU stages get per-replica shares (whole shares first, the rest on one
    /// replica), the replicas in place keeping theirs where that carries today's load.
    per_replica: bool,
}

impl Oracle {
    /// The oracle for `ctx` at `target` utilisation; `None` when the context carries no
    /// known workload (live, there is no future to read).
    pub fn new(name: &str, ctx: &PolicyContext, target: f64) -> Option<Self> {
        let w = ctx.known_workload.as_ref()?;
        Some(Self {
            name: name.to_string(),
            ctx: ctx.clone(),
            pattern: w.pattern.clone(),
            duration_s: w.duration_s,
            target: target.clamp(0.05, 1.0),
            per_replica: name.starts_with("oracle-pr"),
        })
    }

    /// The highest arrival rate over `[t, t + horizon]`, sampled every second.
    fn peak(&self, t_s: f64, horizon_s: f64) -> f64 {
        let steps = horizon_s.max(0.0).ceil() as u32;
        (0..=steps)
            .map(|k| {
                self.pattern
                    .rate_at((t_s + f64::from(k)).min(self.duration_s), self.duration_s)
            })
            .fold(0.0, f64::max)
    }

    /// The per-replica plan (`oracle-pr-NN`): each GPU stage's share for the future peak as
    /// whole-GPU replicas plus one for the remainder (quantised up), within its replica bounds
    /// (spread evenly over the most replicas when it needs more); the replicas serving now (the
    /// first shares) raised where they must carry today's load; then, while the shares do not
    /// pack, the largest share is cut by a quantum.
    fn plan_per_replica(&self, t_s: f64, serving: &[u32]) -> Action {
        let mut a = self.plan_uniform(t_s, serving);
        let period = self.period_s().unwrap_or(self.ctx.interval_s);
        let now = self.peak(t_s, period);
        let q = |x: f64| ((x / RHO_QUANTUM - 1e-9).ceil() * RHO_QUANTUM).clamp(RHO_QUANTUM, 1.0);
        let gpu: Vec<usize> = self.ctx.gpu_stages().collect();
        for &i in &gpu {
            let s = &self.ctx.stages[i];
            let per_slot = s.nominal_service_s / f64::from(s.spec.concurrency.max(1));
            let ahead = self.peak(t_s, s.startup_s + period);
            let total = (ahead * per_slot / self.target).max(RHO_QUANTUM);
            let lo = s.spec.min_replicas.max(1) as usize;
            let hi = (s.spec.max_replicas.max(1) as usize).max(lo);
            let whole = total.floor() as usize;
            let rest = total - whole as f64;
            let mut v: Vec<f64> = vec![1.0; whole];
            if rest > 1e-9 {
                v.push(q(rest));
            }
            if v.len() > hi {
                v = vec![q(total / hi as f64); hi];
            }
            while v.len() < lo {
                v.push(RHO_QUANTUM);
            }
            let serving_now = serving.get(i).copied().unwrap_or(0) as usize;
            let k = serving_now.clamp(1, v.len());
            let need_now = now * per_slot / self.target;
            let have: f64 = v.iter().take(k).sum();
            if have < need_now {
                let each = q(need_now / k as f64);
                for x in v.iter_mut().take(k) {
                    *x = x.max(each);
                }
            }
            a.set_shares(i, v);
        }
        let packs = |a: &Action| {
            let shares: Vec<f64> = gpu
                .iter()
                .flat_map(|&i| a.explicit_shares(i).unwrap_or_default().to_vec())
                .collect();
            crate::sim::placement::pack(&shares, self.ctx.gpus).is_some()
        };
        // Bounded: each step lowers one share by a quantum, down to one quantum each.
        while self.ctx.gpus > 0 && !packs(&a) {
            let Some((i, r)) = gpu
                .iter()
                .flat_map(|&i| {
                    let v = a.explicit_shares(i).unwrap_or_default();
                    (0..v.len()).map(move |r| (i, r))
                })
                .filter(|&(i, r)| a.shares[i][r] > RHO_QUANTUM + 1e-9)
                .max_by(|x, y| a.shares[x.0][x.1].total_cmp(&a.shares[y.0][y.1]))
            else {
                break;
            };
            let mut v = a.shares[i].clone();
            v[r] = (v[r] - RHO_QUANTUM).max(RHO_QUANTUM);
            a.set_shares(i, v);
        }
        a
    }

    /// The allocation for time `t_s`, given the replicas serving now.
    pub fn plan(&self, t_s: f64, serving: &[u32]) -> Action {
        if self.per_replica {
            self.plan_per_replica(t_s, serving)
        } else {
            self.plan_uniform(t_s, serving)
        }
    }

    /// One share per stage: replicas for the future peak, the share for it and for today's
    /// load on the replicas serving now; shares that do not pack cut evenly.
    fn plan_uniform(&self, t_s: f64, serving: &[u32]) -> Action {
        let n = self.ctx.stages.len();
        let mut a = Action {
            replicas: vec![1; n],
            rho: vec![1.0; n],
            shares: Vec::new(),
        };
        let period = self.period_s().unwrap_or(self.ctx.interval_s);
        let now = self.peak(t_s, period);
        for (i, s) in self.ctx.stages.iter().enumerate() {
            // Replicas ordered now serve after `startup_s`; they must cover the peak until the
            // decision after that.
            let ahead = self.peak(t_s, s.startup_s + period);
            let per_slot = s.nominal_service_s / f64::from(s.spec.concurrency.max(1));
            let units = ahead * per_slot / self.target;
            let replicas = clamp_replicas(units.ceil().max(1.0) as u64, &s.spec);
            a.replicas[i] = replicas;
            if s.spec.kind == StageKind::Gpu {
                // The share must carry the future load on all replicas and today's on the
                // ones already serving (a cut applies to them at once).
                let serving_now = serving
                    .get(i)
                    .copied()
                    .unwrap_or(replicas)
                    .clamp(1, replicas);
                let need_now = now * per_slot / self.target / f64::from(serving_now);
                let need = (units / f64::from(replicas)).max(need_now);
                a.rho[i] = ((need / RHO_QUANTUM).ceil() * RHO_QUANTUM).clamp(RHO_QUANTUM, 1.0);
            }
        }
        // Shares that do not pack are cut evenly until they do (as the static plan does).
        let gpu: Vec<usize> = self.ctx.gpu_stages().collect();
        let packs = |a: &Action| {
            let shares: Vec<f64> = gpu
                .iter()
                .flat_map(|&i| std::iter::repeat_n(a.rho[i], a.replicas[i] as usize))
                .collect();
            crate::sim::placement::pack(&shares, self.ctx.gpus).is_some()
        };
        while self.ctx.gpus > 0 && !packs(&a) {
            if let Some(&i) = gpu
                .iter()
                .filter(|&&i| a.replicas[i] > self.ctx.stages[i].spec.min_replicas.max(1))
                .max_by_key(|&&i| a.replicas[i])
                && a.rho.iter().all(|r| *r >= 1.0 - 1e-9)
            {
                a.replicas[i] -= 1;
                continue;
            }
            if gpu.iter().all(|&i| a.rho[i] <= RHO_QUANTUM + 1e-9) {
                break;
            }
            for &i in &gpu {
                a.rho[i] = (a.rho[i] - RHO_QUANTUM).max(RHO_QUANTUM);
            }
        }
        a
    }
}

impl Policy for Oracle {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, state: &PipelineState) -> Decision {
        let serving: Vec<u32> = state.stages.iter().map(|s| s.replicas).collect();
        decision(
            self.plan(state.t_s, &serving),
            format!(
                "oracle: future peak sized to utilisation {:.2}",
                self.target
            ),
        )
    }

    fn period_s(&self) -> Option<f64> {
        Some(5.0)
    }

    fn initial_action(&self) -> Option<Action> {
        let serving: Vec<u32> = self.ctx.stages.iter().map(|s| s.initial_replicas).collect();
        Some(self.plan(0.0, &serving))
    }
}

/// The target utilisation an oracle name stands for: `oracle` is 0.6, `oracle-NN` (and the
/// per-replica `oracle-pr-NN`) is NN %.
pub fn target(name: &str) -> Option<f64> {
    let name = name
        .strip_prefix("oracle-pr")
        .map_or(name.to_string(), |r| format!("oracle{r}"));
    match name.strip_prefix("oracle") {
        Some("") => Some(0.6),
        Some(rest) => {
            let pct: u32 = rest.strip_prefix('-')?.parse().ok()?;
            (5..=100).contains(&pct).then(|| f64::from(pct) / 100.0)
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_targets() {
        assert_eq!(target("oracle"), Some(0.6));
        assert_eq!(target("oracle-45"), Some(0.45));
        assert_eq!(target("oracle-0"), None);
        assert_eq!(target("oracle45"), None);
        assert_eq!(target("static"), None);
        assert_eq!(target("oracle-pr-45"), Some(0.45));
        assert_eq!(target("oracle-pr"), Some(0.6));
    }
}
