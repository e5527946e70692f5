//! What the local supervisor is told: per stage the `run` table of the pipelines file
//! ([`LocalStageRun`]), the stage facts it needs from the rest of the file ([`LocalStage`]),
//! and machine-wide options ([`LocalOptions`]). Everything is checked by
//! [`LocalActuator::new`](super::LocalActuator::new), before anything starts.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::{ActuatorError, StageRef};

#[cfg(test)]
mod tests;

/// How one replica of a stage runs on this machine: the `[pipeline.stages.run]` table of the
/// pipelines file. Durations are written `3s`, `500ms`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalStageRun {
    /// The model server's argv. A bare program name (no `/`) is looked up beside the current
    /// executable first, then on `PATH`. `{port}` (the port the supervisor picked for it),
    /// `{replica}` (the replica's number in its stage), `{segment}`
    /// (`<pipeline>.<stage>.<replica>`), `{pipeline}` and `{stage}` are replaced in every
    /// argument and in `env` values; other braces are left alone.
    pub command: Vec<String>,
    /// Environment added for the model server (after the supervisor's own removals, see
    /// docs/actuator.md).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Path the model server answers 200 on once it is ready (sair-stage: `/healthz`, which it
    /// serves only once loaded, see `--startup`).
    #[serde(default = "default_ready_path")]
    pub ready_path: String,
    /// Longest a replica may take from spawn to ready (model loading included); beyond it the
    /// start counts as failed and is retried with backoff. Alias `startup`.
    #[serde(
        default = "default_startup_timeout",
        alias = "startup",
        deserialize_with = "duration"
    )]
    pub startup_timeout: Duration,
    /// Sidecar `--max-concurrency`; default: the stage's `concurrency`.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Sidecar `--queue-capacity`; default: the sidecar's (1024).
    #[serde(default)]
    pub queue_capacity: Option<u32>,
    /// Sidecar `--queue-timeout`; default: the sidecar's (30s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub queue_timeout: Option<Duration>,
    /// GPU index of the replicas' segments (GPU stages).
    #[serde(default)]
    pub gpu: u32,
    /// Further sidecar flags, appended as given (an escape hatch; the supervisor's own flags
    /// come first, so a repeated flag is a sidecar error, not a silent override).
    #[serde(default)]
    pub sidecar_args: Vec<String>,
}

fn default_ready_path() -> String {
    "/healthz".to_owned()
}

fn default_startup_timeout() -> Duration {
    Duration::from_secs(60)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    sair_service::duration::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// A stage as the supervisor sees it: the `run` table plus the facts it takes from the stage's
/// entry in the pipelines file.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalStage {
    pub stage: StageRef,
    /// `kind = "gpu"`: replicas get a segment (`SAIR_SEGMENT`, `SAIR_SHM_DIR`) and the
    /// interception library.
    pub gpu: bool,
    /// The stage's `concurrency` (requests one replica serves at once).
    pub concurrency: u32,
    /// The next stage of the pipeline (its sidecars chain to that stage's endpoints file).
    pub next: Option<String>,
    pub run: LocalStageRun,
}

/// The node agent the sidecars report to.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentLink {
    /// `host:port` of the agent's report listener (sidecar `--agent`).
    pub addr: String,
    /// How the sidecars trust the agent's certificate.
    pub trust: AgentTrust,
    /// Sidecar `--agent-server-name` (default: the sidecar's, `localhost`).
    pub server_name: Option<String>,
}

/// Sidecar `--agent-ca FILE` or `--agent-insecure-skip-verify` (loopback demos only).
#[derive(Debug, Clone, PartialEq)]
pub enum AgentTrust {
    Ca(PathBuf),
    InsecureSkipVerify,
}

/// Machine-wide options of the local supervisor.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOptions {
    /// Where the endpoints files (`<pipeline>.<stage>.endpoints`) and the replicas' logs
    /// (`logs/<pipeline>.<stage>.<replica>.{server,sidecar}.log`) go. Created if missing.
    pub work_dir: PathBuf,
    /// Where bare program names are looked up first; default: the directory of the current
    /// executable (`sair` finds `sair-stage` and `sair-sidecar` beside itself).
    pub bin_dir: Option<PathBuf>,
    /// The sidecars' node agent; none: sidecars do not report.
    pub agent: Option<AgentLink>,
    /// The agent's segment directory: GPU replicas get `SAIR_SHM_DIR` and their segment is
    /// created there (mode `off`) with `sair-node-agent set-rate` before they start. None: GPU
    /// replicas run without a segment (unmanaged, launches pass through).
    pub shm_dir: Option<PathBuf>,
    /// `libsair_intercept.so`, put in GPU replicas' `LD_PRELOAD`. None: not preloaded.
    pub intercept_lib: Option<PathBuf>,
    /// After a replica leaves the endpoints file and before its sidecar is told to drain:
    /// upstream sidecars re-read the file every `--discovery-interval` (1s), so they must have
    /// stopped picking it first (Kubernetes' preStop sleep plays the same part).
    pub deregister_delay: Duration,
    /// Sidecar `--drain-timeout`; the supervisor SIGKILLs a sidecar still running `stop_grace`
    /// after it.
    pub drain_timeout: Duration,
    /// How long a process may take to exit after SIGTERM (beyond the drain) before SIGKILL.
    pub stop_grace: Duration,
    /// Longest the sidecar may take to print its bound line and answer /readyz.
    pub sidecar_start_timeout: Duration,
    /// Most replicas per stage (a guard against a runaway count, not a policy bound).
    pub max_replicas: u32,
    /// Restart backoff: first wait, doubled per consecutive failure up to `restart_max`.
    pub restart_initial: Duration,
    pub restart_max: Duration,
}

impl LocalOptions {
    /// Defaults for everything but the work dir.
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        Self {
            work_dir: work_dir.into(),
            bin_dir: None,
            agent: None,
            shm_dir: None,
            intercept_lib: None,
            deregister_delay: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(10),
            stop_grace: Duration::from_secs(5),
            sidecar_start_timeout: Duration::from_secs(10),
            max_replicas: 64,
            restart_initial: Duration::from_millis(500),
            restart_max: Duration::from_secs(30),
        }
    }
}

/// Where a bare program name is looked up first.
pub(crate) fn bin_dir(options: &LocalOptions) -> PathBuf {
    if let Some(dir) = &options.bin_dir {
        return dir.clone();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Resolves a program: a name with a `/` as given; a bare name beside `bin_dir`, then on
/// `path` (the `PATH` value). `None` when nothing executable is found.
pub(crate) fn resolve_program(
    name: &str,
    bin_dir: &Path,
    path: Option<OsString>,
) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    if name.is_empty() {
        return None;
    }
    let beside = bin_dir.join(name);
    if is_executable(&beside) {
        return Some(beside);
    }
    std::env::split_paths(&path.unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Substitutes the placeholders of one argument or env value.
pub(crate) fn expand(template: &str, vars: &Placeholders<'_>) -> String {
    template
        .replace("{port}", &vars.port.to_string())
        .replace("{replica}", &vars.replica.to_string())
        .replace("{segment}", vars.segment)
        .replace("{pipeline}", vars.pipeline)
        .replace("{stage}", vars.stage)
}

/// The values of the placeholders for one replica start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placeholders<'a> {
    pub port: u16,
    pub replica: u32,
    pub segment: &'a str,
    pub pipeline: &'a str,
    pub stage: &'a str,
}

/// A name usable in a segment name and a file name: `[A-Za-z0-9_-]`, no `.` (the agent splits
/// `<pipeline>.<stage>.<replica>` on dots, `sair_wire::keys::stage_of_segment`).
pub(crate) fn check_name(stage: &StageRef, what: &str, name: &str) -> Result<(), ActuatorError> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ActuatorError::InvalidConfig {
            stage: stage.clone(),
            reason: format!(
                "{what} name {name:?} must be 1–48 characters of [A-Za-z0-9_-] (it is part of segment and file names)"
            ),
        })
    }
}

/// The checks of one stage that need no file system.
pub(crate) fn validate(stage: &LocalStage) -> Result<(), ActuatorError> {
    let s = &stage.stage;
    check_name(s, "pipeline", &s.pipeline)?;
    check_name(s, "stage", &s.stage)?;
    if let Some(next) = &stage.next {
        check_name(s, "next stage", next)?;
    }
    let invalid = |reason: String| ActuatorError::InvalidConfig {
        stage: s.clone(),
        reason,
    };
    let run = &stage.run;
    if run.command.is_empty() || run.command[0].is_empty() {
        return Err(invalid(
            "run.command is empty: give the model server's argv".into(),
        ));
    }
    if !run.ready_path.starts_with('/') || run.ready_path.contains(char::is_whitespace) {
        return Err(invalid(format!(
            "run.ready_path {:?} must start with / and contain no spaces",
            run.ready_path
        )));
    }
    if run.startup_timeout.is_zero() || run.startup_timeout > sair_service::duration::MAX {
        return Err(invalid(format!(
            "run.startup_timeout must be above 0 and at most 30 days, got {:?}",
            run.startup_timeout
        )));
    }
    if stage.concurrency == 0 && run.max_concurrency.is_none() {
        return Err(invalid(
            "concurrency is 0: give the stage a concurrency or run.max_concurrency".into(),
        ));
    }
    if run.max_concurrency.is_some_and(|c| c > 1_000_000)
        || run.queue_capacity.is_some_and(|c| c > 1_000_000)
    {
        return Err(invalid(
            "run.max_concurrency and run.queue_capacity must be at most 1000000 (the sidecar's bound)".into(),
        ));
    }
    if let Some(t) = run.queue_timeout
        && (t.is_zero() || t > sair_service::duration::MAX)
    {
        return Err(invalid(format!(
            "run.queue_timeout must be above 0 and at most 30 days, got {t:?}"
        )));
    }
    if run.gpu >= 64 {
        return Err(invalid(format!(
            "run.gpu must be below 64 (the node agent's bound), got {}",
            run.gpu
        )));
    }
    for key in run.env.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(invalid(format!(
                "run.env key {key:?} is not a variable name"
            )));
        }
    }
    Ok(())
}
