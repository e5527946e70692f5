//! The windowed per-stage report a sidecar sends to its node agent.
//!
//! The percentiles are for reading one replica's window at a glance; anything that combines
//! replicas or windows (the coordinator's stage and pipeline p99) merges the histograms
//! instead, because percentiles cannot be averaged ([`crate::histogram`]).

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::histogram::LatencyHistogram;
use crate::keys::{MAX_KEY_BYTES, report_key};

/// Latency percentiles over one window, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// What one stage replica saw during one report window.
///
/// Counts are for the window only (not cumulative) so that a lost report loses one window,
/// never skews a rate. Times are seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct StageReport {
    /// Pipeline name (`--pipeline`).
    pub pipeline: String,
    /// Stage name (`--stage`).
    pub stage: String,
    /// Replica identity, unique per sidecar instance (pod name or generated id).
    pub replica: String,
    /// Wall-clock end of the window, unix milliseconds (for ordering and staleness only).
    pub window_end_unix_ms: u64,
    /// Length of the window in seconds, measured on a monotonic clock.
    pub window_seconds: f64,
    /// Requests whose head arrived in the window.
    pub arrivals: u64,
    /// Requests that completed (any outcome but rejection) in the window.
    pub completions: u64,
    /// Requests answered 503 by admission (queue full or queue timeout).
    pub rejections: u64,
    /// Requests that failed upstream or downstream.
    pub errors: u64,
    /// Queue wait of requests dispatched in the window.
    pub queue_wait: Percentiles,
    /// Service time of requests completed in the window.
    pub service: Percentiles,
    /// Time-averaged number of requests in flight to the model server.
    pub mean_inflight: f64,
    /// Queue depth at the end of the window.
    pub queue_depth: u64,
    /// Fraction of concurrency-slot time that was busy, in [0, 1]
    /// (with unlimited concurrency: mean in-flight over observed peak, documented as such).
    pub busy_fraction: f64,
    /// Configured concurrency limit (0 = unlimited).
    pub max_concurrency: u32,
    /// Queue wait of requests dispatched in the window: the samples of `queue_wait`.
    #[serde(default)]
    pub queue_wait_hist: LatencyHistogram,
    /// Service time of requests completed in the window: the samples of `service`.
    #[serde(default)]
    pub service_hist: LatencyHistogram,
    /// End-to-end latency of the pipeline's requests that finished in the window, as the entry
    /// sidecar observes them for `sair_pipeline_request_seconds`; empty at every other
    /// sidecar. The pipeline's p99 is the quantile of these merged over the entry replicas.
    #[serde(default)]
    pub e2e_hist: LatencyHistogram,
}

impl StageReport {
    /// Rejects values no honest sidecar produces, so that bad reports stop at the boundary.
    pub fn validate(&self) -> Result<(), String> {
        let finite = [
            ("window_seconds", self.window_seconds),
            ("queue_wait.p50", self.queue_wait.p50),
            ("queue_wait.p95", self.queue_wait.p95),
            ("queue_wait.p99", self.queue_wait.p99),
            ("service.p50", self.service.p50),
            ("service.p95", self.service.p95),
            ("service.p99", self.service.p99),
            ("mean_inflight", self.mean_inflight),
            ("busy_fraction", self.busy_fraction),
        ];
        for (name, v) in finite {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "{name} must be a finite non-negative number, got {v}"
                ));
            }
        }
        if self.window_seconds <= 0.0 {
            return Err("window_seconds must be positive".into());
        }
        if self.busy_fraction > 1.0 + 1e-9 {
            return Err(format!(
                "busy_fraction must be at most 1, got {}",
                self.busy_fraction
            ));
        }
        if self.pipeline.is_empty() || self.stage.is_empty() {
            return Err("pipeline and stage must be non-empty".into());
        }
        // The names become a mesh key (`report/<pipeline>/<stage>/<replica>`): a `/` in one
        // would make the key name another report, and the mesh refuses a longer key.
        for (name, v) in [
            ("pipeline", &self.pipeline),
            ("stage", &self.stage),
            ("replica", &self.replica),
        ] {
            if v.contains('/') {
                return Err(format!("{name} {v:?} must not contain '/'"));
            }
        }
        let key = report_key(self).len();
        if key > MAX_KEY_BYTES {
            return Err(format!(
                "pipeline, stage and replica make a report key of {key} bytes, over {MAX_KEY_BYTES}"
            ));
        }
        for (name, h) in [
            ("queue_wait_hist", &self.queue_wait_hist),
            ("service_hist", &self.service_hist),
            ("e2e_hist", &self.e2e_hist),
        ] {
            h.validate().map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
