//! `sair-loadgen`'s configuration: flags, each also read from a `SAIR_LOADGEN_*` variable or a
//! key of the `--config` TOML file (flag > variable > file > default, by
//! `sair_service::config::load`), and their validation into a [`Plan`]. Validation happens
//! before anything connects; its errors name the flag at fault and make the binary exit
//! with 64.

use crate::pattern::{Pattern, PatternError, parse_trace_csv};
use bytes::Bytes;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Open-loop HTTP load generator: sends requests on a precomputed, seeded arrival schedule
/// whatever the server does, measures latency from each request's intended send time, and
/// counts arrivals that find no free connection as dropped.
#[derive(Debug, Clone, Parser)]
#[command(name = "sair-loadgen", version, allow_negative_numbers = true)]
pub struct LoadgenArgs {
    /// TOML file of options (keys are the long flag names with `_` for `-`); flags and
    /// variables override it.
    #[arg(long, env = "SAIR_LOADGEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Logging (stderr).
    #[command(flatten)]
    pub log: sair_service::logging::LogArgs,
    /// Target URL (http:// only), or `file:PATH`: a file of `host:port` lines (the SAIR
    /// local actuator's endpoints file), re-read during the run; requests go round-robin over
    /// its entries, to path `/`.
    #[arg(long, env = "SAIR_LOADGEN_TARGET")]
    pub target: String,
    /// Length of the run (e.g. `30s`, `500ms`, `2m`; a bare number is seconds).
    #[arg(long, env = "SAIR_LOADGEN_DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Seed of the arrival schedule; the same seed gives the same schedule.
    #[arg(long, env = "SAIR_LOADGEN_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Request method.
    #[arg(long, env = "SAIR_LOADGEN_METHOD", default_value = "GET")]
    pub method: String,
    /// Request body of this many bytes (`x` repeated).
    #[arg(long, env = "SAIR_LOADGEN_BODY_SIZE", conflicts_with = "body_file")]
    pub body_size: Option<usize>,
    /// Request body read from this file.
    #[arg(long, env = "SAIR_LOADGEN_BODY_FILE")]
    pub body_file: Option<PathBuf>,
    /// Extra request header `Name: value` (repeatable).
    #[arg(long = "header", env = "SAIR_LOADGEN_HEADER")]
    pub headers: Vec<String>,
    /// Per-request timeout, from the actual send to the end of the response body; also the
    /// bound on the drain after the last arrival.
    #[arg(long, env = "SAIR_LOADGEN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Connections, i.e. the most requests in flight at once.
    #[arg(long, env = "SAIR_LOADGEN_CONNECTIONS", default_value_t = 64)]
    pub connections: usize,
    /// An arrival that finds no free connection within this bound is dropped, not delayed.
    #[arg(long, env = "SAIR_LOADGEN_DROP_AFTER", default_value = "10ms", value_parser = parse_duration)]
    pub drop_after: Duration,
    /// Refuse schedules with more arrivals than this (memory and run-time bound).
    #[arg(long, env = "SAIR_LOADGEN_MAX_REQUESTS", default_value_t = 20_000_000)]
    pub max_requests: u64,
    /// Latency objective: completed requests slower than this (from their intended send
    /// time) are counted in the report's `late` (with `slo_ms`). Above 0, at most 30 days.
    #[arg(long, env = "SAIR_LOADGEN_SLO", value_parser = parse_duration)]
    pub slo: Option<Duration>,
    /// Write the JSON report here.
    #[arg(long, env = "SAIR_LOADGEN_OUT")]
    pub out: Option<PathBuf>,
    /// Workload pattern: poisson, ramp, burst, sine, step or trace:FILE (CSV `second,rps`).
    #[arg(long, env = "SAIR_LOADGEN_PATTERN", default_value = "poisson")]
    pub pattern: String,
    /// Base rate (requests per second): the constant rate, ramp start, trough, rate before the step.
    #[arg(long, env = "SAIR_LOADGEN_RATE", default_value_t = 100.0)]
    pub rate: f64,
    /// Peak rate (ramp end, burst rate, crest, rate after the step).
    #[arg(long, env = "SAIR_LOADGEN_PEAK")]
    pub peak: Option<f64>,
    /// Seconds from one burst start to the next (first burst starts here, not at 0).
    #[arg(long, env = "SAIR_LOADGEN_BURST_EVERY", default_value_t = 10.0)]
    pub burst_every: f64,
    /// Seconds each burst lasts.
    #[arg(long, env = "SAIR_LOADGEN_BURST_LEN", default_value_t = 2.0)]
    pub burst_len: f64,
    /// Seconds per sine cycle.
    #[arg(long, env = "SAIR_LOADGEN_PERIOD", default_value_t = 60.0)]
    pub period: f64,
    /// Second at which the step to --peak happens.
    #[arg(long, env = "SAIR_LOADGEN_STEP_AT", default_value_t = 5.0)]
    pub step_at: f64,
    /// Trace time compression (2 plays a trace twice as fast, at the same rates).
    #[arg(long, env = "SAIR_LOADGEN_SPEED", default_value_t = 1.0)]
    pub speed: f64,
    /// Never show the progress bar (it is shown only when stderr is a terminal anyway).
    #[arg(long, env = "SAIR_LOADGEN_QUIET")]
    pub quiet: bool,
}

/// A configuration error; each names the flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A pattern parameter is invalid.
    #[error("invalid --pattern parameters: {0}")]
    Pattern(#[from] PatternError),
    /// The pattern needs `--peak`.
    #[error("--pattern {pattern} needs --peak")]
    MissingPeak {
        /// Pattern name.
        pattern: &'static str,
    },
    /// Unknown pattern name.
    #[error("--pattern {0:?} is not one of poisson, ramp, burst, sine, step, trace:FILE")]
    UnknownPattern(String),
    /// The trace file could not be read.
    #[error("--pattern trace:{path}: cannot read: {source}")]
    TraceFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The body file could not be read.
    #[error("--body-file {path}: cannot read: {source}")]
    BodyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A header is not `Name: value`.
    #[error("--header {0:?} is not `Name: value`")]
    BadHeader(String),
    /// The method is not a valid token.
    #[error("--method {0:?} is not an HTTP method")]
    BadMethod(String),
    /// The schedule would exceed `--max-requests` (checked from the pattern's integral, before
    /// any arrival is drawn, so a huge rate costs neither memory nor time).
    #[error(
        "--rate/--peak over --duration gives about {expected:.3e} arrivals, more than --max-requests {max}; lower --rate, --peak or --duration, or raise --max-requests"
    )]
    ScheduleTooLarge {
        /// Expected arrivals (the integral of the rate).
        expected: f64,
        /// The bound.
        max: u64,
    },
    /// A numeric flag is out of range.
    #[error("--{flag} {reason}")]
    OutOfRange {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A validated run: everything the driver needs except the network.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Target URL.
    pub target: String,
    /// Pattern.
    pub pattern: Pattern,
    /// Run length.
    pub duration: Duration,
    /// Schedule seed.
    pub seed: u64,
    /// Method.
    pub method: http::Method,
    /// Extra headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Connections.
    pub connections: usize,
    /// Drop bound.
    pub drop_after: Duration,
    /// Schedule size bound.
    pub max_requests: u64,
    /// Latency objective for `late`.
    pub slo: Option<Duration>,
    /// Report path.
    pub out: Option<PathBuf>,
    /// No progress bar.
    pub quiet: bool,
}

/// Parses a duration in the house syntax (`10s`, `250ms`, `2m`, `1h`, `1m 30s`;
/// `sair_service::duration`), and, as sair-loadgen always has, a bare number as seconds
/// (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = t
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like 10s, 250ms or 2m"))?;
        let d = Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{s:?} is not a non-negative duration"))?;
        if d > sair_service::duration::MAX {
            return Err(format!("{s:?} is longer than 30 days"));
        }
        return Ok(d);
    }
    sair_service::duration::parse_duration(t)
}

impl LoadgenArgs {
    /// Builds the pattern from `--pattern` and its parameters, reading a trace file if named.
    pub fn pattern(&self) -> Result<Pattern, ConfigError> {
        let peak = |pattern| self.peak.ok_or(ConfigError::MissingPeak { pattern });
        let rate = self.rate;
        let p = match self.pattern.as_str() {
            "poisson" => Pattern::Poisson { rate },
            "ramp" => Pattern::Ramp {
                rate,
                peak: peak("ramp")?,
            },
            "burst" => Pattern::Burst {
                rate,
                peak: peak("burst")?,
                every_s: self.burst_every,
                len_s: self.burst_len,
            },
            "sine" => Pattern::Sine {
                rate,
                peak: peak("sine")?,
                period_s: self.period,
            },
            "step" => Pattern::Step {
                rate,
                peak: peak("step")?,
                at_s: self.step_at,
            },
            other => match other.strip_prefix("trace:") {
                Some(path) => {
                    let path = PathBuf::from(path);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|source| ConfigError::TraceFile { path, source })?;
                    Pattern::Trace {
                        points: parse_trace_csv(&text)?,
                        speed: self.speed,
                    }
                }
                None => return Err(ConfigError::UnknownPattern(other.to_owned())),
            },
        };
        p.validate()?;
        Ok(p)
    }

    /// Validates every flag into a [`Plan`].
    pub fn plan(&self) -> Result<Plan, ConfigError> {
        let pattern = self.pattern()?;
        let range = |flag, reason: &str| ConfigError::OutOfRange {
            flag,
            reason: reason.to_owned(),
        };
        if self.duration.is_zero() {
            return Err(range("duration", "must be > 0"));
        }
        if self.timeout.is_zero() {
            return Err(range("timeout", "must be > 0"));
        }
        if self.slo.is_some_and(|s| s.is_zero()) {
            return Err(range("slo", "must be > 0"));
        }
        if self.connections == 0 || self.connections > 100_000 {
            return Err(range("connections", "must be between 1 and 100000"));
        }
        let duration_s = self.duration.as_secs_f64();
        if pattern.max_rate(duration_s) <= 0.0 {
            let flag = match pattern {
                Pattern::Trace { .. } => "pattern",
                _ => "rate",
            };
            return Err(range(
                flag,
                "gives a rate of 0 throughout the run (--peak too, or it is not reached within --duration): nothing would be sent",
            ));
        }
        let expected = pattern.expected_arrivals(0.0, duration_s, duration_s);
        // 10 standard deviations over the bound are refused at once; closer calls are settled
        // by counting the schedule (`runner::count_arrivals`), in constant memory.
        let max = self.max_requests as f64;
        if !expected.is_finite() || expected - 10.0 * expected.sqrt() > max {
            return Err(ConfigError::ScheduleTooLarge {
                expected,
                max: self.max_requests,
            });
        }
        let method = http::Method::from_bytes(self.method.as_bytes())
            .map_err(|_| ConfigError::BadMethod(self.method.clone()))?;
        let mut headers = http::HeaderMap::new();
        for h in &self.headers {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| ConfigError::BadHeader(h.clone()))?;
            let k = http::HeaderName::from_bytes(k.trim().as_bytes())
                .map_err(|_| ConfigError::BadHeader(h.clone()))?;
            let v = http::HeaderValue::from_str(v.trim())
                .map_err(|_| ConfigError::BadHeader(h.clone()))?;
            headers.append(k, v);
        }
        let body = match (&self.body_file, self.body_size) {
            (Some(path), _) => {
                Bytes::from(std::fs::read(path).map_err(|source| ConfigError::BodyFile {
                    path: path.clone(),
                    source,
                })?)
            }
            (None, Some(n)) => Bytes::from(vec![b'x'; n]),
            (None, None) => Bytes::new(),
        };
        Ok(Plan {
            target: self.target.clone(),
            pattern,
            duration: self.duration,
            seed: self.seed,
            method,
            headers,
            body,
            timeout: self.timeout,
            connections: self.connections,
            drop_after: self.drop_after,
            max_requests: self.max_requests,
            slo: self.slo,
            out: self.out.clone(),
            quiet: self.quiet,
        })
    }
}

#[cfg(test)]
mod tests;
