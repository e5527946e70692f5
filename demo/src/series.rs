//! The run's time series: one [`Sample`] per poll of the coordinator (about a second apart),
//! written as `timeseries.json` and `timeseries.csv` and drawn in the plots.

use std::fmt::Write as _;

use serde::Serialize;

use crate::api::PipelineView;

/// One stage at one time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StageSample {
    pub name: String,
    pub kind: String,
    pub replicas: Option<u32>,
    pub replicas_desired: Option<u32>,
    pub rho: Option<f64>,
    pub rho_measured: Option<f64>,
    pub arrival_rate: Option<f64>,
    pub queue_wait_p99_s: Option<f64>,
    pub busy_fraction: Option<f64>,
    pub stale: bool,
}

/// The pipeline at one time, `t_s` seconds after the load started (negative before it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub e2e_p99_s: Option<f64>,
    pub e2e_p50_s: Option<f64>,
    pub arrival_rate: Option<f64>,
    pub cost_per_hour: Option<f64>,
    pub bottleneck: Option<String>,
    pub stale: bool,
    pub stages: Vec<StageSample>,
}

impl Sample {
    /// The sample of `p` at `t_s`.
    pub fn of(t_s: f64, p: &PipelineView) -> Self {
        Sample {
            t_s,
            e2e_p99_s: finite(p.e2e_p99_s),
            e2e_p50_s: finite(p.e2e_p50_s),
            arrival_rate: finite(p.arrival_rate),
            cost_per_hour: finite(p.cost_per_hour),
            bottleneck: p.bottleneck.clone(),
            stale: p.stale,
            stages: p
                .stages
                .iter()
                .map(|s| StageSample {
                    name: s.name.clone(),
                    kind: s.kind.clone(),
                    replicas: s.replicas,
                    replicas_desired: s.replicas_desired,
                    rho: finite(s.rho),
                    rho_measured: finite(s.rho_measured),
                    arrival_rate: finite(s.arrival_rate),
                    queue_wait_p99_s: finite(s.queue_wait_p99_s),
                    busy_fraction: finite(s.busy_fraction),
                    stale: s.stale,
                })
                .collect(),
        }
    }
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Stage names in the order of the first sample that has stages.
pub fn stage_names(samples: &[Sample]) -> Vec<String> {
    samples
        .iter()
        .find(|s| !s.stages.is_empty())
        .map(|s| s.stages.iter().map(|st| st.name.clone()).collect())
        .unwrap_or_default()
}

/// The effective cost of the run in $: the integral of cost per hour over the samples (each
/// sample's rate holds until the next), as `sair eval` integrates its timeline.
pub fn cost_usd(samples: &[Sample]) -> f64 {
    samples
        .windows(2)
        .filter(|w| w[0].t_s >= 0.0)
        .map(|w| w[0].cost_per_hour.unwrap_or(0.0) * (w[1].t_s - w[0].t_s).max(0.0) / 3600.0)
        .sum()
}

/// The CSV: one row per sample, per stage columns `<stage>_<field>`; empty cells for unknowns.
pub fn csv(samples: &[Sample]) -> String {
    let names = stage_names(samples);
    let mut out =
        String::from("t_s,e2e_p99_s,e2e_p50_s,arrival_rate,cost_per_hour,bottleneck,stale");
    for n in &names {
        for f in [
            "replicas",
            "replicas_desired",
            "rho",
            "rho_measured",
            "arrival_rate",
            "queue_wait_p99_s",
            "busy_fraction",
        ] {
            let _ = write!(out, ",{n}_{f}");
        }
    }
    out.push('\n');
    let num = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    let int = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_default();
    for s in samples {
        let _ = write!(
            out,
            "{:.3},{},{},{},{},{},{}",
            s.t_s,
            num(s.e2e_p99_s),
            num(s.e2e_p50_s),
            num(s.arrival_rate),
            num(s.cost_per_hour),
            s.bottleneck.as_deref().unwrap_or(""),
            s.stale
        );
        for n in &names {
            let st = s.stages.iter().find(|st| &st.name == n);
            let st = st.cloned().unwrap_or_default();
            let _ = write!(
                out,
                ",{},{},{},{},{},{},{}",
                int(st.replicas),
                int(st.replicas_desired),
                num(st.rho),
                num(st.rho_measured),
                num(st.arrival_rate),
                num(st.queue_wait_p99_s),
                num(st.busy_fraction)
            );
        }
        out.push('\n');
    }
    out
}
