//! The commitment check (sans-IO): ρ ∈ [0.001, 1], and Σρ ≤ 1 over the limited segments of a
//! GPU. A segment whose share cannot be read or is invalid counts as the whole GPU (fail safe:
//! garbage never makes room).
//!
//! A segment in mode `off` reserves nothing (it is unlimited and unprotected), so it does not
//! count towards the sum. A request that fails changes nothing: the caller checks before it
//! writes.

use sair_shm::Mode;

/// Slack for floating-point sums such as 0.1 + 0.2 + 0.7.
const EPSILON: f64 = 1e-9;

/// A segment's current target, as the commitment check sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Segment name.
    pub segment: String,
    /// GPU index.
    pub gpu: u32,
    /// Target share.
    pub rate: f64,
    /// Limit mode.
    pub mode: Mode,
    /// The segment's share could not be read or is invalid (NaN, out of range, unknown mode):
    /// it is counted as fully committing its GPU (`rate` 1), fail safe.
    pub invalid: bool,
}

impl Claim {
    /// The claim of a segment whose control block cannot be trusted: all of `gpu`.
    pub fn fully_committed(segment: String, gpu: u32) -> Claim {
        Claim {
            segment,
            gpu,
            rate: 1.0,
            mode: Mode::Cap,
            invalid: true,
        }
    }
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommitError {
    /// The rate is not a share of a GPU.
    #[error("rate {rate} for segment {segment} is outside (0, 1]; give a share such as 0.25")]
    RateOutOfRange {
        /// The segment.
        segment: String,
        /// The rate asked for.
        rate: f64,
    },
    /// The rate is a share, but smaller than the agent can hold.
    #[error(
        "rate {rate} for segment {segment} is below the minimum share {min}; give at least {min} (or --mode off)"
    )]
    BelowMinimum {
        /// The segment.
        segment: String,
        /// The rate asked for.
        rate: f64,
        /// [`crate::bounds::MIN_SHARE`].
        min: f64,
    },
    /// The GPU would be over-committed.
    #[error(
        "GPU {gpu} would be over-committed: the targets would sum to {sum:.3} > 1 ({detail}); lower one of them or use --mode off; nothing was changed"
    )]
    Overcommitted {
        /// The GPU.
        gpu: u32,
        /// Σρ with the request.
        sum: f64,
        /// `name=ρ` for each segment counted, the requested one included.
        detail: String,
    },
}

/// Checks that a rate is a share the agent can hold: in [`crate::bounds::MIN_SHARE`], 1].
pub fn check_rate(segment: &str, rate: f64) -> Result<(), CommitError> {
    crate::bounds::check_share(segment, rate)
}

/// Checks `request` against the `existing` claims (the request's own old claim, if present, is
/// replaced by the request).
pub fn check_commitment(existing: &[Claim], request: &Claim) -> Result<(), CommitError> {
    check_rate(&request.segment, request.rate)?;
    if request.mode == Mode::Off {
        return Ok(());
    }
    let counted: Vec<&Claim> = existing
        .iter()
        .filter(|c| c.segment != request.segment && c.gpu == request.gpu && c.mode != Mode::Off)
        .chain(std::iter::once(request))
        .collect();
    let sum: f64 = counted.iter().map(|c| c.rate).sum();
    if sum > 1.0 + EPSILON {
        let detail = counted
            .iter()
            .map(|c| {
                if c.invalid {
                    format!(
                        "{}=1 (invalid or unreadable share, counted as all of the GPU)",
                        c.segment
                    )
                } else {
                    format!("{}={}", c.segment, c.rate)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(CommitError::Overcommitted {
            gpu: request.gpu,
            sum,
            detail,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
