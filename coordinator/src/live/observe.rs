//! Observation (sans-IO): from the StageReports and segment facts that the node agents publish
//! on the mesh, the [`PipelineState`] the [`crate::policy::Policy`] trait takes.
//!
//! - **Windows, not snapshots.** The agents republish each sidecar's latest report; every
//!   report with a new `window_end_unix_ms` is one more window, and the state of an interval
//!   merges every window seen since the previous decision. A window is counted once, however
//!   often its value is read.
//! - **Honest merges.** Percentiles of several replicas or windows are never averaged: the
//!   queue-wait, service and end-to-end histograms are merged and their quantiles read
//!   ([`sair_wire::histogram`]). Rates are counts over window time, per replica, summed.
//!   Busy fraction is time-weighted per replica and averaged over replicas (equal slots each).
//! - **Staleness by what this coordinator saw.** A report is fresh while its value changed
//!   (here, on this coordinator's clock) within `stale_windows` of its own window length; the
//!   sender's clock is never compared with ours. A value seen for the first time is not yet
//!   fresh: it may be the last word of a replica that died long ago. A stage without a fresh
//!   report is stale; the loop then holds the allocation and says why ([`Observation::stale`]).
//! - **No decision before the load is known.** Until a request has reached the pipeline, and
//!   for the rest of the interval in which the first one did, the reports say nothing about
//!   the load the allocation must carry: zero arrivals before the load generator or the first
//!   client starts would right-size every stage to its minimum, and the first interval of
//!   traffic is only partly covered. The loop holds the starting allocation until one whole
//!   interval of traffic is seen ([`Observation::traffic`]), as Knative keeps a revision at its
//!   initial scale until it has seen traffic. After that, a quiet interval is real data.
//! - **Bounded.** What the mesh no longer holds is forgotten here too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use sair_wire::StageReport;
use sair_wire::histogram::LatencyHistogram;
use sair_wire::keys::{self, SegmentFacts};

use crate::policies::Prices;
use crate::policy::{PipelineState, StageKind, StageSpec, StageState};

/// One `(member, key, value)` read from the mesh (what `Mesh::scan` returns).
pub type Entry = (String, String, Vec<u8>);

/// The default staleness bound, in report windows.
pub const DEFAULT_STALE_WINDOWS: f64 = 3.0;

/// The shortest window the staleness bound is computed from: the agents republish every
/// second, so a shorter window cannot be seen changing faster than that.
const MIN_WINDOW: Duration = Duration::from_secs(1);

/// What the observer knows of the pipeline before it starts (from the pipelines file).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    pub name: String,
    pub stages: Vec<StageSpec>,
    pub slo_p99_s: f64,
    pub gpus: u32,
    pub prices: Prices,
}

/// The allocation in force for one stage, from the actuator and the last decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageAlloc {
    /// Replicas serving (answering their readiness check).
    pub serving: u32,
    /// Replicas asked for.
    pub desired: u32,
    /// The ρ target in force (1.0 for CPU stages).
    pub rho: f64,
}

/// Why reports were not used, per call of [`Observer::ingest_reports`] (counted by the loop).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// New windows taken.
    pub windows: u64,
    /// Values that are not a valid StageReport of the key they sit under.
    pub invalid: u64,
    /// Reports of this pipeline naming a stage the pipelines file does not have.
    pub unknown_stage: u64,
}

/// One stage's observation beyond what the policy sees.
#[derive(Debug, Clone, PartialEq)]
pub struct StageExtra {
    /// No fresh report: the stage's numbers are not current.
    pub stale: bool,
    /// Mean measured GPU share of the stage's segments (GPU stages), if the agents measured it.
    pub rho_measured: Option<f64>,
    /// Replicas with a fresh report.
    pub fresh_replicas: u32,
    /// Seconds since this coordinator last saw a report of the stage change (`None`: never).
    pub last_change_s: Option<f64>,
}

/// Whether the interval's reports say what load the pipeline carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// No request has reached any stage since this coordinator started.
    NotYet,
    /// The first requests arrived during this interval: its rates cover only part of it.
    Starting,
    /// At least one whole interval of traffic has been seen.
    Flowing,
}

/// What one look at the mesh gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub state: PipelineState,
    /// Per stage, in pipeline order.
    pub stages: Vec<StageExtra>,
    /// Whether the load is known yet.
    pub traffic: Traffic,
}

impl Observation {
    /// Why the load is not yet known, for a rationale; `None` once a whole interval of traffic
    /// has been seen.
    pub fn awaiting_traffic(&self) -> Option<&'static str> {
        match self.traffic {
            Traffic::NotYet => Some(
                "no request has reached the pipeline since this coordinator started; holding \
                 the starting allocation until the traffic shows its load",
            ),
            Traffic::Starting => Some(
                "the first requests arrived during this interval, so its rates cover only part \
                 of it; holding the starting allocation for one whole interval of traffic",
            ),
            Traffic::Flowing => None,
        }
    }

    /// The stale stages, with a reason each, for a rationale; empty when every stage is fresh.
    pub fn stale(&self) -> Vec<String> {
        self.state
            .stages
            .iter()
            .zip(&self.stages)
            .filter(|(_, x)| x.stale)
            .map(|(s, x)| match x.last_change_s {
                Some(ago) => format!("{} (last report change {ago:.0} s ago)", s.name),
                None => format!("{} (no report seen change yet)", s.name),
            })
            .collect()
    }
}

/// The latest value of one report key of one member.
#[derive(Debug, Clone)]
struct Seen {
    window_end_unix_ms: u64,
    /// When this coordinator saw the value change; `None` while it has only seen one value.
    changed_at: Option<Instant>,
    report: StageReport,
}

/// One replica's windows since the last decision.
#[derive(Debug, Clone, Default)]
struct ReplicaAcc {
    secs: f64,
    arrivals: u64,
    completions: u64,
    rejections: u64,
    errors: u64,
    busy_area: f64,
    inflight_area: f64,
    queue_depth: u64,
    queue_wait: LatencyHistogram,
    service: LatencyHistogram,
}

impl ReplicaAcc {
    fn add(&mut self, r: &StageReport) {
        let w = r.window_seconds;
        self.secs += w;
        self.arrivals += r.arrivals;
        self.completions += r.completions;
        self.rejections += r.rejections;
        self.errors += r.errors;
        self.busy_area += r.busy_fraction * w;
        self.inflight_area += r.mean_inflight * w;
        self.queue_depth = r.queue_depth;
        self.queue_wait.merge(&r.queue_wait_hist);
        self.service.merge(&r.service_hist);
    }
}

/// Builds [`PipelineState`]s from mesh entries. Sans-IO: the caller reads the mesh and passes
/// `now`.
#[derive(Debug)]
pub struct Observer {
    spec: PipelineSpec,
    stale_windows: f64,
    /// Per (member, report key).
    seen: HashMap<(String, String), Seen>,
    /// Per stage, per (member, report key): windows since the last [`Observer::take`].
    acc: Vec<BTreeMap<(String, String), ReplicaAcc>>,
    /// End-to-end latency of the windows since the last take.
    e2e: LatencyHistogram,
    /// Per stage: measured shares of its segments, from the last segment scan.
    measured: Vec<Vec<f64>>,
    since: Instant,
    /// When this coordinator first took a window with arrivals.
    traffic_from: Option<Instant>,
}

impl Observer {
    /// An observer of `spec`'s pipeline; a report is stale after `stale_windows` of its window
    /// without a change (at least 1).
    pub fn new(spec: PipelineSpec, stale_windows: f64, now: Instant) -> Self {
        let n = spec.stages.len();
        Self {
            spec,
            stale_windows: if stale_windows.is_finite() {
                stale_windows.max(1.0)
            } else {
                DEFAULT_STALE_WINDOWS
            },
            seen: HashMap::new(),
            acc: vec![BTreeMap::new(); n],
            e2e: LatencyHistogram::new(),
            measured: vec![Vec::new(); n],
            since: now,
            traffic_from: None,
        }
    }

    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        self.spec.stages.iter().position(|s| s.name == name)
    }

    /// Takes every report the mesh holds now (`Mesh::scan("report/")`): new windows are
    /// accumulated, values are checked (decoded with a bound, validated, under their own key),
    /// and entries the mesh no longer holds are forgotten.
    pub fn ingest_reports(&mut self, entries: &[Entry], now: Instant) -> IngestStats {
        let mut stats = IngestStats::default();
        let mut held = HashSet::with_capacity(entries.len());
        for (member, key, value) in entries {
            let Some((p, s, r)) = keys::parse_report_key(key) else {
                continue;
            };
            if p != self.spec.name {
                continue;
            }
            let Some(stage) = self.stage_index(s) else {
                stats.unknown_stage += 1;
                continue;
            };
            let report = match keys::decode::<StageReport>(value) {
                Some(rep)
                    if rep.validate().is_ok()
                        && rep.pipeline == p
                        && rep.stage == s
                        && rep.replica == r =>
                {
                    rep
                }
                _ => {
                    stats.invalid += 1;
                    continue;
                }
            };
            let id = (member.clone(), key.clone());
            held.insert(id.clone());
            match self.seen.get_mut(&id) {
                Some(prev) if prev.window_end_unix_ms == report.window_end_unix_ms => {}
                Some(prev) => {
                    if let Some(acc) = self.acc.get_mut(stage) {
                        acc.entry(id.clone()).or_default().add(&report);
                    }
                    self.e2e.merge(&report.e2e_hist);
                    stats.windows += 1;
                    if report.arrivals > 0 && self.traffic_from.is_none() {
                        self.traffic_from = Some(now);
                    }
                    prev.window_end_unix_ms = report.window_end_unix_ms;
                    prev.changed_at = Some(now);
                    prev.report = report;
                }
                None => {
                    // First sight: its age is unknown, so it is neither counted nor fresh.
                    self.seen.insert(
                        id,
                        Seen {
                            window_end_unix_ms: report.window_end_unix_ms,
                            changed_at: None,
                            report,
                        },
                    );
                }
            }
        }
        self.seen.retain(|id, _| held.contains(id));
        for acc in &mut self.acc {
            acc.retain(|id, _| held.contains(id));
        }
        stats
    }

    /// Takes every segment fact the mesh holds now (`Mesh::scan("seg/")`); segments are
    /// mapped to stages by name (`<pipeline>.<stage>.<anything>`).
    pub fn ingest_segments(&mut self, entries: &[Entry]) {
        for m in &mut self.measured {
            m.clear();
        }
        for (_, key, value) in entries {
            let Some(segment) = keys::parse_segment_key(key) else {
                continue;
            };
            let Some((p, s)) = keys::stage_of_segment(segment) else {
                continue;
            };
            if p != self.spec.name {
                continue;
            }
            let Some(i) = self.stage_index(s) else {
                continue;
            };
            if let Some(facts) = keys::decode::<SegmentFacts>(value)
                && let Some(m) = facts.measured.filter(|m| m.is_finite() && *m >= 0.0)
            {
                self.measured[i].push(m);
            }
        }
    }

    fn fresh(&self, seen: &Seen, now: Instant) -> bool {
        let window = Duration::try_from_secs_f64(seen.report.window_seconds)
            .unwrap_or(MIN_WINDOW)
            .max(MIN_WINDOW);
        seen.changed_at.is_some_and(|at| {
            now.saturating_duration_since(at) <= window.mul_f64(self.stale_windows)
        })
    }

    /// The state since the last [`Observer::take`] (or the latest fresh windows, when none is
    /// new), without starting a new interval: for the status API between decisions.
    pub fn peek(&self, now: Instant, t_s: f64, alloc: &[StageAlloc]) -> Observation {
        self.build(now, t_s, alloc)
    }

    /// The state of the interval that ends now, and a new interval begins.
    pub fn take(&mut self, now: Instant, t_s: f64, alloc: &[StageAlloc]) -> Observation {
        let o = self.build(now, t_s, alloc);
        for acc in &mut self.acc {
            acc.clear();
        }
        self.e2e = LatencyHistogram::new();
        self.since = now;
        o
    }

    fn build(&self, now: Instant, t_s: f64, alloc: &[StageAlloc]) -> Observation {
        let interval_s = now.saturating_duration_since(self.since).as_secs_f64();
        let mut stages = Vec::with_capacity(self.spec.stages.len());
        let mut extras = Vec::with_capacity(self.spec.stages.len());
        let mut e2e = self.e2e.clone();
        let fallback_e2e = e2e.is_empty();
        for (i, spec) in self.spec.stages.iter().enumerate() {
            let mine: Vec<(&(String, String), &Seen)> = self
                .seen
                .iter()
                .filter(|((_, key), _)| {
                    keys::parse_report_key(key).is_some_and(|(_, s, _)| s == spec.name)
                })
                .collect();
            let fresh: Vec<&(&(String, String), &Seen)> =
                mine.iter().filter(|(_, s)| self.fresh(s, now)).collect();
            let last_change_s = mine
                .iter()
                .filter_map(|(_, s)| s.changed_at)
                .max()
                .map(|at| now.saturating_duration_since(at).as_secs_f64());
            // The windows of the interval; none new yet: the latest fresh ones.
            let mut replicas: Vec<ReplicaAcc> = self
                .acc
                .get(i)
                .map(|a| a.values().cloned().collect())
                .unwrap_or_default();
            if replicas.is_empty() {
                for (_, s) in &fresh {
                    let mut a = ReplicaAcc::default();
                    a.add(&s.report);
                    replicas.push(a);
                    if fallback_e2e {
                        e2e.merge(&s.report.e2e_hist);
                    }
                }
            }
            let a = alloc.get(i).copied().unwrap_or(StageAlloc {
                serving: 0,
                desired: 0,
                rho: 1.0,
            });
            stages.push(stage_state(spec, &replicas, a));
            let measured = &self.measured[i];
            extras.push(StageExtra {
                stale: fresh.is_empty(),
                rho_measured: (!measured.is_empty())
                    .then(|| measured.iter().sum::<f64>() / measured.len() as f64),
                fresh_replicas: fresh.len() as u32,
                last_change_s,
            });
        }
        let entry = stages.first();
        let cost_per_hour = cost_per_hour(&self.spec, alloc);
        let (arrival_rate, dropped) = entry.map_or((0.0, 0), |s| {
            let dropped = self.acc.first().map_or(0, |a| {
                a.values().map(|r| r.rejections + r.errors).sum::<u64>()
            });
            (s.arrival_rate, dropped)
        });
        let state = PipelineState {
            pipeline: self.spec.name.clone(),
            t_s,
            interval_s,
            e2e_p50_s: e2e.quantile(0.5),
            e2e_p99_s: e2e.quantile(0.99),
            arrival_rate,
            completed: e2e.count(),
            dropped,
            slo_p99_s: self.spec.slo_p99_s,
            gpus: self.spec.gpus,
            cost_per_hour,
            stages,
        };
        let traffic = match self.traffic_from {
            None => Traffic::NotYet,
            Some(from) if from > self.since => Traffic::Starting,
            Some(_) => Traffic::Flowing,
        };
        Observation {
            state,
            stages: extras,
            traffic,
        }
    }
}

/// One stage's state from its replicas' windows.
fn stage_state(spec: &StageSpec, replicas: &[ReplicaAcc], a: StageAlloc) -> StageState {
    let mut queue_wait = LatencyHistogram::new();
    let mut service = LatencyHistogram::new();
    let (mut arrival_rate, mut completion_rate, mut inflight, mut busy) = (0.0, 0.0, 0.0, 0.0);
    let mut queue_depth = 0;
    let mut counted = 0usize;
    for r in replicas {
        queue_wait.merge(&r.queue_wait);
        service.merge(&r.service);
        queue_depth += r.queue_depth;
        if r.secs > 0.0 {
            arrival_rate += r.arrivals as f64 / r.secs;
            completion_rate += r.completions as f64 / r.secs;
            inflight += r.inflight_area / r.secs;
            busy += r.busy_area / r.secs;
            counted += 1;
        }
    }
    StageState {
        name: spec.name.clone(),
        kind: spec.kind,
        arrival_rate,
        completion_rate,
        queue_wait_p50_s: queue_wait.quantile(0.5),
        queue_wait_p95_s: queue_wait.quantile(0.95),
        queue_wait_p99_s: queue_wait.quantile(0.99),
        service_p50_s: service.quantile(0.5),
        service_p95_s: service.quantile(0.95),
        service_p99_s: service.quantile(0.99),
        service_mean_s: service.mean(),
        mean_inflight: inflight,
        queue_depth,
        busy_fraction: if counted > 0 {
            (busy / counted as f64).clamp(0.0, 1.0)
        } else {
            0.0
        },
        replicas: a.serving,
        replicas_desired: a.desired,
        rho: if spec.kind == StageKind::Gpu {
            a.rho
        } else {
            1.0
        },
        shares: Vec::new(),
        concurrency: spec.concurrency,
        min_replicas: spec.min_replicas,
        max_replicas: spec.max_replicas,
    }
}

/// The allocation's cost rate, as the simulator bills it: a CPU replica whole, a GPU replica
/// by its share ρ; replicas asked for are billed (a starting replica holds its resources).
pub fn cost_per_hour(spec: &PipelineSpec, alloc: &[StageAlloc]) -> f64 {
    spec.stages
        .iter()
        .zip(alloc)
        .map(|(s, a)| match s.kind {
            StageKind::Cpu => f64::from(a.desired) * spec.prices.cpu_replica_per_hour,
            StageKind::Gpu => f64::from(a.desired) * a.rho * spec.prices.gpu_per_hour,
        })
        .sum()
}

#[cfg(test)]
mod tests;
