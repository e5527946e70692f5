//! Utilisation arithmetic over the time line (safe, clock passed in).
//!
//! NVML reports utilisation over a past window. The emulator keeps, in the calling process, a
//! short history of snapshots of the time line's cumulative busy counters (taken at every query);
//! the busy time in `[t0, now]` is the difference between the snapshot at or before `t0` (or the
//! slot's first-seen time, when it is newer) and now.

use sair_cuda_abi::timeline::TimelineLayout;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Acquire;

/// Snapshots kept.
pub const HISTORY: usize = 256;

/// One snapshot: time, per-device busy, per-slot (pid, device, busy).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub t: u64,
    pub devices: Vec<u64>,
    pub slots: Vec<(u32, u32, u64)>,
}

/// A per-process utilisation sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    pub pid: u32,
    /// Percent of the window the device ran this process's kernels.
    pub sm_util: u32,
}

/// Snapshot history of one process using NVML.
#[derive(Debug, Default)]
pub struct Model {
    history: VecDeque<Snapshot>,
}

/// Takes a snapshot of `tl` at `now` for `gpus` devices.
pub fn snapshot(tl: &TimelineLayout, gpus: u32, now: u64) -> Snapshot {
    Snapshot {
        t: now,
        devices: (0..gpus as usize)
            .map(|d| tl.devices[d].busy_before(now))
            .collect(),
        slots: tl
            .procs
            .iter()
            .filter_map(|s| {
                let pid = s.pid.load(Acquire);
                (pid != 0).then(|| (pid, s.device.load(Acquire), s.busy_before(now)))
            })
            .collect(),
    }
}

fn pct(busy: u64, window: u64) -> u32 {
    if window == 0 {
        return 0;
    }
    ((busy as f64 / window as f64) * 100.0)
        .round()
        .clamp(0.0, 100.0) as u32
}

impl Model {
    /// Records `snap` and returns it with the newest older snapshot taken at or before `t0`.
    fn record(&mut self, snap: Snapshot, t0: u64) -> (Option<Snapshot>, Snapshot) {
        let base = self.history.iter().rev().find(|s| s.t <= t0).cloned();
        self.history.push_back(snap.clone());
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        (base, snap)
    }

    /// Device utilisation (percent) over the last second, or since the first sample if newer.
    pub fn device_util(&mut self, tl: &TimelineLayout, gpus: u32, device: u32, now: u64) -> u32 {
        let snap = snapshot(tl, gpus, now);
        let t0 = now.saturating_sub(1_000_000_000);
        let oldest = self.history.front().cloned();
        let (base, snap) = self.record(snap, t0);
        let base = base.or(oldest.filter(|o| o.t < now));
        let (from_t, from_busy) = match base {
            Some(b) => (b.t, b.devices.get(device as usize).copied().unwrap_or(0)),
            // No history: since the time line was created, at most the last second.
            None => {
                let created = tl.created_ns.load(Acquire);
                let t = created.max(t0);
                (t, tl.devices[device as usize].busy_before(t))
            }
        };
        let busy_now = snap.devices.get(device as usize).copied().unwrap_or(0);
        pct(
            busy_now.saturating_sub(from_busy),
            now.saturating_sub(from_t),
        )
    }

    /// Per-process samples of `device` over `[t0, now]` (processes that are alive or ran in it).
    pub fn process_util(
        &mut self,
        tl: &TimelineLayout,
        gpus: u32,
        device: u32,
        t0: u64,
        now: u64,
    ) -> Vec<ProcSample> {
        let snap = snapshot(tl, gpus, now);
        let (base, snap) = self.record(snap, t0);
        let mut out = Vec::new();
        for slot in tl.procs.iter() {
            let pid = slot.pid.load(Acquire);
            if pid == 0 || slot.device.load(Acquire) != device {
                continue;
            }
            let first = slot.first_ns.load(Acquire);
            let busy_now = snap
                .slots
                .iter()
                .find(|(p, d, _)| *p == pid && *d == device)
                .map(|s| s.2)
                .unwrap_or(0);
            let (from_t, from_busy) = match base.as_ref().and_then(|b| {
                b.slots
                    .iter()
                    .find(|(p, d, _)| *p == pid && *d == device)
                    .map(|s| (b.t, s.2))
            }) {
                Some((t, busy)) if t >= first => (t.max(t0), busy),
                // No snapshot before t0: the average since the process first launched.
                _ => (first, 0),
            };
            let busy = busy_now.saturating_sub(from_busy);
            if busy == 0 && !sair_cuda_abi::timeline::pid_alive(pid) {
                continue;
            }
            out.push(ProcSample {
                pid,
                sm_util: pct(busy, now.saturating_sub(from_t)),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests;
