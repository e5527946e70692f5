//! The generic process builder under [`crate::stage()`], [`crate::sidecar()`] and
//! [`crate::agent()`]: spawns a real binary with each of its listening roles on port 0, reads the
//! one bound-address line ([`crate::Bound`]) from its stdout, keeps everything else the process
//! prints in a log file for failure messages, and hands back a [`Running`] guard that kills the
//! process when dropped. There is no other way in: a port the harness picked and a connect
//! that succeeded prove nothing (another process may hold the port; issue 11's CI flake).

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::bound::Bound;
use crate::process::Proc;

/// How a listening role is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP (HTTP, admin).
    Tcp,
    /// UDP (QUIC).
    Udp,
}

/// One listening socket of a binary: its role in the bound line and the flag that sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    /// Role name in the bound line (`listen`, `admin`, `report`, …).
    pub name: &'static str,
    /// The flag that takes its address (`--listen`).
    pub flag: &'static str,
    /// TCP or UDP.
    pub transport: Transport,
}

impl Role {
    /// A TCP role.
    pub const fn tcp(name: &'static str, flag: &'static str) -> Role {
        Role {
            name,
            flag,
            transport: Transport::Tcp,
        }
    }

    /// A UDP role.
    pub const fn udp(name: &'static str, flag: &'static str) -> Role {
        Role {
            name,
            flag,
            transport: Transport::Udp,
        }
    }
}

/// Why a process did not come up.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The program could not be executed.
    #[error("cannot spawn {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The log file could not be created.
    #[error("cannot create the log file {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The process exited before it announced its addresses.
    #[error("{name} exited ({status:?}) before announcing its addresses; its output:\n{output}")]
    Exited {
        /// The process's name in the test.
        name: String,
        /// Its exit status.
        status: Option<ExitStatus>,
        /// What it printed.
        output: String,
    },
    /// The process did not announce its addresses in time.
    #[error("{name} did not announce its addresses within {waited:?}; its output:\n{output}")]
    TimedOut {
        /// The process's name in the test.
        name: String,
        /// How long the harness waited.
        waited: Duration,
        /// What it printed.
        output: String,
    },
    /// The bound line lacks a role the harness asked for.
    #[error("{name}'s bound line has no {role:?} address: {bound:?}")]
    MissingRole {
        /// The process's name in the test.
        name: String,
        /// The missing role.
        role: &'static str,
        /// What it announced.
        bound: Bound,
    },
}

/// A process to start. Build with [`Launch::new`] (a workspace binary by name) or
/// [`Launch::program`] (an explicit path such as `env!("CARGO_BIN_EXE_…")`).
#[derive(Debug, Clone)]
pub struct Launch {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    roles: Vec<Role>,
    dir: Option<PathBuf>,
}

impl Launch {
    /// The workspace binary `binary`, found by [`crate::binary()`].
    pub fn new(binary: &str) -> Launch {
        Launch::program(crate::binary(binary))
    }

    /// An explicit program path; the process is named after the file.
    pub fn program(path: impl Into<PathBuf>) -> Launch {
        let program: PathBuf = path.into();
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "process".to_owned());
        Launch {
            name,
            program,
            args: Vec::new(),
            envs: Vec::new(),
            roles: Vec::new(),
            dir: None,
        }
    }

    /// The name used in logs and failure messages (and the log file's name).
    pub fn name(mut self, name: impl Into<String>) -> Launch {
        self.name = name.into();
        self
    }

    /// Replaces the program (e.g. with `env!("CARGO_BIN_EXE_…")` inside the binary's crate).
    pub fn with_program(mut self, path: impl Into<PathBuf>) -> Launch {
        self.program = path.into();
        self
    }

    /// One argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Launch {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Several arguments.
    pub fn args<I, S>(mut self, args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// One environment variable. The child inherits the test's environment except its `SAIR_*`
    /// variables (other than `SAIR_TEST_*`), so a developer's shell cannot change a test.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Launch {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// A listening socket the binary must announce.
    pub fn role(mut self, role: Role) -> Launch {
        self.roles.push(role);
        self
    }

    /// Where the log file goes (default: a scratch directory per test process).
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Launch {
        self.dir = Some(dir.into());
        self
    }

    /// Starts the process and waits for its addresses; panics with its output if it does not
    /// come up within [`crate::patience`].
    pub fn run(self) -> Running {
        self.try_run().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the process and waits for its addresses.
    pub fn try_run(self) -> Result<Running, LaunchError> {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => default_log_dir(),
        };
        let log_path = dir.join(format!("{}-{}.log", self.name, next_id()));
        let log = std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log_path)
            })
            .map_err(|source| LaunchError::Log {
                path: log_path.clone(),
                source,
            })?;
        let stderr = log.try_clone().map_err(|source| LaunchError::Log {
            path: log_path.clone(),
            source,
        })?;

        let mut cmd = Command::new(&self.program);
        // Role flags go last, after a subcommand such as the node agent's `run`.
        cmd.args(&self.args);
        for role in &self.roles {
            cmd.arg(role.flag).arg("127.0.0.1:0");
        }
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("SAIR_") && !k.starts_with("SAIR_TEST_") {
                cmd.env_remove(&*k);
            }
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        tracing::info!(name = %self.name, program = %self.program.display(), args = ?cmd.get_args().collect::<Vec<_>>(), log = %log_path.display(), "spawning");
        let mut child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            program: self.program.clone(),
            source,
        })?;
        let stdout = child.stdout.take();
        let mut proc = Proc {
            name: self.name.clone(),
            child,
            log: log_path,
        };
        let lines = copy_stdout(stdout, log);

        let patience = crate::patience();
        let deadline = Instant::now() + patience;
        let mut stdout_open = true;
        let bound = loop {
            match lines.recv_timeout(Duration::from_millis(25)) {
                Ok(bound) => break bound,
                Err(mpsc::RecvTimeoutError::Disconnected) => stdout_open = false,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if !stdout_open {
                std::thread::sleep(Duration::from_millis(25));
            }
            if let Ok(Some(status)) = proc.child.try_wait() {
                // Let the copier finish so the output is complete.
                std::thread::sleep(Duration::from_millis(50));
                return Err(LaunchError::Exited {
                    name: self.name,
                    status: Some(status),
                    output: proc.output(),
                });
            }
            if Instant::now() > deadline {
                return Err(LaunchError::TimedOut {
                    name: self.name,
                    waited: patience,
                    output: proc.output(),
                });
            }
        };
        for role in &self.roles {
            if bound.get(role.name).is_none() {
                return Err(LaunchError::MissingRole {
                    name: self.name,
                    role: role.name,
                    bound,
                });
            }
        }
        tracing::info!(name = %self.name, addresses = ?bound.addresses, "bound");
        Ok(Running { proc, bound })
    }
}

/// Copies the child's stdout into the log, line by line, and sends the first bound line.
fn copy_stdout(
    stdout: Option<std::process::ChildStdout>,
    mut log: std::fs::File,
) -> mpsc::Receiver<Bound> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        let mut sent = false;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let _ = log.write_all(&line);
            if !sent && let Ok(b) = Bound::parse(&String::from_utf8_lossy(&line)) {
                sent = tx.send(b).is_ok();
            }
        }
    });
    rx
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn default_log_dir() -> PathBuf {
    std::env::temp_dir().join(format!("sair-it-logs-{}", std::process::id()))
}

/// A started process and the addresses it announced; killed when dropped.
#[derive(Debug)]
pub struct Running {
    /// The process guard (its log file, its `Child`).
    pub proc: Proc,
    /// What it announced.
    pub bound: Bound,
}

impl Running {
    /// The address of `role`; panics naming the process if it has no such role.
    pub fn addr(&self, role: &str) -> SocketAddr {
        self.bound.get(role).unwrap_or_else(|| {
            panic!(
                "{} announced no {role:?} address: {:?}",
                self.proc.name, self.bound
            )
        })
    }

    /// `http://<addr of role>`.
    pub fn url(&self, role: &str) -> String {
        format!("http://{}", self.addr(role))
    }

    /// What the process has printed so far (the bound line and stderr included).
    pub fn output(&self) -> String {
        self.proc.output()
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.proc.log
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.terminate(timeout)
    }
}

/// The pass-through methods every process builder has (`program`, `name`, `arg`, `args`, `env`),
/// written once for a struct whose `launch` field is a [`Launch`]. The builder's own methods
/// name the options it knows; everything else goes through `arg`.
#[macro_export]
macro_rules! launch_passthrough {
    () => {
        /// Use this binary instead of the one found in `target/` (inside a crate's own tests:
        /// `env!("CARGO_BIN_EXE_<name>")`).
        pub fn program(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.launch = self.launch.with_program(path);
            self
        }

        /// The name in logs and failure messages.
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.launch = self.launch.name(name);
            self
        }

        /// One more argument.
        pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
            self.launch = self.launch.arg(arg);
            self
        }

        /// More arguments.
        pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(
            mut self,
            args: I,
        ) -> Self {
            self.launch = self.launch.args(args);
            self
        }

        /// An environment variable (`LD_LIBRARY_PATH`, `LD_PRELOAD`, `SAIR_EMU_STATE`, …).
        pub fn env(
            mut self,
            key: impl AsRef<std::ffi::OsStr>,
            value: impl AsRef<std::ffi::OsStr>,
        ) -> Self {
            self.launch = self.launch.env(key, value);
            self
        }
    };
}
