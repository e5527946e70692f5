//! `stage()`: a `sair-stage` synthetic model server on a loopback port 0.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Use this binary (inside sair-loadgen's tests: `env!("CARGO_BIN_EXE_sair-stage")`).
    pub fn program(mut self, path: impl Into<PathBuf>) -> Self {
        self.launch = self.launch.with_program(path);
        self
    }

    /// The name in logs and failure messages (`stage-pre`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.launch = self.launch.name(name);
        self
    }

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

    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.launch = self.launch.arg(arg);
        self
    }

    /// More arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.launch = self.launch.args(args);
        self
    }

    /// An environment variable (`LD_LIBRARY_PATH`, `LD_PRELOAD`, `SAIR_EMU_STATE`, …).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.launch = self.launch.env(key, value);
        self
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
