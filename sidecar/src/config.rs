//! The sidecar's one configuration type.
//!
//! Sources, highest precedence first: command-line flags, `SAIR_*` environment variables, then
//! the TOML file named by `--config` (keys are the long option names with `_` for `-`), then
//! the defaults — through `sair_service::config`, which takes the list of options from clap
//! itself. [`Config::validate`] runs before anything binds; `main` exits with 64 when it fails.
//!
//! Durations are written `30s`, `500ms` (`sair_service::duration`). The options that used to
//! carry their unit in their name (`--queue-timeout-seconds 30`) still work, hidden, with
//! their old meaning: each conflicts with its successor, so the two cannot both be given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sair_service::config::{EnvSource, ProcessEnv};
use sair_service::duration::parse_duration;
use sair_service::logging::LogArgs;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--upstream must be an http:// URL with a host, got {0:?}")]
    BadUpstream(String),
    #[error("--next target {target:?} is not valid: {why}")]
    BadNext { target: String, why: String },
    /// A numeric option outside the range the sidecar can honour.
    #[error("--{name} must be within {min}..={max} ({why}), got {value}")]
    OutOfRange {
        name: &'static str,
        value: u64,
        min: u64,
        max: u64,
        why: &'static str,
    },
    /// An old `*-seconds` option that is not a positive number of seconds up to 30 days.
    #[error("--{name} must be a number of seconds within (0, 2592000] (30 days), got {value}")]
    SecondsOutOfRange { name: &'static str, value: f64 },
    /// The buffer budget cannot hold one body of the largest size.
    #[error(
        "--max-buffered-bytes ({buffered}) must be at least --max-body-bytes ({body}): a body \
         of the largest allowed size must fit the budget"
    )]
    BudgetBelowBody { buffered: u64, body: u64 },
    /// The connect-retry window is longer than 10 minutes.
    #[error(
        "--connect-retry-for must be within 0s..={max:?} (10 min; 0 disables; the wait never \
         outlasts --upstream-timeout either), got {value:?}"
    )]
    RetryOutOfRange { value: Duration, max: Duration },
    #[error("--{name} must be a positive duration, got {value:?}")]
    NotPositiveDuration { name: &'static str, value: Duration },
    #[error("--histogram-buckets-seconds must be strictly increasing positive numbers, got {0:?}")]
    BadBuckets(Vec<f64>),
    #[error("--{0} must not be empty")]
    Empty(&'static str),
    #[error("--tls-cert and --tls-key must be given together")]
    HalfIdentity,
    #[error("--agent needs either --agent-ca or --agent-insecure-skip-verify")]
    NoAgentTrust,
    /// A flag, variable or file value was refused while loading (or `--help` was asked
    /// for: see `sair_service::ConfigError::report`).
    #[error(transparent)]
    Load(#[from] sair_service::ConfigError),
}

/// hyper's own HTTP/1 header-count limit, kept as the default: with it hyper parses the
/// header fields into a stack array; any other value costs a heap allocation per request.
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// The range of every integer option, checked by [`Config::validate`]: name, smallest,
/// largest, and why the bound is there (printed in the error).
pub mod bounds {
    /// `--connect-retry-for`: at most 10 minutes; 0 disables. (The wait is also cut at
    /// `--upstream-timeout`: [`super::Config::connect_retry_window`].)
    pub const CONNECT_RETRY_FOR_MAX: std::time::Duration = std::time::Duration::from_secs(600);
    /// `--max-concurrency` (0 = unlimited).
    pub const MAX_CONCURRENCY: (u64, u64) = (0, 1_000_000);
    /// `--queue-capacity`.
    pub const QUEUE_CAPACITY: (u64, u64) = (0, 1_000_000);
    /// `--retry-after-seconds`: at most a day.
    pub const RETRY_AFTER_SECONDS: (u64, u64) = (0, 86_400);
    /// `--max-body-bytes`: at most 4 GiB (bodies are buffered).
    pub const MAX_BODY_BYTES: (u64, u64) = (1, 4 << 30);
    /// `--max-buffered-bytes`: all buffered bodies together, at most 1 TiB (and at least
    /// `--max-body-bytes`, checked separately).
    pub const MAX_BUFFERED_BYTES: (u64, u64) = (1, 1 << 40);
    /// `--max-connections` (0 = the descriptor limit less a reserve): each connection holds a
    /// descriptor and its buffers.
    pub const MAX_CONNECTIONS: (u64, u64) = (0, 1_000_000);
    /// `--max-header-bytes`: hyper refuses an HTTP/1 read buffer under 8 KiB; 16 MiB is far
    /// above any real head.
    pub const MAX_HEADER_BYTES: (u64, u64) = (8192, 16 << 20);
    /// `--max-headers`.
    pub const MAX_HEADERS: (u64, u64) = (1, 1024);
    /// `--upstream-max-headers`: the model server's header-field limit, as `--max-headers`.
    pub const UPSTREAM_MAX_HEADERS: (u64, u64) = (1, 1024);
    /// `--report-buffer`: the buffer is allocated up front.
    pub const REPORT_BUFFER: (u64, u64) = (1, 100_000);
    /// `--worker-threads` (0 = one per CPU): each thread reserves a stack.
    pub const WORKER_THREADS: (u64, u64) = (0, 1024);
    /// Number of `--histogram-buckets-seconds`: every histogram series has one per bucket.
    pub const HISTOGRAM_BUCKETS: (u64, u64) = (1, 256);
}

/// Older spellings, listed at the end of `--help`.
const LEGACY_HELP: &str = "\
Older spellings, still accepted with their old meaning: --queue-timeout-seconds,
--header-read-timeout-seconds, --upstream-timeout-seconds, --drain-timeout-seconds,
--report-interval-seconds and --discovery-interval-seconds take a number of seconds (give the
old or the new name, not both), as do their variables (SAIR_QUEUE_TIMEOUT_SECONDS,
SAIR_DRAIN_TIMEOUT_SECONDS, ...); --log-json (SAIR_LOG_JSON) means --log-format json.";

/// Request-path sidecar for one SAIR pipeline stage replica: admission queue, exact queue and
/// service timing, chaining to the next stage, Prometheus metrics and StageReports.
#[derive(Debug, Clone, Parser)]
#[command(name = "sair-sidecar", version, about, long_about = None, after_help = LEGACY_HELP)]
pub struct Config {
    /// TOML file with any of these options (snake_case keys); flags and SAIR_* variables win.
    #[arg(long, env = "SAIR_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address the proxy listens on for requests (HTTP/1.1 and h2c).
    #[arg(long, env = "SAIR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, env = "SAIR_METRICS_LISTEN", default_value = "127.0.0.1:9090")]
    pub metrics_listen: SocketAddr,

    /// The model server this sidecar fronts, e.g. http://127.0.0.1:8000.
    #[arg(long, env = "SAIR_UPSTREAM", default_value = "http://127.0.0.1:8000")]
    pub upstream: String,

    /// Protocol toward the model server: http1, h2c, or auto (h2c for gRPC requests, HTTP/1.1
    /// otherwise).
    #[arg(long, env = "SAIR_UPSTREAM_PROTOCOL", value_enum, default_value_t = UpstreamProtocol::Auto)]
    pub upstream_protocol: UpstreamProtocol,

    /// Next stage: "host:port[,host:port…]", "dns:NAME:PORT" (re-resolved) or "file:PATH"
    /// (one host:port per line, re-read on change). Empty: this is the last stage.
    #[arg(long, env = "SAIR_NEXT")]
    pub next: Option<String>,

    /// Name of the next stage, used in the 502 body when the next stage cannot be reached.
    #[arg(long, env = "SAIR_NEXT_STAGE", default_value = "next")]
    pub next_stage: String,

    /// Pipeline name, used as the `pipeline` label and in reports.
    #[arg(long, env = "SAIR_PIPELINE", default_value = "default")]
    pub pipeline: String,

    /// Stage name, used as the `stage` label, in Server-Timing and in reports.
    #[arg(long, env = "SAIR_STAGE", default_value = "stage")]
    pub stage: String,

    /// Replica identity in reports (defaults to the host name plus the process id).
    #[arg(long, env = "SAIR_REPLICA")]
    pub replica: Option<String>,

    /// Requests in flight to the model server at once; 0 = unlimited.
    #[arg(long, env = "SAIR_MAX_CONCURRENCY", default_value_t = 0)]
    pub max_concurrency: u32,

    /// Requests allowed to wait (FIFO) for a concurrency slot; beyond that: 503.
    #[arg(long, env = "SAIR_QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: u32,

    /// Longest a request may wait in the queue, counted from its head, before it gets 503.
    #[arg(long, env = "SAIR_QUEUE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub queue_timeout: Duration,

    /// Old spelling of --queue-timeout, in seconds.
    #[arg(
        long,
        env = "SAIR_QUEUE_TIMEOUT_SECONDS",
        hide = true,
        conflicts_with = "queue_timeout"
    )]
    pub queue_timeout_seconds: Option<f64>,

    /// Seconds advertised in Retry-After on a 503 from admission.
    #[arg(long, env = "SAIR_RETRY_AFTER_SECONDS", default_value_t = 1)]
    pub retry_after_seconds: u32,

    /// Largest request or upstream response body, in bytes (413 / 502 beyond it).
    #[arg(long, env = "SAIR_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// All buffered bodies together, in bytes: request bodies being read or waiting in the
    /// queue, and buffered answers. A body that does not fit is answered 503.
    #[arg(long, env = "SAIR_MAX_BUFFERED_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_buffered_bytes: u64,

    /// A request body must arrive whole within this time of the request head; 408 beyond.
    #[arg(long, env = "SAIR_BODY_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,

    /// Client connections open at once; at the limit, new connections wait in the listen
    /// backlog until one closes. 0 = the process's open-file limit less 128 (unlimited when
    /// that limit is).
    #[arg(long, env = "SAIR_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: u32,

    /// Largest request head (request line plus headers), in bytes (HTTP/1 buffer, h2 header
    /// list); 431 beyond. At least 8192 (hyper's smallest HTTP/1 read buffer).
    #[arg(long, env = "SAIR_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,

    /// Most header fields in an HTTP/1 request head; 431 beyond.
    #[arg(long, env = "SAIR_MAX_HEADERS", default_value_t = DEFAULT_MAX_HEADERS)]
    pub max_headers: usize,

    /// Most header fields the model server (or next stage) takes in a request head; the
    /// sidecar answers 431 itself rather than forward a request that, with the pipeline
    /// context headers it adds, would carry more (hyper-based servers: 100).
    #[arg(long, env = "SAIR_UPSTREAM_MAX_HEADERS", default_value_t = DEFAULT_MAX_HEADERS)]
    pub upstream_max_headers: usize,

    /// A client must send a complete request head within this time (slow clients); for a new
    /// connection counted from its accept, the wait for its first byte included.
    #[arg(long, env = "SAIR_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// Old spelling of --header-read-timeout, in seconds.
    #[arg(
        long,
        env = "SAIR_HEADER_READ_TIMEOUT_SECONDS",
        hide = true,
        conflicts_with = "header_read_timeout"
    )]
    pub header_read_timeout_seconds: Option<f64>,

    /// Gives up on the model server (or next stage) after this time: 504-style 502.
    #[arg(long, env = "SAIR_UPSTREAM_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,

    /// Old spelling of --upstream-timeout, in seconds.
    #[arg(
        long,
        env = "SAIR_UPSTREAM_TIMEOUT_SECONDS",
        hide = true,
        conflicts_with = "upstream_timeout"
    )]
    pub upstream_timeout_seconds: Option<f64>,

    /// How long a request that reached no process yet (connect refused or timed out, no
    /// next-stage endpoint) is retried, 50 ms doubling to 500 ms apart. 0 disables.
    #[arg(long, env = "SAIR_CONNECT_RETRY_FOR", default_value = "10s", value_parser = parse_duration)]
    pub connect_retry_for: Duration,

    /// On SIGTERM, how long in-flight and queued requests may take to finish before exit.
    #[arg(long, env = "SAIR_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Old spelling of --drain-timeout, in seconds.
    #[arg(
        long,
        env = "SAIR_DRAIN_TIMEOUT_SECONDS",
        hide = true,
        conflicts_with = "drain_timeout"
    )]
    pub drain_timeout_seconds: Option<f64>,

    /// Histogram bucket upper bounds in seconds, comma separated.
    #[arg(
        long,
        env = "SAIR_HISTOGRAM_BUCKETS_SECONDS",
        value_delimiter = ',',
        default_value = "0.0005,0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60"
    )]
    pub histogram_buckets_seconds: Vec<f64>,

    /// Node agent to send StageReports to over QUIC (host:port). Empty: no reports.
    #[arg(long, env = "SAIR_AGENT")]
    pub agent: Option<String>,

    /// TLS server name expected on the agent's certificate.
    #[arg(long, env = "SAIR_AGENT_SERVER_NAME", default_value = "localhost")]
    pub agent_server_name: String,

    /// PEM file of CA certificates trusted for the agent's certificate.
    #[arg(long, env = "SAIR_AGENT_CA")]
    pub agent_ca: Option<PathBuf>,

    /// Accept any agent certificate. Loopback demos only: no authentication at all.
    #[arg(long, env = "SAIR_AGENT_INSECURE_SKIP_VERIFY")]
    pub agent_insecure_skip_verify: bool,

    /// PEM certificate chain presented to the agent (mutual TLS); needs --tls-key.
    #[arg(long, env = "SAIR_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "SAIR_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Length of a StageReport window.
    #[arg(long, env = "SAIR_REPORT_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub report_interval: Duration,

    /// Old spelling of --report-interval, in seconds.
    #[arg(
        long,
        env = "SAIR_REPORT_INTERVAL_SECONDS",
        hide = true,
        conflicts_with = "report_interval"
    )]
    pub report_interval_seconds: Option<f64>,

    /// Reports kept while the agent is unreachable; the oldest is dropped (and counted) beyond.
    #[arg(long, env = "SAIR_REPORT_BUFFER", default_value_t = 64)]
    pub report_buffer: usize,

    /// Time between re-resolutions of a dns: or re-reads of a file: --next target.
    #[arg(long, env = "SAIR_DISCOVERY_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub discovery_interval: Duration,

    /// Old spelling of --discovery-interval, in seconds.
    #[arg(
        long,
        env = "SAIR_DISCOVERY_INTERVAL_SECONDS",
        hide = true,
        conflicts_with = "discovery_interval"
    )]
    pub discovery_interval_seconds: Option<f64>,

    /// Threads serving requests, 0 = one per CPU; 1 runs everything on one thread. With
    /// `--runtime per-core` each thread keeps its own connections to the model server, so
    /// their number grows with the threads.
    #[arg(long, env = "SAIR_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    /// How the serving threads share work: per-core (each thread runs its own single-threaded
    /// runtime and keeps every connection it is given for the connection's whole life, so a
    /// request never changes thread) or work-stealing (one tokio multi-thread runtime).
    #[arg(long, env = "SAIR_RUNTIME", value_enum, default_value_t = RuntimeModel::PerCore)]
    pub runtime: RuntimeModel,

    /// Log format and verbosity (`--log-format`, `-v`; the old `--log-json` is kept).
    #[command(flatten)]
    pub log: LogArgs,
}

/// How the serving threads share work (`--runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RuntimeModel {
    /// `--worker-threads` threads, each with a current-thread tokio runtime; one accepts and
    /// hands each connection to the thread with the fewest open, which serves it to its end.
    #[default]
    PerCore,
    /// One tokio multi-thread (work-stealing) runtime with `--worker-threads` workers.
    WorkStealing,
}

/// How the sidecar speaks to the model server (`--upstream-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 keep-alive connections, always.
    Http1,
    /// HTTP/2 over cleartext (prior knowledge), always.
    H2c,
    /// h2c for gRPC requests (HTTP/2 with `content-type: application/grpc…`, which cannot
    /// work over HTTP/1), HTTP/1.1 for everything else.
    #[default]
    Auto,
}

/// The three kinds of `--next` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextTarget {
    /// A fixed list of `host:port`.
    Static(Vec<String>),
    /// `dns:NAME:PORT`, re-resolved every discovery interval.
    Dns { name: String, port: u16 },
    /// `file:PATH`, one `host:port` per line, re-read when it changes.
    File(PathBuf),
}

impl NextTarget {
    /// Parses a `--next` value.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::BadNext {
            target: s.to_owned(),
            why: why.to_owned(),
        };
        if let Some(rest) = s.strip_prefix("dns:") {
            let (name, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("expected dns:NAME:PORT"))?;
            let port = port.parse().map_err(|_| bad("port is not a number"))?;
            if name.is_empty() {
                return Err(bad("empty DNS name"));
            }
            return Ok(NextTarget::Dns {
                name: name.to_owned(),
                port,
            });
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(bad("empty path"));
            }
            return Ok(NextTarget::File(PathBuf::from(path)));
        }
        let list: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if list.is_empty() {
            return Err(bad("no endpoints"));
        }
        for e in &list {
            validate_host_port(e).map_err(|why| bad(&why))?;
        }
        Ok(NextTarget::Static(list))
    }
}

/// Checks that `e` looks like `host:port`.
pub fn validate_host_port(e: &str) -> Result<(), String> {
    let Some((host, port)) = e.rsplit_once(':') else {
        return Err(format!("{e:?} is not host:port"));
    };
    if host.is_empty() {
        return Err(format!("{e:?} has an empty host"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("{e:?} has a bad port"))?;
    Ok(())
}

impl Config {
    /// Loads the configuration from `args` (binary name first), the process environment and
    /// the `--config` file.
    pub fn load<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString>,
    {
        Self::load_with(args, &ProcessEnv)
    }

    /// [`Config::load`] with the environment read from `env` (tests inject a `MapEnv`).
    pub fn load_with<I, T>(args: I, env: &dyn EnvSource) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString>,
    {
        let loaded = sair_service::config::load::<Config>(args, env)?;
        loaded.log_sources();
        Ok(loaded.value)
    }

    /// Checks everything that can be checked before binding.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let uri: http::Uri = self
            .upstream
            .parse()
            .map_err(|_| ConfigError::BadUpstream(self.upstream.clone()))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(ConfigError::BadUpstream(self.upstream.clone()));
        }
        if let Some(next) = &self.next {
            NextTarget::parse(next)?;
        }
        for (name, value) in [
            ("queue-timeout", self.queue_timeout),
            ("header-read-timeout", self.header_read_timeout),
            ("body-read-timeout", self.body_read_timeout),
            ("upstream-timeout", self.upstream_timeout),
            ("drain-timeout", self.drain_timeout),
            ("report-interval", self.report_interval),
            ("discovery-interval", self.discovery_interval),
        ] {
            if value.is_zero() {
                return Err(ConfigError::NotPositiveDuration { name, value });
            }
        }
        for (name, value) in self.legacy_seconds() {
            if let Some(v) = value
                && seconds(v).is_none()
            {
                return Err(ConfigError::SecondsOutOfRange { name, value: v });
            }
        }
        self.check_ranges()?;
        let b = &self.histogram_buckets_seconds;
        if b.iter().any(|v| !v.is_finite() || *v <= 0.0) || b.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ConfigError::BadBuckets(b.clone()));
        }
        if self.pipeline.is_empty() {
            return Err(ConfigError::Empty("pipeline"));
        }
        if self.stage.is_empty() {
            return Err(ConfigError::Empty("stage"));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::HalfIdentity);
        }
        if self.agent.is_some() && self.agent_ca.is_none() && !self.agent_insecure_skip_verify {
            return Err(ConfigError::NoAgentTrust);
        }
        Ok(())
    }

    /// Every integer option within its range ([`bounds`]).
    fn check_ranges(&self) -> Result<(), ConfigError> {
        use bounds::*;
        let wide = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        for (name, value, (min, max), why) in [
            (
                "max-concurrency",
                u64::from(self.max_concurrency),
                MAX_CONCURRENCY,
                "0 = unlimited",
            ),
            (
                "queue-capacity",
                u64::from(self.queue_capacity),
                QUEUE_CAPACITY,
                "requests waiting",
            ),
            (
                "retry-after-seconds",
                u64::from(self.retry_after_seconds),
                RETRY_AFTER_SECONDS,
                "at most a day",
            ),
            (
                "max-body-bytes",
                wide(self.max_body_bytes),
                MAX_BODY_BYTES,
                "bodies are buffered",
            ),
            (
                "max-buffered-bytes",
                self.max_buffered_bytes,
                MAX_BUFFERED_BYTES,
                "all buffered bodies together",
            ),
            (
                "max-connections",
                u64::from(self.max_connections),
                MAX_CONNECTIONS,
                "0 = the open-file limit less 128",
            ),
            (
                "max-header-bytes",
                wide(self.max_header_bytes),
                MAX_HEADER_BYTES,
                "hyper's HTTP/1 read buffer is at least 8192 bytes",
            ),
            (
                "max-headers",
                wide(self.max_headers),
                MAX_HEADERS,
                "header fields per request",
            ),
            (
                "upstream-max-headers",
                wide(self.upstream_max_headers),
                UPSTREAM_MAX_HEADERS,
                "header fields per forwarded request",
            ),
            (
                "report-buffer",
                wide(self.report_buffer),
                REPORT_BUFFER,
                "reports held in memory",
            ),
            (
                "worker-threads",
                wide(self.worker_threads),
                WORKER_THREADS,
                "0 = one per CPU",
            ),
            (
                "histogram-buckets-seconds",
                wide(self.histogram_buckets_seconds.len()),
                HISTOGRAM_BUCKETS,
                "number of buckets",
            ),
        ] {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::OutOfRange {
                    name,
                    value,
                    min,
                    max,
                    why,
                });
            }
        }
        let max = bounds::CONNECT_RETRY_FOR_MAX;
        if self.connect_retry_for > max {
            return Err(ConfigError::RetryOutOfRange {
                value: self.connect_retry_for,
                max,
            });
        }
        if self.max_buffered_bytes < wide(self.max_body_bytes) {
            return Err(ConfigError::BudgetBelowBody {
                buffered: self.max_buffered_bytes,
                body: wide(self.max_body_bytes),
            });
        }
        Ok(())
    }

    /// Parsed `--next`, if any (call after [`Config::validate`]).
    pub fn next_target(&self) -> Result<Option<NextTarget>, ConfigError> {
        self.next.as_deref().map(NextTarget::parse).transpose()
    }

    /// The old `*-seconds` options, by name.
    fn legacy_seconds(&self) -> [(&'static str, Option<f64>); 6] {
        [
            ("queue-timeout-seconds", self.queue_timeout_seconds),
            (
                "header-read-timeout-seconds",
                self.header_read_timeout_seconds,
            ),
            ("upstream-timeout-seconds", self.upstream_timeout_seconds),
            ("drain-timeout-seconds", self.drain_timeout_seconds),
            ("report-interval-seconds", self.report_interval_seconds),
            (
                "discovery-interval-seconds",
                self.discovery_interval_seconds,
            ),
        ]
    }

    /// The queue timeout: `--queue-timeout`, or the old `--queue-timeout-seconds`.
    pub fn queue_timeout(&self) -> Duration {
        either(self.queue_timeout_seconds, self.queue_timeout)
    }
    /// The head read timeout: `--header-read-timeout`, or the old `…-seconds`.
    pub fn header_read_timeout(&self) -> Duration {
        either(self.header_read_timeout_seconds, self.header_read_timeout)
    }
    /// The upstream timeout: `--upstream-timeout`, or the old `…-seconds`.
    /// How long a request that reached no process may wait for one: `--connect-retry-for`,
    /// never longer than `--upstream-timeout` (the request's own deadline upstream).
    pub fn connect_retry_window(&self) -> Duration {
        self.connect_retry_for.min(self.upstream_timeout())
    }

    pub fn upstream_timeout(&self) -> Duration {
        either(self.upstream_timeout_seconds, self.upstream_timeout)
    }
    /// The drain timeout: `--drain-timeout`, or the old `…-seconds`.
    pub fn drain_timeout(&self) -> Duration {
        either(self.drain_timeout_seconds, self.drain_timeout)
    }
    /// The report window: `--report-interval`, or the old `…-seconds`.
    pub fn report_interval(&self) -> Duration {
        either(self.report_interval_seconds, self.report_interval)
    }
    /// The discovery period: `--discovery-interval`, or the old `…-seconds`.
    pub fn discovery_interval(&self) -> Duration {
        either(self.discovery_interval_seconds, self.discovery_interval)
    }
    /// The buffer budget in bytes (call after [`Config::validate`]).
    pub fn max_buffered_bytes(&self) -> usize {
        usize::try_from(self.max_buffered_bytes).unwrap_or(usize::MAX)
    }

    /// The connection limit: `--max-connections`, or for 0 the soft open-file limit less 128
    /// descriptors kept for upstream connections, the admin server and the agent (`None`:
    /// unlimited, when the open-file limit is, or cannot be read).
    pub fn connection_limit(&self) -> Option<usize> {
        if self.max_connections > 0 {
            return usize::try_from(self.max_connections).ok();
        }
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let soft: usize = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))?
            .split_whitespace()
            .nth(3)?
            .parse()
            .ok()?;
        Some(soft.saturating_sub(128).max(16))
    }

    /// How many threads serve requests: `--worker-threads`, or for 0 one per CPU.
    pub fn serving_threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        }
    }

    /// The serving threads [`crate::Sidecar::run`] starts beside the one it runs on: with
    /// `--runtime per-core`, one fewer than [`Config::serving_threads`]; with
    /// `work-stealing`, none (the multi-thread runtime is the caller's).
    pub fn extra_serving_threads(&self) -> usize {
        match self.runtime {
            RuntimeModel::PerCore => self.serving_threads().saturating_sub(1),
            RuntimeModel::WorkStealing => 0,
        }
    }

    /// The replica id used in reports.
    pub fn replica_id(&self) -> String {
        self.replica.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "host".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }
}

/// A positive, finite number of seconds up to 30 days (the longest duration any option
/// takes, `sair_service::duration::MAX`) as a duration (`None` otherwise).
fn seconds(v: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero() && *d <= sair_service::duration::MAX)
}

/// The old `*-seconds` value when it was given (and valid), else the new option's.
fn either(legacy: Option<f64>, new: Duration) -> Duration {
    legacy.and_then(seconds).unwrap_or(new)
}

#[cfg(test)]
mod tests;
