//! `sair demo`: a whole SAIR deployment on loopback, watched live, with a report at the end.
//!
//! It owns the orchestration of one demo run: finding the other binaries beside its own
//! executable, the mesh certificates, one supervised node agent, one supervised coordinator
//! with the local actuator (which starts the replicas), `sair-loadgen` against the entry
//! stage, a live terminal view polled from the coordinator's HTTP API, and the report folder
//! (`results.json`, `decisions.json`, the time series, SVG plots, `report.html`).
//!
//! It must not decide or actuate anything itself: decisions are the coordinator's, replicas
//! the local actuator's. It talks to every process only through its flags, its bound line,
//! its HTTP API and signals, as an operator would. It does not depend on `sair-coordinator`
//! (the `sair` binary in that package calls [`run`]; the reverse edge would be a cycle), so
//! the few figures defined by `sair eval` are restated in [`report`] with a pointer to theirs.

#![forbid(unsafe_code)]

pub mod api;
pub mod bins;
pub mod child;
mod error;
pub mod pipeline;
pub mod report;
mod run;
pub mod series;
pub mod view;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use sair_service::duration::parse_duration_within;

pub use error::DemoError;
pub use run::run;

/// The load patterns the demo drives (`sair-loadgen --pattern`), with parameters derived
/// from `--rate`, `--peak` and `--duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pattern {
    /// `--rate`, with one burst to `--peak` from half-way for a fifth of the run (the rest
    /// shows the scale-down).
    Burst,
    /// Poisson at `--rate` throughout.
    Poisson,
    /// Linear from `--rate` to `--peak`.
    Ramp,
    /// One sine period from `--rate` up to `--peak` and back.
    Sine,
    /// `--rate`, then `--peak` from a third of the run on.
    Step,
}

impl Pattern {
    /// The name `sair-loadgen --pattern` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Burst => "burst",
            Pattern::Poisson => "poisson",
            Pattern::Ramp => "ramp",
            Pattern::Sine => "sine",
            Pattern::Step => "step",
        }
    }
}

/// `sair demo`'s options. Every numeric option is range-checked by clap (exit 64 naming it).
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Policy the coordinator runs: sair, or a baseline (static, hpa, vpa, threshold, kpa, …).
    #[arg(long, default_value = "sair", env = "SAIR_POLICY")]
    pub policy: String,
    /// Load pattern sent to the entry stage.
    #[arg(long, value_enum, default_value_t = Pattern::Burst, env = "SAIR_PATTERN")]
    pub pattern: Pattern,
    /// How long the load runs (20s to 1h).
    #[arg(long, default_value = "3m", env = "SAIR_DURATION",
          value_parser = parse_duration_within(Duration::from_secs(20), Duration::from_secs(3600)))]
    pub duration: Duration,
    /// The coordinator's decision interval (1s to 5m).
    #[arg(long, default_value = "5s", env = "SAIR_INTERVAL",
          value_parser = parse_duration_within(Duration::from_secs(1), Duration::from_secs(300)))]
    pub interval: Duration,
    /// Base request rate, requests/second (0.1 to 5000).
    #[arg(long, default_value_t = 15.0, env = "SAIR_RATE", value_parser = parse_rate)]
    pub rate: f64,
    /// Peak request rate of burst, ramp, sine and step, requests/second (0.1 to 5000, and at
    /// least --rate).
    #[arg(long, default_value_t = 70.0, env = "SAIR_PEAK", value_parser = parse_rate)]
    pub peak: f64,
    /// OpenAI-compatible server for the sair policy's LLM selector (passed to the coordinator).
    #[arg(long, env = "SAIR_LLM_URL")]
    pub llm_url: Option<String>,
    /// Pipelines file (default: the shipped image-classification pipeline,
    /// demo/pipelines/image-classification.toml, built into the binary).
    #[arg(long, env = "SAIR_PIPELINE")]
    pub pipeline: Option<PathBuf>,
    /// Report folder: results.json, decisions.json, timeseries.{json,csv}, plots/, report.html,
    /// logs/ (checked writable before anything starts).
    #[arg(long, default_value = "out/demo", env = "SAIR_OUT")]
    pub out: PathBuf,
    /// Plain progress lines even on a terminal.
    #[arg(long, env = "SAIR_PLAIN")]
    pub plain: bool,
}

/// Request rates the demo accepts: finite, 0.1 to 5000 requests/second.
fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of requests/second"))?;
    if !(0.1..=5000.0).contains(&v) {
        return Err(format!("{s:?} must be within 0.1..=5000 requests/second"));
    }
    Ok(v)
}

impl DemoArgs {
    /// Checks what clap cannot check alone (relations between options).
    pub fn validate(&self) -> Result<(), DemoError> {
        if self.peak < self.rate {
            return Err(DemoError::Usage(format!(
                "--peak ({}) must be at least --rate ({})",
                self.peak, self.rate
            )));
        }
        if self.interval * 4 > self.duration {
            return Err(DemoError::Usage(format!(
                "--interval ({}) must leave at least four decisions in --duration ({})",
                sair_service::duration::format_duration(self.interval),
                sair_service::duration::format_duration(self.duration)
            )));
        }
        if self.policy.trim().is_empty() {
            return Err(DemoError::Usage("--policy is empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
