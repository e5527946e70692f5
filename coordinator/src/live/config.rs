//! The pipelines file of `sair-coordinator --config`: the simulator's `[pipeline]` and `[cost]`
//! tables (docs/simulator.md), plus how each stage's replicas run (`run` for the local
//! actuator, `kubernetes` for the Kubernetes one). A pipeline tuned in `sair eval` is deployed
//! with the same file.
//!
//! The file is checked with the scenario parser itself ([`Scenario::parse`]), so the two can
//! never disagree on what a valid pipeline is: the per-stage `run`/`kubernetes` tables are
//! taken out, a stage without `service_ms` gets a placeholder (live, the service time is
//! measured; the operator's figure only sizes the `static` plan), and a file without
//! `[workload]` gets an inert one (live, arrivals are measured, not scheduled). Top-level keys
//! that are not tables are the coordinator's own options (the binary's config overlay reads
//! them) and are ignored here.
//!
//! Every error names the file, the field as a TOML path and the problem, and is found before
//! anything starts.

use std::path::{Path, PathBuf};

use crate::policies::PolicyContext;
use crate::policy::StageKind;
use crate::scenario::{Scenario, ScenarioErrorKind};

/// The tables of a pipelines file the simulator does not read.
const STAGE_EXTRAS: [&str; 2] = ["run", "kubernetes"];

/// Placeholder service time (ms) for a stage without `service_ms` (see the module docs).
const PLACEHOLDER_SERVICE_MS: f64 = 1.0;

/// The inert workload of a file without `[workload]`: it only satisfies the scenario parser;
/// nothing live reads it ([`PipelinesFile::planned_peak_rps`] is `None` then).
const INERT_WORKLOAD: &str = "pattern = \"poisson\"\nrate = 1.0\nduration_s = 60.0\n";

/// A pipelines file could not be used: which file, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    pub problem: String,
}

/// How one stage's replicas run, as written in the file (each actuator reads its own table).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StageRun {
    /// `[pipeline.stages.run]`: the local actuator's table (`sair_actuator::local`'s
    /// `LocalStageRun`), kept as TOML until the actuator deserialises it.
    pub local: Option<toml::Value>,
    /// `[pipeline.stages.kubernetes]`: the Kubernetes actuator's table.
    pub kubernetes: Option<toml::Value>,
}

/// A validated pipelines file.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelinesFile {
    pub path: PathBuf,
    /// The pipeline, its SLO, stages, bounds, initial allocation, prices and GPUs, validated
    /// exactly as `sair eval` validates a scenario.
    pub scenario: Scenario,
    /// Whether the file had its own `[workload]` (a scenario file): then the `static` plan
    /// sizes for its peak as in `sair eval`.
    pub has_workload: bool,
    /// Per stage, in pipeline order.
    pub runs: Vec<StageRun>,
    /// Stages whose `service_ms` was given (the others carry the placeholder).
    pub service_given: Vec<bool>,
}

impl PipelinesFile {
    /// Reads and validates a pipelines file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let err = |problem: String| ConfigError {
            path: path.to_path_buf(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut f = Self::parse(&text, base).map_err(err)?;
        f.path = path.to_path_buf();
        Ok(f)
    }

    /// Parses and validates the text of a pipelines file; `base` resolves trace paths of a
    /// `[workload]`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| format!("not valid TOML: {e}"))?;
        // Option keys of the coordinator (not tables) belong to the binary's overlay.
        table.retain(|_, v| v.is_table() || v.is_array());
        let has_workload = table.contains_key("workload");
        let Some(stages) = table
            .get_mut("pipeline")
            .and_then(toml::Value::as_table_mut)
            .and_then(|p| p.get_mut("stages"))
            .and_then(toml::Value::as_array_mut)
        else {
            return Err(
                "`pipeline.stages`: a [pipeline] table with at least one [[pipeline.stages]] is required"
                    .into(),
            );
        };
        let mut runs = Vec::with_capacity(stages.len());
        let mut service_given = Vec::with_capacity(stages.len());
        for (i, stage) in stages.iter_mut().enumerate() {
            let Some(stage) = stage.as_table_mut() else {
                return Err(format!("`pipeline.stages[{i}]`: must be a table"));
            };
            let mut run = StageRun::default();
            for extra in STAGE_EXTRAS {
                if let Some(v) = stage.remove(extra) {
                    if !v.is_table() {
                        return Err(format!(
                            "`pipeline.stages[{i}].{extra}`: must be a table ([pipeline.stages.{extra}])"
                        ));
                    }
                    match extra {
                        "run" => run.local = Some(v),
                        _ => run.kubernetes = Some(v),
                    }
                }
            }
            service_given.push(stage.contains_key("service_ms"));
            stage
                .entry("service_ms")
                .or_insert(toml::Value::Float(PLACEHOLDER_SERVICE_MS));
            runs.push(run);
        }
        if !has_workload {
            let inert: toml::Table = INERT_WORKLOAD
                .parse()
                .map_err(|e| format!("internal: inert workload: {e}"))?;
            table.insert("workload".into(), toml::Value::Table(inert));
        }
        let scenario_text =
            toml::to_string(&table).map_err(|e| format!("internal: re-encoding: {e}"))?;
        let scenario = Scenario::parse("pipelines", &scenario_text, base).map_err(|e| match e {
            // The re-encoded text's line numbers mean nothing to the operator: the message only.
            ScenarioErrorKind::Parse(e) => format!("not a valid pipelines file: {}", e.message()),
            other => other.to_string(),
        })?;
        let f = Self {
            path: PathBuf::new(),
            scenario,
            has_workload,
            runs,
            service_given,
        };
        f.check_names()?;
        Ok(f)
    }

    /// Names end up in mesh keys (`report/<p>/<s>/<r>`, `ctl/rho/<p>/<s>`) and segment names
    /// (`<p>.<s>.<replica>`): a `/`, a `.` or a non-printable character would make a key that
    /// names another stage, or none.
    fn check_names(&self) -> Result<(), String> {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        let what = "use 1-63 ASCII letters, digits, `-` or `_` (it names mesh keys and segments)";
        if !ok(&self.scenario.pipeline) {
            return Err(format!(
                "`pipeline.name`: {:?} is not a valid name; {what}",
                self.scenario.pipeline
            ));
        }
        for (i, s) in self.scenario.stages.iter().enumerate() {
            if !ok(&s.name) {
                return Err(format!(
                    "`pipeline.stages[{i}].name`: {:?} is not a valid name; {what}",
                    s.name
                ));
            }
        }
        Ok(())
    }

    /// The pipeline's name.
    pub fn pipeline(&self) -> &str {
        &self.scenario.pipeline
    }

    /// Index of the stage called `name`.
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.scenario.stages.iter().position(|s| s.name == name)
    }

    /// Stage names, in pipeline order.
    pub fn stage_names(&self) -> Vec<&str> {
        self.scenario
            .stages
            .iter()
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Indices of the GPU stages.
    pub fn gpu_stages(&self) -> Vec<usize> {
        self.scenario
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == StageKind::Gpu)
            .map(|(i, _)| i)
            .collect()
    }

    /// The highest arrival rate the file plans for: its `[workload]`'s peak, if it has one.
    pub fn planned_peak_rps(&self) -> Option<f64> {
        self.has_workload
            .then(|| self.scenario.pattern.max_rate(self.scenario.duration_s))
    }

    /// What a policy may know before it starts, as `sair eval` builds it, minus the future:
    /// no known workload (the `oracle` refuses to run live), the planned peak only when the
    /// file has a `[workload]`, and the interval the coordinator decides at.
    pub fn context(
        &self,
        interval_s: f64,
        seed: u64,
        state_dir: Option<PathBuf>,
        llm: Option<crate::sair::selector::llm::LlmConfig>,
    ) -> PolicyContext {
        let mut ctx = self.scenario.context(seed, state_dir);
        ctx.known_workload = None;
        ctx.interval_s = interval_s;
        ctx.llm = llm;
        ctx.peak_rate_rps = self.planned_peak_rps().unwrap_or(0.0);
        ctx
    }
}

#[cfg(test)]
mod tests;
