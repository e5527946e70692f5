//! Every metric of the node agent: names, descriptions, and pre-resolved handles.
//!
//! Labels come from bounded sets: `segment` and `gpu` from the segments on this node, `node`
//! from the configuration, `pipeline`/`stage`/`replica` from at most `--max-report-keys` report
//! keys (gauges of evicted keys expire through the exporter's idle timeout).
//!
//! `sair_gpu_throttled_seconds_total` is a monotonic float kept in shared memory; the `metrics`
//! crate's counters are integers, so it is exported through a gauge set to the counter's value.

use metrics::{Counter, Gauge, Unit, counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use std::sync::OnceLock;
use std::time::Duration;

/// Target share ρ of a segment.
pub const GPU_SHARE_TARGET: &str = "sair_gpu_share_target";
/// Measured share of the GPU's time of a segment over the last control window.
pub const GPU_SHARE_MEASURED: &str = "sair_gpu_share_measured";
/// Kernel launches of a segment.
pub const GPU_LAUNCHES_TOTAL: &str = "sair_gpu_launches_total";
/// Time launches of a segment spent throttled.
pub const GPU_THROTTLED_SECONDS_TOTAL: &str = "sair_gpu_throttled_seconds_total";
/// Refill rate the controller wrote, tokens per second.
pub const GPU_REFILL_TOKENS_PER_SECOND: &str = "sair_gpu_refill_tokens_per_second";
/// Segments recreated because their file was corrupt or truncated.
pub const AGENT_SEGMENTS_RECREATED_TOTAL: &str = "sair_agent_segments_recreated_total";
/// Segments garbage-collected.
pub const AGENT_SEGMENTS_COLLECTED_TOTAL: &str = "sair_agent_segments_collected_total";
/// Segments that could not be opened and were left alone (other layout version, I/O error).
pub const AGENT_SEGMENT_ERRORS_TOTAL: &str = "sair_agent_segment_errors_total";
/// Repairs of a segment's control block, by reason ([`crate::integrity::RepairReason`]).
pub const AGENT_SEGMENT_REPAIRS_TOTAL: &str = "sair_agent_segment_repairs_total";
/// 1 when NVML answers, 0 when it does not (measurement off, rates held).
pub const AGENT_NVML_UP: &str = "sair_agent_nvml_up";
/// Stage reports received and stored.
pub const AGENT_REPORTS_RECEIVED_TOTAL: &str = "sair_agent_reports_received_total";
/// Frames or reports refused (undecodable, wrong version, failing validation).
pub const AGENT_REPORTS_INVALID_TOTAL: &str = "sair_agent_reports_invalid_total";
/// Remote target updates refused by the commitment check (Σρ > 1, rate out of range).
pub const AGENT_TARGETS_REFUSED_TOTAL: &str = "sair_agent_targets_refused_total";
/// ρ decisions read from the mesh, by outcome (`admitted`, `stale`, `not_leader`, `malformed`).
pub const AGENT_MESH_DECISIONS_TOTAL: &str = "sair_agent_mesh_decisions_total";
/// Latest report: arrivals in its window.
pub const STAGE_REPORT_ARRIVALS: &str = "sair_stage_report_arrivals";
/// Latest report: completions in its window.
pub const STAGE_REPORT_COMPLETIONS: &str = "sair_stage_report_completions";
/// Latest report: rejections in its window.
pub const STAGE_REPORT_REJECTIONS: &str = "sair_stage_report_rejections";
/// Latest report: errors in its window.
pub const STAGE_REPORT_ERRORS: &str = "sair_stage_report_errors";
/// Latest report: p99 queue wait.
pub const STAGE_REPORT_QUEUE_WAIT_P99_SECONDS: &str = "sair_stage_report_queue_wait_p99_seconds";
/// Latest report: p99 service time.
pub const STAGE_REPORT_SERVICE_P99_SECONDS: &str = "sair_stage_report_service_p99_seconds";
/// Latest report: busy fraction.
pub const STAGE_REPORT_BUSY_FRACTION: &str = "sair_stage_report_busy_fraction";
/// Latest report: queue depth at the end of its window.
pub const STAGE_REPORT_QUEUE_DEPTH: &str = "sair_stage_report_queue_depth";
/// Latest report: window length.
pub const STAGE_REPORT_WINDOW_SECONDS: &str = "sair_stage_report_window_seconds";

/// How long a gauge nobody updates stays exported (evicted report keys, collected segments).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Describes every metric; called once at start-up.
pub fn describe() {
    describe_gauge!(
        GPU_SHARE_TARGET,
        Unit::Count,
        "Target GPU share rho of a segment"
    );
    describe_gauge!(
        GPU_SHARE_MEASURED,
        Unit::Count,
        "Measured share of GPU time of a segment over the last control window"
    );
    describe_counter!(
        GPU_LAUNCHES_TOTAL,
        Unit::Count,
        "Kernel launches of a segment"
    );
    describe_gauge!(
        GPU_THROTTLED_SECONDS_TOTAL,
        Unit::Seconds,
        "Time launches of a segment waited for tokens (monotonic)"
    );
    describe_gauge!(
        GPU_REFILL_TOKENS_PER_SECOND,
        Unit::Count,
        "Refill rate of a segment's token bucket, tokens per second"
    );
    describe_counter!(
        AGENT_SEGMENTS_RECREATED_TOTAL,
        Unit::Count,
        "Segments recreated because their file was corrupt or truncated"
    );
    describe_counter!(
        AGENT_SEGMENTS_COLLECTED_TOTAL,
        Unit::Count,
        "Segments garbage-collected"
    );
    describe_counter!(
        AGENT_SEGMENT_ERRORS_TOTAL,
        Unit::Count,
        "Segments that could not be opened and were left alone"
    );
    describe_counter!(
        AGENT_SEGMENT_REPAIRS_TOTAL,
        Unit::Count,
        "Repairs of a segment's control block (invalid or unannounced field), by reason"
    );
    describe_gauge!(AGENT_NVML_UP, Unit::Count, "1 when NVML answers");
    describe_counter!(
        AGENT_REPORTS_RECEIVED_TOTAL,
        Unit::Count,
        "Stage reports stored"
    );
    describe_counter!(
        AGENT_REPORTS_INVALID_TOTAL,
        Unit::Count,
        "Frames or stage reports refused"
    );
    describe_counter!(
        AGENT_TARGETS_REFUSED_TOTAL,
        Unit::Count,
        "Remote target updates refused by the commitment check"
    );
    describe_counter!(
        AGENT_MESH_DECISIONS_TOTAL,
        Unit::Count,
        "Rho decisions read from the mesh, by outcome (admitted, stale, not_leader, malformed)"
    );
    for (name, unit, help) in [
        (
            STAGE_REPORT_ARRIVALS,
            Unit::Count,
            "Arrivals in the latest report window",
        ),
        (
            STAGE_REPORT_COMPLETIONS,
            Unit::Count,
            "Completions in the latest report window",
        ),
        (
            STAGE_REPORT_REJECTIONS,
            Unit::Count,
            "Rejections in the latest report window",
        ),
        (
            STAGE_REPORT_ERRORS,
            Unit::Count,
            "Errors in the latest report window",
        ),
        (
            STAGE_REPORT_QUEUE_WAIT_P99_SECONDS,
            Unit::Seconds,
            "p99 queue wait of the latest report",
        ),
        (
            STAGE_REPORT_SERVICE_P99_SECONDS,
            Unit::Seconds,
            "p99 service time of the latest report",
        ),
        (
            STAGE_REPORT_BUSY_FRACTION,
            Unit::Count,
            "Busy fraction of the latest report",
        ),
        (
            STAGE_REPORT_QUEUE_DEPTH,
            Unit::Count,
            "Queue depth at the end of the latest report",
        ),
        (
            STAGE_REPORT_WINDOW_SECONDS,
            Unit::Seconds,
            "Window length of the latest report",
        ),
    ] {
        describe_gauge!(name, unit, help);
    }
}

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn install() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .idle_timeout(MetricKindMask::GAUGE, Some(IDLE_TIMEOUT))
                .install_recorder()
                .map_err(|e| e.to_string())?;
            describe();
            // The shared plumbing's own metrics (accept errors, admin requests).
            sair_service::metrics::describe();
            Ok(handle)
        })
        .clone()
}

/// Handles of one segment's metrics, resolved when the segment is adopted.
#[derive(Debug, Clone)]
pub struct SegmentMetrics {
    /// [`GPU_SHARE_TARGET`].
    pub target: Gauge,
    /// [`GPU_SHARE_MEASURED`].
    pub measured: Gauge,
    /// [`GPU_LAUNCHES_TOTAL`].
    pub launches: Counter,
    /// [`GPU_THROTTLED_SECONDS_TOTAL`].
    pub throttled_seconds: Gauge,
    /// [`GPU_REFILL_TOKENS_PER_SECOND`].
    pub refill: Gauge,
}

impl SegmentMetrics {
    /// Resolves the handles for `segment` on `gpu` of `node`.
    pub fn new(node: &str, segment: &str, gpu: u32) -> Self {
        let labels = [
            ("segment", segment.to_owned()),
            ("gpu", gpu.to_string()),
            ("node", node.to_owned()),
        ];
        SegmentMetrics {
            target: gauge!(GPU_SHARE_TARGET, &labels),
            measured: gauge!(GPU_SHARE_MEASURED, &labels),
            launches: counter!(GPU_LAUNCHES_TOTAL, &labels),
            throttled_seconds: gauge!(GPU_THROTTLED_SECONDS_TOTAL, &labels),
            refill: gauge!(GPU_REFILL_TOKENS_PER_SECOND, &labels),
        }
    }
}

/// Agent-wide handles.
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    /// [`AGENT_SEGMENTS_RECREATED_TOTAL`].
    pub recreated: Counter,
    /// [`AGENT_SEGMENTS_COLLECTED_TOTAL`].
    pub collected: Counter,
    /// [`AGENT_SEGMENT_ERRORS_TOTAL`].
    pub segment_errors: Counter,
    /// [`AGENT_NVML_UP`].
    pub nvml_up: Gauge,
    /// [`AGENT_REPORTS_RECEIVED_TOTAL`].
    pub reports_received: Counter,
    /// [`AGENT_REPORTS_INVALID_TOTAL`].
    pub reports_invalid: Counter,
    /// [`AGENT_TARGETS_REFUSED_TOTAL`].
    pub targets_refused: Counter,
    /// [`AGENT_SEGMENT_REPAIRS_TOTAL`], one handle per reason, in
    /// [`crate::integrity::RepairReason::ALL`] order.
    repairs: Vec<Counter>,
    node: String,
}

impl AgentMetrics {
    /// Resolves the agent-wide handles for `node`.
    pub fn new(node: &str) -> Self {
        let labels = [("node", node.to_owned())];
        AgentMetrics {
            recreated: counter!(AGENT_SEGMENTS_RECREATED_TOTAL, &labels),
            collected: counter!(AGENT_SEGMENTS_COLLECTED_TOTAL, &labels),
            segment_errors: counter!(AGENT_SEGMENT_ERRORS_TOTAL, &labels),
            nvml_up: gauge!(AGENT_NVML_UP, &labels),
            reports_received: counter!(AGENT_REPORTS_RECEIVED_TOTAL, &labels),
            reports_invalid: counter!(AGENT_REPORTS_INVALID_TOTAL, &labels),
            targets_refused: counter!(AGENT_TARGETS_REFUSED_TOTAL, &labels),
            repairs: crate::integrity::RepairReason::ALL
                .iter()
                .map(|r| {
                    counter!(
                        AGENT_SEGMENT_REPAIRS_TOTAL,
                        "node" => node.to_owned(),
                        "reason" => r.as_str()
                    )
                })
                .collect(),
            node: node.to_owned(),
        }
    }

    /// Counts one repair for `reason`.
    pub fn repaired(&self, reason: crate::integrity::RepairReason) {
        if let Some(c) = crate::integrity::RepairReason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.repairs.get(i))
        {
            c.increment(1);
        }
    }

    /// Publishes the latest report of a (pipeline, stage, replica). Called once per stored
    /// report, off the request path; the key set is bounded by the report store.
    pub fn stage_report(&self, r: &sair_wire::StageReport) {
        let labels = [
            ("pipeline", r.pipeline.clone()),
            ("stage", r.stage.clone()),
            ("replica", r.replica.clone()),
            ("node", self.node.clone()),
        ];
        gauge!(STAGE_REPORT_ARRIVALS, &labels).set(r.arrivals as f64);
        gauge!(STAGE_REPORT_COMPLETIONS, &labels).set(r.completions as f64);
        gauge!(STAGE_REPORT_REJECTIONS, &labels).set(r.rejections as f64);
        gauge!(STAGE_REPORT_ERRORS, &labels).set(r.errors as f64);
        gauge!(STAGE_REPORT_QUEUE_WAIT_P99_SECONDS, &labels).set(r.queue_wait.p99);
        gauge!(STAGE_REPORT_SERVICE_P99_SECONDS, &labels).set(r.service.p99);
        gauge!(STAGE_REPORT_BUSY_FRACTION, &labels).set(r.busy_fraction);
        gauge!(STAGE_REPORT_QUEUE_DEPTH, &labels).set(r.queue_depth as f64);
        gauge!(STAGE_REPORT_WINDOW_SECONDS, &labels).set(r.window_seconds);
    }
}
