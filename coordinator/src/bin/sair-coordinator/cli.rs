//! The one config type of `sair-coordinator` and how it is loaded.
//!
//! Sources, in order: flags > `SAIR_*` variables > top-level keys of the pipelines file >
//! defaults, through `sair_service::config`. `--config` is the *pipelines file* here: the
//! coordinator has one file, and its top-level keys (before the first table; long option
//! names with `_` for `-`, e.g. `interval = "10s"`) are option values, while its tables
//! (`[pipeline]`, `[cost]`, and a scenario's `[workload]`, `[control]`) describe the pipeline.
//! The overlay checks every top-level key of the file against the options of the whole
//! command tree, so the tables' names are declared on a hidden, never-run subcommand
//! ([`FILE_TABLES`]): the overlay then accepts them as keys and never reads them as options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, CommandFactory, FromArgMatches, Parser, ValueEnum};
use sair_service::config::{EnvSource, Loaded};
use sair_service::duration::parse_duration_within;
use sair_service::logging::LogArgs;

/// The hidden subcommand that declares the pipelines file's tables (see the module docs).
pub const FILE_TABLES: &str = "pipelines-file-tables";

/// The tables of a pipelines file.
const TABLES: [&str; 4] = ["pipeline", "cost", "workload", "control"];

/// Shortest and longest `--interval`.
pub const INTERVAL_MIN: Duration = Duration::from_secs(1);
pub const INTERVAL_MAX: Duration = Duration::from_secs(3600);

/// Which actuator carries replica counts out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActuatorKind {
    /// A process supervisor on this machine (each stage's `run` table).
    Local,
    /// Decide and log only (shadow mode beside what runs today).
    DryRun,
    /// Deployments' scale subresource, each stage's `kubernetes` table, with a Lease for
    /// leadership (docs/kubernetes.md).
    Kubernetes,
}

#[derive(Debug, Parser)]
#[command(
    name = "sair-coordinator",
    version,
    about = "SAIR coordinator: observes a pipeline through the mesh, decides with a policy every interval, acts through an actuator"
)]
pub struct Cli {
    /// The pipelines file (TOML, docs/coordinator.md): `[pipeline]` and `[cost]` as in the
    /// simulator's scenarios, plus each stage's `run` table. Its top-level keys may set the
    /// options below.
    #[arg(long, env = "SAIR_CONFIG")]
    pub config: PathBuf,
    /// The control interval (1s..=1h): between full decisions. The policy is asked at its own
    /// cadence, as `sair eval` asks it (sair: every 5 s, hpa: 15 s), others every interval.
    #[arg(long, env = "SAIR_INTERVAL", default_value = "30s", value_parser = parse_duration_within(INTERVAL_MIN, INTERVAL_MAX))]
    pub interval: Duration,
    /// The policy: sair (and its ablations) or a baseline (static, hpa, vpa, threshold, kpa).
    #[arg(long, env = "SAIR_POLICY", default_value = "sair")]
    pub policy: String,
    /// Where the coordinator keeps what must survive a restart: the sair policy's experience
    /// store (`<dir>/<pipeline>/<policy>/`), `decisions.jsonl`, and the local actuator's
    /// work dir (`<dir>/local`). Without it the store lives in memory and nothing is written.
    #[arg(long, env = "SAIR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Size at which `<state-dir>/decisions.jsonl` is rotated to `decisions.jsonl.1` (the
    /// older copy replaced), in MiB, 0–10240: at most twice this stays on disk. 0: no journal
    /// (the status API's `/v1/decisions` still serves the newest).
    #[arg(long, env = "SAIR_DECISIONS_LOG_MAX_MIB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(0..=sair_coordinator::live::journal::MAX_MIB))]
    pub decisions_log_max_mib: u64,
    /// OpenAI-compatible server for the sair policy's `llm` selector, e.g.
    /// http://127.0.0.1:18080/v1. Without it the `model` selector decides.
    #[arg(long, env = "SAIR_LLM_URL")]
    pub llm_url: Option<String>,
    /// Model name sent to the LLM server.
    #[arg(long, env = "SAIR_LLM_MODEL", default_value = "smollm2-135m-instruct")]
    pub llm_model: String,
    /// Name of the environment variable holding the LLM server's API key.
    #[arg(long, env = "SAIR_LLM_API_KEY_ENV")]
    pub llm_api_key_env: Option<String>,
    /// Who carries replica counts out: local (process supervisor), kubernetes (Deployments'
    /// scale) or dry-run (log only).
    #[arg(long, env = "SAIR_ACTUATOR", value_enum)]
    pub actuator: ActuatorKind,
    /// Address of the status API (`/v1/pipelines`, `/v1/decisions`, `/metrics`, `/healthz`);
    /// port 0 picks one, announced on stdout as role `http`. `none`: no API.
    #[arg(long, env = "SAIR_HTTP_LISTEN", default_value = "127.0.0.1:9480")]
    pub http_listen: String,
    /// A report is stale after this many of its windows without a change (1..=100).
    #[arg(long, env = "SAIR_STALE_WINDOWS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub stale_windows: u32,
    /// Decisions kept for `/v1/decisions` (2..=100000).
    #[arg(long, env = "SAIR_DECISION_HISTORY", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    pub decision_history: u64,
    #[command(flatten)]
    pub mesh: crate::mesh::MeshOptions,
    #[command(flatten)]
    pub local: LocalArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Options of `--actuator local`.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Where the local actuator writes the endpoints files and the replicas' logs (default:
    /// `<state-dir>/local`, else a directory under the system's temporary directory).
    #[arg(long, env = "SAIR_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Where the stages' bare program names (and `sair-sidecar`) are looked up first
    /// (default: beside this executable).
    #[arg(long, env = "SAIR_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// The node agent's report address (`host:port`), given to the sidecars it starts
    /// (sidecar `--agent`). Without it the sidecars do not report and nothing is observed.
    #[arg(long, env = "SAIR_AGENT_REPORT")]
    pub agent_report: Option<String>,
    /// The agent's report certificate (PEM) the sidecars trust (sidecar `--agent-ca`).
    #[arg(
        long,
        env = "SAIR_AGENT_CA",
        conflicts_with = "agent_insecure_skip_verify"
    )]
    pub agent_ca: Option<PathBuf>,
    /// Sidecars skip verifying the agent's certificate (loopback demos only).
    #[arg(long, env = "SAIR_AGENT_INSECURE_SKIP_VERIFY")]
    pub agent_insecure_skip_verify: bool,
    /// The agent's segment directory: GPU replicas get a segment there.
    #[arg(long, env = "SAIR_SHM_DIR")]
    pub shm_dir: Option<PathBuf>,
    /// `libsair_intercept.so`, preloaded into GPU replicas.
    #[arg(long, env = "SAIR_INTERCEPT_LIB")]
    pub intercept_lib: Option<PathBuf>,
}

/// Options of `--actuator kubernetes`.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeArgs {
    /// Kubeconfig file (default: `KUBECONFIG` / `~/.kube/config`, else in-cluster).
    #[arg(long, env = "SAIR_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the leadership Lease (default: the client's namespace).
    #[arg(long, env = "SAIR_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the leadership Lease.
    #[arg(long, env = "SAIR_LEASE_NAME", default_value = sair_actuator::kubernetes::DEFAULT_LEASE_NAME)]
    pub lease_name: String,
    /// The Lease's duration, whole seconds (3s..=1h).
    #[arg(long, env = "SAIR_LEASE_DURATION", default_value = "15s", value_parser = parse_duration_within(Duration::from_secs(3), Duration::from_secs(3600)))]
    pub lease_duration: Duration,
}

/// The command with the hidden subcommand that declares the file's tables.
pub fn command() -> clap::Command {
    Cli::command().subcommand(
        clap::Command::new(FILE_TABLES)
            .hide(true)
            .about("(not a command: declares the pipelines file's tables to the config overlay)")
            .args(TABLES.map(|t| Arg::new(t).long(t).hide(true))),
    )
}

/// Why the command line could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The overlay's own error (it prints and exits itself).
    Config(sair_service::ConfigError),
    /// Someone ran the hidden subcommand.
    NotACommand,
}

/// Parses `args` with the overlay (module docs): the options, and where each came from.
pub fn load(
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString>>,
    env: &dyn EnvSource,
) -> Result<(Cli, Loaded<()>), LoadError> {
    let (matches, loaded) =
        sair_service::config::load_command(command(), args, env).map_err(LoadError::Config)?;
    if matches.subcommand_name().is_some() {
        return Err(LoadError::NotACommand);
    }
    let cli = Cli::from_arg_matches(&matches)
        .map_err(|e| LoadError::Config(sair_service::ConfigError::Clap(e)))?;
    Ok((cli, loaded))
}
