//! Scenario files: a pipeline, a workload and prices, in TOML, validated before anything runs.
//!
//! Every error names the file, the field (as a TOML path such as `pipeline.stages[1].min_replicas`)
//! and the problem. Trace paths are relative to the scenario file. Format: docs/simulator.md.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use sair_loadgen::pattern::Pattern;
use serde::Deserialize;

use crate::policies::{PolicyContext, Prices, StagePlan};
use crate::policy::{StageKind, StageSpec};

/// The smallest share (GPU ρ or CPU share) a replica may hold.
pub const MIN_SHARE: f64 = 0.01;

/// Bounds checked before the simulator allocates anything, so that a scenario too large to
/// simulate is an error naming its field rather than an abort on allocation. The shipped
/// scenarios are far inside them (at most ~0.8 M arrivals, 5 stages, 12 replicas, 4 GPUs).
pub mod bounds {
    /// Arrivals a run may hold, bounded by the pattern's largest rate × `duration_s` (the
    /// simulator keeps every arrival and per-stage work, ~50 bytes per arrival and stage).
    pub const MAX_ARRIVALS: f64 = 20e6;
    /// Stages per pipeline.
    pub const MAX_STAGES: usize = 64;
    /// Replicas per stage (`max_replicas`).
    pub const MAX_REPLICAS: u32 = 10_000;
    /// GPUs (`cost.gpus`): the placement keeps one slot per GPU.
    pub const MAX_GPUS: u32 = 4_096;
    /// Control intervals (`duration_s / interval_s`): one timeline point each.
    pub const MAX_INTERVALS: f64 = 1e6;
}

/// A scenario could not be loaded: which file, which field, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct ScenarioError {
    pub path: PathBuf,
    pub kind: ScenarioErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioErrorKind {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a valid scenario: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("`{field}`: {problem}")]
    Invalid { field: String, problem: String },
    #[error("no scenario files (*.toml) in this directory")]
    EmptyDir,
}

/// How service times are distributed around their mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceDist {
    /// Lognormal with the given coefficient of variation.
    Lognormal {
        cv: f64,
    },
    Exp,
    Const,
}

/// One stage, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct StageConfig {
    pub name: String,
    pub kind: StageKind,
    /// Mean service time per request on one replica at share 1.
    pub service_s: f64,
    pub dist: ServiceDist,
    pub concurrency: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub startup_s: f64,
    pub initial_replicas: u32,
    pub initial_rho: f64,
    pub queue_capacity: Option<u64>,
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The file stem, used to name results.
    pub name: String,
    pub path: PathBuf,
    pub pipeline: String,
    pub slo_p99_s: f64,
    pub stages: Vec<StageConfig>,
    pub pattern: Pattern,
    pub duration_s: f64,
    pub prices: Prices,
    pub gpus: u32,
    pub interval_s: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    pipeline: PipelineToml,
    workload: WorkloadToml,
    cost: CostToml,
    #[serde(default)]
    control: ControlToml,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineToml {
    name: String,
    slo_p99_ms: f64,
    stages: Vec<StageToml>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum DistToml {
    Lognormal,
    Exp,
    Const,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageToml {
    name: String,
    kind: StageKind,
    service_ms: f64,
    dist: Option<DistToml>,
    cv: Option<f64>,
    concurrency: Option<u32>,
    min_replicas: u32,
    max_replicas: u32,
    startup_s: Option<f64>,
    /// Replicas at the start (default `min_replicas`).
    replicas: Option<u32>,
    /// Share per replica at the start (default 1).
    rho: Option<f64>,
    queue_capacity: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadToml {
    pattern: String,
    duration_s: f64,
    rate: Option<f64>,
    peak: Option<f64>,
    burst_every_s: Option<f64>,
    burst_len_s: Option<f64>,
    period_s: Option<f64>,
    step_at_s: Option<f64>,
    trace: Option<String>,
    speed: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CostToml {
    cpu_replica: f64,
    gpu: f64,
    #[serde(default)]
    gpus: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlToml {
    interval_s: f64,
}

impl Default for ControlToml {
    fn default() -> Self {
        Self { interval_s: 30.0 }
    }
}

/// Default coefficient of variation of a lognormal stage.
pub const DEFAULT_CV: f64 = 0.5;

struct Check {
    problems: Vec<(String, String)>,
}

impl Check {
    fn fail(&mut self, field: impl fmt::Display, problem: impl fmt::Display) {
        self.problems.push((field.to_string(), problem.to_string()));
    }

    fn positive(&mut self, field: impl fmt::Display, v: f64) {
        if !v.is_finite() || v <= 0.0 {
            self.fail(field, format!("must be a positive number, got {v}"));
        }
    }

    fn non_negative(&mut self, field: impl fmt::Display, v: f64) {
        if !v.is_finite() || v < 0.0 {
            self.fail(field, format!("must be >= 0, got {v}"));
        }
    }
}

impl Scenario {
    /// Reads and validates one scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let err = |kind| ScenarioError {
            path: path.to_path_buf(),
            kind,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.into()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let name = path
            .file_stem()
            .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
        let mut s = Self::parse(&name, &text, base).map_err(err)?;
        s.path = path.to_path_buf();
        Ok(s)
    }

    /// Loads files and every `*.toml` in directories (sorted), all or nothing.
    pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Self>, ScenarioError> {
        let mut out = Vec::new();
        for p in paths {
            if p.is_dir() {
                let rd = std::fs::read_dir(p).map_err(|e| ScenarioError {
                    path: p.clone(),
                    kind: e.into(),
                })?;
                let mut files: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                    .collect();
                files.sort();
                if files.is_empty() {
                    return Err(ScenarioError {
                        path: p.clone(),
                        kind: ScenarioErrorKind::EmptyDir,
                    });
                }
                for f in files {
                    out.push(Self::load(&f)?);
                }
            } else {
                out.push(Self::load(p)?);
            }
        }
        Ok(out)
    }

    /// Parses and validates scenario text; `base` resolves trace paths.
    pub fn parse(name: &str, text: &str, base: &Path) -> Result<Self, ScenarioErrorKind> {
        let f: FileToml = toml::from_str(text)?;
        let mut c = Check {
            problems: Vec::new(),
        };
        c.positive("pipeline.slo_p99_ms", f.pipeline.slo_p99_ms);
        if f.pipeline.stages.is_empty() {
            c.fail("pipeline.stages", "at least one stage is required");
        }
        if f.pipeline.stages.len() > bounds::MAX_STAGES {
            c.fail(
                "pipeline.stages",
                format!(
                    "{} stages, more than the simulator's bound of {}",
                    f.pipeline.stages.len(),
                    bounds::MAX_STAGES
                ),
            );
        }
        let mut names = HashSet::new();
        let mut stages = Vec::new();
        for (i, s) in f.pipeline.stages.iter().enumerate() {
            let at = |k: &str| format!("pipeline.stages[{i}].{k}");
            if !names.insert(s.name.clone()) {
                c.fail(at("name"), format!("duplicate stage name `{}`", s.name));
            }
            c.positive(at("service_ms"), s.service_ms);
            let dist = match (s.dist.unwrap_or(DistToml::Lognormal), s.cv) {
                (DistToml::Lognormal, cv) => {
                    let cv = cv.unwrap_or(DEFAULT_CV);
                    c.non_negative(at("cv"), cv);
                    ServiceDist::Lognormal { cv }
                }
                (d, Some(_)) => {
                    c.fail(
                        at("cv"),
                        format!("applies only to dist = \"lognormal\", not {d:?}"),
                    );
                    ServiceDist::Exp
                }
                (DistToml::Exp, None) => ServiceDist::Exp,
                (DistToml::Const, None) => ServiceDist::Const,
            };
            let concurrency = s.concurrency.unwrap_or(1);
            if concurrency == 0 {
                c.fail(at("concurrency"), "must be at least 1");
            }
            if s.min_replicas == 0 {
                c.fail(at("min_replicas"), "must be at least 1");
            }
            if s.max_replicas > bounds::MAX_REPLICAS {
                c.fail(
                    at("max_replicas"),
                    format!(
                        "{} is more than the simulator's bound of {}",
                        s.max_replicas,
                        bounds::MAX_REPLICAS
                    ),
                );
            }
            if s.min_replicas > s.max_replicas {
                c.fail(
                    at("min_replicas"),
                    format!(
                        "min_replicas ({}) is greater than max_replicas ({})",
                        s.min_replicas, s.max_replicas
                    ),
                );
            }
            let startup_s = s.startup_s.unwrap_or(0.0);
            c.non_negative(at("startup_s"), startup_s);
            let initial = s.replicas.unwrap_or(s.min_replicas);
            if initial < s.min_replicas || initial > s.max_replicas {
                c.fail(
                    at("replicas"),
                    format!(
                        "initial replicas {initial} outside [{}, {}]",
                        s.min_replicas, s.max_replicas
                    ),
                );
            }
            let rho = s.rho.unwrap_or(1.0);
            if !(MIN_SHARE..=1.0).contains(&rho) {
                c.fail(at("rho"), format!("must be in [{MIN_SHARE}, 1], got {rho}"));
            }
            stages.push(StageConfig {
                name: s.name.clone(),
                kind: s.kind,
                service_s: s.service_ms / 1e3,
                dist,
                concurrency,
                min_replicas: s.min_replicas,
                max_replicas: s.max_replicas,
                startup_s,
                initial_replicas: initial,
                initial_rho: rho,
                queue_capacity: s.queue_capacity,
            });
        }
        c.non_negative("cost.cpu_replica", f.cost.cpu_replica);
        c.non_negative("cost.gpu", f.cost.gpu);
        c.positive("control.interval_s", f.control.interval_s);
        let gpu_stages: Vec<&StageConfig> =
            stages.iter().filter(|s| s.kind == StageKind::Gpu).collect();
        if f.cost.gpus > bounds::MAX_GPUS {
            c.fail(
                "cost.gpus",
                format!(
                    "{} is more than the simulator's bound of {}",
                    f.cost.gpus,
                    bounds::MAX_GPUS
                ),
            );
        } else if !gpu_stages.is_empty() && f.cost.gpus == 0 {
            c.fail(
                "cost.gpus",
                "the pipeline has GPU stages but no GPUs (gpus = 0)",
            );
        } else if !gpu_stages.is_empty() {
            let shares: Vec<f64> = gpu_stages
                .iter()
                .flat_map(|s| std::iter::repeat_n(s.initial_rho, s.initial_replicas as usize))
                .collect();
            let total: f64 = shares.iter().sum();
            if total > f64::from(f.cost.gpus) + 1e-9 {
                c.fail(
                    "pipeline.stages[].rho",
                    format!(
                        "initial GPU shares sum to {total:.2} (replicas x rho), more than the {} GPUs",
                        f.cost.gpus
                    ),
                );
            } else if crate::sim::placement::pack(&shares, f.cost.gpus).is_none() {
                c.fail(
                    "pipeline.stages[].rho",
                    format!("initial GPU shares do not pack onto {} GPUs", f.cost.gpus),
                );
            }
        }
        let w = &f.workload;
        c.positive("workload.duration_s", w.duration_s);
        let pattern = workload::pattern(w, base, &mut c);
        if let Some((field, problem)) = c.problems.into_iter().next() {
            return Err(ScenarioErrorKind::Invalid { field, problem });
        }
        let pattern = pattern.ok_or_else(|| ScenarioErrorKind::Invalid {
            field: "workload.pattern".into(),
            problem: "invalid".into(),
        })?;
        if let Err(e) = pattern.validate() {
            return Err(ScenarioErrorKind::Invalid {
                field: "workload".into(),
                problem: e.to_string(),
            });
        }
        check_size(&pattern, w.duration_s, f.control.interval_s)?;
        Ok(Self {
            name: name.to_string(),
            path: PathBuf::new(),
            pipeline: f.pipeline.name,
            slo_p99_s: f.pipeline.slo_p99_ms / 1e3,
            stages,
            pattern,
            duration_s: w.duration_s,
            prices: Prices {
                cpu_replica_per_hour: f.cost.cpu_replica,
                gpu_per_hour: f.cost.gpu,
            },
            gpus: f.cost.gpus,
            interval_s: f.control.interval_s,
        })
    }

    /// What a policy may know before the run: bounds, prices, SLO, the planned peak.
    pub fn context(&self, seed: u64, state_dir: Option<PathBuf>) -> PolicyContext {
        PolicyContext {
            pipeline: self.pipeline.clone(),
            stages: self
                .stages
                .iter()
                .map(|s| StagePlan {
                    spec: StageSpec {
                        name: s.name.clone(),
                        kind: s.kind,
                        concurrency: s.concurrency,
                        min_replicas: s.min_replicas,
                        max_replicas: s.max_replicas,
                    },
                    startup_s: s.startup_s,
                    nominal_service_s: s.service_s,
                    initial_replicas: s.initial_replicas,
                    initial_rho: s.initial_rho,
                })
                .collect(),
            slo_p99_s: self.slo_p99_s,
            gpus: self.gpus,
            prices: self.prices,
            interval_s: self.interval_s,
            peak_rate_rps: self.pattern.max_rate(self.duration_s),
            seed,
            state_dir,
            llm: None,
            known_workload: Some(crate::policies::KnownWorkload {
                pattern: self.pattern.clone(),
                duration_s: self.duration_s,
            }),
        }
    }
}

/// The run's size, from the validated pattern, before anything is allocated: arrivals
/// (largest rate × duration), control intervals, and at least one arrival (a run with none has
/// no latency and no cost per request).
fn check_size(
    pattern: &Pattern,
    duration_s: f64,
    interval_s: f64,
) -> Result<(), ScenarioErrorKind> {
    let invalid = |field: &str, problem: String| {
        Err(ScenarioErrorKind::Invalid {
            field: field.into(),
            problem,
        })
    };
    // The field that sets the largest rate.
    let rate_field = match pattern {
        Pattern::Poisson { .. } => "workload.rate",
        Pattern::Trace { .. } => "workload.trace",
        _ => "workload.peak",
    };
    let max_rate = pattern.max_rate(duration_s);
    if max_rate <= 0.0 {
        return invalid(
            if rate_field == "workload.trace" {
                rate_field
            } else {
                "workload.rate"
            },
            "the arrival rate is 0 throughout the run: no request would arrive, so latency and cost per request are undefined".into(),
        );
    }
    let intervals = duration_s / interval_s;
    if !intervals.is_finite() || intervals > bounds::MAX_INTERVALS {
        return invalid(
            "workload.duration_s",
            format!(
                "{duration_s} s is {intervals:.3e} control intervals of {interval_s} s, more than the simulator's bound of {:.0e}",
                bounds::MAX_INTERVALS
            ),
        );
    }
    let arrivals = max_rate * duration_s;
    if !arrivals.is_finite() || arrivals > bounds::MAX_ARRIVALS {
        return invalid(
            rate_field,
            format!(
                "{max_rate} requests/s over workload.duration_s = {duration_s} s is up to {arrivals:.3e} arrivals, more than the simulator's bound of {:.0e}; lower the rate or the duration",
                bounds::MAX_ARRIVALS
            ),
        );
    }
    Ok(())
}

mod workload;

#[cfg(test)]
mod tests;
