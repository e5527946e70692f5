//! Per-window statistics behind a `StageReport` (sans-IO: every method takes `now`).
//!
//! Percentiles come from an HDR histogram per window (microsecond resolution, 3 significant
//! digits), reset when the window is taken. The same samples also go into the report's
//! mergeable [`LatencyHistogram`]s (`queue_wait_hist`, `service_hist`), which the coordinator
//! adds across replicas and windows (percentiles cannot be averaged); `e2e_hist` holds the
//! `sair_pipeline_request_seconds` observations, so it is filled only where requests enter the
//! pipeline (the entry sidecar). The busy fraction is the time integral of busy
//! concurrency slots divided by `slots × window`; with unlimited concurrency the denominator is
//! the window's peak in-flight count (documented in the `StageReport` field).

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sair_wire::{LatencyHistogram, Percentiles, StageReport};

/// Longest latency a window histogram can hold: one hour, in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;

/// Identity fields copied into every report.
#[derive(Debug, Clone)]
pub struct ReportIdentity {
    pub pipeline: String,
    pub stage: String,
    pub replica: String,
    pub max_concurrency: u32,
}

/// The running report window: what one `StageReport` summarises.
#[derive(Debug)]
pub struct ReportWindow {
    id: ReportIdentity,
    start: Instant,
    arrivals: u64,
    completions: u64,
    rejections: u64,
    errors: u64,
    queue_wait: Histogram<u64>,
    service: Histogram<u64>,
    // The mergeable histograms of the same samples (and of the pipeline's requests), handed to
    // the report whole when the window closes.
    queue_wait_hist: LatencyHistogram,
    service_hist: LatencyHistogram,
    e2e_hist: LatencyHistogram,
    inflight: u64,
    peak_inflight: u64,
    last_change: Instant,
    /// Slot-seconds of busy time accumulated in this window.
    busy_integral: f64,
}

fn new_hist() -> Histogram<u64> {
    // Constant, valid bounds (low ≥ 1, high ≥ 2·low, sigfig ≤ 5): construction cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant histogram bounds are valid")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_MICROS)
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1e6;
    Percentiles {
        p50: q(0.50),
        p95: q(0.95),
        p99: q(0.99),
    }
}

impl ReportWindow {
    pub fn new(id: ReportIdentity, now: Instant) -> Self {
        ReportWindow {
            id,
            start: now,
            arrivals: 0,
            completions: 0,
            rejections: 0,
            errors: 0,
            queue_wait: new_hist(),
            service: new_hist(),
            queue_wait_hist: LatencyHistogram::new(),
            service_hist: LatencyHistogram::new(),
            e2e_hist: LatencyHistogram::new(),
            inflight: 0,
            peak_inflight: 0,
            last_change: now,
            busy_integral: 0.0,
        }
    }

    fn integrate(&mut self, now: Instant) {
        let dt = now
            .saturating_duration_since(self.last_change)
            .as_secs_f64();
        self.busy_integral += self.inflight as f64 * dt;
        self.last_change = now;
    }

    /// A request head arrived.
    pub fn arrival(&mut self) {
        self.arrivals += 1;
    }

    /// A request was dispatched to the model server after waiting `queue_wait`.
    pub fn dispatched(&mut self, now: Instant, queue_wait: Duration) {
        self.integrate(now);
        self.inflight += 1;
        self.peak_inflight = self.peak_inflight.max(self.inflight);
        let _ = self.queue_wait.record(micros(queue_wait));
        self.queue_wait_hist.record_duration(queue_wait);
    }

    /// The model server finished one request (its slot is free again).
    pub fn slot_released(&mut self, now: Instant) {
        self.integrate(now);
        self.inflight = self.inflight.saturating_sub(1);
    }

    /// The model server's response body ended after `service`.
    pub fn served(&mut self, service: Duration) {
        let _ = self.service.record(micros(service));
        self.service_hist.record_duration(service);
    }

    /// A request that entered the pipeline here finished `seconds` after it arrived, end to
    /// end: the value `sair_pipeline_request_seconds` observes.
    pub fn pipeline_request(&mut self, seconds: f64) {
        self.e2e_hist.record(seconds);
    }

    /// A request finished: `rejected` for admission refusals, `error` for failures.
    pub fn finished(&mut self, rejected: bool, error: bool) {
        if rejected {
            self.rejections += 1;
        } else {
            self.completions += 1;
            if error {
                self.errors += 1;
            }
        }
    }

    /// Closes the window at `now`, returns its report and starts the next one.
    pub fn take(&mut self, now: Instant, queue_depth: u64, window_end_unix_ms: u64) -> StageReport {
        self.integrate(now);
        let secs = now
            .saturating_duration_since(self.start)
            .as_secs_f64()
            .max(1e-9);
        let mean_inflight = self.busy_integral / secs;
        let slots = if self.id.max_concurrency > 0 {
            f64::from(self.id.max_concurrency)
        } else {
            self.peak_inflight.max(1) as f64
        };
        let report = StageReport {
            pipeline: self.id.pipeline.clone(),
            stage: self.id.stage.clone(),
            replica: self.id.replica.clone(),
            window_end_unix_ms,
            window_seconds: secs,
            arrivals: self.arrivals,
            completions: self.completions,
            rejections: self.rejections,
            errors: self.errors,
            queue_wait: percentiles(&self.queue_wait),
            service: percentiles(&self.service),
            mean_inflight,
            queue_depth,
            busy_fraction: (mean_inflight / slots).clamp(0.0, 1.0),
            max_concurrency: self.id.max_concurrency,
            // Taken, not cloned: the next window starts empty.
            queue_wait_hist: std::mem::take(&mut self.queue_wait_hist),
            service_hist: std::mem::take(&mut self.service_hist),
            e2e_hist: std::mem::take(&mut self.e2e_hist),
        };
        self.start = now;
        self.arrivals = 0;
        self.completions = 0;
        self.rejections = 0;
        self.errors = 0;
        self.queue_wait.reset();
        self.service.reset();
        self.busy_integral = 0.0;
        self.peak_inflight = self.inflight;
        report
    }
}

/// One request-path event, applied to the [`ReportWindow`] by the reporter.
#[derive(Debug, Clone, Copy)]
pub enum WindowEvent {
    Arrival,
    Dispatched {
        at: Instant,
        queue_wait: Duration,
    },
    SlotReleased {
        at: Instant,
    },
    Served {
        service: Duration,
    },
    Finished {
        rejected: bool,
        error: bool,
    },
    /// A request that entered the pipeline at this sidecar finished, `seconds` end to end (the
    /// same `f64` as the `sair_pipeline_request_seconds` observation, so the two agree).
    /// Recorded before its `Finished`, so a report that counts a completion holds its sample.
    PipelineRequest {
        seconds: f64,
    },
}

impl ReportWindow {
    /// Applies one request-path event.
    pub fn apply(&mut self, e: WindowEvent) {
        match e {
            WindowEvent::Arrival => self.arrival(),
            WindowEvent::Dispatched { at, queue_wait } => self.dispatched(at, queue_wait),
            WindowEvent::SlotReleased { at } => self.slot_released(at),
            WindowEvent::Served { service } => self.served(service),
            WindowEvent::Finished { rejected, error } => self.finished(rejected, error),
            WindowEvent::PipelineRequest { seconds } => self.pipeline_request(seconds),
        }
    }
}

/// The window as the request path sees it: requests only push [`WindowEvent`]s onto a lock-free
/// queue (std's mpsc list channel: a few atomic operations, never a lock, never a wait), and
/// the reporter applies them in order when it closes a window. The window and its histograms
/// are touched by the reporter alone, so closing a window (percentiles, histogram reset) never
/// holds up a request. Events are time-stamped when they happen, so the busy-slot integral is
/// as exact as before; two events from different threads may be queued a few nanoseconds out
/// of order, which the integral absorbs (a negative interval counts as zero).
#[derive(Debug)]
pub struct WindowFeed {
    tx: Sender<WindowEvent>,
    window: Mutex<(ReportWindow, Receiver<WindowEvent>)>,
}

impl WindowFeed {
    pub fn new(window: ReportWindow) -> Self {
        let (tx, rx) = channel();
        WindowFeed {
            tx,
            window: Mutex::new((window, rx)),
        }
    }

    /// Records an event (request path).
    pub fn record(&self, e: WindowEvent) {
        // The receiver lives as long as `self`: sending cannot fail.
        let _ = self.tx.send(e);
    }

    /// Applies every queued event, closes the window at `now` and returns its report.
    pub fn take(
        &self,
        now: Instant,
        queue_depth: u64,
        window_end_unix_ms: u64,
    ) -> Option<StageReport> {
        let mut guard = self.window.lock().ok()?;
        let (window, rx) = &mut *guard;
        for e in rx.try_iter() {
            window.apply(e);
        }
        Some(window.take(now, queue_depth, window_end_unix_ms))
    }
}

#[cfg(test)]
mod tests;
