//! Where rate targets come from.
//!
//! On a node, the segment's control block is the authority: `set-rate` writes ρ and the mode
//! there (with or without a running daemon) and the daemon re-reads them every control period.
//! Other sources — the gossip mesh of a later issue, carrying the coordinator's decisions — plug
//! in as a [`TargetSource`]: the daemon drains it every period and applies each update through
//! the same commitment check and write path as `set-rate` ([`crate::ops::set_rate`]), so Σρ ≤ 1 holds
//! whichever way a target arrives.

use sair_shm::Mode;
use tokio::sync::mpsc;

/// A desired target for one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetUpdate {
    /// Segment name.
    pub segment: String,
    /// GPU index (`None`: keep the segment's, or 0 for a new one).
    pub gpu: Option<u32>,
    /// Share ρ in (0, 1].
    pub rate: f64,
    /// Limit mode.
    pub mode: Mode,
}

/// A source of target updates, polled once per control period.
pub trait TargetSource: Send + std::fmt::Debug {
    /// Updates that arrived since the last poll.
    fn poll(&mut self) -> Vec<TargetUpdate>;
}

/// No remote targets: only `set-rate` (through the segments) sets them.
#[derive(Debug, Default)]
pub struct LocalOnly;

impl TargetSource for LocalOnly {
    fn poll(&mut self) -> Vec<TargetUpdate> {
        Vec::new()
    }
}

/// Targets pushed through a channel (the shape the gossip member will use; tests use it too).
#[derive(Debug)]
pub struct ChannelSource(pub mpsc::UnboundedReceiver<TargetUpdate>);

impl TargetSource for ChannelSource {
    fn poll(&mut self) -> Vec<TargetUpdate> {
        let mut out = Vec::new();
        while let Ok(u) = self.0.try_recv() {
            out.push(u);
        }
        out
    }
}
