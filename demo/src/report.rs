//! The report folder written at the end of a run: `results.json`, `decisions.json`,
//! `timeseries.json` / `timeseries.csv`, `plots/*.svg` and a self-contained `report.html`.
//!
//! The figures are defined as `sair eval` defines them (coordinator/src/sim/result.rs,
//! `RunResult`), restated here because this crate cannot depend on the coordinator (see the
//! crate doc), measured on real requests by `sair-loadgen` instead of simulated ones:
//! - `p50_ms`, `p99_ms`: end-to-end latency of completed requests, from their intended send
//!   time (the load generator's report);
//! - `slo_violation_rate`: (late + failed + dropped + undispatched) / scheduled, late = completed
//!   above the pipeline's `slo_p99_ms` (eval: (late + dropped + unfinished) / arrivals);
//! - `cost_per_1k`: the effective cost of the run (the integral of the coordinator's cost per
//!   hour: CPU replicas × price + Σρ × GPU price) per 1,000 completed requests.

mod html;
mod plots;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::DemoError;
use crate::series::{self, Sample};

/// `results.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Results {
    pub policy: String,
    pub pattern: String,
    pub pipeline: String,
    pub duration_s: f64,
    pub interval_s: f64,
    pub slo_p99_ms: Option<f64>,
    /// Whole-run latency of completed requests (client side).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Request-weighted mean of the per-second client-side P99 over the burst windows (the
    /// pattern's peaks); null for patterns without bursts.
    pub burst_p99_ms: Option<f64>,
    /// The burst windows, `[start, end)` in seconds since the load started.
    pub bursts: Vec<[f64; 2]>,
    /// See the module doc; null when the load generator's report did not count late requests.
    pub slo_violation_rate: Option<f64>,
    pub late: Option<u64>,
    pub cost_usd: f64,
    pub cost_per_1k: Option<f64>,
    pub scheduled: u64,
    pub sent: u64,
    pub completed: u64,
    pub dropped: u64,
    pub undispatched: u64,
    /// Failed requests by kind, as the load generator counts them (`http_5xx`, `timeout`, …).
    pub errors: BTreeMap<String, u64>,
    /// The generator could not keep its schedule: latencies include its own lag.
    pub fell_behind: bool,
    pub decisions: usize,
    /// Restarts of supervised processes (agent, coordinator) during the run.
    pub restarts: BTreeMap<String, u32>,
    /// Stopped early by Ctrl-C or SIGTERM.
    pub interrupted: bool,
    /// Where the load generator's own report is (every field it measured).
    pub loadgen_report: String,
}

fn u(v: &serde_json::Value, k: &str) -> u64 {
    v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0)
}

fn f(v: &serde_json::Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_f64().filter(|x| x.is_finite())
}

/// The burst windows of `sair-loadgen --pattern burst` over `duration_s`.
pub fn burst_windows(every_s: f64, len_s: f64, duration_s: f64) -> Vec<[f64; 2]> {
    let mut out = Vec::new();
    if every_s <= 0.0 {
        return out;
    }
    let mut k = 1.0;
    while k * every_s < duration_s && out.len() < 10_000 {
        out.push([k * every_s, (k * every_s + len_s).min(duration_s)]);
        k += 1.0;
    }
    out
}

/// The request-weighted mean of the per-second P99 of `loadgen`'s timeline over `windows`.
pub fn windowed_p99_ms(loadgen: &serde_json::Value, windows: &[[f64; 2]]) -> Option<f64> {
    let timeline = loadgen.get("timeline")?.as_array()?;
    let (mut num, mut den) = (0.0, 0.0);
    for p in timeline {
        let (Some(t), Some(p99)) = (f(p, &["t"]), f(p, &["p99_ms"])) else {
            continue;
        };
        let n = u(p, "completed") as f64;
        if n > 0.0 && windows.iter().any(|w| t >= w[0] && t < w[1]) {
            num += p99 * n;
            den += n;
        }
    }
    (den > 0.0).then(|| num / den)
}

/// What the run's parts produced, for [`write()`].
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub results: Results,
    /// The load generator's report (`null` if it wrote none).
    pub loadgen: &'a serde_json::Value,
    pub samples: &'a [Sample],
    pub decisions: &'a [serde_json::Value],
    /// Supervisor events with their time, for the report.
    pub events: &'a [(f64, String)],
}

/// Fills the figures that come from the load generator and the samples.
pub fn fill(results: &mut Results, loadgen: &serde_json::Value, samples: &[Sample]) {
    results.scheduled = u(loadgen, "scheduled");
    results.sent = u(loadgen, "sent");
    results.completed = u(loadgen, "completed");
    results.dropped = u(loadgen, "dropped");
    results.undispatched = u(loadgen, "undispatched");
    results.fell_behind = loadgen
        .get("fell_behind")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    results.errors = loadgen
        .get("errors")
        .and_then(|e| e.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    results.p50_ms = f(loadgen, &["latency_ms", "p50"]);
    results.p99_ms = f(loadgen, &["latency_ms", "p99"]);
    results.late = loadgen.get("late").and_then(serde_json::Value::as_u64);
    let failed: u64 = results.errors.values().sum();
    results.slo_violation_rate = match results.late {
        Some(late) if results.scheduled > 0 => Some(
            (late + failed + results.dropped + results.undispatched) as f64
                / results.scheduled as f64,
        ),
        _ => None,
    };
    results.burst_p99_ms = if results.bursts.is_empty() {
        None
    } else {
        windowed_p99_ms(loadgen, &results.bursts)
    };
    results.cost_usd = series::cost_usd(samples);
    results.cost_per_1k =
        (results.completed > 0).then(|| results.cost_usd / results.completed as f64 * 1000.0);
}

fn write_file(path: &Path, text: &str, what: &'static str) -> Result<(), DemoError> {
    std::fs::write(path, text).map_err(DemoError::io(what, path))
}

fn json<T: Serialize>(v: &T) -> String {
    // Serialising plain data to a string cannot fail; an empty object is a safe fallback.
    serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into())
}

/// Writes the report folder `out`; returns the path of `report.html`.
pub fn write(out: &Path, inputs: &Inputs<'_>) -> Result<std::path::PathBuf, DemoError> {
    write_file(&out.join("results.json"), &json(&inputs.results), "results")?;
    write_file(
        &out.join("decisions.json"),
        &json(&inputs.decisions),
        "decisions",
    )?;
    write_file(
        &out.join("timeseries.json"),
        &json(&inputs.samples),
        "time series",
    )?;
    write_file(
        &out.join("timeseries.csv"),
        &series::csv(inputs.samples),
        "time series",
    )?;
    let plots_dir = out.join("plots");
    std::fs::create_dir_all(&plots_dir).map_err(DemoError::io("plots folder", &plots_dir))?;
    let plots = plots::all(inputs)?;
    for (name, svg) in &plots {
        write_file(&plots_dir.join(format!("{name}.svg")), svg, "plot")?;
    }
    let page = html::page(inputs, &plots);
    let path = out.join("report.html");
    write_file(&path, &page, "report")?;
    Ok(path)
}

#[cfg(test)]
mod tests;
