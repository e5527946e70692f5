//! Tables: per scenario and policy, means over seeds; CSV of every run.

use std::fmt::Write;

use super::Record;
use crate::scenario::Scenario;

/// One row of the summary table: a policy on a scenario, averaged over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub scenario: String,
    pub pipeline: String,
    pub slo_ms: f64,
    pub policy: String,
    pub runs: usize,
    pub p99_ms: f64,
    pub p50_ms: f64,
    pub slo_violation_rate: f64,
    pub cost_per_1k: f64,
    pub whole_gpu_cost_per_1k: f64,
    pub actions: f64,
    pub bottleneck_accuracy: Option<f64>,
    pub completed: f64,
    pub dropped: f64,
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { s / f64::from(n) }
}

/// Means over seeds, in scenario then policy order.
pub fn summarise(scenarios: &[Scenario], policies: &[String], records: &[&Record]) -> Vec<Summary> {
    let mut out = Vec::new();
    for sc in scenarios {
        for p in policies {
            let rs: Vec<&&Record> = records
                .iter()
                .filter(|r| r.scenario == sc.name && &r.policy == p)
                .collect();
            if rs.is_empty() {
                continue;
            }
            let acc: Vec<f64> = rs.iter().filter_map(|r| r.bottleneck_accuracy).collect();
            out.push(Summary {
                scenario: sc.name.clone(),
                pipeline: sc.pipeline.clone(),
                slo_ms: sc.slo_p99_s * 1e3,
                policy: p.clone(),
                runs: rs.len(),
                p99_ms: mean(rs.iter().map(|r| r.p99_ms)),
                p50_ms: mean(rs.iter().map(|r| r.p50_ms)),
                slo_violation_rate: mean(rs.iter().map(|r| r.slo_violation_rate)),
                cost_per_1k: mean(rs.iter().map(|r| r.cost_per_1k)),
                whole_gpu_cost_per_1k: mean(rs.iter().map(|r| r.whole_gpu_cost_per_1k)),
                actions: mean(rs.iter().map(|r| r.actions as f64)),
                bottleneck_accuracy: (!acc.is_empty()).then(|| mean(acc.into_iter())),
                completed: mean(rs.iter().map(|r| r.completed as f64)),
                dropped: mean(rs.iter().map(|r| r.dropped as f64)),
            });
        }
    }
    out
}

/// Markdown: one table per scenario.
pub fn markdown(rows: &[Summary]) -> String {
    let mut s = String::new();
    let mut current = None;
    for r in rows {
        if current != Some(&r.scenario) {
            current = Some(&r.scenario);
            let _ = write!(
                s,
                "\n### {} ({}, SLO P99 {:.0} ms, mean of {} seeds)\n\n",
                r.scenario, r.pipeline, r.slo_ms, r.runs
            );
            s.push_str("| policy | P99 ms | P50 ms | SLO viol. | $/1k req | whole-GPU $/1k | actions | bottleneck acc. |\n");
            s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        }
        let acc = r
            .bottleneck_accuracy
            .map_or_else(|| "–".to_string(), |a| format!("{:.0}%", a * 100.0));
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | {:.2}% | {:.5} | {:.5} | {:.0} | {} |",
            r.policy,
            r.p99_ms,
            r.p50_ms,
            r.slo_violation_rate * 100.0,
            r.cost_per_1k,
            r.whole_gpu_cost_per_1k,
            r.actions,
            acc
        );
    }
    s
}

/// Every run as CSV, same fields as results.json.
pub fn csv(records: &[&Record]) -> String {
    let mut s = String::from(
        "scenario,policy,seed,p50_ms,p99_ms,slo_violation_rate,cost_per_1k,whole_gpu_cost_per_1k,actions,bottleneck_accuracy,completed,dropped,arrivals,unfinished,mean_ms,events,wall_s\n",
    );
    for r in records {
        let acc = r
            .bottleneck_accuracy
            .map_or(String::new(), |a| format!("{a:.4}"));
        let _ = writeln!(
            s,
            "{},{},{},{:.3},{:.3},{:.6},{:.6},{:.6},{},{},{},{},{},{},{:.3},{},{:.3}",
            r.scenario,
            r.policy,
            r.seed,
            r.p50_ms,
            r.p99_ms,
            r.slo_violation_rate,
            r.cost_per_1k,
            r.whole_gpu_cost_per_1k,
            r.actions,
            acc,
            r.completed,
            r.dropped,
            r.arrivals,
            r.unfinished,
            r.mean_ms,
            r.events,
            r.wall_s
        );
    }
    s
}
