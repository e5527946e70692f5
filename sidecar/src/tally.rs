//! The per-request tally: how each request ended, written once to Prometheus and to the
//! report window together, so the two never disagree.

use std::sync::Arc;
use std::time::Duration;

use crate::error::ProxyError;
use crate::metrics::{RequestOutcome, StageMetrics};
use crate::timing::RequestHead;
use crate::window::{WindowEvent, WindowFeed};

/// Counts requests: the outcome counter, the request and pipeline histograms, the service
/// histogram, and the matching report-window events.
#[derive(Debug)]
pub struct Tally {
    metrics: StageMetrics,
    window: Arc<WindowFeed>,
}

impl Tally {
    pub fn new(metrics: StageMetrics, window: Arc<WindowFeed>) -> Arc<Self> {
        Arc::new(Tally { metrics, window })
    }

    /// A request head arrived.
    pub fn arrival(&self) {
        self.window.record(WindowEvent::Arrival);
    }

    /// The model server's body ended `service` after dispatch.
    pub fn served(&self, service: Duration) {
        self.metrics.service.record(service.as_secs_f64());
        self.window.record(WindowEvent::Served { service });
    }

    /// The model server's first body byte arrived `ttfb` after dispatch.
    pub fn first_byte(&self, ttfb: Duration) {
        self.metrics.ttfb.record(ttfb.as_secs_f64());
    }

    /// Records a request the sidecar answered with an error of its own: its failure reason,
    /// then its outcome.
    pub fn finish_failed(&self, e: &ProxyError, head: RequestHead) {
        self.metrics.count_failure(e.failure());
        self.finish(e.outcome(), head);
    }

    /// Records how a request ended: counter, request histogram, pipeline histogram, window.
    pub fn finish(&self, outcome: RequestOutcome, head: RequestHead) {
        self.metrics.count(outcome);
        let elapsed = head.at.elapsed().as_secs_f64();
        self.metrics.request.record(elapsed);
        if head.entry && outcome == RequestOutcome::Ok {
            self.metrics.pipeline_request.record(elapsed);
            self.window
                .record(WindowEvent::PipelineRequest { seconds: elapsed });
        }
        self.window.record(WindowEvent::Finished {
            rejected: outcome.is_admission_refusal(),
            error: outcome == RequestOutcome::UpstreamError,
        });
        tracing::trace!(outcome = outcome.as_str(), elapsed, "request finished");
    }
}
