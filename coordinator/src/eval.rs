//! `sair eval`: every (scenario, policy, seed) through the simulator, in parallel, summarised
//! as tables, `results.json`/`results.csv`/`results.md` and SVG plots, with every decision in
//! `decisions.jsonl` (one [`DecisionRecord`] per line, keyed by scenario, policy and seed).

mod plots;
mod report;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::policies::{self, UnknownPolicy};
use crate::record::{DecisionRecord, Recorder, Recording};
use crate::scenario::Scenario;
use crate::sim::{self, TimelinePoint};

pub use report::{Summary, markdown, summarise};

/// One run's record, as written to `results.json` (the field names are the contract).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub scenario: String,
    pub policy: String,
    pub seed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub slo_violation_rate: f64,
    pub cost_per_1k: f64,
    pub whole_gpu_cost_per_1k: f64,
    pub actions: u64,
    pub bottleneck_accuracy: Option<f64>,
    pub completed: u64,
    pub dropped: u64,
    pub arrivals: u64,
    pub unfinished: u64,
    pub mean_ms: f64,
    pub events: u64,
    pub wall_s: f64,
}

/// A run's record, its timeline (for the plots) and its decisions, rewards filled in.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub record: Record,
    pub timeline: Vec<TimelinePoint>,
    pub decisions: Vec<DecisionRecord>,
}

/// The file `sair eval` writes the decisions to, in its output folder.
pub const DECISIONS_FILE: &str = "decisions.jsonl";

/// One line of `decisions.jsonl`: the run's keys, then the decision record's fields.
#[derive(Serialize)]
struct DecisionLine<'a> {
    scenario: &'a str,
    seed: u64,
    #[serde(flatten)]
    record: &'a DecisionRecord,
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalPlan {
    pub scenarios: Vec<Scenario>,
    pub policies: Vec<String>,
    pub seeds: u64,
    pub jobs: usize,
    /// Durable state for learning policies: `<dir>/<scenario>/<policy>/<seed>`.
    pub state_dir: Option<PathBuf>,
    pub progress: bool,
    /// The LLM server the `sair*` policies' `llm` selector asks; `None`: `model` selector.
    pub llm: Option<crate::sair::selector::llm::LlmConfig>,
}

/// Builds every policy once against every scenario, so a bad name fails before anything runs.
pub fn check_policies(plan: &EvalPlan) -> Result<(), UnknownPolicy> {
    for sc in &plan.scenarios {
        for p in &plan.policies {
            policies::build(p, &sc.context(0, None))?;
        }
    }
    Ok(())
}

/// The seeds a plan runs: 1..=N.
pub fn seeds(n: u64) -> impl Iterator<Item = u64> {
    1..=n
}

/// Runs one (scenario, policy, seed).
pub fn run_one(
    sc: &Scenario,
    policy: &str,
    seed: u64,
    state_dir: Option<&Path>,
    llm: Option<&crate::sair::selector::llm::LlmConfig>,
) -> Result<RunOutput, UnknownPolicy> {
    let dir = state_dir.map(|d| d.join(&sc.name).join(policy).join(seed.to_string()));
    let mut ctx = sc.context(seed, dir);
    ctx.llm = llm.cloned();
    let p = policies::build(policy, &ctx)?;
    // A run's length bounds its decisions, so the recorder need not.
    let mut p = Recording::new(p, Recorder::unbounded());
    let start = Instant::now();
    let r = sim::run(sc, &mut p, seed);
    let wall_s = start.elapsed().as_secs_f64();
    Ok(RunOutput {
        record: Record {
            scenario: sc.name.clone(),
            policy: policy.to_string(),
            seed,
            p50_ms: r.p50_s * 1e3,
            p99_ms: r.p99_s * 1e3,
            slo_violation_rate: r.slo_violation_rate,
            cost_per_1k: r.cost_per_1k(),
            whole_gpu_cost_per_1k: r.whole_gpu_cost_per_1k(),
            actions: r.actions,
            bottleneck_accuracy: r.bottleneck_accuracy(),
            completed: r.completed,
            dropped: r.dropped,
            arrivals: r.arrivals,
            unfinished: r.unfinished,
            mean_ms: r.mean_s * 1e3,
            events: r.events,
            wall_s,
        },
        timeline: r.timeline,
        decisions: p.into_recorder().into_records(),
    })
}

/// Runs the whole plan on `jobs` threads; results in (scenario, policy, seed) order.
pub fn run_all(plan: &EvalPlan) -> Result<Vec<RunOutput>, UnknownPolicy> {
    let mut tasks = Vec::new();
    for (si, _) in plan.scenarios.iter().enumerate() {
        for p in &plan.policies {
            for seed in seeds(plan.seeds) {
                tasks.push((si, p.as_str(), seed));
            }
        }
    }
    // Longest scenarios first keeps the threads busy to the end.
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by(|&a, &b| {
        let w = |i: usize| plan.scenarios[tasks[i].0].duration_s;
        w(b).total_cmp(&w(a)).then(a.cmp(&b))
    });
    let bar = if plan.progress {
        let b = indicatif::ProgressBar::new(tasks.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs  {msg}",
        ) {
            b.set_style(style);
        }
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<RunOutput, UnknownPolicy>>>> =
        Mutex::new((0..tasks.len()).map(|_| None).collect());
    let jobs = plan.jobs.clamp(1, tasks.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    let (si, p, seed) = tasks[i];
                    let sc = &plan.scenarios[si];
                    let out = run_one(sc, p, seed, plan.state_dir.as_deref(), plan.llm.as_ref());
                    bar.set_message(format!("{} {p} seed {seed}", sc.name));
                    bar.inc(1);
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(out);
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    let results = results.into_inner().unwrap_or_default();
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(UnknownPolicy::Failed {
                    name: "?".into(),
                    reason: "a worker thread panicked".into(),
                })
            })
        })
        .collect()
}

/// Errors writing the outputs. The cause is the error's `source()`, not repeated in its
/// message, so a report that prints the chain (`{:#}` in `sair`) names it once.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode results")]
    Json(#[from] serde_json::Error),
    #[error("cannot draw {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
}

fn write(path: &Path, data: &str) -> Result<(), OutputError> {
    std::fs::write(path, data).map_err(|source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The most seeds per (scenario, policy) `sair eval` takes (`--seeds`).
pub const MAX_SEEDS: u64 = 10_000;

/// Checks before any simulation that `out` is (or can be made) a writable directory with its
/// `plots/`: creates them and writes and removes a probe file, so that a bad `--out` fails in
/// a second rather than after every run.
pub fn prepare_out(out: &Path) -> Result<(), OutputError> {
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).map_err(|source| OutputError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let probe = out.join(".sair-eval-probe");
    write(&probe, "")?;
    std::fs::remove_file(&probe).map_err(|source| OutputError::Io {
        path: probe.clone(),
        source,
    })?;
    // The decisions file is the one output a directory or a read-only file could already
    // occupy in a reused folder: open it for writing now (without truncating what is there),
    // and leave no empty file behind if there was none.
    let decisions = out.join(DECISIONS_FILE);
    let existed = decisions.exists();
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&decisions)
        .map_err(|source| OutputError::Io {
            path: decisions.clone(),
            source,
        })?;
    if !existed {
        std::fs::remove_file(&decisions).map_err(|source| OutputError::Io {
            path: decisions.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Writes every run's decisions to `path`, one JSON object per line, runs in the order given
/// ((scenario, policy, seed) from [`run_all`]), each run's decisions oldest first.
pub fn write_decisions(path: &Path, runs: &[RunOutput]) -> Result<(), OutputError> {
    let io = |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for run in runs {
        for record in &run.decisions {
            let line = DecisionLine {
                scenario: &run.record.scenario,
                seed: run.record.seed,
                record,
            };
            serde_json::to_writer(&mut w, &line)?;
            w.write_all(b"\n").map_err(io)?;
        }
    }
    w.flush().map_err(io)
}

/// Writes results.json, results.csv, results.md, timelines.json (seed 1), decisions.jsonl
/// (every run) and the plots into `out`; returns the markdown table.
pub fn write_outputs(
    out: &Path,
    scenarios: &[Scenario],
    policies: &[String],
    runs: &[RunOutput],
) -> Result<String, OutputError> {
    std::fs::create_dir_all(out).map_err(|source| OutputError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let records: Vec<&Record> = runs.iter().map(|r| &r.record).collect();
    write(
        &out.join("results.json"),
        &serde_json::to_string_pretty(&records)?,
    )?;
    write(&out.join("results.csv"), &report::csv(&records))?;
    let summaries = summarise(scenarios, policies, &records);
    let md = markdown(&summaries) + &report::frontier_markdown(&summaries);
    write(&out.join("results.md"), &md)?;
    let timelines: Vec<serde_json::Value> = runs
        .iter()
        .filter(|r| r.record.seed == 1)
        .map(|r| {
            serde_json::json!({
                "scenario": r.record.scenario,
                "policy": r.record.policy,
                "seed": r.record.seed,
                "timeline": r.timeline,
            })
        })
        .collect();
    write(
        &out.join("timelines.json"),
        &serde_json::to_string(&timelines)?,
    )?;
    write_decisions(&out.join(DECISIONS_FILE), runs)?;
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).map_err(|source| OutputError::Io {
        path: plots.clone(),
        source,
    })?;
    for sc in scenarios {
        plots::scenario_plots(&plots, sc, policies, runs)?;
    }
    Ok(md)
}
