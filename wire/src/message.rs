//! The versioned envelope every SAIR message travels in.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::report::StageReport;

/// Bumped on any incompatible change to [`Message`]; a peer with another version is refused
/// with [`crate::FrameError::VersionMismatch`] rather than misread.
///
/// - 1: the first `StageReport`.
/// - 2: `StageReport` gains `queue_wait_hist`, `service_hist` and `e2e_hist`.
pub const PROTOCOL_VERSION: u16 = 2;

/// Everything that crosses a SAIR connection. New variants are appended at the end so that
/// older decoders fail with a clear "unknown variant" instead of misinterpreting bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub enum Message {
    /// Sidecar → node agent, once per report window.
    StageReport(StageReport),
}

/// A message with the protocol version it was written under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct Envelope {
    pub version: u16,
    pub message: Message,
}

impl Envelope {
    pub fn new(message: Message) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            message,
        }
    }
}
