//! `sair`: the SAIR command-line tool. `sair eval` runs policies on simulated pipelines.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sair_coordinator::eval::{self, EvalPlan};
use sair_coordinator::policies;
use sair_coordinator::sair::selector::llm::{LlmConfig, ProcessEnv};
use sair_coordinator::scenario::Scenario;

/// Exit code for a bad configuration or input (sysexits EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "sair",
    version,
    about = "SAIR: autoscaling for multi-stage ML inference pipelines"
)]
struct Cli {
    /// Log as JSON instead of human-readable lines.
    #[arg(long, global = true, env = "SAIR_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run policies on simulated pipelines and compare P99, cost and SLO violations.
    Eval(EvalArgs),
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
    /// Seeds per (scenario, policy): runs use seeds 1..=N.
    #[arg(long, default_value_t = 3, env = "SAIR_SEEDS")]
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sub = tracing_subscriber::fmt().with_writer(std::io::stderr);
    if cli.log_json {
        sub.json().init();
    } else {
        sub.init();
    }
    match cli.command {
        Command::Eval(a) => run_eval(a),
    }
}

fn run_eval(a: EvalArgs) -> ExitCode {
    if a.seeds == 0 {
        eprintln!("error: --seeds must be at least 1");
        return ExitCode::from(EXIT_CONFIG);
    }
    let policies: Vec<String> = a
        .policy
        .iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if policies.is_empty() {
        eprintln!(
            "error: no policy given; known policies: {}",
            policies::known().join(", ")
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let scenarios = match Scenario::load_all(&a.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: bad scenario, nothing was run: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
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
    if let Err(e) = eval::check_policies(&plan) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let total = plan.scenarios.len() * plan.policies.len() * plan.seeds as usize;
    tracing::info!(runs = total, jobs, "evaluating");
    let start = std::time::Instant::now();
    let runs = match eval::run_all(&plan) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let wall = start.elapsed().as_secs_f64();
    let events: u64 = runs.iter().map(|r| r.record.events).sum();
    match eval::write_outputs(&a.out, &plan.scenarios, &plan.policies, &runs) {
        Ok(md) => {
            println!("{md}");
            println!(
                "{total} runs in {wall:.1} s on {jobs} threads ({:.2} M simulated events/s); wrote {}",
                events as f64 / wall / 1e6,
                a.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
