//! The node agent's mesh keys and their values (sans-IO): what it publishes and what it reads.
//!
//! Values are bincode 2 (the wire's encoding), decoded with a byte limit. Keys under `ctl/` are
//! control keys (the mesh sends them before any bulk key); the rest are bulk.
//!
//! | key | value |
//! |---|---|
//! | `gpu/<index>` | [`GpuFacts`]: GPU count of the node, measured utilisation of this GPU |
//! | `seg/<segment>` | [`SegmentFacts`]: GPU, mode, ρ target, measured share |
//! | `report/<pipeline>/<stage>/<replica>` | the latest [`sair_wire::StageReport`] held |
//! | `ctl/rho/<pipeline>/<stage>` (the leader's) | `sair_mesh::Decision` whose body is a [`RhoTarget`] |

use bincode::{Decode, Encode};
use sair_wire::StageReport;

/// Prefix of the GPU keys.
pub const GPU_PREFIX: &str = "gpu/";
/// Prefix of the segment keys.
pub const SEGMENT_PREFIX: &str = "seg/";
/// Prefix of the report keys.
pub const REPORT_PREFIX: &str = "report/";
/// Prefix of the leader's ρ targets (control keys).
pub const RHO_PREFIX: &str = "ctl/rho/";

/// Largest value decoded (the mesh's own bound on a value is 16 KiB).
const LIMIT: usize = 16 * 1024;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<LIMIT>,
> {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Encodes a value (an encoding error, which cannot happen for these types, gives no bytes).
pub fn encode<T: Encode>(v: &T) -> Vec<u8> {
    bincode::encode_to_vec(v, config()).unwrap_or_default()
}

/// Decodes a value; `None` when the bytes are not one.
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

/// `seg/<segment>`.
pub fn segment_key(segment: &str) -> String {
    format!("{SEGMENT_PREFIX}{segment}")
}

/// `report/<pipeline>/<stage>/<replica>`.
pub fn report_key(r: &StageReport) -> String {
    format!("{REPORT_PREFIX}{}/{}/{}", r.pipeline, r.stage, r.replica)
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

/// `(pipeline, stage)` of a segment named `<pipeline>.<stage>.<pod uid>` (what `sair inject
/// --gpu` sets; neither part holds a dot). Other names belong to no stage.
pub fn stage_of_segment(segment: &str) -> Option<(&str, &str)> {
    let mut parts = segment.splitn(3, '.');
    let (p, s, rest) = (parts.next()?, parts.next()?, parts.next()?);
    (!p.is_empty() && !s.is_empty() && !rest.is_empty()).then_some((p, s))
}
