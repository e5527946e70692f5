//! `sair demo` as a test drives it: the whole deployment on loopback, started by the real
//! `sair` binary, with its report folder, its pids file (`pids.json`: the demo, agent,
//! coordinator and load generator pids and the coordinator's API address, rewritten when a
//! supervised process restarts) and its log.
//!
//! ```no_run
//! use std::time::Duration;
//! let mut run = sair_tests::demo::demo("e2e").args(["--duration", "60s"]).start();
//! let http = run.wait_for_load(Duration::from_secs(120)); // the coordinator's API, once load runs
//! let status = run.wait(Duration::from_secs(300));        // None: still running at the limit
//! let results = run.json("results.json");
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::binary;

/// A `sair demo` to start, writing into a scratch folder.
pub fn demo(tag: &str) -> DemoBuilder {
    DemoBuilder {
        out: crate::scratch(&format!("demo-{tag}")).join("out"),
        args: vec!["--plain".into()],
    }
}

/// Builder for a `sair demo` run.
#[derive(Debug, Clone)]
pub struct DemoBuilder {
    out: PathBuf,
    args: Vec<String>,
}

impl DemoBuilder {
    /// More `sair demo` arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Starts it; its stdout and stderr go to `<out>/../demo.log`.
    pub fn start(self) -> DemoRun {
        let log = self.out.with_file_name("demo.log");
        let file =
            std::fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("clone {}: {e}", log.display()));
        let mut cmd = Command::new(binary("sair"));
        cmd.arg("demo").arg("--out").arg(&self.out).args(&self.args);
        for (k, _) in std::env::vars_os() {
            if k.to_str()
                .is_some_and(|k| k.starts_with("SAIR_") && !k.starts_with("SAIR_TEST_"))
            {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn sair demo: {e}"));
        DemoRun {
            child,
            out: self.out,
            log,
            status: None,
        }
    }
}

/// A running (or finished) `sair demo`; stopped with SIGTERM, then SIGKILL, when dropped.
#[derive(Debug)]
pub struct DemoRun {
    child: Child,
    out: PathBuf,
    log: PathBuf,
    status: Option<ExitStatus>,
}

/// Sends `sig` (a `kill` signal name, e.g. `TERM`, `KILL`) to `pid`.
pub fn kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Pids of the live processes whose parent is `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rfind(')')
                    .and_then(|i| s[i + 1..].split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .filter(|pid| alive(*pid))
        .collect()
}

/// The program name of `pid` (`/proc/PID/comm`).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Live processes whose command line or environment mentions `needle` (a run's folder): what
/// a run left behind.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && alive(*pid))
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let hit = |b: &[u8]| String::from_utf8_lossy(b).contains(needle);
            (hit(&cmdline) || hit(&environ))
                .then(|| (pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .collect()
}

impl DemoRun {
    /// The report folder (`--out`).
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The demo's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The demo's own output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The tail of every log of the run, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = format!("--- sair demo ---\n{}", tail(&self.output(), 4000));
        if let Ok(dir) = std::fs::read_dir(self.out.join("logs")) {
            for e in dir.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                s.push_str(&format!(
                    "\n--- {} ---\n{}",
                    e.path().display(),
                    tail(&text, 2500)
                ));
            }
        }
        s
    }

    /// `pids.json`, once written.
    pub fn pids(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.out.join("pids.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The pid of `name` (`agent`, `coordinator`, `loadgen`) from `pids.json`.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.pids()?
            .get(name)?
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
    }

    /// Waits (up to `limit`) until the load generator runs; returns the coordinator's API
    /// address. Panics with the logs if the demo exits or the time runs out.
    pub fn wait_for_load(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(p) = self.pids()
                && p.get("loadgen").is_some()
                && let Some(http) = p.get("coordinator_http").and_then(|h| h.as_str())
            {
                return http.to_string();
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
                panic!(
                    "sair demo exited ({s}) before the load started\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no load within {limit:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits up to `limit` for the demo to exit; SIGKILLs it past the limit. The exit status.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
                return self.status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then [`Self::wait`].
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            kill(self.pid(), "TERM");
        }
        self.wait(limit)
    }

    /// A JSON file of the report folder.
    pub fn json(&self, name: &str) -> serde_json::Value {
        let path = self.out.join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), self.logs()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

impl Drop for DemoRun {
    fn drop(&mut self) {
        if self.status.is_none() {
            // The demo stops everything it started on SIGTERM; SIGKILL only if it hangs.
            self.terminate(Duration::from_secs(60));
        }
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
