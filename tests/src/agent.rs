//! `agent()`: a `sair-node-agent run` on loopback, its segments and TLS material in scratch
//! directories unless the test names them.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::launch::{Launch, LaunchError, Role, Running};

/// The admin server (`/metrics`, `/healthz`).
pub const ADMIN: Role = Role::tcp("admin", "--metrics-listen");
/// The StageReport endpoint (QUIC).
pub const REPORT: Role = Role::udp("report", "--report-listen");

/// A `sair-node-agent run` to start.
pub fn agent() -> AgentBuilder {
    AgentBuilder {
        launch: Launch::new("sair-node-agent").name("agent").arg("run"),
        shm_dir: None,
        tls_dir: None,
    }
}

/// Builder for a `sair-node-agent run` process; every option not named here goes through
/// [`Self::arg`].
#[derive(Debug, Clone)]
pub struct AgentBuilder {
    launch: Launch,
    shm_dir: Option<PathBuf>,
    tls_dir: Option<PathBuf>,
}

impl AgentBuilder {
    crate::launch_passthrough!();

    /// `--shm-dir` (default: a scratch directory).
    pub fn shm_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.shm_dir = Some(dir.into());
        self
    }

    /// `--tls-dir`, where it writes `agent-cert.pem` (default: a scratch directory).
    pub fn tls_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tls_dir = Some(dir.into());
        self
    }

    /// `--nvml-lib`.
    pub fn nvml_lib(self, path: impl AsRef<OsStr>) -> Self {
        self.arg("--nvml-lib").arg(path)
    }

    /// `--node-name`.
    pub fn node_name(self, name: &str) -> Self {
        self.arg("--node-name").arg(name)
    }

    /// Starts it; panics with its output if it does not come up.
    pub fn run(self) -> Agent {
        self.try_run().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts it, or says why it did not come up.
    pub fn try_run(self) -> Result<Agent, LaunchError> {
        let shm_dir = self.shm_dir.unwrap_or_else(|| crate::scratch("agent-shm"));
        let tls_dir = self.tls_dir.unwrap_or_else(|| crate::scratch("agent-tls"));
        let running = self
            .launch
            .arg("--shm-dir")
            .arg(&shm_dir)
            .arg("--tls-dir")
            .arg(&tls_dir)
            .role(ADMIN)
            .role(REPORT)
            .try_run()?;
        Ok(Agent {
            running,
            shm_dir,
            tls_dir,
        })
    }
}

/// A running node agent, killed on drop.
#[derive(Debug)]
pub struct Agent {
    /// The process and its addresses.
    pub running: Running,
    shm_dir: PathBuf,
    tls_dir: PathBuf,
}

impl Agent {
    /// Its admin server.
    pub fn admin(&self) -> SocketAddr {
        self.running.addr(ADMIN.name)
    }

    /// Its StageReport (QUIC) endpoint.
    pub fn report(&self) -> SocketAddr {
        self.running.addr(REPORT.name)
    }

    /// Its segment directory.
    pub fn shm_dir(&self) -> &Path {
        &self.shm_dir
    }

    /// The self-signed certificate sidecars trust (`<tls-dir>/agent-cert.pem`).
    pub fn cert(&self) -> PathBuf {
        self.tls_dir.join("agent-cert.pem")
    }
}

impl std::ops::Deref for Agent {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.running
    }
}

impl std::ops::DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.running
    }
}
