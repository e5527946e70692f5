//! `sair`: the SAIR command-line tool. `sair eval` runs policies on simulated pipelines;
//! `sair certs` makes the mesh's cluster CA and member certificates (its exit codes: certs.rs).
//!
//! Configuration, through `sair_service::config`: flags > `SAIR_*` variables > the TOML file
//! named by `--config` / `SAIR_CONFIG` (keys are the long option names with `_` for `-`) >
//! defaults. Logs go to stderr at `warn` unless `RUST_LOG` says otherwise; `-v` shows the
//! per-decision log. Exit codes (sysexits): 0 success (and `--help`), 64 a bad flag, variable,
//! config file, scenario or policy name, 73 an output or state directory that cannot be
//! written, 70 an internal error.

#![forbid(unsafe_code)]

mod certs;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Parser, Subcommand};
use sair_coordinator::eval::{self, EvalPlan};
use sair_coordinator::policies::{self, UnknownPolicy};
use sair_coordinator::sair::selector::llm::LlmConfig;
use sair_coordinator::scenario::Scenario;
use sair_service::config::{self, ProcessEnv};
use sair_service::exit::Exit;
use sair_service::logging::{LogArgs, init_tracing};

/// The log filter when `RUST_LOG` is unset and no `-v` is given: a first run shows the
/// progress bar and the tables, not one line per decision.
const DEFAULT_LOG: &str = "warn";

#[derive(Debug, Parser)]
#[command(
    name = "sair",
    version,
    about = "SAIR: autoscaling for multi-stage ML inference pipelines"
)]
struct Cli {
    /// TOML file of option values; keys are the long option names with `_` for `-`.
    #[arg(long, global = true, env = "SAIR_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run policies on simulated pipelines and compare P99, cost and SLO violations.
    Eval(EvalArgs),
    /// Add the SAIR sidecar to Kubernetes workloads (YAML in, YAML out; exit 2 on bad input).
    Inject(sair_coordinator::inject::cli::InjectArgs),
    /// Make the mesh's cluster CA (`init`) and member certificates (`issue`).
    Certs(certs::CertsArgs),
    /// Run a whole SAIR deployment on loopback (node agent, coordinator, replicas, load),
    /// watch it live and write a report (docs/demo.md).
    Demo(sair_demo::DemoArgs),
}

#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// Scenario files or directories of `*.toml` scenarios.
    #[arg(long, required = true, num_args = 1.., env = "SAIR_SCENARIO", value_delimiter = ',')]
    scenario: Vec<PathBuf>,
    /// Policies, comma-separated: static, hpa, vpa, threshold, kpa, sair, sair-no-...
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "static,hpa,vpa,threshold,kpa",
        env = "SAIR_POLICY"
    )]
    policy: Vec<String>,
    /// Seeds per (scenario, policy): runs use seeds 1..=N (1 ≤ N ≤ 10000).
    #[arg(long, default_value_t = 3, env = "SAIR_SEEDS", value_parser = clap::value_parser!(u64).range(1..=eval::MAX_SEEDS))]
    seeds: u64,
    /// Output directory for results.json, results.csv, results.md and plots/.
    #[arg(long, default_value = "out/eval", env = "SAIR_OUT")]
    out: PathBuf,
    /// Parallel runs (default: available cores).
    #[arg(long, env = "SAIR_JOBS")]
    jobs: Option<usize>,
    /// Durable state for learning policies, one directory per run under this one.
    #[arg(long, env = "SAIR_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, env = "SAIR_QUIET")]
    quiet: bool,
    /// OpenAI-compatible server for the sair* policies' `llm` selector, e.g.
    /// http://127.0.0.1:18080/v1 (scripts/llm-local.sh starts one). Without it the `model`
    /// selector decides.
    #[arg(long, env = "SAIR_LLM_URL")]
    llm_url: Option<String>,
    /// Model name sent to the LLM server.
    #[arg(long, env = "SAIR_LLM_MODEL", default_value = "smollm2-135m-instruct")]
    llm_model: String,
    /// Name of the environment variable holding the LLM server's API key (the key itself never
    /// goes on the command line).
    #[arg(long, env = "SAIR_LLM_API_KEY_ENV")]
    llm_api_key_env: Option<String>,
}

/// Why a command failed: the exit code and what to print.
type Failure = (Exit, anyhow::Error);

fn main() -> ExitCode {
    let loaded = match config::load::<Cli>(std::env::args_os(), &ProcessEnv) {
        Ok(l) => l,
        Err(e) => return e.report("sair"),
    };
    init_tracing(&loaded.value.log, DEFAULT_LOG);
    loaded.log_sources();
    let verbose = loaded.value.log.verbose;
    let result = match loaded.value.command {
        Command::Eval(a) => run_eval(a),
        // Prints its own errors: bad input exits 2 (docs/kubernetes.md).
        Command::Inject(a) => return sair_coordinator::inject::cli::run(a),
        Command::Certs(a) => certs::run(a),
        Command::Demo(a) => sair_demo::run(a, verbose)
            .map(|_| ())
            .map_err(|e| (e.exit(), anyhow!(e))),
    };
    match result {
        Ok(()) => Exit::Ok.into(),
        Err((code, e)) => {
            eprintln!("sair: error: {e:#}");
            code.into()
        }
    }
}

fn run_eval(a: EvalArgs) -> Result<(), Failure> {
    let policies: Vec<String> = a
        .policy
        .iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if policies.is_empty() {
        return Err((
            Exit::Usage,
            anyhow!(
                "no policy given; known policies: {}",
                policies::known().join(", ")
            ),
        ));
    }
    let scenarios = Scenario::load_all(&a.scenario).map_err(|e| {
        (
            Exit::Usage,
            anyhow!(e).context("bad scenario, nothing was run"),
        )
    })?;
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let plan = EvalPlan {
        scenarios,
        policies,
        seeds: a.seeds,
        jobs,
        state_dir: a.state_dir,
        progress: !a.quiet,
        llm: a.llm_url.as_deref().map(|url| {
            LlmConfig::new(url, &a.llm_model, a.llm_api_key_env.as_deref(), &ProcessEnv)
        }),
    };
    eval::check_policies(&plan).map_err(|e| (Exit::Usage, anyhow!(e)))?;
    // Before any simulation: a bad --out fails now, not after every run.
    eval::prepare_out(&a.out).map_err(|e| {
        (
            Exit::CantCreate,
            anyhow!(e).context("--out cannot be written, nothing was run"),
        )
    })?;
    let total = plan.scenarios.len() * plan.policies.len() * plan.seeds as usize;
    tracing::info!(runs = total, jobs, "evaluating");
    let start = std::time::Instant::now();
    let runs = eval::run_all(&plan).map_err(|e| {
        let code = match e {
            // Names were checked above: what is left is a policy that could not open its
            // state (the experience store under --state-dir).
            UnknownPolicy::Failed { .. } => Exit::CantCreate,
            UnknownPolicy::Unknown { .. } => Exit::Internal,
        };
        (code, anyhow!(e))
    })?;
    let wall = start.elapsed().as_secs_f64();
    let events: u64 = runs.iter().map(|r| r.record.events).sum();
    let md = eval::write_outputs(&a.out, &plan.scenarios, &plan.policies, &runs)
        .map_err(|e| (Exit::CantCreate, anyhow!(e)))?;
    println!("{md}");
    println!(
        "{total} runs in {wall:.1} s on {jobs} threads ({:.2} M simulated events/s); wrote {}",
        events as f64 / wall / 1e6,
        a.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests;
