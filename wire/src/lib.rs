//! Wire types, framing and transport setup shared by every SAIR component.
//!
//! This crate owns the messages that cross process boundaries ([`message`], with the mergeable
//! latency [`histogram`] a report carries), their length-prefixed bincode 2 framing with a
//! maximum frame size checked *before* decoding ([`frame`]), the mesh keys and values that node
//! agents and the coordinator share ([`keys`]), and the QUIC/rustls endpoint configuration
//! ([`transport`]).
//!
//! It must not contain component policy: no admission, no scaling, no rate control. It holds
//! data and the rules for moving it, so that the sidecar, the node agent and the coordinator
//! agree on bytes without depending on each other.

#![forbid(unsafe_code)]

pub mod frame;
pub mod histogram;
pub mod keys;
pub mod message;
pub mod report;
pub mod transport;

pub use frame::{FrameError, MAX_FRAME_BYTES};
pub use histogram::LatencyHistogram;
pub use message::{Envelope, Message, PROTOCOL_VERSION};
pub use report::{Percentiles, StageReport};
