//! `sidecar()`: a `sair-sidecar` in front of an upstream, in the manner of
//! `sidecar().upstream(&stage).run()`.

use std::net::SocketAddr;

use crate::agent::Agent;
use crate::launch::{Launch, LaunchError, Role, Running};
use crate::stage::Stage;

/// The proxy's listening socket.
pub const LISTEN: Role = Role::tcp("listen", "--listen");
/// The admin server (`/metrics`, `/healthz`, `/readyz`).
pub const ADMIN: Role = Role::tcp("admin", "--metrics-listen");

/// Something a sidecar can forward to: a stage, another sidecar, or an address.
pub trait Upstream {
    /// Where it listens.
    fn upstream_addr(&self) -> SocketAddr;
}

impl Upstream for Stage {
    fn upstream_addr(&self) -> SocketAddr {
        self.addr()
    }
}

impl Upstream for Sidecar {
    fn upstream_addr(&self) -> SocketAddr {
        self.listen()
    }
}

impl Upstream for SocketAddr {
    fn upstream_addr(&self) -> SocketAddr {
        *self
    }
}

/// A `sair-sidecar` to start.
pub fn sidecar() -> SidecarBuilder {
    SidecarBuilder {
        launch: Launch::new("sair-sidecar")
            .name("sidecar")
            .role(LISTEN)
            .role(ADMIN),
    }
}

/// Builder for a `sair-sidecar` process; every option not named here goes through
/// [`Self::arg`].
#[derive(Debug, Clone)]
pub struct SidecarBuilder {
    launch: Launch,
}

impl SidecarBuilder {
    crate::launch_passthrough!();

    /// `--upstream http://ip:port`: the model server it fronts.
    pub fn upstream(self, upstream: &impl Upstream) -> Self {
        self.arg("--upstream")
            .arg(format!("http://{}", upstream.upstream_addr()))
    }

    /// `--next ip:port` and `--next-stage`: chain each request on to the next stage's sidecar.
    pub fn next(self, next: &impl Upstream, stage: &str) -> Self {
        self.arg("--next")
            .arg(next.upstream_addr().to_string())
            .arg("--next-stage")
            .arg(stage)
    }

    /// `--pipeline`.
    pub fn pipeline(self, name: &str) -> Self {
        self.arg("--pipeline").arg(name)
    }

    /// `--stage`.
    pub fn stage(self, name: &str) -> Self {
        self.arg("--stage").arg(name)
    }

    /// `--max-concurrency`.
    pub fn max_concurrency(self, n: u32) -> Self {
        self.arg("--max-concurrency").arg(n.to_string())
    }

    /// `--agent` and `--agent-ca`: report to this node agent, trusting its certificate.
    pub fn agent(self, agent: &Agent) -> Self {
        self.arg("--agent")
            .arg(agent.report().to_string())
            .arg("--agent-ca")
            .arg(agent.cert())
    }

    /// Starts it; panics with its output if it does not come up.
    pub fn run(self) -> Sidecar {
        Sidecar(self.launch.run())
    }

    /// Starts it, or says why it did not come up.
    pub fn try_run(self) -> Result<Sidecar, LaunchError> {
        self.launch.try_run().map(Sidecar)
    }
}

/// A running `sair-sidecar`, killed on drop.
#[derive(Debug)]
pub struct Sidecar(pub Running);

impl Sidecar {
    /// Where it proxies.
    pub fn listen(&self) -> SocketAddr {
        self.0.addr(LISTEN.name)
    }

    /// Its admin server.
    pub fn admin(&self) -> SocketAddr {
        self.0.addr(ADMIN.name)
    }
}

impl std::ops::Deref for Sidecar {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.0
    }
}

impl std::ops::DerefMut for Sidecar {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.0
    }
}
