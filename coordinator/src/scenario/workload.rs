//! The `[workload]` table: which parameters each pattern takes, turned into a
//! `sair_loadgen` [`Pattern`].

use std::path::Path;

use sair_loadgen::pattern::{self, Pattern};

use super::{Check, WorkloadToml};

/// Which pattern parameters each pattern takes (TOML names); the rest must be absent.
pub(super) fn pattern(w: &WorkloadToml, base: &Path, c: &mut Check) -> Option<Pattern> {
    const KNOWN: &str = "poisson, ramp, burst, sine, step, trace";
    let given: [(&str, bool); 8] = [
        ("rate", w.rate.is_some()),
        ("peak", w.peak.is_some()),
        ("burst_every_s", w.burst_every_s.is_some()),
        ("burst_len_s", w.burst_len_s.is_some()),
        ("period_s", w.period_s.is_some()),
        ("step_at_s", w.step_at_s.is_some()),
        ("trace", w.trace.is_some()),
        ("speed", w.speed.is_some()),
    ];
    let takes: &[&str] = match w.pattern.as_str() {
        "poisson" => &["rate"],
        "ramp" => &["rate", "peak"],
        "burst" => &["rate", "peak", "burst_every_s", "burst_len_s"],
        "sine" => &["rate", "peak", "period_s"],
        "step" => &["rate", "peak", "step_at_s"],
        "trace" => &["trace", "speed"],
        other => {
            c.fail(
                "workload.pattern",
                format!("unknown pattern `{other}`; known patterns: {KNOWN}"),
            );
            return None;
        }
    };
    for (k, present) in given {
        if present && !takes.contains(&k) {
            c.fail(
                format!("workload.{k}"),
                format!("does not apply to pattern `{}`", w.pattern),
            );
        }
    }
    let mut need = |k: &str, v: Option<f64>, positive: bool| -> f64 {
        match v {
            None => {
                c.fail(
                    format!("workload.{k}"),
                    format!("missing; pattern `{}` needs it", w.pattern),
                );
                0.0
            }
            Some(x) => {
                if positive {
                    c.positive(format!("workload.{k}"), x);
                } else {
                    c.non_negative(format!("workload.{k}"), x);
                }
                x
            }
        }
    };
    let p = match w.pattern.as_str() {
        "poisson" => Pattern::Poisson {
            rate: need("rate", w.rate, false),
        },
        "ramp" => Pattern::Ramp {
            rate: need("rate", w.rate, false),
            peak: need("peak", w.peak, false),
        },
        "burst" => Pattern::Burst {
            rate: need("rate", w.rate, false),
            peak: need("peak", w.peak, false),
            every_s: need("burst_every_s", w.burst_every_s, true),
            len_s: need("burst_len_s", w.burst_len_s, true),
        },
        "sine" => Pattern::Sine {
            rate: need("rate", w.rate, false),
            peak: need("peak", w.peak, false),
            period_s: need("period_s", w.period_s, true),
        },
        "step" => Pattern::Step {
            rate: need("rate", w.rate, false),
            peak: need("peak", w.peak, false),
            at_s: need("step_at_s", w.step_at_s, false),
        },
        _ => {
            let speed = w.speed.unwrap_or(1.0);
            c.positive("workload.speed", speed);
            let Some(rel) = &w.trace else {
                c.fail(
                    "workload.trace",
                    "missing; pattern `trace` needs a CSV path",
                );
                return None;
            };
            let path = base.join(rel);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    c.fail(
                        "workload.trace",
                        format!("cannot read {}: {e}", path.display()),
                    );
                    return None;
                }
            };
            match pattern::parse_trace_csv(&text) {
                Ok(points) => Pattern::Trace { points, speed },
                Err(e) => {
                    c.fail("workload.trace", format!("{}: {e}", path.display()));
                    return None;
                }
            }
        }
    };
    Some(p)
}
