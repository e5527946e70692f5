//! Every metric the sidecar exports: names, descriptions and pre-resolved handles.
//!
//! Each sidecar instance owns its own [`PrometheusRecorder`] (not the process-global one), so
//! several sidecars in one test process never mix their series. Handles are resolved once in
//! [`StageMetrics::new`]; the request path never formats a metric name.

use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

pub const REQUESTS_TOTAL: &str = "sair_stage_requests_total";
pub const QUEUE_WAIT_SECONDS: &str = "sair_stage_queue_wait_seconds";
pub const SERVICE_SECONDS: &str = "sair_stage_service_seconds";
pub const REQUEST_SECONDS: &str = "sair_stage_request_seconds";
pub const INFLIGHT: &str = "sair_stage_inflight";
pub const QUEUE_DEPTH: &str = "sair_stage_queue_depth";
pub const PIPELINE_REQUEST_SECONDS: &str = "sair_pipeline_request_seconds";
pub const REPORTS_DROPPED_TOTAL: &str = "sair_sidecar_reports_dropped_total";

/// Every family name, for tests and docs.
pub const ALL: [&str; 8] = [
    REQUESTS_TOTAL,
    QUEUE_WAIT_SECONDS,
    SERVICE_SECONDS,
    REQUEST_SECONDS,
    INFLIGHT,
    QUEUE_DEPTH,
    PIPELINE_REQUEST_SECONDS,
    REPORTS_DROPPED_TOTAL,
];

/// How a request ended; the bounded value set of the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered by the model server (and the rest of the chain), whatever its status below 500.
    Ok,
    /// The model server or a later stage failed (refused, reset, timed out, 5xx).
    UpstreamError,
    /// Admission refused it: the queue was full.
    Rejected,
    /// It waited longer than the queue timeout.
    Timeout,
    /// The client went away before the answer was ready.
    Canceled,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::UpstreamError,
        Outcome::Rejected,
        Outcome::Timeout,
        Outcome::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Rejected => "rejected",
            Outcome::Timeout => "timeout",
            Outcome::Canceled => "canceled",
        }
    }
}

/// Pre-resolved handles for one (pipeline, stage).
#[derive(Debug, Clone)]
pub struct StageMetrics {
    requests: [Counter; 5],
    pub queue_wait: Histogram,
    pub service: Histogram,
    pub request: Histogram,
    pub inflight: Gauge,
    pub queue_depth: Gauge,
    pub pipeline_request: Histogram,
    pub reports_dropped: Counter,
}

impl StageMetrics {
    /// Builds a private recorder with `buckets` (seconds) for every histogram, describes every
    /// family and resolves the handles.
    pub fn new(
        pipeline: &str,
        stage: &str,
        buckets: &[f64],
    ) -> Result<(Self, PrometheusHandle), metrics_exporter_prometheus::BuildError> {
        let recorder: PrometheusRecorder = PrometheusBuilder::new()
            .set_buckets(buckets)?
            .build_recorder();
        let handle = recorder.handle();
        let labels = [
            ("pipeline", pipeline.to_owned()),
            ("stage", stage.to_owned()),
        ];
        let metrics = metrics::with_local_recorder(&recorder, || {
            describe();
            let requests = Outcome::ALL.map(|o| {
                let mut l = labels.to_vec();
                l.push(("outcome", o.as_str().to_owned()));
                metrics::counter!(REQUESTS_TOTAL, &l)
            });
            let m = StageMetrics {
                requests,
                queue_wait: metrics::histogram!(QUEUE_WAIT_SECONDS, &labels),
                service: metrics::histogram!(SERVICE_SECONDS, &labels),
                request: metrics::histogram!(REQUEST_SECONDS, &labels),
                inflight: metrics::gauge!(INFLIGHT, &labels),
                queue_depth: metrics::gauge!(QUEUE_DEPTH, &labels),
                pipeline_request: metrics::histogram!(PIPELINE_REQUEST_SECONDS, &labels),
                reports_dropped: metrics::counter!(REPORTS_DROPPED_TOTAL, &labels),
            };
            // Touch every series so each family is exported from the first scrape on.
            for c in &m.requests {
                c.increment(0);
            }
            m.reports_dropped.increment(0);
            m.inflight.set(0.0);
            m.queue_depth.set(0.0);
            m
        });
        Ok((metrics, handle))
    }

    /// Counts a finished request under its outcome.
    pub fn count(&self, outcome: Outcome) {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.requests[i].increment(1);
    }
}

/// Describes every family on the current (local) recorder.
pub fn describe() {
    metrics::describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Requests finished by this stage replica, by outcome"
    );
    metrics::describe_histogram!(
        QUEUE_WAIT_SECONDS,
        Unit::Seconds,
        "Time from request head received to dispatch to the model server"
    );
    metrics::describe_histogram!(
        SERVICE_SECONDS,
        Unit::Seconds,
        "Time from dispatch to the end of the model server's response body"
    );
    metrics::describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Time from request head received to response ready, downstream stages included"
    );
    metrics::describe_gauge!(INFLIGHT, "Requests in flight to the model server");
    metrics::describe_gauge!(QUEUE_DEPTH, "Requests waiting for a concurrency slot");
    metrics::describe_histogram!(
        PIPELINE_REQUEST_SECONDS,
        Unit::Seconds,
        "End-to-end pipeline latency, recorded by the entry sidecar only"
    );
    metrics::describe_counter!(
        REPORTS_DROPPED_TOTAL,
        Unit::Count,
        "StageReports dropped because the agent was unreachable and the buffer was full"
    );
}
