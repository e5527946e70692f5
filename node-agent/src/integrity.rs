//! Segment integrity (sans-IO): can the agent stand behind a segment's control block?
//!
//! The control block of a segment is the agent's (docs/gpu.md, "Threat model"). Every control
//! period the daemon takes a [`ControlSnapshot`] of each segment it manages and asks
//! [`check`] what is wrong with it: a field out of its bounds ([`crate::bounds`]), an unknown
//! mode, the `retired` flag set in the file that is still at the path, or a field that changed
//! while the generation did not (every legitimate writer bumps the generation after writing).
//! The daemon repairs what it finds with the last parameters it saw valid, counts each repair
//! in `sair_agent_segment_repairs_total{reason}` and logs once per segment and reason.
//! `status` uses the same check (without the "what the agent wrote" part) to show a segment as
//! invalid instead of printing its garbage.

use crate::bounds::{COST_SCALE_RANGE, MAX_GPUS, MAX_REFILL_PER_S, MIN_SHARE, burst_device_ns};
use sair_shm::{ControlSnapshot, Mode, Params};

/// What is wrong with a control block (the `reason` label of
/// `sair_agent_segment_repairs_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepairReason {
    /// `retired` is set in the file that is still at the segment's path.
    Retired,
    /// The mode field holds a value this version does not know.
    UnknownMode,
    /// The target share is not finite or outside [0.001, 1].
    TargetShare,
    /// The refill rate is zero in a limiting mode, or above 2^50 tokens/s.
    RefillRate,
    /// The burst is zero or stands for more than 100 ms of device time.
    Burst,
    /// The cost scale is not finite or outside [1e-6, 1e6].
    CostScale,
    /// The GPU index is not below 64.
    Gpu,
    /// The header flags are not 0.
    HeaderFlags,
    /// A field differs from what was last written, and the generation did not move.
    Unannounced,
    /// A valid block with a new generation that `set-rate` would have refused: the share would
    /// take its GPU over Σρ = 1 (the daemon checks this one, under the commitment lock).
    Overcommitted,
}

impl RepairReason {
    /// Every reason, in label order.
    pub const ALL: [RepairReason; 10] = [
        RepairReason::Retired,
        RepairReason::UnknownMode,
        RepairReason::TargetShare,
        RepairReason::RefillRate,
        RepairReason::Burst,
        RepairReason::CostScale,
        RepairReason::Gpu,
        RepairReason::HeaderFlags,
        RepairReason::Unannounced,
        RepairReason::Overcommitted,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RepairReason::Retired => "retired",
            RepairReason::UnknownMode => "unknown_mode",
            RepairReason::TargetShare => "target_share",
            RepairReason::RefillRate => "refill_rate",
            RepairReason::Burst => "burst",
            RepairReason::CostScale => "cost_scale",
            RepairReason::Gpu => "gpu",
            RepairReason::HeaderFlags => "header_flags",
            RepairReason::Unannounced => "unannounced",
            RepairReason::Overcommitted => "overcommitted",
        }
    }
}

impl std::fmt::Display for RepairReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the agent last wrote (or last accepted) in a segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Written {
    /// The generation after that write.
    pub generation: u64,
    /// GPU index.
    pub gpu: u32,
    /// Parameters.
    pub params: Params,
}

/// Device time a burst may stand for, with room for the rounding of the token count.
const BURST_SLACK: f64 = 1.01;

/// What is wrong with `snap`, in [`RepairReason`] order (empty: valid). `written` is what the
/// agent last wrote or accepted, `None` for a segment it never saw valid (`status`, adoption).
pub fn check(snap: &ControlSnapshot, written: Option<&Written>) -> Vec<RepairReason> {
    let mut out = Vec::new();
    if snap.retired != 0 {
        out.push(RepairReason::Retired);
    }
    let mode = Mode::from_raw(snap.mode_raw);
    if mode.is_none() {
        out.push(RepairReason::UnknownMode);
    }
    let share_ok =
        snap.target_share.is_finite() && snap.target_share >= MIN_SHARE && snap.target_share <= 1.0;
    if !share_ok {
        out.push(RepairReason::TargetShare);
    }
    let limited = matches!(mode, Some(Mode::Cap | Mode::Share));
    let refill_ok = snap.refill_per_s <= MAX_REFILL_PER_S && !(limited && snap.refill_per_s == 0);
    if !refill_ok {
        out.push(RepairReason::RefillRate);
    }
    let max_burst_ns = crate::bounds::BURST_RANGE.end().as_nanos() as f64;
    let burst_ok = snap.burst >= 1
        && (!(share_ok && refill_ok)
            || burst_device_ns(snap.burst, snap.refill_per_s, snap.target_share).is_none_or(
                |ns| {
                    // One token of rounding on top of the slack.
                    let npt = snap.target_share * 1e9 / snap.refill_per_s.max(1) as f64;
                    ns <= max_burst_ns * BURST_SLACK + npt
                },
            ));
    if !burst_ok {
        out.push(RepairReason::Burst);
    }
    if !(snap.cost_scale.is_finite() && COST_SCALE_RANGE.contains(&snap.cost_scale)) {
        out.push(RepairReason::CostScale);
    }
    if snap.gpu_index >= MAX_GPUS {
        out.push(RepairReason::Gpu);
    }
    if snap.header_flags != 0 {
        out.push(RepairReason::HeaderFlags);
    }
    if let Some(w) = written
        && w.generation == snap.generation
        && (w.gpu != snap.gpu_index || snap.params() != Some(w.params))
    {
        out.push(RepairReason::Unannounced);
    }
    out
}

#[cfg(test)]
mod tests;
