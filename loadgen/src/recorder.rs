//! The measurements of one run (sans-IO): counters, HdrHistograms, the per-second timeline and
//! per-stage `Server-Timing` percentiles, and the JSON report built from them.
//!
//! Every event is keyed by the request's *intended* send time (seconds from the start of the
//! schedule), so the timeline follows the pattern even when the server falls behind.

use crate::server_timing::{Entry, Part};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

mod report;
pub use report::{
    FELL_BEHIND_LAG_MS, LatencyMs, REPORT_VERSION, Report, RunMeta, SendLagMs, StageReport,
    TimelinePoint,
};

/// Highest latency recorded, in microseconds (one hour); larger values are clamped.
const MAX_US: u64 = 3_600_000_000;
/// Distinct `Server-Timing` stages tracked; entries of further stages are ignored.
pub const MAX_STAGES: usize = 64;
/// Seconds of timeline kept (one day); events later than that go to the last second.
const MAX_TIMELINE_S: usize = 86_400;

/// Why a sent request did not complete. Serialised in `errors` as the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// A (re)connection to the target failed.
    Connect,
    /// The request could not be written or the response head not read.
    Send,
    /// No complete response within `--timeout`.
    Timeout,
    /// The response body failed mid-way.
    Body,
    /// Status 400–499.
    Http4xx,
    /// Status 500–599.
    Http5xx,
    /// Any other non-success status (1xx, 3xx).
    HttpOther,
    /// Still in flight when the bounded drain at the end of the run ran out.
    Unfinished,
}

impl ErrorKind {
    /// The name used in the JSON `errors` object.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Send => "send",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Body => "body",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::HttpOther => "http_other",
            ErrorKind::Unfinished => "unfinished",
        }
    }

    /// The kind for a non-2xx status code.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            400..=499 => ErrorKind::Http4xx,
            500..=599 => ErrorKind::Http5xx,
            _ => ErrorKind::HttpOther,
        }
    }
}

fn hist_us() -> Histogram<u64> {
    // 3 significant figures over 1 µs .. 1 h; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid")
}

fn hist_small() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_US, 2).expect("constant histogram bounds are valid")
}

fn us(ms: f64) -> u64 {
    ((ms * 1000.0).round() as u64).clamp(1, MAX_US)
}

#[derive(Debug)]
struct Second {
    sent: u64,
    completed: u64,
    dropped: u64,
    errors: u64,
    latency: Histogram<u32>,
}

impl Second {
    fn new() -> Second {
        Second {
            sent: 0,
            completed: 0,
            dropped: 0,
            errors: 0,
            latency: hist_small(),
        }
    }
}

#[derive(Debug)]
struct StageHists {
    queue: Histogram<u64>,
    service: Histogram<u64>,
}

/// Accumulates one run's events.
#[derive(Debug)]
pub struct Recorder {
    sent: u64,
    completed: u64,
    dropped: u64,
    errors: BTreeMap<ErrorKind, u64>,
    latency: Histogram<u64>,
    send_lag: Histogram<u64>,
    dispatch_lag: Histogram<u64>,
    timeline: Vec<Second>,
    stages: BTreeMap<String, StageHists>,
    /// `--slo` in µs, and the completed requests slower than it (counted exactly, not read
    /// back from the histogram, whose buckets would blur the threshold).
    slo_us: Option<u64>,
    late: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// Live counters for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Requests sent.
    pub sent: u64,
    /// Requests completed with a success status.
    pub completed: u64,
    /// Arrivals dropped (no free connection in time).
    pub dropped: u64,
    /// Requests that failed, all kinds together.
    pub errors: u64,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder {
            sent: 0,
            completed: 0,
            dropped: 0,
            errors: BTreeMap::new(),
            latency: hist_us(),
            send_lag: hist_us(),
            dispatch_lag: hist_us(),
            timeline: Vec::new(),
            stages: BTreeMap::new(),
            slo_us: None,
            late: 0,
        }
    }

    /// Counts completed requests slower than `slo` (`late` in the report).
    pub fn with_slo(mut self, slo: Option<std::time::Duration>) -> Recorder {
        self.slo_us = slo.map(|s| u64::try_from(s.as_micros()).unwrap_or(u64::MAX));
        self
    }

    fn second(&mut self, intended_s: f64) -> &mut Second {
        let i = (intended_s.max(0.0) as usize).min(MAX_TIMELINE_S - 1);
        while self.timeline.len() <= i {
            self.timeline.push(Second::new());
        }
        &mut self.timeline[i]
    }

    /// A request scheduled at `intended_s` started `dispatch_lag_us` and was sent `lag_us`
    /// after its intended time (the difference is the wait for a free connection).
    pub fn sent(&mut self, intended_s: f64, dispatch_lag_us: u64, lag_us: u64) {
        self.sent += 1;
        self.send_lag.saturating_record(lag_us.clamp(1, MAX_US));
        self.dispatch_lag
            .saturating_record(dispatch_lag_us.clamp(1, MAX_US));
        self.second(intended_s).sent += 1;
    }

    /// The arrival at `intended_s`, started `dispatch_lag_us` late, found no free connection
    /// in time and was not sent.
    pub fn dropped(&mut self, intended_s: f64, dispatch_lag_us: u64) {
        self.dropped += 1;
        self.dispatch_lag
            .saturating_record(dispatch_lag_us.clamp(1, MAX_US));
        self.second(intended_s).dropped += 1;
    }

    /// The request sent for `intended_s` completed `latency_us` after its intended send time.
    pub fn completed(&mut self, intended_s: f64, latency_us: u64, timings: &[Entry]) {
        self.completed += 1;
        if self.slo_us.is_some_and(|slo| latency_us > slo) {
            self.late += 1;
        }
        let v = latency_us.clamp(1, MAX_US);
        self.latency.saturating_record(v);
        self.second(intended_s).completed += 1;
        self.second(intended_s).latency.saturating_record(v);
        for e in timings {
            if !self.stages.contains_key(&e.stage) {
                if self.stages.len() >= MAX_STAGES {
                    continue;
                }
                self.stages.insert(
                    e.stage.clone(),
                    StageHists {
                        queue: hist_us(),
                        service: hist_us(),
                    },
                );
            }
            if let Some(h) = self.stages.get_mut(&e.stage) {
                let h = match e.part {
                    Part::Queue => &mut h.queue,
                    Part::Service => &mut h.service,
                };
                h.saturating_record(us(e.dur_ms));
            }
        }
    }

    /// The request sent for `intended_s` failed.
    pub fn error(&mut self, intended_s: f64, kind: ErrorKind) {
        *self.errors.entry(kind).or_insert(0) += 1;
        self.second(intended_s).errors += 1;
    }

    /// `n` failures of `kind` that belong to no particular second (e.g. `unfinished`).
    pub fn errors_untimed(&mut self, kind: ErrorKind, n: u64) {
        if n > 0 {
            *self.errors.entry(kind).or_insert(0) += n;
        }
    }

    /// Counters so far.
    pub fn counts(&self) -> Counts {
        Counts {
            sent: self.sent,
            completed: self.completed,
            dropped: self.dropped,
            errors: self.errors.values().sum(),
        }
    }

    /// Recent latency percentile (ms) over the whole run so far, for a progress line.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        ms(self.latency.value_at_quantile(quantile))
    }

    /// Builds the report. `duration_s` is the scheduled run length; `elapsed_s` the wall time
    /// from the first intended send to the end of the drain.
    pub fn report(&self, meta: RunMeta) -> Report {
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for (k, v) in &self.errors {
            errors.insert(k.as_str().to_owned(), *v);
        }
        let timeline = self
            .timeline
            .iter()
            .enumerate()
            .map(|(t, s)| TimelinePoint {
                t: t as u64,
                rps: s.sent,
                completed: s.completed,
                dropped: s.dropped,
                p50_ms: ms(s.latency.value_at_quantile(0.5)),
                p99_ms: ms(s.latency.value_at_quantile(0.99)),
                errors: s.errors,
            })
            .collect();
        let stages = self
            .stages
            .iter()
            .map(|(name, h)| {
                (
                    name.clone(),
                    StageReport {
                        queue_p50_ms: ms(h.queue.value_at_quantile(0.5)),
                        queue_p99_ms: ms(h.queue.value_at_quantile(0.99)),
                        service_p50_ms: ms(h.service.value_at_quantile(0.5)),
                        service_p99_ms: ms(h.service.value_at_quantile(0.99)),
                        count: h.service.len().max(h.queue.len()),
                    },
                )
            })
            .collect();
        let duration_s = meta.duration_s;
        let rate = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        Report {
            version: REPORT_VERSION,
            target: meta.target,
            pattern: meta.pattern,
            seed: meta.seed,
            duration_s,
            elapsed_s: meta.elapsed_s,
            connections: meta.connections,
            scheduled: meta.scheduled,
            sent: self.sent,
            completed: self.completed,
            dropped: self.dropped,
            undispatched: meta.undispatched,
            slo_ms: self.slo_us.map(|us| us as f64 / 1000.0),
            late: self.slo_us.map(|_| self.late),
            fell_behind: meta.undispatched > 0
                || ms(self.dispatch_lag.value_at_quantile(0.99)) > FELL_BEHIND_LAG_MS,
            errors,
            offered_rps: rate(meta.scheduled),
            achieved_rps: rate(self.sent),
            completed_rps: rate(self.completed),
            latency_ms: LatencyMs {
                p50: ms(self.latency.value_at_quantile(0.5)),
                p90: ms(self.latency.value_at_quantile(0.9)),
                p99: ms(self.latency.value_at_quantile(0.99)),
                p999: ms(self.latency.value_at_quantile(0.999)),
                max: ms(self.latency.max()),
                mean: if self.latency.is_empty() {
                    0.0
                } else {
                    self.latency.mean() / 1000.0
                },
            },
            send_lag_ms: SendLagMs {
                p50: ms(self.send_lag.value_at_quantile(0.5)),
                p99: ms(self.send_lag.value_at_quantile(0.99)),
                max: ms(self.send_lag.max()),
            },
            dispatch_lag_ms: SendLagMs {
                p50: ms(self.dispatch_lag.value_at_quantile(0.5)),
                p99: ms(self.dispatch_lag.value_at_quantile(0.99)),
                max: ms(self.dispatch_lag.max()),
            },
            timeline,
            stages,
        }
    }
}

fn ms(v_us: u64) -> f64 {
    v_us as f64 / 1000.0
}

#[cfg(test)]
mod tests;
