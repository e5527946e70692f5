//! `stage()`: a `sair-stage` synthetic model server on a loopback port 0.

use std::net::SocketAddr;

use crate::launch::{Launch, LaunchError, Role, Running};

/// `sair-stage`'s listening socket.
pub const LISTEN: Role = Role::tcp("listen", "--listen");

/// A `sair-stage` to start: `stage().cpu_ms(5.0).run()`.
pub fn stage() -> StageBuilder {
    StageBuilder {
        launch: Launch::new("sair-stage").name("stage").role(LISTEN),
    }
}

/// Builder for a `sair-stage` process; every option not named here goes through [`Self::arg`].
#[derive(Debug, Clone)]
pub struct StageBuilder {
    launch: Launch,
}

impl StageBuilder {
    crate::launch_passthrough!();

    /// `--cpu-ms`: mean CPU milliseconds per request.
    pub fn cpu_ms(self, ms: f64) -> Self {
        self.arg("--cpu-ms").arg(ms.to_string())
    }

    /// `--concurrency`: worker slots.
    pub fn concurrency(self, n: usize) -> Self {
        self.arg("--concurrency").arg(n.to_string())
    }

    /// `--server-timing NAME`.
    pub fn server_timing(self, name: &str) -> Self {
        self.arg("--server-timing").arg(name)
    }

    /// `--echo`: answer with the request body.
    pub fn echo(self) -> Self {
        self.arg("--echo")
    }

    /// Starts it; panics with its output if it does not come up.
    pub fn run(self) -> Stage {
        Stage(self.launch.run())
    }

    /// Starts it, or says why it did not come up (a start-up error test).
    pub fn try_run(self) -> Result<Stage, LaunchError> {
        self.launch.try_run().map(Stage)
    }
}

/// A running `sair-stage`, killed on drop.
#[derive(Debug)]
pub struct Stage(pub Running);

impl Stage {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr(LISTEN.name)
    }

    /// `http://<addr>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr())
    }
}

impl std::ops::Deref for Stage {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.0
    }
}

impl std::ops::DerefMut for Stage {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.0
    }
}
