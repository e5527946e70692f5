//! Command line of `sair-node-agent`: flags, each with a `SAIR_*` environment variable, and a
//! TOML file (`--config`, any subcommand). Precedence: flag > environment > file > default,
//! applied by [`sair_service::config::load`] from the clap definitions below (no list of field
//! names is kept by hand). `validate()` runs before anything binds; `main` exits 64 when it
//! fails.
//!
//! Durations take the `30s` / `500ms` syntax. The old options whose unit was in their name
//! (`--control-period-ms`, `--gc-idle-seconds`, `--burst-us`, `--sample-ms`) are hidden aliases
//! with their old meaning (docs/configuration.md); each conflicts with its successor, so the
//! overlay takes whichever came from the higher source.

use crate::{AgentError, bounds};
use clap::{Args, Parser, Subcommand};
use sair_service::duration::{format_duration, parse_duration};
use sair_service::logging::LogArgs;
use sair_shm::Mode;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The control period's range.
pub const CONTROL_PERIOD_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(10)..=Duration::from_secs(10);

/// SAIR node agent: owns the GPU-share segments of this node, holds each at its target share ρ
/// with a feedback loop on NVML-measured utilisation, and collects stage reports from sidecars.
#[derive(Debug, Parser)]
#[command(name = "sair-node-agent", version)]
pub struct Cli {
    /// TOML file with any of the options of the subcommand (keys are the long option names
    /// with `_` for `-`); flags and `SAIR_*` variables take precedence over it.
    #[arg(long, env = "SAIR_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run(RunArgs),
    /// Set a segment's target share (creating the segment if missing).
    SetRate(SetRateArgs),
    /// Print the segments: target, measured, launches/s, throttled.
    Status(StatusArgs),
    /// Remove a segment (its processes run unthrottled from then on).
    Remove(RemoveArgs),
}

/// The shm dir, shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct ShmDir {
    /// Directory of the segment files (a hostPath in Kubernetes).
    #[arg(long, env = "SAIR_SHM_DIR", default_value = sair_shm::DEFAULT_SHM_DIR)]
    pub shm_dir: PathBuf,
}

/// Device time an idle segment may save up, shared by `run` and `set-rate`.
#[derive(Debug, Clone, Args)]
pub struct Burst {
    /// Device time an idle segment may save up (100us–100ms, e.g. 5ms).
    #[arg(long, env = "SAIR_BURST", default_value = "5ms", value_parser = parse_duration)]
    pub burst: Duration,
    /// Old spelling of --burst, in microseconds.
    #[arg(long, env = "SAIR_BURST_US", hide = true, conflicts_with = "burst")]
    pub burst_us: Option<u64>,
}

impl Burst {
    /// The one burst check of `run`, `set-rate` and the TOML file ([`bounds::check_burst`]).
    pub fn validate(&self) -> Result<(), AgentError> {
        let d = match self.burst_us {
            Some(us) => Duration::from_micros(us),
            None => self.burst,
        };
        bounds::check_burst(d).map_err(AgentError::Config)
    }

    /// The burst in nanoseconds (the legacy option when it won).
    pub fn ns(&self) -> u64 {
        let d = self
            .burst_us
            .map(Duration::from_micros)
            .unwrap_or(self.burst);
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub shm: ShmDir,
    /// Address of `/metrics`, `/healthz` and `/readyz` ("none" to disable; port 0 picks one,
    /// announced on stdout as role `admin`).
    #[arg(long, env = "SAIR_METRICS_LISTEN", default_value = "0.0.0.0:9464")]
    pub metrics_listen: String,
    /// UDP address receiving StageReports over QUIC ("none" to disable; port 0 picks one,
    /// announced on stdout as role `report`).
    #[arg(long, env = "SAIR_REPORT_LISTEN", default_value = "0.0.0.0:7301")]
    pub report_listen: String,
    /// Control period (10ms–10s).
    #[arg(long, env = "SAIR_CONTROL_PERIOD", default_value = "150ms", value_parser = parse_duration)]
    pub control_period: Duration,
    /// Old spelling of --control-period, in milliseconds.
    #[arg(
        long,
        env = "SAIR_CONTROL_PERIOD_MS",
        hide = true,
        conflicts_with = "control_period"
    )]
    pub control_period_ms: Option<u64>,
    /// Path of libnvidia-ml.so.1 (default: the system's). Without NVML rates are held, not
    /// controlled.
    #[arg(long, env = "SAIR_NVML_LIB")]
    pub nvml_lib: Option<PathBuf>,
    /// Node name: the `node` metric label and, on the mesh, this member's name (default: the
    /// host name). `--node` is the same option.
    #[arg(long, env = "SAIR_NODE_NAME", visible_alias = "node")]
    pub node_name: Option<String>,
    /// How long a segment with no live process and no activity is kept before it is collected.
    #[arg(long, env = "SAIR_GC_IDLE", default_value = "10m", value_parser = parse_duration)]
    pub gc_idle: Duration,
    /// Old spelling of --gc-idle, in seconds.
    #[arg(
        long,
        env = "SAIR_GC_IDLE_SECONDS",
        hide = true,
        conflicts_with = "gc_idle"
    )]
    pub gc_idle_seconds: Option<u64>,
    #[command(flatten)]
    pub burst: Burst,
    /// Share of a GPU that `share`-mode segments leave free.
    #[arg(long, env = "SAIR_SHARE_HEADROOM", default_value_t = 0.05)]
    pub share_headroom: f64,
    /// Most (pipeline, stage, replica) keys whose latest report is kept and exported.
    #[arg(long, env = "SAIR_MAX_REPORT_KEYS", default_value_t = 256)]
    pub max_report_keys: usize,
    /// PEM certificate chain of the report endpoint (with --tls-key).
    #[arg(long, env = "SAIR_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the report endpoint (with --tls-cert).
    #[arg(long, env = "SAIR_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Without --tls-cert: where a self-signed identity is kept (agent-cert.pem, agent-key.pem;
    /// generated once, reused after restarts). Local sidecars trust agent-cert.pem.
    #[arg(long, env = "SAIR_TLS_DIR", default_value = "/var/run/sair/tls")]
    pub tls_dir: PathBuf,
    /// The gossip mesh (off unless --mesh-listen is given; docs/node-agent.md, "Mesh"). Boxed:
    /// `run`'s options would otherwise dwarf the other subcommands'.
    #[command(flatten)]
    pub mesh: Box<crate::mesh::MeshArgs>,
}

/// Parses "none" or a socket address.
pub fn parse_listen(what: &str, s: &str) -> Result<Option<SocketAddr>, AgentError> {
    if s.eq_ignore_ascii_case("none") || s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|e| AgentError::Config(format!("{what} {s:?} is not an address: {e}")))
}

impl RunArgs {
    /// The control period (the legacy `--control-period-ms` when it won).
    pub fn period(&self) -> Duration {
        self.control_period_ms
            .map(Duration::from_millis)
            .unwrap_or(self.control_period)
    }

    /// The idle time before collection (the legacy `--gc-idle-seconds` when it won).
    pub fn gc_idle(&self) -> Duration {
        self.gc_idle_seconds
            .map(Duration::from_secs)
            .unwrap_or(self.gc_idle)
    }

    /// Checks everything that can be checked before binding.
    pub fn validate(&self) -> Result<(), AgentError> {
        let period = self.period();
        if !CONTROL_PERIOD_RANGE.contains(&period) {
            return Err(AgentError::Config(format!(
                "--control-period {} must be within {}..={}",
                format_duration(period),
                format_duration(*CONTROL_PERIOD_RANGE.start()),
                format_duration(*CONTROL_PERIOD_RANGE.end()),
            )));
        }
        if !(0.0..0.5).contains(&self.share_headroom) {
            return Err(AgentError::Config(format!(
                "--share-headroom {} must be within [0, 0.5)",
                self.share_headroom
            )));
        }
        if self.max_report_keys == 0 || self.max_report_keys > bounds::MAX_REPORT_KEYS {
            return Err(AgentError::Config(format!(
                "--max-report-keys {} must be within 1..={}",
                self.max_report_keys,
                bounds::MAX_REPORT_KEYS
            )));
        }
        let gc_idle = self.gc_idle();
        if !bounds::GC_IDLE_RANGE.contains(&gc_idle) {
            return Err(AgentError::Config(format!(
                "--gc-idle {} must be within {}..={}",
                format_duration(gc_idle),
                format_duration(*bounds::GC_IDLE_RANGE.start()),
                format_duration(*bounds::GC_IDLE_RANGE.end()),
            )));
        }
        self.burst.validate()?;
        parse_listen("--metrics-listen", &self.metrics_listen)?;
        parse_listen("--report-listen", &self.report_listen)?;
        self.mesh.validate()?;
        Ok(())
    }
}

/// `set-rate`.
#[derive(Debug, Clone, Args)]
pub struct SetRateArgs {
    #[command(flatten)]
    pub shm: ShmDir,
    /// Segment name ([A-Za-z0-9._-], 1–128 characters).
    #[arg(long, env = "SAIR_SEGMENT")]
    pub segment: String,
    /// Target share ρ in (0, 1].
    #[arg(long, env = "SAIR_RATE")]
    pub rate: f64,
    /// GPU index (default: the segment's, 0 for a new one).
    #[arg(long, env = "SAIR_GPU")]
    pub gpu: Option<u32>,
    /// off (no limit), cap (never more than ρ) or share (ρ guaranteed, idle time usable).
    #[arg(long, env = "SAIR_MODE", default_value = "cap", value_parser = parse_mode)]
    pub mode: Mode,
    #[command(flatten)]
    pub burst: Burst,
    /// Print the outcome as JSON.
    #[arg(long, env = "SAIR_JSON")]
    pub json: bool,
    /// Give the segment file to this uid, mode 0600 (the tenant's `runAsUser`): processes of
    /// other users cannot open it, so cannot change its share. Default: as it is, or mode 0666
    /// (any local user) for a new segment. See docs/gpu.md, "Threat model".
    #[arg(long, env = "SAIR_OWNER_UID")]
    pub owner_uid: Option<u32>,
    /// Create the missing parents of --shm-dir too (by default only the directory itself is
    /// created, and a missing parent is an error).
    #[arg(long, env = "SAIR_CREATE_PARENTS")]
    pub create_parents: bool,
}

impl SetRateArgs {
    /// Checks the flags before anything is written (the rate itself is checked with the
    /// commitment, which refuses with exit status 1).
    pub fn validate(&self) -> Result<(), AgentError> {
        self.burst.validate()?;
        if let Some(g) = self.gpu {
            bounds::check_gpu(g).map_err(AgentError::Config)?;
        }
        Ok(())
    }
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse()
}

/// `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub shm: ShmDir,
    /// Print JSON instead of a table.
    #[arg(long, env = "SAIR_JSON")]
    pub json: bool,
    /// How long launches/s is sampled (e.g. 250ms).
    #[arg(long, env = "SAIR_SAMPLE", default_value = "250ms", value_parser = parse_duration)]
    pub sample: Duration,
    /// Old spelling of --sample, in milliseconds.
    #[arg(long, env = "SAIR_SAMPLE_MS", hide = true, conflicts_with = "sample")]
    pub sample_ms: Option<u64>,
}

impl StatusArgs {
    /// Checks the flags: the sampling time is at most [`bounds::MAX_SAMPLE`].
    pub fn validate(&self) -> Result<(), AgentError> {
        bounds::check_sample(self.sample()).map_err(AgentError::Config)
    }

    /// The sampling time (the legacy `--sample-ms` when it won).
    pub fn sample(&self) -> Duration {
        self.sample_ms
            .map(Duration::from_millis)
            .unwrap_or(self.sample)
    }
}

/// `remove`.
#[derive(Debug, Clone, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub shm: ShmDir,
    /// Segment name.
    #[arg(long, env = "SAIR_SEGMENT")]
    pub segment: String,
}

#[cfg(test)]
mod tests;
