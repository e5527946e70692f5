//! The mesh keys of SAIR and their values (sans-IO): what node agents publish and the
//! coordinator reads, and the leader's ρ targets that agents read. Both sides take the key
//! functions, the prefixes and the value types from here, so a key written by one is the key
//! read by the other.
//!
//! Values are bincode 2 (the wire's encoding), decoded with a byte limit ([`VALUE_LIMIT`]).
//! Keys under `ctl/` are control keys (the mesh sends them before any bulk key); the rest are
//! bulk.
//!
//! | key | value | written by |
//! |---|---|---|
//! | `gpu/<index>` | [`GpuFacts`]: GPU count of the node, measured utilisation of this GPU | agent |
//! | `seg/<segment>` | [`SegmentFacts`]: GPU, mode, ρ target, measured share | agent |
//! | `report/<pipeline>/<stage>/<replica>` | the latest [`StageReport`] the agent holds | agent |
//! | `ctl/rho/<pipeline>/<stage>` | `sair_mesh::Decision` whose body is a [`RhoTarget`] | leader |
//!
//! # Which stage a segment belongs to
//!
//! A GPU-share segment named `<pipeline>.<stage>.<anything>` belongs to stage `<stage>` of
//! pipeline `<pipeline>` ([`stage_of_segment`]): the first two dot-separated parts name the
//! stage, the rest (a pod uid, a replica name, more dots) only makes the name unique. This is
//! how an agent knows which of its segments a `ctl/rho/<pipeline>/<stage>` target applies to,
//! and how the coordinator attributes `seg/` facts to a stage. Whoever creates a segment for a
//! stage replica (`sair inject --gpu`, the local actuator) names it so; neither the pipeline
//! nor the stage name may contain a dot. A segment named otherwise belongs to no stage and no
//! ρ target reaches it.
//!
//! # Size
//!
//! A mesh value is at most 16 KiB (`sair_mesh::state::StateLimits::max_value_bytes`), and
//! [`VALUE_LIMIT`] matches it. A `report/` value is the largest: the fixed fields, the names
//! (a mesh key is at most 256 bytes, so the three names are shorter still) and three
//! histograms of at most [`crate::histogram::MAX_ENCODED_BYTES`] each, under 12 KiB in the
//! worst case ([`MAX_REPORT_VALUE_BYTES`]).

use bincode::{Decode, Encode};

use crate::histogram::MAX_ENCODED_BYTES;
use crate::report::StageReport;

/// Prefix of the GPU keys.
pub const GPU_PREFIX: &str = "gpu/";
/// Prefix of the segment keys.
pub const SEGMENT_PREFIX: &str = "seg/";
/// Prefix of the report keys.
pub const REPORT_PREFIX: &str = "report/";
/// Prefix of the leader's ρ targets (control keys).
pub const RHO_PREFIX: &str = "ctl/rho/";

/// Largest value decoded: the mesh's own bound on a value.
pub const VALUE_LIMIT: usize = 16 * 1024;

/// Longest mesh key (`sair_mesh::state::StateLimits::max_key_bytes`); a valid report's key
/// fits ([`StageReport::validate`]).
pub const MAX_KEY_BYTES: usize = 256;

/// Upper bound of an encoded `report/` value of a valid report: the names (shorter than the
/// key, each with a length prefix of at most 3 bytes), six `u64` varints (at most 9 bytes
/// each), nine `f64`s, one `u32` varint (at most 5) and three full histograms.
pub const MAX_REPORT_VALUE_BYTES: usize =
    MAX_KEY_BYTES + 3 * 3 + 6 * 9 + 9 * 8 + 5 + 3 * MAX_ENCODED_BYTES;

const _: () = assert!(MAX_REPORT_VALUE_BYTES <= VALUE_LIMIT);

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<VALUE_LIMIT>,
> {
    bincode::config::standard().with_limit::<VALUE_LIMIT>()
}

/// Encodes a value (an encoding error, which cannot happen for these types, gives no bytes,
/// which no decoder accepts).
pub fn encode<T: Encode>(v: &T) -> Vec<u8> {
    bincode::encode_to_vec(v, config()).unwrap_or_default()
}

/// Decodes a value; `None` when the bytes are not exactly one. A decoded [`StageReport`] still
/// needs [`StageReport::validate`].
pub fn decode<T: Decode<()>>(bytes: &[u8]) -> Option<T> {
    bincode::decode_from_slice(bytes, config())
        .ok()
        .filter(|(_, n)| *n == bytes.len())
        .map(|(v, _)| v)
}

/// `gpu/<index>`.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct GpuFacts {
    /// GPUs on the node (NVML's device count).
    pub count: u32,
    /// Share of this GPU's time any process used recently (NVML), `None` when unmeasured.
    pub utilization: Option<f64>,
}

/// `seg/<segment>`.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct SegmentFacts {
    /// GPU index.
    pub gpu: u32,
    /// `off`, `cap` or `share`.
    pub mode: String,
    /// Target share ρ in force.
    pub target: f64,
    /// Measured share over the agent's last control window (`None`: not measured).
    pub measured: Option<f64>,
}

/// The body of a `ctl/rho/<pipeline>/<stage>` decision: the share ρ each segment of that
/// stage gets on its GPU.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct RhoTarget {
    /// ρ in [0.001, 1] (checked again by the agent's commitment check).
    pub rho: f64,
}

/// `gpu/<index>`.
pub fn gpu_key(index: u32) -> String {
    format!("{GPU_PREFIX}{index}")
}

/// The index of a `gpu/<index>` key.
pub fn parse_gpu_key(key: &str) -> Option<u32> {
    key.strip_prefix(GPU_PREFIX)?.parse().ok()
}

/// `seg/<segment>`.
pub fn segment_key(segment: &str) -> String {
    format!("{SEGMENT_PREFIX}{segment}")
}

/// The segment of a `seg/<segment>` key.
pub fn parse_segment_key(key: &str) -> Option<&str> {
    key.strip_prefix(SEGMENT_PREFIX).filter(|s| !s.is_empty())
}

/// `report/<pipeline>/<stage>/<replica>`.
pub fn report_key(r: &StageReport) -> String {
    format!("{REPORT_PREFIX}{}/{}/{}", r.pipeline, r.stage, r.replica)
}

/// `(pipeline, stage, replica)` of a `report/<pipeline>/<stage>/<replica>` key (the replica
/// may be empty, as a report's may; it holds no `/`).
pub fn parse_report_key(key: &str) -> Option<(&str, &str, &str)> {
    let rest = key.strip_prefix(REPORT_PREFIX)?;
    let mut parts = rest.splitn(3, '/');
    let (p, s, r) = (parts.next()?, parts.next()?, parts.next()?);
    (!p.is_empty() && !s.is_empty() && !r.contains('/')).then_some((p, s, r))
}

/// `ctl/rho/<pipeline>/<stage>`.
pub fn rho_key(pipeline: &str, stage: &str) -> String {
    format!("{RHO_PREFIX}{pipeline}/{stage}")
}

/// `(pipeline, stage)` of a `ctl/rho/<pipeline>/<stage>` key.
pub fn parse_rho_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(RHO_PREFIX)?;
    let (p, s) = rest.split_once('/')?;
    (!p.is_empty() && !s.is_empty() && !s.contains('/')).then_some((p, s))
}

/// `(pipeline, stage)` of a segment named `<pipeline>.<stage>.<anything>` (see the module
/// documentation); `None` for a name of another shape, which belongs to no stage.
pub fn stage_of_segment(segment: &str) -> Option<(&str, &str)> {
    let mut parts = segment.splitn(3, '.');
    let (p, s, rest) = (parts.next()?, parts.next()?, parts.next()?);
    (!p.is_empty() && !s.is_empty() && !rest.is_empty()).then_some((p, s))
}

#[cfg(test)]
mod tests;
