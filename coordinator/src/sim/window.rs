//! Per-stage measurements over one observation window, as a sidecar's StageReport would carry
//! them: counts, latency histograms and time integrals of busy slots and requests in the stage.

use hdrhistogram::Histogram;

/// Histograms record microseconds, up to an hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    #[allow(clippy::unwrap_used)] // constant, valid bounds
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap()
}

/// Records seconds into a microsecond histogram (saturating at its bounds).
pub fn record(h: &mut Histogram<u64>, seconds: f64) {
    let us = (seconds * 1e6).round().max(1.0) as u64;
    h.saturating_record(us);
}

/// A quantile in seconds; 0 when empty.
pub fn quantile_s(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1e6
    }
}

#[derive(Debug, Clone)]
pub struct StageWindow {
    pub arrivals: u64,
    pub completions: u64,
    pub wait: Histogram<u64>,
    pub service: Histogram<u64>,
    pub service_sum_s: f64,
    /// ∫ busy slots dt.
    pub busy_area: f64,
    /// ∫ serving slots dt.
    pub slot_area: f64,
    /// ∫ (queued + in service) dt.
    pub inflight_area: f64,
}

impl StageWindow {
    pub fn new() -> Self {
        Self {
            arrivals: 0,
            completions: 0,
            wait: histogram(),
            service: histogram(),
            service_sum_s: 0.0,
            busy_area: 0.0,
            slot_area: 0.0,
            inflight_area: 0.0,
        }
    }

    pub fn reset(&mut self) {
        self.arrivals = 0;
        self.completions = 0;
        self.wait.reset();
        self.service.reset();
        self.service_sum_s = 0.0;
        self.busy_area = 0.0;
        self.slot_area = 0.0;
        self.inflight_area = 0.0;
    }
}
