//! The JSON report of a run (layout: `loadgen/schema/report.schema.json`) and its human
//! summary.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Facts about the run that the recorder does not see.
#[derive(Debug, Clone)]
pub struct RunMeta {
    /// The target URL.
    pub target: String,
    /// The pattern run.
    pub pattern: crate::pattern::Pattern,
    /// The schedule's seed.
    pub seed: u64,
    /// Scheduled duration in seconds.
    pub duration_s: f64,
    /// Wall time of the run including the drain, in seconds.
    pub elapsed_s: f64,
    /// `--connections`.
    pub connections: usize,
    /// Arrivals in the schedule.
    pub scheduled: u64,
    /// Arrivals the dispatcher was too far behind to send before the end of the run.
    pub undispatched: u64,
}

/// Version of the report layout (`loadgen/schema/report.schema.json`); 2 added
/// `fell_behind` and `undispatched`.
pub const REPORT_VERSION: u32 = 2;

/// The generator fell behind its schedule when the 99th percentile of its dispatch lag
/// (request task start minus intended send time) is above this, or when it left arrivals
/// undispatched. Latency is measured from the intended send time, so it then includes the
/// generator's own lag, not the server's alone.
pub const FELL_BEHIND_LAG_MS: f64 = 100.0;

/// The JSON report of one run. Field meanings are in docs/loadgen.md and the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Layout version.
    pub version: u32,
    /// The target URL.
    pub target: String,
    /// The pattern run.
    pub pattern: crate::pattern::Pattern,
    /// The schedule's seed.
    pub seed: u64,
    /// Scheduled duration (s).
    pub duration_s: f64,
    /// Wall time including the drain (s).
    pub elapsed_s: f64,
    /// Maximum concurrent requests.
    pub connections: usize,
    /// Arrivals in the schedule.
    pub scheduled: u64,
    /// Requests sent.
    pub sent: u64,
    /// Requests answered with a 2xx status, body read.
    pub completed: u64,
    /// Arrivals not sent: no free connection within the bound.
    pub dropped: u64,
    /// Arrivals not sent because the generator was still behind its schedule at the end of
    /// the run (it could not keep up).
    pub undispatched: u64,
    /// True when the generator could not keep to its schedule: `undispatched > 0` or a
    /// dispatch lag p99 above [`FELL_BEHIND_LAG_MS`]. Latency then includes its own lag.
    pub fell_behind: bool,
    /// `--slo` in ms (only with `--slo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_ms: Option<f64>,
    /// Completed requests whose latency (from intended send time) exceeded `--slo` (only
    /// with `--slo`). SLO violations as `sair eval` defines them: `late + Σ errors + dropped
    /// + undispatched`, over `scheduled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<u64>,
    /// Failed sent requests by kind.
    pub errors: BTreeMap<String, u64>,
    /// `scheduled / duration_s`.
    pub offered_rps: f64,
    /// `sent / duration_s`.
    pub achieved_rps: f64,
    /// `completed / duration_s`.
    pub completed_rps: f64,
    /// Latency of completed requests from their intended send time.
    pub latency_ms: LatencyMs,
    /// Actual minus intended send time of sent requests.
    pub send_lag_ms: SendLagMs,
    /// Request task start minus intended send time, for every arrival (sent or dropped): the
    /// generator's own timing, without the wait for a free connection.
    pub dispatch_lag_ms: SendLagMs,
    /// Per second of intended send time.
    pub timeline: Vec<TimelinePoint>,
    /// Per `Server-Timing` stage.
    pub stages: BTreeMap<String, StageReport>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// Send lag percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendLagMs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// One second of the run, by intended send time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Second from the start.
    pub t: u64,
    /// Requests sent for arrivals in this second.
    pub rps: u64,
    /// Of those, completed.
    pub completed: u64,
    /// Arrivals of this second dropped.
    pub dropped: u64,
    /// Median latency of this second's completed requests.
    pub p50_ms: f64,
    /// 99th percentile latency of this second's completed requests.
    pub p99_ms: f64,
    /// Failed requests of this second.
    pub errors: u64,
}

/// One stage's `Server-Timing` percentiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// Median queue time.
    pub queue_p50_ms: f64,
    /// 99th percentile queue time.
    pub queue_p99_ms: f64,
    /// Median service time.
    pub service_p50_ms: f64,
    /// 99th percentile service time.
    pub service_p99_ms: f64,
    /// Responses that carried this stage's entries.
    pub count: u64,
}

impl Report {
    /// A short human summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        if let Some(why) = self.behind_reason() {
            s.push_str(&format!("{why}\n"));
        }
        s.push_str(&format!(
            "{} {} for {:.1}s: scheduled {}, sent {} ({:.1}/s of {:.1}/s offered), completed {}, dropped {}, errors {}\n",
            self.pattern.name(),
            self.target,
            self.duration_s,
            self.scheduled,
            self.sent,
            self.achieved_rps,
            self.offered_rps,
            self.completed,
            self.dropped,
            self.errors.values().sum::<u64>(),
        ));
        for (k, v) in &self.errors {
            s.push_str(&format!("  error {k}: {v}\n"));
        }
        let l = &self.latency_ms;
        s.push_str(&format!(
            "latency ms (from intended send): p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}\n",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        ));
        let g = &self.send_lag_ms;
        let d = &self.dispatch_lag_ms;
        s.push_str(&format!(
            "send lag ms: p50 {:.3}  p99 {:.3}  max {:.3}   (dispatch only: p50 {:.3}  p99 {:.3}  max {:.3})\n",
            g.p50, g.p99, g.max, d.p50, d.p99, d.max
        ));
        for (name, st) in &self.stages {
            s.push_str(&format!(
                "stage {name}: queue p50 {:.2} p99 {:.2}  service p50 {:.2} p99 {:.2} ms\n",
                st.queue_p50_ms, st.queue_p99_ms, st.service_p50_ms, st.service_p99_ms
            ));
        }
        s
    }

    /// When the generator fell behind: one line saying by how much and what it means for the
    /// latency figures (printed in the summary and on stderr).
    pub fn behind_reason(&self) -> Option<String> {
        if !self.fell_behind {
            return None;
        }
        Some(format!(
            "the generator fell behind its schedule (dispatch lag p99 {:.1} ms, max {:.1} ms, bound {FELL_BEHIND_LAG_MS} ms; {} of {} arrivals never dispatched): the latency figures include this lag and are not the server's alone; lower --rate or give the generator more CPU",
            self.dispatch_lag_ms.p99, self.dispatch_lag_ms.max, self.undispatched, self.scheduled,
        ))
    }
}
