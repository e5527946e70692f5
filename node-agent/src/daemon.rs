//! The daemon (driver): the control loop over the segments, and `run`, which wires it with the
//! report ingest and the HTTP endpoint.
//!
//! Shutdown handshake: `run` takes a shutdown future. When it resolves, the control thread is
//! told to stop (it finishes the tick in progress and waits for the state writer thread to write
//! the state file one last time), the HTTP server stops accepting, the QUIC endpoint is closed
//! with code 0, and `run` returns when all three are done. Segments are left in place:
//! processes keep their rates while no agent runs, and the next agent adopts them.

use crate::controller::{
    Controller, ControllerConfig, Observation, RateDecision, burst_for, share_target,
};
use crate::integrity::{self, RepairReason, Written};
use crate::measure::{Utilization, pid_alive};
use crate::metrics::{AgentMetrics, SegmentMetrics};
use crate::registry::{Registry, Sighting};
use crate::segments::{
    self, AgentState, DEFAULT_NS_PER_TOKEN, Health, Mapped, SegmentState, is_recreatable,
};
use crate::target::TargetSource;
use sair_shm::{Counters, Mode, Params, list_segments};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Settings of the control loop.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Directory of the segment files.
    pub shm_dir: PathBuf,
    /// Node name (metric label).
    pub node: String,
    /// Control period.
    pub period: Duration,
    /// A segment with no live process, untouched this long, is collected.
    pub gc_idle: Duration,
    /// Device time an idle segment may save up, ns.
    pub burst_ns: u64,
    /// Share of a GPU left free by `share` segments.
    pub share_headroom: f64,
    /// Controller tunables.
    pub controller: ControllerConfig,
    /// Most (pipeline, stage, replica) keys kept.
    pub max_report_keys: usize,
}

struct Managed {
    m: Mapped,
    ctl: Controller,
    metrics: SegmentMetrics,
    /// GPU the metric handles are labelled with.
    gpu: u32,
    last: Counters,
    /// Generation after the agent's last look or write; another value means someone else
    /// (set-rate) changed the parameters during the window.
    seen_generation: u64,
    /// What the agent last wrote or accepted in the control block (`None`: never seen valid).
    written: Option<Written>,
    measured: Option<f64>,
    launches_per_s: f64,
    recreated: u64,
}

impl std::fmt::Debug for Managed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Managed")
            .field("path", &self.m.seg.path())
            .field("measured", &self.measured)
            .finish_non_exhaustive()
    }
}

/// The control loop's state. `tick` is one period; it does file I/O and NVML calls but holds
/// no policy of its own beyond wiring the sans-IO cores.
#[derive(Debug)]
pub struct ControlLoop {
    cfg: DaemonConfig,
    util: Option<Box<dyn Utilization>>,
    targets: Box<dyn TargetSource>,
    metrics: AgentMetrics,
    segs: BTreeMap<String, Managed>,
    /// Last good (gpu, params) per segment, to recreate a corrupt one.
    remembered: BTreeMap<String, (u32, Params)>,
    registry: Registry,
    persisted: AgentState,
    /// Writes the state file off this thread (see [`persist`]).
    writer: persist::StateWriter,
    last_poll: Option<(Instant, u64)>,
    warned: HashSet<String>,
    /// (segment, reason) pairs already logged: each is logged once, counted every time.
    repairs_logged: HashSet<(String, RepairReason)>,
    /// Why the agent cannot use its directory (listing or writing failed this period).
    dir_problem: Option<String>,
    /// Why measurements are off (NVML not loaded, or a query failed this period).
    nvml_problem: Option<String>,
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl ControlLoop {
    /// A loop over `cfg.shm_dir`; `util` is `None` when NVML is unavailable (rates are then
    /// held as they are, targets still applied).
    pub fn new(
        cfg: DaemonConfig,
        util: Option<Box<dyn Utilization>>,
        targets: Box<dyn TargetSource>,
        metrics: AgentMetrics,
    ) -> Self {
        let persisted = match segments::read_state(&cfg.shm_dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "state file unreadable; starting uncalibrated");
                AgentState::default()
            }
        };
        metrics.nvml_up.set(if util.is_some() { 1.0 } else { 0.0 });
        ControlLoop {
            registry: Registry::new(cfg.gc_idle),
            writer: persist::StateWriter::spawn(cfg.shm_dir.clone()),
            cfg,
            util,
            targets,
            metrics,
            segs: BTreeMap::new(),
            remembered: BTreeMap::new(),
            persisted,
            last_poll: None,
            warned: HashSet::new(),
            repairs_logged: HashSet::new(),
            dir_problem: None,
            nvml_problem: None,
        }
    }

    /// `Ok` while the agent can list and write its directory and read NVML; otherwise why not
    /// (the `/readyz` answer).
    pub fn readiness(&self) -> Result<(), String> {
        let problems: Vec<&str> = [&self.dir_problem, &self.nvml_problem]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn set_dir_problem(&mut self, problem: Option<String>) {
        if problem != self.dir_problem {
            match &problem {
                Some(p) => tracing::error!(problem = %p, "the shm dir cannot be used; not ready"),
                None => tracing::info!("the shm dir is usable again"),
            }
        }
        self.dir_problem = problem;
    }

    /// Validates the control block of a managed segment ([`integrity::check`]) and repairs it
    /// with the last parameters the agent saw valid. A valid change with a new generation (a
    /// `set-rate`) is accepted. The repair is made under the commitment lock, after checking
    /// again, so a `set-rate` half-way through its write (it holds the lock) is never
    /// mistaken for tampering.
    fn verify(&mut self, name: &str) {
        let Some(m) = self.segs.get_mut(name) else {
            return;
        };
        let snap = m.m.seg.control_snapshot();
        let faults = integrity::check(&snap, m.written.as_ref());
        let changed = m.written.is_some_and(|w| w.generation != snap.generation);
        if faults.is_empty() && !changed {
            if m.written.is_none()
                && let Some(params) = snap.params()
            {
                m.written = Some(Written {
                    generation: snap.generation,
                    gpu: snap.gpu_index,
                    params,
                });
            }
            return;
        }
        let _lock = match segments::lock_dir(&self.cfg.shm_dir) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(segment = name, error = %e, "cannot lock the shm dir to repair a segment");
                return;
            }
        };
        let Some(m) = self.segs.get(name) else {
            return;
        };
        if m.m.health() != Health::Ok {
            return; // removed or replaced meanwhile: the next period handles it
        }
        let snap = m.m.seg.control_snapshot();
        let mut faults = integrity::check(&snap, m.written.as_ref());
        let changed = m.written.is_some_and(|w| w.generation != snap.generation);
        if faults.is_empty()
            && changed
            && let Some(p) = snap.params().filter(|p| p.mode != Mode::Off)
        {
            // Someone else wrote a valid block: it must keep Σρ ≤ 1, as `set-rate` checks
            // under this same lock (so a `set-rate`'s write always passes here).
            let request = crate::commit::Claim {
                segment: name.to_owned(),
                gpu: snap.gpu_index,
                rate: p.target_share,
                mode: p.mode,
                invalid: false,
            };
            if let Ok(claims) = crate::ops::claims(&self.cfg.shm_dir, snap.gpu_index)
                && let Err(e) = crate::commit::check_commitment(&claims, &request)
            {
                tracing::debug!(segment = name, error = %e, "a change written into the segment over-commits its GPU");
                faults.push(RepairReason::Overcommitted);
            }
        }
        let Some(m) = self.segs.get_mut(name) else {
            return;
        };
        if faults.is_empty() {
            if let Some(params) = snap.params() {
                m.written = Some(Written {
                    generation: snap.generation,
                    gpu: snap.gpu_index,
                    params,
                });
            }
            return;
        }
        let (gpu, params) = match (m.written, self.remembered.get(name)) {
            (Some(w), _) => (w.gpu, w.params),
            (None, Some(r)) => *r,
            (None, None) => (
                if snap.gpu_index < crate::bounds::MAX_GPUS {
                    snap.gpu_index
                } else {
                    0
                },
                unlimited_params(self.cfg.burst_ns),
            ),
        };
        let layout = m.m.seg.layout();
        layout
            .header
            .header_flags
            .store(0, std::sync::atomic::Ordering::Relaxed);
        layout
            .control
            .retired
            .store(0, std::sync::atomic::Ordering::Release);
        if snap.gpu_index != gpu {
            m.m.seg.set_gpu(gpu);
        }
        if let Err(e) = m.m.seg.set_params(&params) {
            tracing::error!(segment = name, error = %e, "could not repair the segment's parameters");
            return;
        }
        let generation = m.m.seg.generation();
        m.seen_generation = generation;
        m.written = Some(Written {
            generation,
            gpu,
            params,
        });
        self.remembered.insert(name.to_owned(), (gpu, params));
        for reason in faults {
            self.metrics.repaired(reason);
            if self.repairs_logged.insert((name.to_owned(), reason)) {
                tracing::warn!(
                    segment = name,
                    reason = reason.as_str(),
                    mode = params.mode.as_str(),
                    target = params.target_share,
                    "segment control block was invalid; repaired it with the last valid parameters (logged once per segment and reason, counted in sair_agent_segment_repairs_total)"
                );
            }
        }
    }

    fn adopt(&mut self, name: &str, m: Mapped, recreated: u64) {
        let gpu = m.seg.gpu();
        let npt = self
            .persisted
            .segments
            .get(name)
            .and_then(|s| s.ns_per_token);
        let ctl = if recreated > 0 {
            Controller::new(self.cfg.controller)
        } else {
            Controller::resume(self.cfg.controller, npt)
        };
        let snap = m.seg.control_snapshot();
        let valid = integrity::check(&snap, None).is_empty();
        tracing::info!(segment = name, gpu, params = ?m.seg.params(), valid, calibrated = npt.is_some(), "adopted segment");
        let written = snap.params().filter(|_| valid).map(|params| Written {
            generation: snap.generation,
            gpu,
            params,
        });
        if let Some(w) = written {
            self.remembered.insert(name.to_owned(), (gpu, w.params));
        }
        let managed = Managed {
            metrics: SegmentMetrics::new(&self.cfg.node, name, gpu),
            gpu,
            last: m.seg.counters(),
            seen_generation: m.seg.generation(),
            written,
            measured: None,
            launches_per_s: 0.0,
            recreated,
            ctl,
            m,
        };
        self.segs.insert(name.to_owned(), managed);
    }

    /// Replaces a damaged file with a fresh segment carrying the last known parameters (or an
    /// unlimited one when the agent never saw it valid).
    fn recreate(&mut self, name: &str, path: &std::path::Path, why: &str) {
        let (gpu, params) = self
            .remembered
            .get(name)
            .copied()
            .unwrap_or((0, unlimited_params(self.cfg.burst_ns)));
        let removed = self.segs.remove(name);
        let before = removed.as_ref().map_or(0, |m| m.recreated);
        // Keep who may open it: the managed file's access, else the damaged file's own mode.
        let access = removed.map(|m| m.m.access).unwrap_or_else(|| {
            std::fs::metadata(path).map_or(sair_shm::Access::AnyUser, |m| sair_shm::Access::of(&m))
        });
        match Mapped::create(path, gpu, &params, access) {
            Ok(m) => {
                self.metrics.recreated.increment(1);
                tracing::warn!(
                    segment = name,
                    reason = why,
                    mode = params.mode.as_str(),
                    target = params.target_share,
                    "segment file was damaged; recreated it"
                );
                self.adopt(name, m, before + 1);
            }
            Err(e) => {
                self.metrics.segment_errors.increment(1);
                tracing::error!(segment = name, error = %e, "could not recreate damaged segment");
            }
        }
    }

    fn warn_once(&mut self, key: String, msg: &str) {
        if self.warned.insert(key.clone()) {
            self.metrics.segment_errors.increment(1);
            tracing::warn!(segment = key, "{msg}");
        }
    }

    fn apply_remote_targets(&mut self) {
        for u in self.targets.poll() {
            match crate::ops::set_rate(
                &self.cfg.shm_dir,
                &u.segment,
                u.rate,
                u.gpu,
                u.mode,
                self.cfg.burst_ns,
            ) {
                Ok(o) => {
                    tracing::info!(segment = o.segment, rate = o.rate, "applied remote target")
                }
                Err(e) => {
                    self.metrics.targets_refused.increment(1);
                    tracing::warn!(segment = u.segment, error = %e, "remote target refused");
                }
            }
        }
    }

    fn discover(&mut self) {
        let listed = match list_segments(&self.cfg.shm_dir) {
            Ok(l) => l,
            Err(e) => {
                self.set_dir_problem(Some(format!("cannot list the shm dir: {e}")));
                return;
            }
        };
        // Managed segments first: their file may have changed under them.
        let names: Vec<String> = self.segs.keys().cloned().collect();
        for name in names {
            let Some(health) = self.segs.get(&name).map(|m| m.m.health()) else {
                continue;
            };
            match health {
                Health::Ok => {}
                Health::Gone => {
                    tracing::info!(segment = name, "segment file removed");
                    self.segs.remove(&name);
                    self.registry.forget(&name);
                }
                Health::Replaced => {
                    let Some(old) = self.segs.remove(&name) else {
                        continue;
                    };
                    let path = old.m.seg.path().to_owned();
                    // Processes on the old file follow the path to the new one.
                    old.m.retire();
                    drop(old);
                    match Mapped::open(&path) {
                        Ok(m) => self.adopt(&name, m, 0),
                        Err(e) if is_recreatable(&e) => self.recreate(&name, &path, &e.to_string()),
                        Err(e) => self.warn_once(name.clone(), &e.to_string()),
                    }
                }
                Health::Corrupt(why) => {
                    let Some(old) = self.segs.remove(&name) else {
                        continue;
                    };
                    let path = old.m.seg.path().to_owned();
                    let recreated = old.recreated;
                    self.recreate(&name, &path, &why);
                    // After the new file is in place: processes still on the damaged one
                    // re-open the path and attach to it.
                    old.m.retire();
                    drop(old);
                    if let Some(m) = self.segs.get_mut(&name) {
                        m.recreated = m.recreated.max(recreated + 1);
                    }
                }
            }
        }
        for (name, path) in listed {
            if self.segs.contains_key(&name) {
                continue;
            }
            match Mapped::open(&path) {
                Ok(m) => {
                    self.warned.remove(&name);
                    self.adopt(&name, m, 0);
                }
                Err(e) if is_recreatable(&e) => self.recreate(&name, &path, &e.to_string()),
                Err(e) => self.warn_once(name, &e.to_string()),
            }
        }
        let names: Vec<String> = self.segs.keys().cloned().collect();
        for name in names {
            self.verify(&name);
        }
    }

    /// One control period at `now`.
    pub fn tick(&mut self, now: Instant) {
        self.apply_remote_targets();
        self.discover();
        // Measure: per-process shares of each GPU in use, over the window since the last tick.
        let window = self
            .last_poll
            .map(|(t, _)| now.saturating_duration_since(t));
        let since_us = self.last_poll.map_or(0, |(_, us)| us);
        let gpus: HashSet<u32> = self.segs.values().map(|m| m.m.seg.gpu()).collect();
        let mut per_gpu: HashMap<u32, (HashMap<u32, f64>, Option<f64>)> = HashMap::new();
        let mut nvml_problem = None;
        if let Some(util) = self.util.as_mut() {
            for gpu in gpus {
                match util.per_process(gpu, since_us) {
                    Ok(map) => {
                        let dev = util.device(gpu).ok();
                        per_gpu.insert(gpu, (map, dev));
                    }
                    Err(e) => {
                        tracing::debug!(gpu, error = %e, "NVML query failed");
                        nvml_problem = Some(format!("NVML query for GPU {gpu} failed: {e}"));
                    }
                }
            }
            if !per_gpu.is_empty() {
                // Some GPU answered: NVML works (a segment naming a GPU this node lacks is
                // that segment's problem, logged above, not the agent's readiness).
                nvml_problem = None;
            }
            self.metrics
                .nvml_up
                .set(if per_gpu.is_empty() && !self.segs.is_empty() {
                    0.0
                } else {
                    1.0
                });
        } else {
            // Set every period: the exporter drops gauges nobody updates.
            self.metrics.nvml_up.set(0.0);
            nvml_problem = Some(
                "NVML is unavailable (see the log at start-up): shares are not measured, rates are held"
                    .to_owned(),
            );
        }
        self.nvml_problem = nvml_problem;
        self.last_poll = Some((now, unix_us()));

        // First pass: counters and measured shares.
        struct Seen {
            name: String,
            gpu: u32,
            params: Params,
            generation: u64,
            counters: Counters,
            measured: Option<f64>,
            live: usize,
        }
        let mut seen = Vec::new();
        for (name, m) in &mut self.segs {
            let gpu = m.m.seg.gpu();
            if gpu != m.gpu {
                // Moved to another GPU by set-rate: the metric labels follow.
                m.gpu = gpu;
                m.metrics = SegmentMetrics::new(&self.cfg.node, name, gpu);
            }
            let seg = &m.m.seg;
            let mut live = Vec::new();
            for pid in seg.attached_pids() {
                if pid_alive(pid) {
                    live.push(pid);
                } else {
                    seg.layout().detach_pid(pid);
                }
            }
            let measured = per_gpu
                .get(&gpu)
                .map(|(map, _)| live.iter().filter_map(|p| map.get(p)).sum::<f64>());
            seen.push(Seen {
                name: name.clone(),
                gpu,
                params: seg.params(),
                generation: seg.generation(),
                counters: seg.counters(),
                measured,
                live: live.len(),
            });
        }

        // Second pass: control.
        for s in &seen {
            let Some(m) = self.segs.get_mut(&s.name) else {
                continue;
            };
            let d_tokens = s
                .counters
                .tokens_consumed
                .saturating_sub(m.last.tokens_consumed);
            let d_launches = s.counters.launches.saturating_sub(m.last.launches);
            let d_throttled = s
                .counters
                .throttled_launches
                .saturating_sub(m.last.throttled_launches);
            m.launches_per_s = window
                .filter(|w| !w.is_zero())
                .map_or(0.0, |w| d_launches as f64 / w.as_secs_f64());
            m.measured = s.measured;
            let external = s.generation != m.seen_generation;
            let mut generation = s.generation;
            if let (Some(window), false, true) = (window, external, s.params.mode != Mode::Off) {
                let target = if s.params.mode == Mode::Share {
                    let dev = per_gpu.get(&s.gpu).and_then(|(_, d)| *d);
                    let managed: f64 = seen
                        .iter()
                        .filter(|o| o.gpu == s.gpu)
                        .filter_map(|o| o.measured)
                        .sum();
                    let unmanaged = dev.map_or(0.0, |d| (d - managed).max(0.0));
                    let reserved: f64 = seen
                        .iter()
                        .filter(|o| o.gpu == s.gpu && o.name != s.name)
                        .filter(|o| o.counters.tokens_consumed > 0 && o.params.mode != Mode::Off)
                        .map(|o| o.params.target_share.max(o.measured.unwrap_or(0.0)))
                        .sum();
                    share_target(
                        s.params.target_share,
                        reserved,
                        unmanaged,
                        self.cfg.share_headroom,
                    )
                } else {
                    s.params.target_share
                };
                let obs = Observation {
                    target,
                    measured: s.measured,
                    window,
                    tokens: d_tokens,
                    throttled_launches: d_throttled,
                    rate: s.params.refill_per_s,
                };
                if let RateDecision::Set { rate } = m.ctl.step(&obs) {
                    let params = Params {
                        refill_per_s: rate,
                        burst: burst_for(rate, target, self.cfg.burst_ns),
                        ..s.params
                    };
                    // Do not overwrite a set-rate that landed since the parameters were read.
                    if m.m.seg.generation() == s.generation {
                        match m.m.seg.set_params(&params) {
                            Ok(()) => {
                                generation = m.m.seg.generation();
                                // Our write is generation + 1; a set-rate landing right after
                                // it shows as a newer generation and is validated as such.
                                m.written = Some(Written {
                                    generation: s.generation.wrapping_add(1),
                                    gpu: s.gpu,
                                    params,
                                });
                            }
                            Err(e) => {
                                tracing::warn!(segment = s.name, error = %e, "could not write parameters")
                            }
                        }
                    }
                }
            }
            if let (Some(window), Mode::Off) = (window, s.params.mode) {
                m.ctl.learn(&Observation {
                    target: s.params.target_share,
                    measured: s.measured,
                    window,
                    tokens: d_tokens,
                    throttled_launches: d_throttled,
                    rate: s.params.refill_per_s,
                });
            }
            m.seen_generation = generation;
            m.last = s.counters;
            let params = m.m.seg.params();
            if integrity::check(&m.m.seg.control_snapshot(), None).is_empty() {
                self.remembered.insert(s.name.clone(), (s.gpu, params));
            }
            m.metrics.target.set(params.target_share);
            if let Some(v) = s.measured {
                m.metrics.measured.set(v);
            }
            m.metrics.launches.absolute(s.counters.launches);
            m.metrics
                .throttled_seconds
                .set(s.counters.throttled_ns as f64 / 1e9);
            m.metrics.refill.set(params.refill_per_s as f64);
            self.registry.observe(
                &s.name,
                now,
                Sighting {
                    launches: s.counters.launches,
                    tokens: s.counters.tokens_consumed,
                    generation: s.generation,
                    live_pids: s.live,
                },
            );
        }
        self.collect_garbage(now);
        self.persist();
    }

    fn collect_garbage(&mut self, now: Instant) {
        let garbage = self.registry.garbage(now);
        if garbage.is_empty() {
            return;
        }
        let _lock = match segments::lock_dir(&self.cfg.shm_dir) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot lock the shm dir for garbage collection");
                return;
            }
        };
        for name in garbage {
            let Some(m) = self.segs.remove(&name) else {
                self.registry.forget(&name);
                continue;
            };
            m.m.seg
                .layout()
                .control
                .retired
                .store(1, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = std::fs::remove_file(m.m.seg.path()) {
                tracing::warn!(segment = name, error = %e, "could not remove idle segment");
            } else {
                self.metrics.collected.increment(1);
                tracing::info!(segment = name, "collected idle segment (no live process)");
            }
            self.registry.forget(&name);
            self.remembered.remove(&name);
        }
    }

    fn persist(&mut self) {
        let mut state = AgentState {
            updated_unix_ms: segments::unix_ms(),
            segments: BTreeMap::new(),
        };
        for (name, m) in &self.segs {
            state.segments.insert(
                name.clone(),
                SegmentState {
                    gpu: m.m.seg.gpu(),
                    measured: m.measured,
                    ns_per_token: m.ctl.ns_per_token(),
                    launches_per_s: m.launches_per_s,
                    recreated: m.recreated,
                },
            );
        }
        let outcome = self.writer.submit(&self.cfg.shm_dir, state.clone());
        self.write_outcome(outcome);
        self.persisted = state;
    }

    /// Waits until the state file holds the last tick's state (the writer thread is behind
    /// when the disk is slow).
    pub fn flush_state(&mut self) {
        let outcome = self.writer.flush();
        self.write_outcome(outcome);
    }

    /// Readiness follows the state writes: the last one that finished failed, or succeeded.
    fn write_outcome(&mut self, outcome: Option<Result<(), String>>) {
        match outcome {
            Some(Ok(()))
                if self.dir_problem.is_some() && list_segments(&self.cfg.shm_dir).is_ok() =>
            {
                self.set_dir_problem(None);
            }
            Some(Err(e)) => self.set_dir_problem(Some(format!("cannot write the shm dir: {e}"))),
            Some(Ok(())) | None => {}
        }
    }

    /// Names of the segments currently managed.
    pub fn segment_names(&self) -> Vec<String> {
        self.segs.keys().cloned().collect()
    }
}

/// Parameters of a segment the agent never saw valid: unlimited (`off`), so that nothing is
/// throttled on garbage's say-so.
fn unlimited_params(burst_ns: u64) -> Params {
    let refill = (1e9 / DEFAULT_NS_PER_TOKEN) as u64;
    Params {
        mode: Mode::Off,
        target_share: 1.0,
        refill_per_s: refill,
        burst: burst_for(refill, 1.0, burst_ns),
        cost_scale: 1.0,
    }
}

mod persist;
mod serve;
pub use serve::{Listeners, run};

#[cfg(test)]
mod tests;
