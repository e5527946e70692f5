//! Why a demo run failed, and the exit code for it.

use std::path::PathBuf;

use sair_service::exit::Exit;

/// A failed demo run. Every variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A bad option or option combination (exit 64).
    #[error("{0}")]
    Usage(String),
    /// The report folder cannot be written (exit 73); nothing was started.
    #[error("--out {path} cannot be written, nothing was started")]
    Out {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A binary the demo starts is not beside `sair` (exit 69).
    #[error(
        "{name} is not beside {beside} (looked for {path}): build every binary first, \
         `cargo build --release` (or `cargo build --workspace` for target/debug)"
    )]
    MissingBinary {
        name: String,
        beside: PathBuf,
        path: PathBuf,
    },
    /// The pipelines file cannot be read (exit 66).
    #[error("--pipeline {path} cannot be read")]
    Pipeline {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A process could not be started, or exited or stayed silent before it was ready
    /// (exit 69; the exit code of the process if it said its configuration was bad).
    #[error("{name} did not come up: {why} (its log: {log})")]
    Start {
        name: String,
        why: String,
        log: PathBuf,
        /// The child's own exit code when it exited with 64 (its configuration), else None.
        usage: bool,
    },
    /// The mesh certificates could not be made (exit 73).
    #[error("cannot make the mesh certificates in {dir}")]
    Certs {
        dir: PathBuf,
        #[source]
        source: sair_mesh::certs::CertError,
    },
    /// Writing the report or a working file failed (exit 74).
    #[error("cannot write the {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The async runtime could not be built (exit 70).
    #[error("the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl DemoError {
    /// The process exit code (sysexits) for this failure.
    pub fn exit(&self) -> Exit {
        match self {
            DemoError::Usage(_) => Exit::Usage,
            DemoError::Out { .. } | DemoError::Certs { .. } => Exit::CantCreate,
            DemoError::MissingBinary { .. } => Exit::Unavailable,
            DemoError::Pipeline { .. } => Exit::NoInput,
            DemoError::Start { usage: true, .. } => Exit::Usage,
            DemoError::Start { usage: false, .. } => Exit::Unavailable,
            DemoError::Io { .. } => Exit::IoErr,
            DemoError::Runtime(_) => Exit::Internal,
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| DemoError::Io { what, path, source }
    }
}
