//! Command line of `sair-node-agent`: flags, each with a `SAIR_*` environment variable, and for
//! `run` a TOML file (`--config`). Precedence: flag > environment > file > default.
//! `validate()` runs before anything binds; `main` exits 64 when it fails.

use crate::AgentError;
use clap::{Args, Parser, Subcommand};
use sair_shm::Mode;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// SAIR node agent: owns the GPU-share segments of this node, holds each at its target share ρ
/// with a feedback loop on NVML-measured utilisation, and collects stage reports from sidecars.
#[derive(Debug, Parser)]
#[command(name = "sair-node-agent", version)]
pub struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "SAIR_LOG_JSON", global = true)]
    pub log_json: bool,
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

/// `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// TOML file with any of the settings below (keys are the flag names with `_` for `-`);
    /// flags and `SAIR_*` variables take precedence over it.
    #[arg(long, env = "SAIR_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub shm: ShmDir,
    /// Address of `/metrics` and `/healthz` ("none" to disable).
    #[arg(long, env = "SAIR_METRICS_LISTEN", default_value = "0.0.0.0:9464")]
    pub metrics_listen: String,
    /// UDP address receiving StageReports over QUIC ("none" to disable).
    #[arg(long, env = "SAIR_REPORT_LISTEN", default_value = "0.0.0.0:7301")]
    pub report_listen: String,
    /// Control period in milliseconds (10–10000).
    #[arg(long, env = "SAIR_CONTROL_PERIOD_MS", default_value_t = 150)]
    pub control_period_ms: u64,
    /// Path of libnvidia-ml.so.1 (default: the system's). Without NVML rates are held, not
    /// controlled.
    #[arg(long, env = "SAIR_NVML_LIB")]
    pub nvml_lib: Option<PathBuf>,
    /// Node name used as the `node` metric label (default: the host name).
    #[arg(long, env = "SAIR_NODE_NAME")]
    pub node_name: Option<String>,
    /// Seconds a segment with no live process and no activity is kept before it is collected.
    #[arg(long, env = "SAIR_GC_IDLE_SECONDS", default_value_t = 600)]
    pub gc_idle_seconds: u64,
    /// Device time an idle segment may save up, in microseconds.
    #[arg(long, env = "SAIR_BURST_US", default_value_t = 5000)]
    pub burst_us: u64,
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
}

/// `run` settings from a TOML file. Every key is optional; unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// `--shm-dir`.
    pub shm_dir: Option<PathBuf>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<String>,
    /// `--report-listen`.
    pub report_listen: Option<String>,
    /// `--control-period-ms`.
    pub control_period_ms: Option<u64>,
    /// `--nvml-lib`.
    pub nvml_lib: Option<PathBuf>,
    /// `--node-name`.
    pub node_name: Option<String>,
    /// `--gc-idle-seconds`.
    pub gc_idle_seconds: Option<u64>,
    /// `--burst-us`.
    pub burst_us: Option<u64>,
    /// `--share-headroom`.
    pub share_headroom: Option<f64>,
    /// `--max-report-keys`.
    pub max_report_keys: Option<usize>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--tls-dir`.
    pub tls_dir: Option<PathBuf>,
}

impl FileConfig {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, AgentError> {
        toml::from_str(text).map_err(|e| AgentError::Config(format!("config file: {e}")))
    }

    /// Reads and parses `path`.
    pub fn load(path: &std::path::Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AgentError::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        Self::parse(&text)
    }
}

impl RunArgs {
    /// Takes each setting from `file` unless `explicit(id)` says a flag or an environment
    /// variable gave it (`id` is the clap argument id, the field name).
    pub fn merge_file(&mut self, file: FileConfig, explicit: impl Fn(&str) -> bool) {
        macro_rules! take {
            ($($field:ident => $target:expr),* $(,)?) => {$(
                if let Some(v) = file.$field {
                    if !explicit(stringify!($field)) {
                        $target = v.into();
                    }
                }
            )*};
        }
        take!(
            shm_dir => self.shm.shm_dir,
            metrics_listen => self.metrics_listen,
            report_listen => self.report_listen,
            control_period_ms => self.control_period_ms,
            nvml_lib => self.nvml_lib,
            node_name => self.node_name,
            gc_idle_seconds => self.gc_idle_seconds,
            burst_us => self.burst_us,
            share_headroom => self.share_headroom,
            max_report_keys => self.max_report_keys,
            tls_cert => self.tls_cert,
            tls_key => self.tls_key,
            tls_dir => self.tls_dir,
        );
    }
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
    /// Checks everything that can be checked before binding.
    pub fn validate(&self) -> Result<(), AgentError> {
        if !(10..=10_000).contains(&self.control_period_ms) {
            return Err(AgentError::Config(format!(
                "--control-period-ms {} must be within 10..=10000",
                self.control_period_ms
            )));
        }
        if !(0.0..0.5).contains(&self.share_headroom) {
            return Err(AgentError::Config(format!(
                "--share-headroom {} must be within [0, 0.5)",
                self.share_headroom
            )));
        }
        if self.max_report_keys == 0 {
            return Err(AgentError::Config(
                "--max-report-keys must be positive".into(),
            ));
        }
        if self.burst_us == 0 {
            return Err(AgentError::Config("--burst-us must be positive".into()));
        }
        parse_listen("--metrics-listen", &self.metrics_listen)?;
        parse_listen("--report-listen", &self.report_listen)?;
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
    /// Device time an idle segment may save up, in microseconds.
    #[arg(long, env = "SAIR_BURST_US", default_value_t = 5000)]
    pub burst_us: u64,
    /// Print the outcome as JSON.
    #[arg(long, env = "SAIR_JSON")]
    pub json: bool,
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
    /// Milliseconds over which launches/s is sampled.
    #[arg(long, env = "SAIR_SAMPLE_MS", default_value_t = 250)]
    pub sample_ms: u64,
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
