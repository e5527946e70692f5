//! `report.html`: one self-contained page (inline CSS and SVG, no script, no external URL),
//! so it opens from a file, a CI artifact or an e-mail attachment alike.

use std::fmt::Write as _;

use super::Inputs;
use crate::api::DecisionLine;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn opt(v: Option<f64>, unit: &str, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{x:.digits$}{unit}"))
}

/// The page.
pub fn page(inputs: &Inputs<'_>, plots: &[(String, String)]) -> String {
    let r = &inputs.results;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>SAIR demo report: {pipeline}, policy {policy}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1000px}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;\
         padding:4px 8px;text-align:left;vertical-align:top}}th{{background:#f4f4f4}}\
         .plot{{margin:1em 0}}code{{background:#f4f4f4}}</style></head><body>\n\
         <h1 id=\"title\">SAIR demo: {pipeline}, policy <code>{policy}</code></h1>\n\
         <p>{pattern} load for {dur:.0} s, decisions every {iv:.0} s{interrupted}.</p>\n",
        pipeline = escape(&r.pipeline),
        policy = escape(&r.policy),
        pattern = escape(&r.pattern),
        dur = r.duration_s,
        iv = r.interval_s,
        interrupted = if r.interrupted {
            " (stopped early by a signal)"
        } else {
            ""
        },
    );
    let failed: u64 = r.errors.values().sum();
    let errors = if r.errors.is_empty() {
        "none".to_string()
    } else {
        r.errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rows = [
        ("P99 (end to end, client side)", opt(r.p99_ms, " ms", 1)),
        ("P50", opt(r.p50_ms, " ms", 1)),
        ("P99 during the bursts", opt(r.burst_p99_ms, " ms", 1)),
        ("SLO (P99)", opt(r.slo_p99_ms, " ms", 0)),
        (
            "SLO violation rate",
            opt(r.slo_violation_rate.map(|v| v * 100.0), " %", 2),
        ),
        ("Cost per 1k requests", opt(r.cost_per_1k, " $", 5)),
        ("Cost of the run", format!("{:.5} $", r.cost_usd)),
        (
            "Requests",
            format!(
                "{} scheduled, {} completed, {} failed, {} dropped",
                r.scheduled, r.completed, failed, r.dropped
            ),
        ),
        ("Failures by kind", errors),
        ("Decisions", r.decisions.to_string()),
        (
            "Restarts",
            if r.restarts.values().all(|n| *n == 0) {
                "none".into()
            } else {
                r.restarts
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
    ];
    s.push_str("<h2>Results</h2>\n<table id=\"results\">\n");
    for (k, v) in rows {
        let _ = writeln!(s, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(&v));
    }
    s.push_str(
        "</table>\n<p>Definitions as in <code>sair eval</code>: docs/demo.md. \
                Shaded: the burst windows.</p>\n<h2>Over time</h2>\n",
    );
    for (name, svg) in plots {
        let _ = writeln!(
            s,
            "<div class=\"plot\" id=\"plot-{}\">{svg}</div>",
            escape(name)
        );
    }
    if !inputs.events.is_empty() {
        s.push_str("<h2>Supervisor events</h2>\n<ul>\n");
        for (t, e) in inputs.events {
            let _ = writeln!(s, "<li>{t:.0} s: {}</li>", escape(e));
        }
        s.push_str("</ul>\n");
    }
    let _ = writeln!(
        s,
        "<h2>Decisions ({})</h2>\n<table id=\"decisions\"><tr><th>time (s)</th><th>source</th>\
         <th>bottleneck</th><th>action</th><th>rationale</th></tr>",
        inputs.decisions.len()
    );
    for d in inputs.decisions.iter().map(DecisionLine::of) {
        let _ = writeln!(
            s,
            "<tr><td>{:.0}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            d.time,
            escape(&d.source),
            escape(d.bottleneck.as_deref().unwrap_or("–")),
            escape(&d.action),
            escape(&d.rationale)
        );
    }
    s.push_str(
        "</table>\n<p>Files beside this page: results.json, decisions.json, timeseries.json, \
         timeseries.csv, plots/, loadgen.json, logs/.</p>\n</body></html>\n",
    );
    s
}
