//! Every metric the sidecar exports: names, label values, descriptions and pre-resolved handles.
//!
//! Each sidecar instance owns its own [`PrometheusRecorder`] (not the process-global one), so
//! several sidecars in one test process never mix their series. Handles are resolved once in
//! [`StageMetrics::new`]; the request path never formats a metric name, and every label value
//! comes from an enum here ([`RequestOutcome`], [`Failure`]).

use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

pub const REQUESTS_TOTAL: &str = "sair_stage_requests_total";
pub const FAILURES_TOTAL: &str = "sair_stage_failures_total";
pub const QUEUE_WAIT_SECONDS: &str = "sair_stage_queue_wait_seconds";
pub const SERVICE_SECONDS: &str = "sair_stage_service_seconds";
pub const REQUEST_SECONDS: &str = "sair_stage_request_seconds";
pub const INFLIGHT: &str = "sair_stage_inflight";
pub const QUEUE_DEPTH: &str = "sair_stage_queue_depth";
pub const PIPELINE_REQUEST_SECONDS: &str = "sair_pipeline_request_seconds";
pub const REPORTS_DROPPED_TOTAL: &str = "sair_sidecar_reports_dropped_total";
pub const TTFB_SECONDS: &str = "sair_stage_ttfb_seconds";
pub const CONNECTIONS: &str = "sair_sidecar_connections";
pub const CONNECTIONS_WAITED_TOTAL: &str = "sair_sidecar_connection_limit_waits_total";
pub const CONNECT_RETRIES_TOTAL: &str = "sair_stage_connect_retries_total";

/// Every family name, for tests and docs.
pub const ALL: [&str; 13] = [
    REQUESTS_TOTAL,
    FAILURES_TOTAL,
    QUEUE_WAIT_SECONDS,
    SERVICE_SECONDS,
    REQUEST_SECONDS,
    INFLIGHT,
    QUEUE_DEPTH,
    PIPELINE_REQUEST_SECONDS,
    REPORTS_DROPPED_TOTAL,
    TTFB_SECONDS,
    CONNECTIONS,
    CONNECTIONS_WAITED_TOTAL,
    CONNECT_RETRIES_TOTAL,
];

/// How a request ended; the bounded value set of the `outcome` label of
/// [`REQUESTS_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Answered by the model server (and the rest of the chain), whatever its status below 500.
    Ok,
    /// The model server or a later stage failed (refused, reset, timed out, 5xx).
    UpstreamError,
    /// Admission refused it: the queue was full.
    Rejected,
    /// It waited longer than the queue timeout.
    Timeout,
    /// The client went away before the answer was ready (or its body could not be read).
    Canceled,
    /// The request itself was refused for what it is (a body over `--max-body-bytes`: 413;
    /// more header fields than `--upstream-max-headers` once forwarded: 431).
    /// Not an admission decision: it never reached the queue.
    ClientError,
}

impl RequestOutcome {
    pub const ALL: [RequestOutcome; 6] = [
        RequestOutcome::Ok,
        RequestOutcome::UpstreamError,
        RequestOutcome::Rejected,
        RequestOutcome::Timeout,
        RequestOutcome::Canceled,
        RequestOutcome::ClientError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Ok => "ok",
            RequestOutcome::UpstreamError => "upstream_error",
            RequestOutcome::Rejected => "rejected",
            RequestOutcome::Timeout => "timeout",
            RequestOutcome::Canceled => "canceled",
            RequestOutcome::ClientError => "client_error",
        }
    }

    /// Whether admission refused the request (queue full or queue timeout): what a
    /// `StageReport` counts as a rejection.
    pub fn is_admission_refusal(self) -> bool {
        matches!(self, RequestOutcome::Rejected | RequestOutcome::Timeout)
    }
}

/// Where a failure came from (after pingora's `ErrorSource`): the `source` label of
/// [`FAILURES_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The request itself (its body).
    Client,
    /// The admission queue refused it.
    Admission,
    /// The model server this sidecar fronts.
    Upstream,
    /// The next stage.
    Downstream,
}

impl ErrorSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorSource::Client => "client",
            ErrorSource::Admission => "admission",
            ErrorSource::Upstream => "upstream",
            ErrorSource::Downstream => "downstream",
        }
    }
}

/// One table generates the [`Failure`] enum, its list and its two label values, so the three
/// cannot drift apart.
macro_rules! failures {
    ($($(#[$doc:meta])* $variant:ident => $source:ident, $reason:literal;)*) => {
        /// Why the sidecar answered a request with an error of its own: one series of
        /// [`FAILURES_TOTAL`] per variant, labelled `source` and `reason`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Failure {
            $($(#[$doc])* $variant,)*
        }

        impl Failure {
            /// Every failure, in declaration order (`Failure::X as usize` indexes it).
            pub const ALL: &[Failure] = &[$(Failure::$variant,)*];

            /// The `source` label.
            pub fn source(self) -> ErrorSource {
                match self {
                    $(Failure::$variant => ErrorSource::$source,)*
                }
            }

            /// The `reason` label.
            pub fn reason(self) -> &'static str {
                match self {
                    $(Failure::$variant => $reason,)*
                }
            }
        }
    };
}

failures! {
    /// The request body exceeds `--max-body-bytes` (413).
    BodyTooLarge => Client, "oversized";
    /// The request body could not be read: the client hung up mid-body (400, `canceled`).
    BodyUnreadable => Client, "unreadable";
    /// The request body's framing is invalid, e.g. a bad chunk size line (400, `client_error`).
    BodyMalformed => Client, "malformed";
    /// The request body did not arrive within `--body-read-timeout` (408, `client_error`).
    BodyTimeout => Client, "timeout";
    /// The request would carry more header fields once forwarded than
    /// `--upstream-max-headers` (431, `client_error`).
    TooManyHeaders => Client, "too_many_headers";
    /// A body did not fit the buffer budget, `--max-buffered-bytes` (503, `rejected`).
    BufferFull => Admission, "buffer_full";
    /// The admission queue was full (503).
    QueueFull => Admission, "queue_full";
    /// The request waited longer than the queue timeout (503).
    QueueTimeout => Admission, "queue_timeout";
    /// The model server refused the connection (nothing listening).
    UpstreamRefused => Upstream, "refused";
    /// The model server could not be connected to for another reason.
    UpstreamUnreachable => Upstream, "unreachable";
    /// Connecting to or hearing from the model server took longer than allowed.
    UpstreamTimeout => Upstream, "timeout";
    /// The model server's response body exceeds `--max-body-bytes`.
    UpstreamOversized => Upstream, "oversized";
    /// The connection to the model server failed mid-exchange (reset, closed, bad HTTP).
    UpstreamBroken => Upstream, "broken";
    /// A next-stage replica refused the connection.
    DownstreamRefused => Downstream, "refused";
    /// A next-stage replica could not be connected to for another reason.
    DownstreamUnreachable => Downstream, "unreachable";
    /// Connecting to or hearing from the next stage took longer than allowed.
    DownstreamTimeout => Downstream, "timeout";
    /// The next stage's response body exceeds `--max-body-bytes`.
    DownstreamOversized => Downstream, "oversized";
    /// The connection to the next stage failed mid-exchange.
    DownstreamBroken => Downstream, "broken";
    /// No next-stage endpoint is known (discovery found none yet).
    NoNextEndpoint => Downstream, "no_endpoint";
}

/// Pre-resolved handles for one (pipeline, stage).
#[derive(Debug, Clone)]
pub struct StageMetrics {
    requests: [Counter; RequestOutcome::ALL.len()],
    failures: Vec<Counter>,
    pub queue_wait: Histogram,
    pub service: Histogram,
    pub request: Histogram,
    pub inflight: Gauge,
    pub queue_depth: Gauge,
    pub pipeline_request: Histogram,
    pub reports_dropped: Counter,
    /// Dispatch to the first byte of the model server's answer body.
    pub ttfb: Histogram,
    /// Client connections open now.
    pub connections: Gauge,
    /// Connections that had to wait for `--max-connections`.
    pub connections_waited: Counter,
    /// Connect attempts repeated because nothing reached the model server (label
    /// `target="upstream"`) or a next-stage replica (`target="downstream"`).
    pub connect_retries_upstream: Counter,
    pub connect_retries_downstream: Counter,
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
            let requests = RequestOutcome::ALL.map(|o| {
                let mut l = labels.to_vec();
                l.push(("outcome", o.as_str().to_owned()));
                metrics::counter!(REQUESTS_TOTAL, &l)
            });
            let failures = Failure::ALL
                .iter()
                .map(|f| {
                    let mut l = labels.to_vec();
                    l.push(("source", f.source().as_str().to_owned()));
                    l.push(("reason", f.reason().to_owned()));
                    metrics::counter!(FAILURES_TOTAL, &l)
                })
                .collect();
            let retries = |target: ErrorSource| {
                let mut l = labels.to_vec();
                l.push(("target", target.as_str().to_owned()));
                metrics::counter!(CONNECT_RETRIES_TOTAL, &l)
            };
            let m = StageMetrics {
                requests,
                failures,
                queue_wait: metrics::histogram!(QUEUE_WAIT_SECONDS, &labels),
                service: metrics::histogram!(SERVICE_SECONDS, &labels),
                request: metrics::histogram!(REQUEST_SECONDS, &labels),
                inflight: metrics::gauge!(INFLIGHT, &labels),
                queue_depth: metrics::gauge!(QUEUE_DEPTH, &labels),
                pipeline_request: metrics::histogram!(PIPELINE_REQUEST_SECONDS, &labels),
                reports_dropped: metrics::counter!(REPORTS_DROPPED_TOTAL, &labels),
                ttfb: metrics::histogram!(TTFB_SECONDS, &labels),
                connections: metrics::gauge!(CONNECTIONS, &labels),
                connections_waited: metrics::counter!(CONNECTIONS_WAITED_TOTAL, &labels),
                connect_retries_upstream: retries(ErrorSource::Upstream),
                connect_retries_downstream: retries(ErrorSource::Downstream),
            };
            // Touch every series so each family is exported from the first scrape on.
            for c in m.requests.iter().chain(&m.failures) {
                c.increment(0);
            }
            m.reports_dropped.increment(0);
            m.connections_waited.increment(0);
            m.connect_retries_upstream.increment(0);
            m.connect_retries_downstream.increment(0);
            m.connections.set(0.0);
            m.inflight.set(0.0);
            m.queue_depth.set(0.0);
            m
        });
        Ok((metrics, handle))
    }

    /// Counts a finished request under its outcome.
    pub fn count(&self, outcome: RequestOutcome) {
        // `ALL` lists the variants in declaration order.
        if let Some(c) = self.requests.get(outcome as usize) {
            c.increment(1);
        }
    }

    /// Counts a request the sidecar answered with an error of its own.
    pub fn count_failure(&self, failure: Failure) {
        if let Some(c) = self.failures.get(failure as usize) {
            c.increment(1);
        }
    }
}

/// Describes every family on the current (local) recorder.
pub fn describe() {
    metrics::describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Requests finished by this stage replica, by outcome"
    );
    metrics::describe_counter!(
        FAILURES_TOTAL,
        Unit::Count,
        "Requests this sidecar answered with an error of its own, by source and reason"
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
    metrics::describe_histogram!(
        TTFB_SECONDS,
        Unit::Seconds,
        "Time from dispatch to the first byte of the model server's response body \
         (the time to first token of a streamed answer)"
    );
    metrics::describe_gauge!(CONNECTIONS, "Client connections open now");
    metrics::describe_counter!(
        CONNECTIONS_WAITED_TOTAL,
        Unit::Count,
        "Times the accept loop waited because --max-connections were open"
    );
    metrics::describe_counter!(
        CONNECT_RETRIES_TOTAL,
        Unit::Count,
        "Connect attempts repeated because the request had reached no process yet \
         (connect refused or timed out, or no next-stage endpoint), by target"
    );
    metrics::describe_counter!(
        REPORTS_DROPPED_TOTAL,
        Unit::Count,
        "StageReports dropped because the agent was unreachable and the buffer was full"
    );
}

#[cfg(test)]
mod tests;
