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

    /// The allocation for time `t_s`, given the replicas serving now.
    pub fn plan(&self, t_s: f64, serving: &[u32]) -> Action {
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

/// The target utilisation an oracle name stands for: `oracle` is 0.6, `oracle-NN` is NN %.
pub fn target(name: &str) -> Option<f64> {
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
    }
}
