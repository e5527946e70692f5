//! What the demo shows while it runs. On a terminal, a frame redrawn in place about once a
//! second (cursor up, clear, print: the indicatif/console technique, without their weight for
//! one table); otherwise one plain progress line per decision interval, so a log or a CI run
//! stays readable.

use std::fmt::Write as _;
use std::io::Write;

use crate::api::{DecisionLine, PipelineView};

/// Everything one frame shows.
#[derive(Debug, Clone, Default)]
pub struct Frame<'a> {
    pub policy: &'a str,
    pub pattern: &'a str,
    /// Seconds since the load started, and the run's length.
    pub t_s: f64,
    pub duration_s: f64,
    /// The pipeline, once the coordinator has answered.
    pub pipeline: Option<&'a PipelineView>,
    pub last_decision: Option<DecisionLine>,
    pub decisions: usize,
    /// The latest supervisor event (a restart), if any.
    pub event: Option<&'a str>,
    pub out: &'a str,
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |s| format!("{:.1} ms", s * 1e3))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |f| format!("{:.0}%", f * 100.0))
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

/// The multi-line frame for a terminal.
pub fn frame_text(f: &Frame<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "SAIR demo · policy {} · {} load · {:>4.0}s / {:.0}s · report → {}",
        f.policy, f.pattern, f.t_s, f.duration_s, f.out
    );
    let Some(p) = f.pipeline else {
        let _ = writeln!(s, "waiting for the coordinator's first reports…");
        return s;
    };
    let _ = writeln!(
        s,
        "{:<10} {:<4} {:>9} {:>6} {:>14} {:>6} {:>9}",
        "stage", "kind", "replicas", "ρ", "queue p99", "busy", "arrivals"
    );
    for st in &p.stages {
        let replicas = match (st.replicas, st.replicas_desired) {
            (Some(r), Some(d)) if r != d => format!("{r}→{d}"),
            (Some(r), _) => r.to_string(),
            (None, Some(d)) => format!("–→{d}"),
            (None, None) => "–".into(),
        };
        let rho = if st.kind == "gpu" {
            st.rho.map_or_else(|| "–".into(), |r| format!("{r:.2}"))
        } else {
            "–".into()
        };
        let mark = if p.bottleneck.as_deref() == Some(st.name.as_str()) {
            "  ◀ bottleneck"
        } else {
            ""
        };
        let stale = if st.stale { " (stale)" } else { "" };
        let _ = writeln!(
            s,
            "{:<10} {:<4} {:>9} {:>6} {:>14} {:>6} {:>7}/s{mark}{stale}",
            clip(&st.name, 10),
            st.kind,
            replicas,
            rho,
            ms(st.queue_wait_p99_s),
            pct(st.busy_fraction),
            st.arrival_rate
                .map_or_else(|| "–".into(), |a| format!("{a:.0}")),
        );
    }
    let _ = writeln!(
        s,
        "e2e P99 {} (SLO {}) · P50 {} · cost ${:.3}/h{}",
        ms(p.e2e_p99_s),
        ms(p.slo_p99_s),
        ms(p.e2e_p50_s),
        p.cost_per_hour.unwrap_or(0.0),
        if p.stale { " · reports stale" } else { "" }
    );
    match &f.last_decision {
        Some(d) => {
            let _ = writeln!(
                s,
                "decision {} at {:.0}s [{}] {}",
                f.decisions, d.time, d.source, d.action
            );
            let _ = writeln!(s, "  why: {}", d.rationale);
        }
        None => {
            let _ = writeln!(s, "no decision yet");
        }
    }
    if let Some(e) = f.event {
        let _ = writeln!(s, "supervisor: {}", clip(e, 110));
    }
    s
}

/// One plain progress line.
pub fn plain_line(f: &Frame<'_>) -> String {
    let mut s = format!("[{:>5.0}s/{:.0}s]", f.t_s, f.duration_s);
    match f.pipeline {
        None => s.push_str(" waiting for the coordinator's first reports"),
        Some(p) => {
            let replicas: Vec<String> = p
                .stages
                .iter()
                .map(|st| {
                    let r = st.replicas.map_or_else(|| "–".into(), |r| r.to_string());
                    match (st.kind.as_str(), st.rho) {
                        ("gpu", Some(rho)) => format!("{}={r}@{rho:.2}", st.name),
                        _ => format!("{}={r}", st.name),
                    }
                })
                .collect();
            let _ = write!(
                s,
                " e2e_p99={} replicas {} bottleneck={} cost=${:.3}/h",
                ms(p.e2e_p99_s).replace(' ', ""),
                replicas.join(","),
                p.bottleneck.as_deref().unwrap_or("-"),
                p.cost_per_hour.unwrap_or(0.0)
            );
        }
    }
    if let Some(d) = &f.last_decision {
        let _ = write!(
            s,
            " | decision {} [{}] {}: {}",
            f.decisions,
            d.source,
            clip(&d.action, 50),
            clip(&d.rationale, 80)
        );
    }
    s
}

/// Draws frames on a terminal (in place) or prints plain lines.
#[derive(Debug)]
pub struct View {
    tty: bool,
    /// Terminal columns, less one.
    width: usize,
    drawn_lines: usize,
    last_plain_s: f64,
    plain_every_s: f64,
}

impl View {
    /// A view for a terminal (`tty`) or for plain lines every `plain_every_s` seconds.
    pub fn new(tty: bool, plain_every_s: f64) -> Self {
        View {
            tty,
            width: if tty { terminal_width() } else { 200 },
            drawn_lines: 0,
            last_plain_s: f64::NEG_INFINITY,
            plain_every_s,
        }
    }

    /// Shows `f`.
    pub fn show(&mut self, f: &Frame<'_>) {
        let mut out = std::io::stdout().lock();
        let r = if self.tty {
            // A line longer than the terminal wraps, and the next redraw would then move up
            // too few rows: every line is clipped to the width.
            let text: String = frame_text(f)
                .lines()
                .map(|l| clip(l, self.width) + "\n")
                .collect();
            let mut buf = String::new();
            if self.drawn_lines > 0 {
                // Up to the first line of the previous frame, then clear to the end.
                let _ = write!(buf, "\x1b[{}F\x1b[J", self.drawn_lines);
            }
            buf.push_str(&text);
            self.drawn_lines = text.lines().count();
            out.write_all(buf.as_bytes()).and_then(|()| out.flush())
        } else {
            if f.t_s - self.last_plain_s < self.plain_every_s {
                return;
            }
            self.last_plain_s = f.t_s;
            writeln!(out, "{}", plain_line(f))
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "cannot write the live view");
        }
    }

    /// Prints a line outside the frame (the frame is redrawn below it next time).
    pub fn note(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        let r = if self.tty && self.drawn_lines > 0 {
            let r = writeln!(out, "\x1b[{}F\x1b[J{line}", self.drawn_lines);
            self.drawn_lines = 0;
            r
        } else {
            writeln!(out, "{line}")
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "cannot write the live view");
        }
    }
}

/// The terminal's width in columns less one (`stty size` on the inherited terminal; 80 when it
/// cannot say), read once: a resize during the run only clips more or less than needed.
fn terminal_width() -> usize {
    std::process::Command::new("stty")
        .arg("size")
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse::<usize>().ok())
        })
        .filter(|c| *c >= 20)
        .unwrap_or(80)
        - 1
}
