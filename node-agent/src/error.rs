//! The agent's error type: each variant says what failed, on what, and what to do.

use std::path::PathBuf;

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A segment file could not be created, opened or changed.
    #[error(transparent)]
    Shm(#[from] sair_shm::ShmError),
    /// A target was refused (rate out of range, GPU over-committed); nothing was changed.
    #[error(transparent)]
    Commit(#[from] crate::commit::CommitError),
    /// NVML could not be loaded or queried.
    #[error("NVML ({what}) failed: {source}; check --nvml-lib and the driver")]
    Nvml {
        /// What was being done.
        what: &'static str,
        /// The NVML error.
        source: nvml_wrapper::error::NvmlError,
    },
    /// QUIC/TLS set-up failed.
    #[error(transparent)]
    Transport(#[from] sair_wire::transport::EndpointError),
    /// A file outside the segments (state file, lock, TLS material) failed.
    #[error("{op} {path} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The mesh endpoint could not start (binding its QUIC socket, its TLS configuration).
    #[error("mesh: {0}")]
    Mesh(String),
    /// A configuration value that cannot work.
    #[error("bad configuration: {0}")]
    Config(String),
    /// The segment asked for does not exist.
    #[error("segment {name} does not exist in {dir}")]
    NoSuchSegment {
        /// The name.
        name: String,
        /// The directory.
        dir: PathBuf,
    },
}

impl AgentError {
    /// True for errors caused by what the operator asked for (exit status 64 territory for
    /// configuration, 1 for refused requests is decided by the caller).
    pub fn is_config(&self) -> bool {
        matches!(self, AgentError::Config(_))
    }
}
