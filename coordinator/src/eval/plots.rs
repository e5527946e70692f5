//! SVG plots per scenario: P99 over time, allocation over time (replicas × share per stage),
//! and cost per 1k requests against P99 for every run.

use std::path::Path;

use plotters::prelude::*;

use super::{OutputError, RunOutput};
use crate::scenario::Scenario;

fn err(path: &Path, e: impl std::fmt::Display) -> OutputError {
    OutputError::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn color(i: usize) -> RGBColor {
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// The three plots of one scenario; timelines come from each policy's first seed.
pub fn scenario_plots(
    dir: &Path,
    sc: &Scenario,
    policies: &[String],
    runs: &[RunOutput],
) -> Result<(), OutputError> {
    let first: Vec<(usize, &RunOutput)> = policies
        .iter()
        .enumerate()
        .filter_map(|(pi, p)| {
            runs.iter()
                .filter(|r| r.record.scenario == sc.name && &r.record.policy == p)
                .min_by_key(|r| r.record.seed)
                .map(|r| (pi, r))
        })
        .collect();
    latency(&dir.join(format!("{}-latency.svg", sc.name)), sc, &first)?;
    allocation(&dir.join(format!("{}-allocation.svg", sc.name)), sc, &first)?;
    scatter(
        &dir.join(format!("{}-cost-p99.svg", sc.name)),
        sc,
        policies,
        runs,
    )
}

fn latency(path: &Path, sc: &Scenario, runs: &[(usize, &RunOutput)]) -> Result<(), OutputError> {
    let slo_ms = sc.slo_p99_s * 1e3;
    let top = runs
        .iter()
        .flat_map(|(_, r)| r.timeline.iter().map(|p| p.p99_s * 1e3))
        .fold(slo_ms * 1.2, f64::max)
        .min(slo_ms * 10.0);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{}: P99 per {:.0} s interval (seed 1)",
                sc.name, sc.interval_s
            ),
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..sc.duration_s, 0f64..top)
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("P99 (ms, clipped at 10x SLO)")
        .draw()
        .map_err(|e| err(path, e))?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, slo_ms), (sc.duration_s, slo_ms)],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| err(path, e))?
        .label("SLO")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLACK));
    for &(pi, r) in runs {
        let c = color(pi);
        chart
            .draw_series(LineSeries::new(
                r.timeline.iter().map(|p| (p.t_s, (p.p99_s * 1e3).min(top))),
                c.stroke_width(2),
            ))
            .map_err(|e| err(path, e))?
            .label(r.record.policy.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

fn allocation(path: &Path, sc: &Scenario, runs: &[(usize, &RunOutput)]) -> Result<(), OutputError> {
    let k = sc.stages.len();
    let root = SVGBackend::new(path, (900, 220 * k as u32 + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let root = root
        .titled(
            &format!(
                "{}: allocation (replicas x share) per stage, seed 1",
                sc.name
            ),
            ("sans-serif", 20),
        )
        .map_err(|e| err(path, e))?;
    let areas = root.split_evenly((k, 1));
    for (i, area) in areas.iter().enumerate() {
        let top = runs
            .iter()
            .flat_map(|(_, r)| {
                r.timeline
                    .iter()
                    .map(|p| f64::from(p.replicas[i]) * p.rho[i])
            })
            .fold(1.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{} ({:?})", sc.stages[i].name, sc.stages[i].kind),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(25)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..sc.duration_s, 0f64..top)
            .map_err(|e| err(path, e))?;
        chart.configure_mesh().draw().map_err(|e| err(path, e))?;
        for &(pi, r) in runs {
            let c = color(pi);
            let s = chart
                .draw_series(LineSeries::new(
                    r.timeline
                        .iter()
                        .map(|p| (p.t_s, f64::from(p.replicas[i]) * p.rho[i])),
                    c.stroke_width(2),
                ))
                .map_err(|e| err(path, e))?;
            if i == 0 {
                s.label(r.record.policy.clone()).legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 15, y)], c.stroke_width(2))
                });
            }
        }
        if i == 0 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(path, e))?;
        }
    }
    root.present().map_err(|e| err(path, e))
}

fn scatter(
    path: &Path,
    sc: &Scenario,
    policies: &[String],
    runs: &[RunOutput],
) -> Result<(), OutputError> {
    let pts: Vec<(usize, f64, f64)> = runs
        .iter()
        .filter(|r| r.record.scenario == sc.name)
        .filter_map(|r| {
            let pi = policies.iter().position(|p| *p == r.record.policy)?;
            let (x, y) = (r.record.p99_ms, r.record.cost_per_1k);
            (x.is_finite() && y.is_finite()).then_some((pi, x, y))
        })
        .collect();
    let xmax = pts.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let ymax = pts.iter().map(|p| p.2).fold(1e-6, f64::max) * 1.1;
    let root = SVGBackend::new(path, (700, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: cost vs P99, every run", sc.name),
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("P99 (ms)")
        .y_desc("effective cost per 1k requests ($)")
        .draw()
        .map_err(|e| err(path, e))?;
    for (pi, name) in policies.iter().enumerate() {
        let c = color(pi);
        chart
            .draw_series(
                pts.iter()
                    .filter(|p| p.0 == pi)
                    .map(|p| Circle::new((p.1, p.2), 5, c.filled())),
            )
            .map_err(|e| err(path, e))?
            .label(name.clone())
            .legend(move |(x, y)| Circle::new((x + 7, y), 5, c.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}
