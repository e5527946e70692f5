//! The processes the demo starts: each in its own process group (so a Ctrl-C at the terminal
//! reaches the demo alone, which then stops them in order), its output appended to a log file
//! in the report folder (and copied to the terminal with `-v`), its addresses read from its
//! bound line. A [`Supervised`] child is restarted when it dies, on the same addresses, as a
//! DaemonSet or a Deployment would restart a pod.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::DemoError;

/// One listening role: the flag that sets its address and its name on the bound line.
#[derive(Debug, Clone, Copy)]
pub struct Role {
    pub flag: &'static str,
    pub name: &'static str,
}

/// How to start a process.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Short name for logs and the pids file (`agent`, `coordinator`, `loadgen`).
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, OsString)>,
    /// Roles to bind on 127.0.0.1:0 and read back from the bound line (none: no bound line).
    pub roles: Vec<Role>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// Copy its output to the terminal's stderr as well (`-v`).
    pub echo: bool,
}

/// A started process.
#[derive(Debug)]
pub struct Running {
    pub child: Child,
    pub pid: u32,
    pub addresses: BTreeMap<String, SocketAddr>,
}

impl Spec {
    /// Starts it with `addresses` for its roles (127.0.0.1:0 where missing) and waits up to
    /// `patience` for its bound line.
    pub async fn start(
        &self,
        addresses: &BTreeMap<String, SocketAddr>,
        patience: Duration,
    ) -> Result<Running, DemoError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for role in &self.roles {
            let addr = addresses
                .get(role.name)
                .map_or_else(|| "127.0.0.1:0".to_string(), SocketAddr::to_string);
            cmd.arg(role.flag).arg(addr);
        }
        // A developer's SAIR_* variables must not change what the demo runs (the flags say
        // everything); RUST_LOG stays, so `RUST_LOG=debug sair demo` reaches every child.
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("SAIR_")) {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // The last line of defence: a demo that unwinds without stopping its children
            // still kills them.
            .kill_on_drop(true);
        let start_err = |why: String, usage: bool| DemoError::Start {
            name: self.name.to_string(),
            // What the process said last usually names the problem (a bad flag, a port).
            why: match last_lines(&self.log, 3) {
                Some(tail) => format!("{why}; it said: {tail}"),
                None => why,
            },
            log: self.log.clone(),
            usage,
        };
        let mut child = cmd
            .spawn()
            .map_err(|e| start_err(format!("cannot run {}: {e}", self.program.display()), false))?;
        let pid = child.id().unwrap_or(0);
        let (tx, rx) = oneshot::channel();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(copy_lines(out, self.log.clone(), self.echo, Some(tx)));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(copy_lines(err, self.log.clone(), self.echo, None));
        }
        if self.roles.is_empty() {
            return Ok(Running {
                child,
                pid,
                addresses: BTreeMap::new(),
            });
        }
        let bound = tokio::time::timeout(patience, rx).await;
        let Ok(line) = bound else {
            return Err(start_err(
                format!("no bound line within {patience:?}"),
                false,
            ));
        };
        let Ok(addresses) = line else {
            // stdout closed without a bound line: the process is exiting.
            let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            let (why, usage) = match status {
                Ok(Ok(s)) => (
                    format!("exited ({s}) before it was bound"),
                    s.code() == Some(64),
                ),
                _ => ("closed its stdout without a bound line".into(), false),
            };
            // Let the stderr copy reach the log, so the error can quote it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Err(start_err(why, usage));
        };
        let missing: Vec<&str> = self
            .roles
            .iter()
            .map(|r| r.name)
            .filter(|n| !addresses.contains_key(*n))
            .collect();
        if !missing.is_empty() {
            return Err(start_err(
                format!("its bound line lacks {}", missing.join(", ")),
                false,
            ));
        }
        Ok(Running {
            child,
            pid,
            addresses,
        })
    }
}

/// Copies `stream` line by line to `log` (and stderr with `echo`); the first bound line goes
/// to `bound`.
async fn copy_lines(
    stream: impl AsyncRead + Unpin,
    log: PathBuf,
    echo: bool,
    mut bound: Option<oneshot::Sender<BTreeMap<String, SocketAddr>>>,
) {
    let mut file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(log = %log.display(), error = %e, "cannot open a child's log file; its output is dropped");
            None
        }
    };
    let mut lines = BufReader::new(stream).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "a child's output stopped");
                break;
            }
        };
        if bound.is_some()
            && let Some(addrs) = parse_bound(&line)
            && let Some(tx) = bound.take()
        {
            // The receiver is gone only when the start was abandoned; nothing to tell.
            let _ = tx.send(addrs);
        }
        if let Some(f) = file.as_mut()
            && let Err(e) = writeln!(f, "{line}")
        {
            tracing::warn!(log = %log.display(), error = %e, "a child's log file stopped taking writes");
            file = None;
        }
        if echo {
            eprintln!("{line}");
        }
    }
}

/// The last `n` non-empty lines of a log file, joined, without terminal colour codes.
fn last_lines(log: &std::path::Path, n: usize) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let mut lines: Vec<String> = text
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(strip_ansi)
        .collect();
    lines.reverse();
    (!lines.is_empty()).then(|| lines.join(" | "))
}

/// `s` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The addresses of a bound line, `{"event":"bound","binary":…,"addresses":{role: "ip:port"}}`.
pub fn parse_bound(line: &str) -> Option<BTreeMap<String, SocketAddr>> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    if v.get("event")?.as_str()? != "bound" {
        return None;
    }
    v.get("addresses")?
        .as_object()?
        .iter()
        .map(|(k, a)| Some((k.clone(), a.as_str()?.parse().ok()?)))
        .collect()
}

/// Sends `sig` to `pid`; a process already gone is not an error.
pub fn signal(pid: u32, sig: Signal) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    if raw <= 0 {
        return;
    }
    if let Err(e) = kill(Pid::from_raw(raw), sig)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pid, signal = %sig, error = %e, "cannot signal a child");
    }
}

/// SIGTERM, then up to `grace` for it to exit, then SIGKILL. Returns how it ended.
pub async fn stop(child: &mut Child, name: &str, grace: Duration) -> String {
    if let Ok(Some(s)) = child.try_wait() {
        return format!("had already exited ({s})");
    }
    if let Some(pid) = child.id() {
        signal(pid, Signal::SIGTERM);
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(s)) => format!("stopped ({s})"),
        Ok(Err(e)) => format!("cannot wait for it: {e}"),
        Err(_) => {
            tracing::warn!(name, ?grace, "did not stop after SIGTERM; killing it");
            if let Err(e) = child.kill().await {
                return format!("cannot kill it: {e}");
            }
            "killed after the grace period".into()
        }
    }
}

/// A process restarted whenever it dies, on the addresses it first bound.
#[derive(Debug)]
pub struct Supervised {
    pub spec: Spec,
    pub running: Running,
    /// Restarts so far.
    pub restarts: u32,
    last_start: Instant,
}

impl Supervised {
    /// Starts it for the first time (every role on port 0).
    pub async fn start(spec: Spec, patience: Duration) -> Result<Self, DemoError> {
        let running = spec.start(&BTreeMap::new(), patience).await?;
        Ok(Supervised {
            spec,
            running,
            restarts: 0,
            last_start: Instant::now(),
        })
    }

    /// The address of `role`.
    pub fn addr(&self, role: &str) -> Option<SocketAddr> {
        self.running.addresses.get(role).copied()
    }

    /// If it has exited, starts it again on the same addresses (at most once a second, so a
    /// process that dies at once does not spin). Returns what happened, for the view and the
    /// log; `None` while it runs.
    pub async fn check(&mut self, patience: Duration) -> Option<String> {
        let status = match self.running.child.try_wait() {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(e) => return Some(format!("{}: cannot check it: {e}", self.spec.name)),
        };
        if self.last_start.elapsed() < Duration::from_secs(1) {
            return None;
        }
        self.last_start = Instant::now();
        let addresses = self.running.addresses.clone();
        match self.spec.start(&addresses, patience).await {
            Ok(running) => {
                self.running = running;
                self.restarts += 1;
                Some(format!(
                    "{} exited ({status}); restarted as pid {}",
                    self.spec.name, self.running.pid
                ))
            }
            Err(e) => Some(format!(
                "{} exited ({status}); restart failed, retrying: {e}",
                self.spec.name
            )),
        }
    }
}
