//! Workload patterns: the arrival rate over time, and a seeded arrival schedule.
//!
//! This module is sans-IO and shared with the coordinator's simulator, so a simulated run and a
//! live `sair-loadgen` run with the same pattern, duration and seed see exactly the same
//! arrivals. All times are seconds from the start of the run; all rates are requests per second.
//!
//! Definitions (`t` in seconds, `D` the run duration):
//!
//! | pattern | rate at `t` |
//! |---|---|
//! | `Poisson { rate }` | `rate` |
//! | `Ramp { rate, peak }` | `rate + (peak - rate) * t / D` (linear, `rate` at 0, `peak` at `D`) |
//! | `Burst { rate, peak, every_s, len_s }` | `peak` on `[k*every_s, k*every_s + len_s)` for `k >= 1`, else `rate` (the run starts at the base rate) |
//! | `Sine { rate, peak, period_s }` | `rate + (peak - rate) * (1 - cos(2*pi*t / period_s)) / 2` (trough `rate` at 0, crest `peak` at `period_s / 2`) |
//! | `Step { rate, peak, at_s }` | `rate` before `at_s`, `peak` from `at_s` on |
//! | `Trace { points, speed }` | piecewise constant: the rps of the last point whose second is `<= t * speed`; `0` before the first point; the last point's rps holds to the end |
//!
//! `speed` compresses the trace's time line only: with `speed = 2` a 600 s trace plays in 300 s
//! at the same request rates.
//!
//! Parameter names in errors are the `sair-loadgen` flag names without dashes (`rate`, `peak`,
//! `burst-every`, `burst-len`, `period`, `step-at`, `speed`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A workload pattern: the arrival rate as a function of time. See the module docs for the exact
/// definition of each variant. Call [`Pattern::validate`] before using a pattern built from input.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pattern {
    /// Constant rate (homogeneous Poisson arrivals).
    Poisson {
        /// Requests per second.
        rate: f64,
    },
    /// Linear from `rate` at the start to `peak` at the end of the run.
    Ramp {
        /// Rate at `t = 0`.
        rate: f64,
        /// Rate at `t = duration`.
        peak: f64,
    },
    /// Base `rate`, with bursts at `peak` during `[k*every_s, k*every_s + len_s)` for `k >= 1`.
    Burst {
        /// Base rate between bursts.
        rate: f64,
        /// Rate during a burst.
        peak: f64,
        /// Seconds from the start of one burst to the start of the next; the first starts here.
        every_s: f64,
        /// Length of each burst in seconds (`0 < len_s <= every_s`).
        len_s: f64,
    },
    /// Diurnal-style sine wave between `rate` (trough, at `t = 0`) and `peak` (crest).
    Sine {
        /// Trough rate.
        rate: f64,
        /// Crest rate.
        peak: f64,
        /// Seconds per full cycle.
        period_s: f64,
    },
    /// `rate` before `at_s`, `peak` from `at_s` on.
    Step {
        /// Rate before the step.
        rate: f64,
        /// Rate from the step on.
        peak: f64,
        /// Time of the step in seconds.
        at_s: f64,
    },
    /// Recorded rates, piecewise constant, played `speed` times faster.
    Trace {
        /// `(second, rps)` points with strictly increasing seconds.
        points: Vec<(f64, f64)>,
        /// Time compression factor (> 0); rates are played unchanged.
        speed: f64,
    },
}

/// Why a pattern (or a trace file) is invalid. Each variant names the parameter at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatternError {
    /// `peak` must be at least `rate`.
    #[error("`peak` ({peak}) is below `rate` ({rate}); peak must be >= rate")]
    PeakBelowRate {
        /// The peak given.
        peak: f64,
        /// The base rate given.
        rate: f64,
    },
    /// A parameter is negative.
    #[error("`{param}` is negative ({value}); it must be >= 0")]
    Negative {
        /// Parameter name.
        param: &'static str,
        /// The value given.
        value: f64,
    },
    /// A parameter is NaN or infinite.
    #[error("`{param}` is not a finite number ({value})")]
    NotFinite {
        /// Parameter name.
        param: &'static str,
        /// The value given.
        value: f64,
    },
    /// A period, length or speed that must be strictly positive is zero.
    #[error("`{param}` is zero; it must be > 0")]
    ZeroPeriod {
        /// Parameter name.
        param: &'static str,
    },
    /// A burst longer than the burst period would never end.
    #[error("`burst-len` ({len_s} s) is longer than `burst-every` ({every_s} s)")]
    BurstLongerThanPeriod {
        /// Burst length.
        len_s: f64,
        /// Burst period.
        every_s: f64,
    },
    /// The trace has no points.
    #[error("the trace has no `second,rps` points")]
    EmptyTrace,
    /// A trace point is out of order (seconds must strictly increase).
    #[error(
        "trace point {index}: second {second} does not follow {previous}; seconds must strictly increase"
    )]
    TraceNotSorted {
        /// Zero-based index of the point.
        index: usize,
        /// Its second.
        second: f64,
        /// The previous point's second.
        previous: f64,
    },
    /// A line of a trace CSV could not be read.
    #[error("trace line {line}: {reason}")]
    BadTraceLine {
        /// One-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

fn check_value(param: &'static str, value: f64) -> Result<(), PatternError> {
    if !value.is_finite() {
        return Err(PatternError::NotFinite { param, value });
    }
    if value < 0.0 {
        return Err(PatternError::Negative { param, value });
    }
    Ok(())
}

fn check_positive(param: &'static str, value: f64) -> Result<(), PatternError> {
    check_value(param, value)?;
    if value == 0.0 {
        return Err(PatternError::ZeroPeriod { param });
    }
    Ok(())
}

fn check_rate_peak(rate: f64, peak: f64) -> Result<(), PatternError> {
    check_value("rate", rate)?;
    check_value("peak", peak)?;
    if peak < rate {
        return Err(PatternError::PeakBelowRate { peak, rate });
    }
    Ok(())
}

fn check_points(points: &[(f64, f64)]) -> Result<(), PatternError> {
    if points.is_empty() {
        return Err(PatternError::EmptyTrace);
    }
    let mut previous: Option<f64> = None;
    for (index, &(second, rps)) in points.iter().enumerate() {
        check_value("trace second", second)?;
        check_value("trace rps", rps)?;
        if let Some(previous) = previous
            && second <= previous
        {
            return Err(PatternError::TraceNotSorted {
                index,
                second,
                previous,
            });
        }
        previous = Some(second);
    }
    Ok(())
}

impl Pattern {
    /// The pattern's short name, as `--pattern` spells it (`trace` for traces).
    pub fn name(&self) -> &'static str {
        match self {
            Pattern::Poisson { .. } => "poisson",
            Pattern::Ramp { .. } => "ramp",
            Pattern::Burst { .. } => "burst",
            Pattern::Sine { .. } => "sine",
            Pattern::Step { .. } => "step",
            Pattern::Trace { .. } => "trace",
        }
    }

    /// Checks every parameter; the error names the first one at fault.
    pub fn validate(&self) -> Result<(), PatternError> {
        match self {
            Pattern::Poisson { rate } => check_value("rate", *rate),
            Pattern::Ramp { rate, peak } => check_rate_peak(*rate, *peak),
            Pattern::Burst {
                rate,
                peak,
                every_s,
                len_s,
            } => {
                check_rate_peak(*rate, *peak)?;
                check_positive("burst-every", *every_s)?;
                check_positive("burst-len", *len_s)?;
                if len_s > every_s {
                    return Err(PatternError::BurstLongerThanPeriod {
                        len_s: *len_s,
                        every_s: *every_s,
                    });
                }
                Ok(())
            }
            Pattern::Sine {
                rate,
                peak,
                period_s,
            } => {
                check_rate_peak(*rate, *peak)?;
                check_positive("period", *period_s)
            }
            Pattern::Step { rate, peak, at_s } => {
                check_rate_peak(*rate, *peak)?;
                check_value("step-at", *at_s)
            }
            Pattern::Trace { points, speed } => {
                check_positive("speed", *speed)?;
                check_points(points)
            }
        }
    }

    /// The arrival rate (requests per second) at `t_s` seconds into a run of `duration_s`
    /// seconds. Only `Ramp` depends on `duration_s`.
    pub fn rate_at(&self, t_s: f64, duration_s: f64) -> f64 {
        match self {
            Pattern::Poisson { rate } => *rate,
            Pattern::Ramp { rate, peak } => {
                if duration_s <= 0.0 {
                    return *rate;
                }
                let f = (t_s / duration_s).clamp(0.0, 1.0);
                rate + (peak - rate) * f
            }
            Pattern::Burst {
                rate,
                peak,
                every_s,
                len_s,
            } => {
                if *every_s <= 0.0 || t_s < *every_s {
                    return *rate;
                }
                if t_s.rem_euclid(*every_s) < *len_s {
                    *peak
                } else {
                    *rate
                }
            }
            Pattern::Sine {
                rate,
                peak,
                period_s,
            } => {
                if *period_s <= 0.0 {
                    return *rate;
                }
                let phase = std::f64::consts::TAU * t_s / period_s;
                rate + (peak - rate) * (1.0 - phase.cos()) / 2.0
            }
            Pattern::Step { rate, peak, at_s } => {
                if t_s < *at_s {
                    *rate
                } else {
                    *peak
                }
            }
            Pattern::Trace { points, speed } => {
                let trace_t = t_s * speed;
                // Index of the first point strictly after trace_t; the one before it is active.
                let after = points.partition_point(|&(second, _)| second <= trace_t);
                match after.checked_sub(1) {
                    Some(i) => points[i].1,
                    None => 0.0,
                }
            }
        }
    }

    /// The largest rate reached on `[0, duration_s]` (the thinning bound of [`schedule`]).
    pub fn max_rate(&self, duration_s: f64) -> f64 {
        let d = duration_s.max(0.0);
        match self {
            Pattern::Poisson { rate } => *rate,
            Pattern::Ramp { rate, peak } => rate.max(*peak),
            Pattern::Burst {
                rate,
                peak,
                every_s,
                ..
            } => {
                if d >= *every_s {
                    rate.max(*peak)
                } else {
                    *rate
                }
            }
            Pattern::Sine {
                rate,
                peak,
                period_s,
            } => {
                if d >= period_s / 2.0 {
                    rate.max(*peak)
                } else {
                    // Rising half-wave: the rate grows monotonically up to d.
                    rate.max(self.rate_at(d, d))
                }
            }
            Pattern::Step { rate, peak, at_s } => {
                if d >= *at_s {
                    rate.max(*peak)
                } else {
                    *rate
                }
            }
            Pattern::Trace { points, speed } => {
                let end = d * speed;
                let first_active = points
                    .partition_point(|&(second, _)| second <= 0.0)
                    .saturating_sub(1);
                points
                    .iter()
                    .skip(first_active)
                    .take_while(|&&(second, _)| second <= end)
                    .map(|&(_, rps)| rps)
                    .fold(0.0, f64::max)
            }
        }
    }

    /// The expected number of arrivals in `[from_s, to_s)` of a run of `duration_s` seconds
    /// (the integral of [`Pattern::rate_at`], midpoint rule with 1 ms steps at most).
    pub fn expected_arrivals(&self, from_s: f64, to_s: f64, duration_s: f64) -> f64 {
        if to_s <= from_s {
            return 0.0;
        }
        let steps = (((to_s - from_s) * 1000.0).ceil() as usize).clamp(1, 10_000_000);
        let h = (to_s - from_s) / steps as f64;
        (0..steps)
            .map(|i| self.rate_at(from_s + (i as f64 + 0.5) * h, duration_s) * h)
            .sum()
    }
}

/// Parses a trace CSV: one `second,rps` pair per line. Blank lines and lines starting with `#`
/// are skipped; the first remaining line may be a header (it is skipped when its first field is
/// not a number). Seconds must strictly increase; both values must be finite and `>= 0`.
pub fn parse_trace_csv(text: &str) -> Result<Vec<(f64, f64)>, PatternError> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut seen_first = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        let is_first = !seen_first;
        seen_first = true;
        if is_first && fields.first().is_some_and(|f| f.parse::<f64>().is_err()) {
            continue; // header
        }
        let bad = |reason: String| PatternError::BadTraceLine { line, reason };
        if fields.len() != 2 {
            return Err(bad(format!(
                "expected 2 fields `second,rps`, found {}",
                fields.len()
            )));
        }
        let second: f64 = fields[0]
            .parse()
            .map_err(|_| bad(format!("second {:?} is not a number", fields[0])))?;
        let rps: f64 = fields[1]
            .parse()
            .map_err(|_| bad(format!("rps {:?} is not a number", fields[1])))?;
        if !second.is_finite() || second < 0.0 {
            return Err(bad(format!("second {second} must be finite and >= 0")));
        }
        if !rps.is_finite() || rps < 0.0 {
            return Err(bad(format!("rps {rps} must be finite and >= 0")));
        }
        if let Some(&(previous, _)) = points.last()
            && second <= previous
        {
            return Err(bad(format!(
                "second {second} does not follow {previous}; seconds must strictly increase"
            )));
        }
        points.push((second, rps));
    }
    if points.is_empty() {
        return Err(PatternError::EmptyTrace);
    }
    Ok(points)
}

/// Seeded non-homogeneous Poisson arrivals by thinning (Lewis and Shedler): candidates from a
/// homogeneous process at [`Pattern::max_rate`], each kept with probability
/// `rate_at(t) / max_rate`. Returns sorted offsets in seconds in `[0, duration_s)`; the same
/// pattern, duration and seed always give the same schedule.
///
/// An invalid pattern (see [`Pattern::validate`]) or a non-positive duration gives an empty
/// schedule rather than a panic. The whole schedule is held in memory: a caller that takes its
/// size from input bounds it first ([`Pattern::expected_arrivals`]) or walks [`Arrivals`].
pub fn schedule(pattern: &Pattern, duration_s: f64, seed: u64) -> Vec<f64> {
    let arrivals = Arrivals::new(pattern, duration_s, seed);
    let capacity = if arrivals.is_empty() {
        0.0
    } else {
        pattern.expected_arrivals(0.0, duration_s, duration_s) * 1.05 + 16.0
    };
    let mut out = Vec::with_capacity(capacity.min(1e7) as usize);
    out.extend(arrivals);
    out
}

/// The arrivals of [`schedule`], drawn one at a time: the same offsets, in the same order,
/// in constant memory (`sair-loadgen` walks it, so its memory does not grow with
/// rate × duration).
#[derive(Debug, Clone)]
pub struct Arrivals {
    pattern: Pattern,
    duration_s: f64,
    lambda_max: f64,
    rng: ChaCha8Rng,
    t: f64,
    done: bool,
}

impl Arrivals {
    /// The arrival process of `pattern` over `[0, duration_s)` with `seed`; empty for an
    /// invalid pattern, a non-positive duration or a pattern whose rate is 0 throughout.
    pub fn new(pattern: &Pattern, duration_s: f64, seed: u64) -> Arrivals {
        let lambda_max = pattern.max_rate(duration_s);
        let done = pattern.validate().is_err()
            || !duration_s.is_finite()
            || duration_s <= 0.0
            || !lambda_max.is_finite()
            || lambda_max <= 0.0;
        Arrivals {
            pattern: pattern.clone(),
            duration_s,
            lambda_max,
            rng: ChaCha8Rng::seed_from_u64(seed),
            t: 0.0,
            done,
        }
    }

    /// True when no arrival can follow.
    pub fn is_empty(&self) -> bool {
        self.done
    }
}

impl Iterator for Arrivals {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        while !self.done {
            // Exponential gap; 1 - u is in (0, 1], so the log is finite.
            let u: f64 = self.rng.random();
            self.t += -(1.0 - u).ln() / self.lambda_max;
            if self.t >= self.duration_s {
                self.done = true;
                break;
            }
            let keep: f64 = self.rng.random();
            if keep * self.lambda_max < self.pattern.rate_at(self.t, self.duration_s) {
                return Some(self.t);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
