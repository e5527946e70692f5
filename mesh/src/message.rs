//! Everything two members say to each other, in the versioned [`MeshFrame`].
//!
//! SWIM packets (foca's bytes, opaque here) travel alone in QUIC datagrams. State exchange
//! travels on one bidirectional stream per round, as up to four frames:
//!
//! ```text
//! A ── Syn { digest hash } ─────────────►  B     hashes equal: B answers InSync, done
//! A ◄──────────────── SynDigest (B's) ───  B     else B sends its digest
//! A ── Syn2 { A's digest, delta for B } ►  B     B applies the delta
//! A ◄──────────── Ack { delta for A } ───  B     A applies the delta
//! ```
//!
//! At rest every member's digest is the same: a member then sends just the `Syn` (its digest
//! hash) in a datagram, and the receiver opens the exchange above only if its hash differs.

use bincode::{Decode, Encode};

/// Bumped on any incompatible change to [`MeshBody`] or the types below; a frame of another
/// version is refused (and counted) before its body is decoded.
pub const MESH_PROTOCOL_VERSION: u16 = 1;

/// One message with the protocol version it was written under.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct MeshFrame {
    pub version: u16,
    pub body: MeshBody,
}

impl MeshFrame {
    pub fn new(body: MeshBody) -> Self {
        Self {
            version: MESH_PROTOCOL_VERSION,
            body,
        }
    }
}

/// What a frame says. New variants are appended at the end.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum MeshBody {
    /// A foca (SWIM) packet: probes, acks, announces, membership updates. Datagrams only.
    Swim(Vec<u8>),
    /// Opens a state exchange (on a stream), or says "this is my digest" at rest (in a
    /// datagram): the sender's name and the hash of its digest.
    Syn { from: String, hash: u64 },
    /// The digests are equal: nothing to exchange.
    InSync,
    /// The digests differ: the responder's digest.
    SynDigest(Vec<DigestEntry>),
    /// The opener's digest and what the responder lacks.
    Syn2 {
        digest: Vec<DigestEntry>,
        delta: Vec<MemberDelta>,
    },
    /// What the opener lacks; closes the exchange.
    Ack(Vec<MemberDelta>),
}

/// How much of one member's state a digest's sender holds: the highest version it has of each
/// class, under the member's generation.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct DigestEntry {
    pub member: String,
    pub generation: u64,
    pub control: u64,
    pub bulk: u64,
}

/// Part of one member's state: entries of each class in ascending version order, and the
/// watermark the receiver may adopt per class after applying them.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct MemberDelta {
    pub member: String,
    pub generation: u64,
    pub control_up_to: u64,
    pub bulk_up_to: u64,
    pub entries: Vec<Entry>,
}

/// One key's latest value (`None`: deleted) at a version of its owner.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Entry {
    pub key: String,
    pub version: u64,
    pub value: Option<Vec<u8>>,
    /// The owner's wall clock when it wrote the value, in Unix milliseconds. Used only to
    /// measure propagation time; nothing is ever ordered by it.
    pub written_unix_ms: u64,
}
