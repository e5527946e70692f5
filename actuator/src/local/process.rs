//! Child processes of the supervisor: spawning them so that they cannot outlive it, probing
//! readiness over HTTP, reading a bound line, and stopping them in bounded time.
//!
//! **Orphans.** Every child is started (1) in a process group of its own, so a stop reaches
//! whatever a command forks (a shell wrapper, worker processes) and a terminal's Ctrl-C does
//! not hit replicas behind the supervisor's back; (2) with `PR_SET_PDEATHSIG` = SIGTERM, so
//! the kernel signals it when the supervisor dies, even by SIGKILL, and it drains and exits as
//! on any other SIGTERM; (3) with tokio's `kill_on_drop`, so a child whose handle is dropped
//! (a task aborted, the runtime shut down) is SIGKILLed. The death signal is sent when the
//! *thread* that forked exits: children are spawned from async tasks, i.e. from the runtime's
//! worker threads (or a current-thread runtime's own thread), which live as long as the
//! runtime, never from `spawn_blocking` threads, which exit after 10 s idle.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Prepares `cmd` so that its process cannot outlive the supervisor (see the module doc) and
/// its output goes to `log`.
pub(crate) fn supervised(cmd: &mut Command, log: &Path) -> io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    cmd.stdin(Stdio::null())
        .stderr(file.try_clone()?)
        .stdout(file)
        .process_group(0)
        .kill_on_drop(true);
    die_with_parent(cmd);
    Ok(())
}

/// `PR_SET_PDEATHSIG` in the child, between fork and exec.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // work is allowed. It makes two system calls (prctl, getppid) and builds an `io::Error`
    // from an integer, which does not allocate; it takes no lock and touches no shared state.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
                .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
            // The supervisor may have died between fork and prctl: then no signal will come.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(
                    nix::errno::Errno::ESRCH as i32,
                ));
            }
            Ok(())
        });
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

/// Reads stdout lines until a bound line, up to `deadline`. The rest of stdout is drained by
/// a task of its own, so a later write by the child never blocks on a full pipe.
pub(crate) async fn read_bound_line(
    stdout: tokio::process::ChildStdout,
    deadline: Instant,
) -> Result<Vec<(String, SocketAddr)>, String> {
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Err(_) => return Err("no bound line in time".into()),
            Ok(Err(e)) => return Err(format!("reading stdout: {e}")),
            Ok(Ok(None)) => return Err("stdout closed before a bound line (did it exit?)".into()),
            Ok(Ok(Some(line))) => {
                if let Some(addrs) = parse_bound_line(&line) {
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    return Ok(addrs);
                }
            }
        }
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
