//! The report's plots, SVG strings drawn with plotters: end-to-end P99, replicas per stage,
//! ρ per GPU stage and cost per hour over the run, with the burst windows shaded.

use plotters::prelude::*;

use super::Inputs;
use crate::DemoError;
use crate::series::stage_names;

type Points = Vec<(f64, f64)>;

fn err(name: &str, e: impl std::fmt::Display) -> DemoError {
    DemoError::Io {
        what: "plot",
        path: format!("plots/{name}.svg").into(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn color(i: usize) -> RGBColor {
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// One plot: named series of points, an optional horizontal reference line, shaded windows.
struct Plot<'a> {
    name: &'a str,
    title: &'a str,
    y_label: &'a str,
    series: Vec<(String, Points)>,
    reference: Option<(String, f64)>,
    shade: &'a [[f64; 2]],
    x_max: f64,
}

fn draw(p: &Plot<'_>) -> Result<String, DemoError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(p.name, e))?;
        let y_top = p
            .series
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|(_, y)| *y))
            .chain(p.reference.iter().map(|(_, y)| *y * 1.2))
            .filter(|y| y.is_finite())
            .fold(0.0_f64, f64::max)
            .max(1e-9)
            * 1.1;
        let x_max = p.x_max.max(1.0);
        let mut chart = ChartBuilder::on(&root)
            .caption(p.title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_top)
            .map_err(|e| err(p.name, e))?;
        chart
            .configure_mesh()
            .x_desc("seconds since the load started")
            .y_desc(p.y_label)
            .draw()
            .map_err(|e| err(p.name, e))?;
        let shade = RGBColor(255, 200, 120).mix(0.25);
        chart
            .draw_series(
                p.shade
                    .iter()
                    .map(|w| Rectangle::new([(w[0], 0.0), (w[1], y_top)], shade.filled())),
            )
            .map_err(|e| err(p.name, e))?;
        if let Some((label, y)) = &p.reference {
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, *y), (x_max, *y)],
                    RED.stroke_width(1),
                ))
                .map_err(|e| err(p.name, e))?
                .label(label.clone())
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        for (i, (label, pts)) in p.series.iter().enumerate() {
            let c = color(i + 1);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(|e| err(p.name, e))?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(p.name, e))?;
        root.present().map_err(|e| err(p.name, e))?;
    }
    Ok(svg)
}

/// Every plot, as (file stem, SVG).
pub fn all(inputs: &Inputs<'_>) -> Result<Vec<(String, String)>, DemoError> {
    let samples: Vec<_> = inputs.samples.iter().filter(|s| s.t_s >= 0.0).collect();
    let x_max = samples
        .iter()
        .map(|s| s.t_s)
        .fold(inputs.results.duration_s, f64::max);
    let shade = &inputs.results.bursts[..];
    let pts = |g: &dyn Fn(&crate::series::Sample) -> Option<f64>| -> Points {
        samples
            .iter()
            .filter_map(|s| Some((s.t_s, g(s)?)))
            .collect()
    };
    let stage_pts = |name: &str, g: &dyn Fn(&crate::series::StageSample) -> Option<f64>| {
        pts(&|s| g(s.stages.iter().find(|st| st.name == name)?))
    };
    let names = stage_names(inputs.samples);
    let gpu: Vec<&String> = names
        .iter()
        .filter(|n| {
            samples
                .iter()
                .any(|s| s.stages.iter().any(|st| &st.name == *n && st.kind == "gpu"))
        })
        .collect();

    // Client-side per-second P99 from the load generator, beside the coordinator's view.
    let client: Points = inputs
        .loadgen
        .get("timeline")
        .and_then(|t| t.as_array())
        .map(|t| {
            t.iter()
                .filter_map(|p| Some((p.get("t")?.as_f64()? + 0.5, p.get("p99_ms")?.as_f64()?)))
                .filter(|(_, y)| y.is_finite() && *y > 0.0)
                .collect()
        })
        .unwrap_or_default();
    let p99 = Plot {
        name: "p99",
        title: "End-to-end P99",
        y_label: "ms",
        series: vec![
            (
                "coordinator (entry sidecar, per window)".into(),
                pts(&|s| s.e2e_p99_s.map(|v| v * 1e3)),
            ),
            ("client (load generator, per second)".into(), client),
        ],
        reference: inputs
            .results
            .slo_p99_ms
            .map(|slo| (format!("SLO {slo:.0} ms"), slo)),
        shade,
        x_max,
    };
    let replicas = Plot {
        name: "replicas",
        title: "Replicas per stage (serving)",
        y_label: "replicas",
        series: names
            .iter()
            .map(|n| (n.clone(), stage_pts(n, &|st| st.replicas.map(f64::from))))
            .collect(),
        reference: None,
        shade,
        x_max,
    };
    let rho = Plot {
        name: "rho",
        title: "GPU share ρ per GPU stage (target and measured)",
        y_label: "share of a GPU",
        series: gpu
            .iter()
            .flat_map(|n| {
                [
                    (format!("{n} target"), stage_pts(n, &|st| st.rho)),
                    (format!("{n} measured"), stage_pts(n, &|st| st.rho_measured)),
                ]
            })
            .collect(),
        reference: None,
        shade,
        x_max,
    };
    let cost = Plot {
        name: "cost",
        title: "Cost per hour (CPU replicas + Σρ × GPU price)",
        y_label: "$ / hour",
        series: vec![("cost".into(), pts(&|s| s.cost_per_hour))],
        reference: None,
        shade,
        x_max,
    };
    [p99, replicas, rho, cost]
        .iter()
        .map(|p| Ok((p.name.to_string(), draw(p)?)))
        .collect()
}
