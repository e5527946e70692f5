//! Processes of the supervisor: spawning them in a group of their own, identifying them again
//! after a restart, probing readiness over HTTP, reading a bound line, and stopping them in
//! bounded time.
//!
//! **Replicas outlive a crashed supervisor**, as Pods outlive a crashed controller (team
//! decision): a child is started in a process group of its own (so a stop reaches whatever a
//! command forks, and a terminal's Ctrl-C reaches the coordinator, which shuts down in order,
//! not the replicas behind its back), with no parent-death signal and no kill-on-drop. Its
//! pid and start time (`/proc/<pid>/stat` field 22, so a recycled pid is not mistaken for it)
//! are recorded in the work dir; a restarted supervisor adopts the replicas still alive
//! (`state.rs`). Only `shutdown` stops replicas; orphans of a supervisor that was SIGKILLed
//! and never restarted are the operator's (or `sair demo`'s, a subreaper) to stop.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Prepares `cmd`: its own process group, no stdin, stdout and stderr to `log` (appended).
pub(crate) fn supervised(cmd: &mut Command, log: &Path) -> io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    cmd.stdin(Stdio::null())
        .stderr(file.try_clone()?)
        .stdout(file)
        .process_group(0);
    Ok(())
}

/// A process as recorded: pid and kernel start time (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ProcId {
    pub pid: u32,
    pub start: u64,
}

impl ProcId {
    /// The process `pid` as it is now (`None` when it does not run).
    pub(crate) fn of(pid: u32) -> Option<Self> {
        let (state, start) = stat(pid)?;
        (state != 'Z' && state != 'X').then_some(Self { pid, start })
    }

    /// Whether this very process still runs (not exited, not a zombie, pid not recycled).
    pub(crate) fn running(self) -> bool {
        ProcId::of(self.pid) == Some(self)
    }

    /// Its process group (the supervisor starts every child as a group leader).
    pub(crate) fn group(self) -> Group {
        Group(i32::try_from(self.pid).ok())
    }
}

/// State and start time from `/proc/<pid>/stat`. The command name (field 2) may contain
/// spaces and parentheses, so the fields are counted after its last `)`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Stops a process the supervisor did not start (adopted after a restart; it cannot wait for
/// it): SIGTERM to its group, poll until it is gone or `grace` passed, then SIGKILL the group.
pub(crate) async fn stop_adopted(proc: ProcId, grace: Duration, what: &str) {
    let group = proc.group();
    group.signal(Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while proc.running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if proc.running() {
        tracing::warn!(
            what,
            pid = proc.pid,
            "adopted process did not exit after SIGTERM; sending SIGKILL"
        );
    }
    group.signal(Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc.running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child's process group id, taken at spawn: it stays valid after the leader is reaped
/// (while anything of the group lives), when `Child::id` no longer answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Group(Option<i32>);

impl Group {
    pub(crate) fn of(child: &Child) -> Self {
        Self(child.id().and_then(|p| i32::try_from(p).ok()))
    }

    /// Sends `signal` to the group; a group that is already gone is fine.
    pub(crate) fn signal(self, signal: Signal) {
        let Some(pgid) = self.0 else {
            return;
        };
        match killpg(Pid::from_raw(pgid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => tracing::warn!(pgid, ?signal, error = %e, "could not signal a process group"),
        }
    }
}

/// SIGTERM to the group, wait up to `grace` for the child, then SIGKILL the group (whatever is
/// left of it: the command's own children go with it) and reap. Bounded by `grace` + 5 s.
pub(crate) async fn stop(
    child: &mut Child,
    group: Group,
    grace: Duration,
    what: &str,
) -> Option<ExitStatus> {
    group.signal(Signal::SIGTERM);
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        Ok(Err(e)) => {
            tracing::warn!(what, error = %e, "could not wait for a process; killing it");
            None
        }
        Err(_) => {
            tracing::warn!(
                what,
                grace_ms = grace.as_millis() as u64,
                "process did not exit after SIGTERM; sending SIGKILL"
            );
            None
        }
    };
    group.signal(Signal::SIGKILL);
    match status {
        Some(s) => Some(s),
        None => {
            // start_kill fails only when the child was already reaped.
            let _ = child.start_kill();
            tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .ok()
                .and_then(Result::ok)
        }
    }
}

/// One HTTP/1.1 GET on loopback: `true` when the status is 200. Every step is bounded by
/// `timeout`. Hand-written because the supervisor needs nothing else of HTTP.
pub(crate) async fn http_ok(addr: SocketAddr, path: &str, timeout: Duration) -> bool {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        // The status line fits in 64 bytes; read until it is complete or the peer closes.
        while n < buf.len() {
            let got = s.read(&mut buf[n..]).await?;
            if got == 0 {
                break;
            }
            n += got;
            if buf[..n].contains(&b'\n') {
                break;
            }
        }
        io::Result::Ok(status_is_200(&buf[..n]))
    };
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Ok(true)))
}

fn status_is_200(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    matches!(
        (parts.next(), parts.next()),
        (Some(v), Some(b"200")) if v.starts_with(b"HTTP/1.")
    )
}

/// The addresses of a `{"event":"bound",…,"addresses":{role: "ip:port"}}` line.
pub(crate) fn parse_bound_line(line: &str) -> Option<Vec<(String, SocketAddr)>> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    if v.get("event")?.as_str()? != "bound" {
        return None;
    }
    let addrs = v.get("addresses")?.as_object()?;
    addrs
        .iter()
        .map(|(role, a)| Some((role.clone(), a.as_str()?.parse().ok()?)))
        .collect()
}

/// Polls `path` (the child's stdout, redirected to a file so that nothing ties the child to
/// the supervisor's pipes) for a bound line, up to `deadline`; gives up early when `alive`
/// says the child exited.
pub(crate) async fn read_bound_file(
    path: &Path,
    deadline: Instant,
    mut alive: impl FnMut() -> bool,
) -> Result<Vec<(String, SocketAddr)>, String> {
    loop {
        if let Ok(text) = tokio::fs::read_to_string(path).await
            && let Some(addrs) = text.lines().find_map(parse_bound_line)
        {
            return Ok(addrs);
        }
        if !alive() {
            return Err("exited before printing its bound line".into());
        }
        if Instant::now() >= deadline {
            return Err("no bound line in time".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port on loopback that was free a moment ago: bound on port 0 and released. Another
/// process may take it before the command binds it; the command then fails to start and the
/// replica is retried with a new port (the restart backoff).
pub(crate) fn free_port() -> io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_lines_and_status_lines() {
        let addrs = parse_bound_line(
            r#"{"event":"bound","binary":"sair-sidecar","addresses":{"admin":"127.0.0.1:1","listen":"127.0.0.1:2"}}"#,
        )
        .expect("a bound line");
        assert_eq!(addrs.len(), 2);
        assert!(parse_bound_line("hello").is_none());
        assert!(parse_bound_line(r#"{"event":"other"}"#).is_none());
        assert!(status_is_200(b"HTTP/1.1 200 OK\r\n"));
        assert!(!status_is_200(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(!status_is_200(b""));
    }
}
