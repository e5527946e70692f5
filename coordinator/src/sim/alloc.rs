//! Allocation: applying a policy's action (clamped to bounds and GPU packing), adding,
//! cancelling and draining replicas, placing GPU shares, and the cost integrals.

use super::{Kind, RState, Replica, Sim, placement};
use crate::policy::{Action, StageKind, mean_share, resolve_shares};
use crate::scenario::MIN_SHARE;

impl Sim<'_> {
    pub(super) fn retire(&mut self, i: usize, r: u32, t: f64) {
        self.accrue_cost(t);
        let st = &mut self.stages[i];
        st.replicas[r as usize].state = RState::Gone;
        st.active.retain(|&x| x != r);
        self.update_cost_rate();
    }

    pub(super) fn add_replica(&mut self, i: usize, immediately: bool) {
        let cfg = &self.sc.stages[i];
        let serve_now = immediately || cfg.startup_s <= 0.0;
        let st = &mut self.stages[i];
        let r = st.replicas.len() as u32;
        st.replicas.push(Replica {
            state: if serve_now {
                RState::Serving
            } else {
                RState::Starting
            },
            busy: 0,
            rho: st.rho,
            gpu: None,
        });
        st.active.push(r);
        if serve_now {
            st.slots += cfg.concurrency;
        } else {
            let at = self.t + cfg.startup_s;
            self.push(
                at,
                Kind::Ready {
                    stage: i as u32,
                    replica: r,
                },
            );
        }
    }

    /// Removes one replica: a starting one first (newest), else the least busy serving one,
    /// which drains.
    pub(super) fn remove_replica(&mut self, i: usize) {
        let conc = self.sc.stages[i].concurrency;
        let st = &mut self.stages[i];
        let starting = st
            .active
            .iter()
            .rev()
            .copied()
            .find(|&r| st.replicas[r as usize].state == RState::Starting);
        if let Some(r) = starting {
            st.replicas[r as usize].state = RState::Gone;
            st.active.retain(|&x| x != r);
            return;
        }
        let victim = st
            .active
            .iter()
            .copied()
            .filter(|&r| st.replicas[r as usize].state == RState::Serving)
            .min_by_key(|&r| st.replicas[r as usize].busy);
        if let Some(r) = victim {
            st.slots -= conc;
            if st.replicas[r as usize].busy == 0 {
                st.replicas[r as usize].state = RState::Gone;
                st.active.retain(|&x| x != r);
            } else {
                st.replicas[r as usize].state = RState::Draining;
            }
        }
    }

    /// Replicas asked for (serving + starting) per stage.
    pub(super) fn desired(&self, i: usize) -> u32 {
        let st = &self.stages[i];
        st.count(RState::Serving) + st.count(RState::Starting)
    }

    /// The shares of stage `i`'s replicas asked for (starting and serving, not draining), in
    /// replica order: serving first (oldest first), then starting.
    pub(super) fn stage_shares(&self, i: usize) -> Vec<f64> {
        let st = &self.stages[i];
        st.active
            .iter()
            .map(|&r| &st.replicas[r as usize])
            .filter(|rep| matches!(rep.state, RState::Starting | RState::Serving))
            .map(|rep| rep.rho)
            .collect()
    }

    fn packs(&self, targets: &[Vec<f64>]) -> bool {
        let shares: Vec<f64> = self
            .sc
            .stages
            .iter()
            .zip(targets)
            .filter(|(s, _)| s.kind == StageKind::Gpu)
            .flat_map(|(_, t)| t.iter().copied())
            .collect();
        shares.is_empty() || placement::pack(&shares, self.sc.gpus).is_some()
    }

    /// Applies an action, clamped to bounds and to what packs on the GPUs. Returns whether the
    /// allocation changed. Per-replica shares follow [`Action`]'s rule for every policy alike;
    /// what does not pack is cut back in order: the added GPU replicas (newest first), then
    /// share increases, else the GPU stages keep their allocation.
    pub fn apply(&mut self, a: &Action) -> bool {
        let k = self.sc.stages.len();
        let cur_n: Vec<u32> = (0..k).map(|i| self.desired(i)).collect();
        let cur_rho: Vec<f64> = self.stages.iter().map(|s| s.rho).collect();
        let cur_shares: Vec<Vec<f64>> = (0..k).map(|i| self.stage_shares(i)).collect();
        let mut n: Vec<u32> = (0..k)
            .map(|i| {
                let c = &self.sc.stages[i];
                a.replicas
                    .get(i)
                    .copied()
                    .unwrap_or(cur_n[i])
                    .clamp(c.min_replicas, c.max_replicas)
            })
            .collect();
        let mut rho: Vec<f64> = (0..k)
            .map(|i| match a.rho.get(i) {
                Some(&r) if r.is_finite() => r.clamp(MIN_SHARE, 1.0),
                _ => cur_rho[i],
            })
            .collect();
        let mut explicit: Vec<Option<Vec<f64>>> = (0..k)
            .map(|i| {
                let v = a.explicit_shares(i)?;
                (self.sc.stages[i].kind == StageKind::Gpu).then(|| {
                    v.iter()
                        .map(|&r| {
                            if r.is_finite() {
                                r.clamp(MIN_SHARE, 1.0)
                            } else {
                                rho[i]
                            }
                        })
                        .collect()
                })
            })
            .collect();
        let targets = |n: &[u32], rho: &[f64], explicit: &[Option<Vec<f64>>]| -> Vec<Vec<f64>> {
            (0..k)
                .map(|i| {
                    resolve_shares(
                        explicit[i].as_deref(),
                        n[i],
                        rho[i],
                        &cur_shares[i],
                        cur_rho[i],
                    )
                })
                .collect()
        };
        let asked = (n.clone(), rho.clone(), explicit.clone());
        let gpu: Vec<usize> = (0..k)
            .filter(|&i| self.sc.stages[i].kind == StageKind::Gpu)
            .collect();
        let raised = |i: usize, rho: &[f64], explicit: &[Option<Vec<f64>>]| match &explicit[i] {
            None => rho[i] > cur_rho[i],
            Some(v) => v.iter().zip(&cur_shares[i]).any(|(x, c)| x > c),
        };
        while !self.packs(&targets(&n, &rho, &explicit)) {
            if let Some(&i) = gpu
                .iter()
                .filter(|&&i| n[i] > cur_n[i].max(self.sc.stages[i].min_replicas))
                .max_by_key(|&&i| (n[i] - cur_n[i], std::cmp::Reverse(i)))
            {
                n[i] -= 1;
                continue;
            }
            if gpu.iter().any(|&i| raised(i, &rho, &explicit)) {
                for &i in &gpu {
                    rho[i] = rho[i].min(cur_rho[i]);
                    if let Some(v) = &mut explicit[i] {
                        for (x, c) in v.iter_mut().zip(&cur_shares[i]) {
                            *x = x.min(*c);
                        }
                    }
                }
                continue;
            }
            for &i in &gpu {
                n[i] = cur_n[i];
                rho[i] = cur_rho[i];
                explicit[i] = None;
            }
            break;
        }
        if (n.clone(), rho.clone(), explicit.clone()) != asked {
            self.clamped += 1;
        }
        let target = targets(&n, &rho, &explicit);
        let changed = n != cur_n
            || (0..k).any(|i| explicit[i].is_none() && (rho[i] - cur_rho[i]).abs() > 1e-12)
            || target != cur_shares;
        if !changed {
            return false;
        }
        let t = self.t;
        self.accrue_cost(t);
        for i in 0..k {
            self.stages[i].advance(t);
            if explicit[i].is_none() && (rho[i] - cur_rho[i]).abs() > 1e-12 {
                let st = &mut self.stages[i];
                st.rho = rho[i];
                for &r in &st.active {
                    st.replicas[r as usize].rho = rho[i];
                }
            }
            for _ in cur_n[i]..n[i] {
                self.add_replica(i, false);
            }
            for _ in n[i]..cur_n[i] {
                self.remove_replica(i);
            }
            if self.sc.stages[i].kind == StageKind::Gpu {
                let st = &mut self.stages[i];
                let kept = st
                    .active
                    .iter()
                    .copied()
                    .filter(|&r| {
                        matches!(
                            st.replicas[r as usize].state,
                            RState::Starting | RState::Serving
                        )
                    })
                    .collect::<Vec<_>>();
                for (r, &share) in kept.into_iter().zip(&target[i]) {
                    st.replicas[r as usize].rho = share;
                }
                st.rho = mean_share(&target[i], st.rho);
            }
        }
        self.place_gpus();
        self.update_cost_rate();
        true
    }

    /// Re-packs the GPU replicas that are not draining (the node agents move shares).
    pub(super) fn place_gpus(&mut self) {
        let mut ids = Vec::new();
        let mut shares = Vec::new();
        for (i, s) in self.sc.stages.iter().enumerate() {
            if s.kind != StageKind::Gpu {
                continue;
            }
            for &r in &self.stages[i].active {
                let rep = &self.stages[i].replicas[r as usize];
                if matches!(rep.state, RState::Starting | RState::Serving) {
                    ids.push((i, r));
                    shares.push(rep.rho);
                }
            }
        }
        if let Some(assign) = placement::pack(&shares, self.sc.gpus) {
            for ((i, r), g) in ids.into_iter().zip(assign) {
                self.stages[i].replicas[r as usize].gpu = Some(g);
            }
        }
    }

    pub(super) fn accrue_cost(&mut self, t: f64) {
        let t = t.min(self.sc.duration_s);
        let dt = t - self.cost_t;
        if dt > 0.0 {
            self.cost += self.cost_rate * dt / 3600.0;
            self.whole_cost += self.whole_rate * dt / 3600.0;
            self.cost_t = t;
        }
    }

    pub(super) fn update_cost_rate(&mut self) {
        let p = self.sc.prices;
        let mut eff = 0.0;
        let mut cpu = 0.0;
        let mut used = vec![false; self.sc.gpus as usize];
        for (i, s) in self.sc.stages.iter().enumerate() {
            for &r in &self.stages[i].active {
                let rep = &self.stages[i].replicas[r as usize];
                match s.kind {
                    StageKind::Cpu => cpu += p.cpu_replica_per_hour * rep.rho,
                    StageKind::Gpu => {
                        eff += p.gpu_per_hour * rep.rho;
                        if let Some(g) = rep.gpu
                            && let Some(u) = used.get_mut(g)
                        {
                            *u = true;
                        }
                    }
                }
            }
        }
        let whole = used.iter().filter(|&&u| u).count() as f64 * p.gpu_per_hour;
        self.cost_rate = cpu + eff;
        self.whole_rate = cpu + whole;
    }
}
