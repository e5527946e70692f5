//! Every metric the mesh exports: names, descriptions and pre-resolved handles.
//!
//! The embedding binary passes its own recorder to [`MeshMetrics::register`] (the node agent
//! and the coordinator each own a private Prometheus recorder); without one,
//! [`MeshMetrics::noop`] records nothing. Handles are resolved once; no hot path formats a name.

use metrics::{Counter, Gauge, Histogram, Unit};
use sair_wire::FrameError;

pub const MEMBERS: &str = "sair_mesh_members";
pub const BYTES_TOTAL: &str = "sair_mesh_bytes_total";
pub const ROUNDS_TOTAL: &str = "sair_mesh_rounds_total";
pub const PROPAGATION_SECONDS: &str = "sair_mesh_propagation_seconds";
pub const FRAMES_REFUSED_TOTAL: &str = "sair_mesh_frames_refused_total";
pub const TLS_REFUSED_TOTAL: &str = "sair_mesh_tls_refused_total";

/// Every family name, for tests and docs.
pub const ALL: [&str; 6] = [
    MEMBERS,
    BYTES_TOTAL,
    ROUNDS_TOTAL,
    PROPAGATION_SECONDS,
    FRAMES_REFUSED_TOTAL,
    TLS_REFUSED_TOTAL,
];

/// The `state` label of [`MEMBERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Alive,
    Suspect,
    Dead,
}

impl MemberState {
    pub const ALL: [MemberState; 3] = [MemberState::Alive, MemberState::Suspect, MemberState::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
        }
    }
}

/// The `direction` label of [`BYTES_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::In, Direction::Out];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// The `reason` label of [`FRAMES_REFUSED_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRefusal {
    TooLarge,
    Version,
    Malformed,
    /// foca refused the SWIM packet inside a well-formed frame.
    Swim,
    /// A frame of the wrong kind for where it arrived (a stream frame as a datagram, …).
    Unexpected,
}

impl FrameRefusal {
    pub const ALL: [FrameRefusal; 5] = [
        FrameRefusal::TooLarge,
        FrameRefusal::Version,
        FrameRefusal::Malformed,
        FrameRefusal::Swim,
        FrameRefusal::Unexpected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FrameRefusal::TooLarge => "too_large",
            FrameRefusal::Version => "version",
            FrameRefusal::Malformed => "malformed",
            FrameRefusal::Swim => "swim",
            FrameRefusal::Unexpected => "unexpected",
        }
    }
}

impl From<&FrameError> for FrameRefusal {
    fn from(e: &FrameError) -> Self {
        match e {
            FrameError::FrameTooLarge { .. } => FrameRefusal::TooLarge,
            FrameError::VersionMismatch { .. } => FrameRefusal::Version,
            _ => FrameRefusal::Malformed,
        }
    }
}

/// The `side` label of [`TLS_REFUSED_TOTAL`]: which verifier refused the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsSide {
    /// We accepted a connection and refused the client's certificate.
    Server,
    /// We dialled and refused the server's certificate.
    Client,
}

impl TlsSide {
    pub const ALL: [TlsSide; 2] = [TlsSide::Server, TlsSide::Client];

    pub fn as_str(self) -> &'static str {
        match self {
            TlsSide::Server => "server",
            TlsSide::Client => "client",
        }
    }
}

/// Pre-resolved handles of one member.
#[derive(Debug, Clone)]
pub struct MeshMetrics {
    members: [Gauge; 3],
    bytes: [Counter; 2],
    pub rounds: Counter,
    pub propagation: Histogram,
    refused: [Counter; 5],
    tls_refused: [Counter; 2],
}

impl Default for MeshMetrics {
    fn default() -> Self {
        Self::noop()
    }
}

impl MeshMetrics {
    /// Handles that record nothing.
    pub fn noop() -> Self {
        Self {
            members: std::array::from_fn(|_| Gauge::noop()),
            bytes: std::array::from_fn(|_| Counter::noop()),
            rounds: Counter::noop(),
            propagation: Histogram::noop(),
            refused: std::array::from_fn(|_| Counter::noop()),
            tls_refused: std::array::from_fn(|_| Counter::noop()),
        }
    }

    /// Describes every family on `recorder` and resolves the handles there.
    pub fn register(recorder: &dyn metrics::Recorder) -> Self {
        metrics::with_local_recorder(recorder, || {
            describe();
            let m = Self {
                members: MemberState::ALL.map(|s| metrics::gauge!(MEMBERS, "state" => s.as_str())),
                bytes: Direction::ALL
                    .map(|d| metrics::counter!(BYTES_TOTAL, "direction" => d.as_str())),
                rounds: metrics::counter!(ROUNDS_TOTAL),
                propagation: metrics::histogram!(PROPAGATION_SECONDS),
                refused: FrameRefusal::ALL
                    .map(|r| metrics::counter!(FRAMES_REFUSED_TOTAL, "reason" => r.as_str())),
                tls_refused: TlsSide::ALL
                    .map(|s| metrics::counter!(TLS_REFUSED_TOTAL, "side" => s.as_str())),
            };
            // Touch every series so each family is exported from the first scrape on.
            for c in m.bytes.iter().chain(&m.refused).chain(&m.tls_refused) {
                c.increment(0);
            }
            m.rounds.increment(0);
            m
        })
    }

    pub fn members(&self, state: MemberState) -> &Gauge {
        &self.members[state as usize]
    }

    pub fn bytes(&self, direction: Direction, n: usize) {
        self.bytes[direction as usize].increment(n as u64);
    }

    pub fn refuse(&self, why: FrameRefusal) {
        self.refused[why as usize].increment(1);
    }

    pub fn tls_refused(&self, side: TlsSide) {
        self.tls_refused[side as usize].increment(1);
    }
}

/// Describes every family on the current (local) recorder.
pub fn describe() {
    metrics::describe_gauge!(
        MEMBERS,
        "Members this member knows, by state (alive, suspect, dead), itself included as alive"
    );
    metrics::describe_counter!(
        BYTES_TOTAL,
        Unit::Bytes,
        "Mesh bytes sent and received (datagram and stream frames), by direction"
    );
    metrics::describe_counter!(
        ROUNDS_TOTAL,
        Unit::Count,
        "State-exchange rounds started by this member"
    );
    metrics::describe_histogram!(
        PROPAGATION_SECONDS,
        Unit::Seconds,
        "Time from a key's write on its owner to its arrival here (owner's and our wall clocks)"
    );
    metrics::describe_counter!(
        FRAMES_REFUSED_TOTAL,
        Unit::Count,
        "Mesh frames refused (oversized, wrong version, malformed, refused by SWIM), by reason"
    );
    metrics::describe_counter!(
        TLS_REFUSED_TOTAL,
        Unit::Count,
        "Peers refused because their certificate does not chain to the cluster CA, by side"
    );
}
