//! Bounds of every value an operator (or a remote target, or a segment file) can hand the agent
//! (sans-IO). One function per value: `set-rate`, `run`, the TOML config, remote targets and
//! the integrity check all call these, so they accept and refuse alike.
//!
//! Why these numbers (docs/node-agent.md, "Share arithmetic"):
//! - [`MIN_SHARE`] 0.001: below it the refill rate of a real kernel is under one token per
//!   second and NVML's 1 % resolution reads 0 for ten of its windows in a row, so neither the
//!   bucket nor the loop can hold it; a smaller ρ is refused, not clamped (a clamp would hand
//!   out more than was asked without saying so).
//! - [`BURST_RANGE`] 100 µs – 100 ms of device time: the burst is converted to tokens with the
//!   segment's own calibration, so an idle segment never saves up more than 100 ms of device
//!   time whatever ρ is.
//! - [`MAX_GPUS`] 64 GPU indices per node.

use crate::commit::CommitError;
use std::time::Duration;

/// Smallest target share ρ the agent accepts.
pub const MIN_SHARE: f64 = 0.001;
/// Device time an idle segment may save up.
pub const BURST_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_micros(100)..=Duration::from_millis(100);
/// GPU indices are below this.
pub const MAX_GPUS: u32 = 64;
/// Largest refill rate, tokens/s (2^50: far above any GPU at cost scale 1, far below overflow).
pub const MAX_REFILL_PER_S: u64 = 1 << 50;
/// Cost scales (tokens per block × thread) outside this range are refused.
pub const COST_SCALE_RANGE: std::ops::RangeInclusive<f64> = 1e-6..=1e6;
/// Longest `status` sampling time.
pub const MAX_SAMPLE: Duration = Duration::from_secs(10);
/// Range of the idle time before a segment is collected.
pub const GC_IDLE_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(7 * 24 * 3600);
/// Most report keys kept.
pub const MAX_REPORT_KEYS: usize = 1 << 20;

/// Checks a target share: finite, in [`MIN_SHARE`], 1].
pub fn check_share(segment: &str, rate: f64) -> Result<(), CommitError> {
    if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
        return Err(CommitError::RateOutOfRange {
            segment: segment.to_owned(),
            rate,
        });
    }
    if rate < MIN_SHARE {
        return Err(CommitError::BelowMinimum {
            segment: segment.to_owned(),
            rate,
            min: MIN_SHARE,
        });
    }
    Ok(())
}

/// Checks the burst option (device time an idle segment may save up).
pub fn check_burst(burst: Duration) -> Result<(), String> {
    if BURST_RANGE.contains(&burst) {
        Ok(())
    } else {
        Err(format!(
            "--burst {burst:?} must be within {:?}..={:?} of device time",
            BURST_RANGE.start(),
            BURST_RANGE.end()
        ))
    }
}

/// Checks a GPU index.
pub fn check_gpu(gpu: u32) -> Result<(), String> {
    if gpu < MAX_GPUS {
        Ok(())
    } else {
        Err(format!("--gpu {gpu} must be below {MAX_GPUS}"))
    }
}

/// Checks the `status` sampling time.
pub fn check_sample(sample: Duration) -> Result<(), String> {
    if sample <= MAX_SAMPLE {
        Ok(())
    } else {
        Err(format!(
            "--sample {sample:?} must be at most {MAX_SAMPLE:?}"
        ))
    }
}

/// Burst tokens for a segment refilled at `rate` tokens/s for a share `target`: `burst_ns` of
/// device time at the calibration the pair implies (`target × 1e9 / rate` ns per token), with
/// `burst_ns` clamped into [`BURST_RANGE`] and the share to at least [`MIN_SHARE`], so the
/// result is never more than 100 ms of device time while the rate is honest about the share.
pub fn burst_tokens(rate: u64, target: f64, burst_ns: u64) -> u64 {
    let lo = BURST_RANGE.start().as_nanos() as f64;
    let hi = BURST_RANGE.end().as_nanos() as f64;
    let burst_ns = (burst_ns as f64).clamp(lo, hi);
    let target = if target.is_finite() {
        target.clamp(MIN_SHARE, 1.0)
    } else {
        1.0
    };
    let tokens = burst_ns * rate as f64 / (target * 1e9);
    (tokens.round() as u64).max(1)
}

/// Device time, ns, that `burst` tokens stand for at the calibration `target × 1e9 / rate`
/// implies (`None` when the pair implies none).
pub fn burst_device_ns(burst: u64, rate: u64, target: f64) -> Option<f64> {
    (rate > 0 && target.is_finite() && target > 0.0)
        .then(|| burst as f64 * target * 1e9 / rate as f64)
}

#[cfg(test)]
mod tests;
