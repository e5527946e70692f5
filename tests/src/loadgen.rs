//! `loadgen()`: one bounded `sair-loadgen` run with its JSON report read back.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::{run_bounded, scratch};

/// A `sair-loadgen` run to make: `loadgen().args(["--target", &url]).run()`.
pub fn loadgen() -> LoadgenBuilder {
    LoadgenBuilder {
        program: None,
        args: Vec::new(),
        limit: Duration::from_secs(60),
    }
}

/// Builder for one `sair-loadgen` run; it always adds `--out <scratch>/report.json --quiet`.
#[derive(Debug, Clone)]
pub struct LoadgenBuilder {
    program: Option<PathBuf>,
    args: Vec<OsString>,
    limit: Duration,
}

impl LoadgenBuilder {
    /// Use this binary (inside sair-loadgen's tests: `env!("CARGO_BIN_EXE_sair-loadgen")`).
    pub fn program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }

    /// More arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Kill the run after this long (default 60 s).
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Runs it to the end (or the limit) and reads the report, if one was written.
    pub fn run(self) -> LoadgenRun {
        let program = self
            .program
            .unwrap_or_else(|| crate::binary("sair-loadgen"));
        let dir = scratch("loadgen");
        let out = dir.join("report.json");
        let mut cmd = Command::new(program);
        cmd.args(&self.args).arg("--out").arg(&out).arg("--quiet");
        // Keep the developer's SAIR_* variables out of the test.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("SAIR_") && !k.starts_with("SAIR_TEST_") {
                cmd.env_remove(&*k);
            }
        }
        let done = run_bounded(cmd, self.limit);
        let report = std::fs::read(&out).ok().map(|b| {
            serde_json::from_slice(&b)
                .unwrap_or_else(|e| panic!("the report in {} is not JSON: {e}", out.display()))
        });
        let _ = std::fs::remove_dir_all(&dir);
        let run = LoadgenRun {
            code: done.code,
            stdout: done.stdout,
            stderr: done.stderr,
            report,
            wall: done.wall,
        };
        eprintln!(
            "sair-loadgen exit {:?} in {:?}\nstdout:\n{}\nstderr:\n{}",
            run.code, run.wall, run.stdout, run.stderr
        );
        run
    }
}

/// What one `sair-loadgen` run left.
#[derive(Debug)]
pub struct LoadgenRun {
    /// Exit code (`None`: killed at the limit).
    pub code: Option<i32>,
    /// Its summary.
    pub stdout: String,
    /// Its errors and logs.
    pub stderr: String,
    /// The JSON report, if written.
    pub report: Option<Value>,
    /// Wall time of the run.
    pub wall: Duration,
}
