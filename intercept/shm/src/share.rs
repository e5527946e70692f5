//! From a target share ρ to bucket parameters.
//!
//! The library enforces tokens per second; a token is `cost_scale` × (grid blocks × threads per
//! block) of launched work. What a token costs in device time depends on the kernels and the GPU,
//! so the agent measures it: over a window, `ns_per_token = busy_ns / tokens_consumed`, where
//! `busy_ns` is the device time of the segment's processes (NVML per-process utilisation × window)
//! and `tokens_consumed` the delta of the segment's counter. Then
//! `refill = ρ × 1e9 / ns_per_token` tokens/s gives the segment ρ of the device's time, on any GPU
//! size, because the estimate is in device time, not in launches. A closed loop on the measured
//! share corrects what the estimate misses (queueing, overlap).

use crate::layout::{Mode, Params};
use crate::segment::ShmError;

/// Parameters that give a segment the share `rho` of its GPU when one token costs
/// `ns_per_token` of device time. `burst_ns` is how much device time an idle segment may save
/// up (e.g. 5 ms). The cost scale is 1.
pub fn bucket_params_for_share(
    rho: f64,
    ns_per_token: f64,
    burst_ns: u64,
    mode: Mode,
) -> Result<Params, ShmError> {
    if !(rho > 0.0 && rho <= 1.0) {
        return Err(ShmError::InvalidParams {
            reason: format!("share {rho} is outside (0, 1]"),
        });
    }
    if !(ns_per_token.is_finite() && ns_per_token > 0.0) {
        return Err(ShmError::InvalidParams {
            reason: format!("ns per token {ns_per_token} must be finite and positive"),
        });
    }
    let refill = (rho * 1e9 / ns_per_token).round().max(1.0);
    let burst = (burst_ns as f64 / ns_per_token).round().max(1.0);
    Ok(Params {
        mode,
        refill_per_s: refill as u64,
        burst: burst as u64,
        cost_scale: 1.0,
        target_share: rho,
    })
}

/// Device ns per token over a window, or `None` when the window saw no tokens or no busy time.
pub fn estimate_ns_per_token(busy_ns: u64, tokens: u64) -> Option<f64> {
    (busy_ns > 0 && tokens > 0).then(|| busy_ns as f64 / tokens as f64)
}

#[cfg(test)]
mod tests;
