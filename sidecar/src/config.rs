//! The sidecar's one configuration type.
//!
//! Sources, highest precedence first: command-line flags, `SAIR_*` environment variables, then
//! the TOML file named by `--config` (only for options given neither as a flag nor in the
//! environment). [`Config::validate`] runs before anything binds; `main` exits with 64 when it
//! fails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--upstream must be an http:// URL with a host, got {0:?}")]
    BadUpstream(String),
    #[error("--next target {target:?} is not valid: {why}")]
    BadNext { target: String, why: String },
    #[error("--{name} must be positive, got {value}")]
    NotPositive { name: &'static str, value: f64 },
    #[error("--histogram-buckets-seconds must be strictly increasing positive numbers, got {0:?}")]
    BadBuckets(Vec<f64>),
    #[error("--{0} must not be empty")]
    Empty(&'static str),
    #[error("--tls-cert and --tls-key must be given together")]
    HalfIdentity,
    #[error("--agent needs either --agent-ca or --agent-insecure-skip-verify")]
    NoAgentTrust,
    #[error("could not read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    ParseFile {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("command line: {0}")]
    Cli(#[from] clap::Error),
}

/// Request-path sidecar for one SAIR pipeline stage replica: admission queue, exact queue and
/// service timing, chaining to the next stage, Prometheus metrics and StageReports.
#[derive(Debug, Clone, Parser, Deserialize)]
#[command(name = "sair-sidecar", version, about, long_about = None)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// TOML file with any of these options (snake_case keys); flags and SAIR_* variables win.
    #[arg(long, env = "SAIR_CONFIG")]
    #[serde(skip)]
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

    /// Longest a request may wait in the queue before it gets 503, in seconds.
    #[arg(long, env = "SAIR_QUEUE_TIMEOUT_SECONDS", default_value_t = 30.0)]
    pub queue_timeout_seconds: f64,

    /// Seconds advertised in Retry-After on a 503 from admission.
    #[arg(long, env = "SAIR_RETRY_AFTER_SECONDS", default_value_t = 1)]
    pub retry_after_seconds: u32,

    /// Largest request or upstream response body, in bytes (413 / 502 beyond it).
    #[arg(long, env = "SAIR_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest request head (request line plus headers), in bytes (HTTP/1 buffer, h2 header list).
    #[arg(long, env = "SAIR_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,

    /// A client must send a complete request head within this many seconds (slow clients).
    #[arg(long, env = "SAIR_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10.0)]
    pub header_read_timeout_seconds: f64,

    /// Gives up on the model server (or next stage) after this many seconds: 504-style 502.
    #[arg(long, env = "SAIR_UPSTREAM_TIMEOUT_SECONDS", default_value_t = 300.0)]
    pub upstream_timeout_seconds: f64,

    /// On SIGTERM, seconds to let in-flight and queued requests finish before exiting.
    #[arg(long, env = "SAIR_DRAIN_TIMEOUT_SECONDS", default_value_t = 30.0)]
    pub drain_timeout_seconds: f64,

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

    /// Length of a StageReport window, in seconds.
    #[arg(long, env = "SAIR_REPORT_INTERVAL_SECONDS", default_value_t = 1.0)]
    pub report_interval_seconds: f64,

    /// Reports kept while the agent is unreachable; the oldest is dropped (and counted) beyond.
    #[arg(long, env = "SAIR_REPORT_BUFFER", default_value_t = 64)]
    pub report_buffer: usize,

    /// Seconds between re-resolutions of a dns: or re-reads of a file: --next target.
    #[arg(long, env = "SAIR_DISCOVERY_INTERVAL_SECONDS", default_value_t = 1.0)]
    pub discovery_interval_seconds: f64,

    /// Runtime threads; 1 runs everything on one thread (no cross-thread wake-ups, the
    /// lowest tail latency on a busy node), 0 = one per CPU.
    #[arg(long, env = "SAIR_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "SAIR_LOG_JSON")]
    pub log_json: bool,
}

impl Default for Config {
    fn default() -> Self {
        // The clap defaults are the one source of default values.
        Config::parse_from(["sair-sidecar"])
    }
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
    /// Parses flags and environment, then fills what neither gave from the `--config` file.
    pub fn load<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
        let matches = Config::command().try_get_matches_from(args)?;
        let mut cfg = Config::from_arg_matches(&matches)?;
        let Some(path) = cfg.config.clone() else {
            return Ok(cfg);
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::ReadFile {
            path: path.clone(),
            source,
        })?;
        let file: toml::Table = text.parse().map_err(|e| ConfigError::ParseFile {
            path: path.clone(),
            source: Box::new(e),
        })?;
        // Start from the file's values and put back every option set by flag or environment.
        let from_file: Config =
            toml::Value::Table(file)
                .try_into()
                .map_err(|e| ConfigError::ParseFile {
                    path: path.clone(),
                    source: Box::new(e),
                })?;
        let mut merged = from_file;
        for id in matches.ids() {
            let explicit = matches!(
                matches.value_source(id.as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            if explicit {
                merged.take_field(id.as_str(), &cfg);
            }
        }
        merged.config = cfg.config.take();
        Ok(merged)
    }

    fn take_field(&mut self, id: &str, from: &Config) {
        macro_rules! fields {
            ($($f:ident),* $(,)?) => {
                match id { $(stringify!($f) => self.$f = from.$f.clone(),)* _ => {} }
            };
        }
        fields!(
            listen,
            metrics_listen,
            upstream,
            next,
            next_stage,
            pipeline,
            stage,
            replica,
            max_concurrency,
            queue_capacity,
            queue_timeout_seconds,
            retry_after_seconds,
            max_body_bytes,
            max_header_bytes,
            header_read_timeout_seconds,
            upstream_timeout_seconds,
            drain_timeout_seconds,
            histogram_buckets_seconds,
            agent,
            agent_server_name,
            agent_ca,
            agent_insecure_skip_verify,
            tls_cert,
            tls_key,
            report_interval_seconds,
            report_buffer,
            discovery_interval_seconds,
            worker_threads,
            log_json,
        );
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
            ("max-body-bytes", self.max_body_bytes as f64),
            ("max-header-bytes", self.max_header_bytes as f64),
            ("report-buffer", self.report_buffer as f64),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(ConfigError::NotPositive { name, value });
            }
        }
        let b = &self.histogram_buckets_seconds;
        if b.is_empty()
            || b.iter().any(|v| !v.is_finite() || *v <= 0.0)
            || b.windows(2).any(|w| w[0] >= w[1])
        {
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

    /// Parsed `--next`, if any (call after [`Config::validate`]).
    pub fn next_target(&self) -> Result<Option<NextTarget>, ConfigError> {
        self.next.as_deref().map(NextTarget::parse).transpose()
    }

    pub fn queue_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.queue_timeout_seconds)
    }
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.header_read_timeout_seconds)
    }
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.upstream_timeout_seconds)
    }
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.drain_timeout_seconds)
    }
    pub fn report_interval(&self) -> Duration {
        Duration::from_secs_f64(self.report_interval_seconds)
    }
    pub fn discovery_interval(&self) -> Duration {
        Duration::from_secs_f64(self.discovery_interval_seconds)
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

#[cfg(test)]
mod tests;
