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

/// Where a policy stands against the oracle frontier of its scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FrontierGap {
    /// Extra cost over the cheapest frontier point at this P99 or better (−0.1 = 10 % cheaper).
    Cost(f64),
    /// No frontier point is as fast: extra P99 over the fastest one at this cost or lower.
    P99(f64),
    /// Faster and cheaper than every frontier point.
    Beyond,
}

impl FrontierGap {
    /// The gap as one number (a fraction), for medians; `Beyond` is 0.
    pub fn value(self) -> f64 {
        match self {
            FrontierGap::Cost(x) | FrontierGap::P99(x) => x,
            FrontierGap::Beyond => 0.0,
        }
    }
}

/// Whether a policy reads the future: the `oracle*` runs, and `static`, sized for the known
/// peak with the true service times.
pub fn clairvoyant(policy: &str) -> bool {
    policy.starts_with("oracle") || policy == "static"
}

/// The (P99, cost) points of one scenario's clairvoyant runs ([`clairvoyant`]) that no other
/// such run dominates: the frontier. Only computed when some `oracle*` policy ran.
pub fn oracle_frontier<'a>(rows: &'a [Summary], scenario: &str) -> Vec<&'a Summary> {
    let here = |r: &&Summary| r.scenario == scenario;
    if !rows
        .iter()
        .filter(here)
        .any(|r| r.policy.starts_with("oracle"))
    {
        return Vec::new();
    }
    let pts: Vec<&Summary> = rows
        .iter()
        .filter(|r| here(r) && clairvoyant(&r.policy))
        .collect();
    pts.iter()
        .copied()
        .filter(|a| {
            !pts.iter().any(|b| {
                b.p99_ms <= a.p99_ms
                    && b.cost_per_1k <= a.cost_per_1k
                    && (b.p99_ms < a.p99_ms || b.cost_per_1k < a.cost_per_1k)
            })
        })
        .collect()
}

/// A point's gap to a frontier: the extra cost at equal (or better) P99 when some frontier
/// point is as fast; otherwise the extra P99 at equal (or lower) cost.
pub fn frontier_gap(frontier: &[&Summary], p99_ms: f64, cost_per_1k: f64) -> Option<FrontierGap> {
    if frontier.is_empty() {
        return None;
    }
    let cheapest = frontier
        .iter()
        .filter(|f| f.p99_ms <= p99_ms)
        .map(|f| f.cost_per_1k)
        .fold(f64::INFINITY, f64::min);
    if cheapest.is_finite() && cheapest > 0.0 {
        return Some(FrontierGap::Cost(cost_per_1k / cheapest - 1.0));
    }
    let fastest = frontier
        .iter()
        .filter(|f| f.cost_per_1k <= cost_per_1k)
        .map(|f| f.p99_ms)
        .fold(f64::INFINITY, f64::min);
    if fastest.is_finite() && fastest > 0.0 {
        return Some(FrontierGap::P99(p99_ms / fastest - 1.0));
    }
    Some(FrontierGap::Beyond)
}

/// Markdown: every policy's distance to its scenario's oracle frontier (the clairvoyant ones
/// excepted), then the median per policy. Empty when no `oracle*` policy ran.
pub fn frontier_markdown(rows: &[Summary]) -> String {
    let mut s = String::new();
    let mut per_policy: Vec<(String, Vec<f64>)> = Vec::new();
    let mut scenarios: Vec<&str> = Vec::new();
    for r in rows {
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    for sc in scenarios {
        let frontier = oracle_frontier(rows, sc);
        if frontier.is_empty() {
            continue;
        }
        if s.is_empty() {
            s.push_str("\n### Distance to the oracle frontier (means over seeds)\n\n");
            s.push_str("Frontier: the non-dominated runs of the policies that read the future (`oracle-*`, `static`). Cost: extra cost over the cheapest frontier point at this P99 or better; P99: no frontier point is as fast, extra P99 over the fastest at this cost or lower.\n\n");
            s.push_str(
                "| scenario | frontier (P99 ms @ $/1k) | policy | P99 ms | $/1k req | gap |\n",
            );
            s.push_str("|---|---|---|---:|---:|---|\n");
        }
        let mut f: Vec<&&Summary> = frontier.iter().collect();
        f.sort_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
        let shown = f
            .iter()
            .map(|p| format!("{:.0}@{:.5}", p.p99_ms, p.cost_per_1k))
            .collect::<Vec<_>>()
            .join(", ");
        for r in rows
            .iter()
            .filter(|r| r.scenario == sc && !clairvoyant(&r.policy))
        {
            let Some(gap) = frontier_gap(&frontier, r.p99_ms, r.cost_per_1k) else {
                continue;
            };
            let text = match gap {
                FrontierGap::Cost(x) => format!("cost {:+.0}%", x * 100.0),
                FrontierGap::P99(x) => format!("P99 {:+.0}%", x * 100.0),
                FrontierGap::Beyond => "beyond".into(),
            };
            let _ = writeln!(
                s,
                "| {sc} | {shown} | {} | {:.1} | {:.5} | {text} |",
                r.policy, r.p99_ms, r.cost_per_1k
            );
            match per_policy.iter_mut().find(|(p, _)| *p == r.policy) {
                Some((_, v)) => v.push(gap.value()),
                None => per_policy.push((r.policy.clone(), vec![gap.value()])),
            }
        }
    }
    if !per_policy.is_empty() {
        s.push_str("\n| policy | median gap over scenarios |\n|---|---:|\n");
        for (p, mut v) in per_policy {
            v.sort_by(f64::total_cmp);
            let m = if v.len() % 2 == 1 {
                v[v.len() / 2]
            } else {
                (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
            };
            let _ = writeln!(s, "| {p} | {:+.0}% |", m * 100.0);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(policy: &str, p99_ms: f64, cost_per_1k: f64) -> Summary {
        Summary {
            scenario: "s".into(),
            pipeline: "p".into(),
            slo_ms: 100.0,
            policy: policy.into(),
            runs: 1,
            p99_ms,
            p50_ms: 0.0,
            slo_violation_rate: 0.0,
            cost_per_1k,
            whole_gpu_cost_per_1k: cost_per_1k,
            actions: 0.0,
            bottleneck_accuracy: None,
            completed: 0.0,
            dropped: 0.0,
        }
    }

    #[test]
    fn gaps_to_the_oracle_frontier() {
        let rows = vec![
            row("oracle-30", 20.0, 2.0),
            row("oracle-60", 40.0, 1.0),
            row("oracle-90", 50.0, 1.5), // dominated by oracle-60
            row("sair", 45.0, 1.2),
            row("hpa", 10.0, 3.0),
            row("cheap", 5.0, 0.5),
        ];
        let f = oracle_frontier(&rows, "s");
        assert_eq!(f.len(), 2);
        // At P99 45 ms, the cheapest frontier point that fast costs 1.0: +20 %.
        match frontier_gap(&f, 45.0, 1.2) {
            Some(FrontierGap::Cost(x)) => assert!((x - 0.2).abs() < 1e-9),
            g => panic!("{g:?}"),
        }
        // Faster than the frontier: extra P99 against the fastest point it can afford.
        match frontier_gap(&f, 10.0, 3.0) {
            Some(FrontierGap::P99(x)) => assert!((x + 0.5).abs() < 1e-9),
            g => panic!("{g:?}"),
        }
        assert_eq!(frontier_gap(&f, 5.0, 0.5), Some(FrontierGap::Beyond));
        let md = frontier_markdown(&rows);
        assert!(
            md.contains("| s | 20@2.00000, 40@1.00000 | sair | 45.0 | 1.20000 | cost +20% |"),
            "{md}"
        );
    }
}
