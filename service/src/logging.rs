//! Tracing set-up shared by every binary: logs go to stderr (stdout carries the bound-address
//! line and command output), as text or JSON lines.
//!
//! The filter: `RUST_LOG` when it is set (it always wins); otherwise the binary's default,
//! raised to `debug` by `-v` and to `trace` by `-vv`.

use clap::{ArgAction, Args, ValueEnum};

/// The format of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging flags; `#[command(flatten)]` them into a binary's top-level parser.
#[derive(Debug, Clone, Default, Args)]
pub struct LogArgs {
    /// Log format on stderr.
    #[arg(long, env = "SAIR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Old spelling of `--log-format json` (hidden; kept until docs/configuration.md says it
    /// goes).
    #[arg(long, env = "SAIR_LOG_JSON", hide = true, global = true)]
    pub log_json: bool,
    /// More logs: -v for debug, -vv for trace (RUST_LOG, when set, wins).
    #[arg(short, long, env = "SAIR_VERBOSE", action = ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl LogArgs {
    /// The format after the legacy `--log-json` flag.
    pub fn format(&self) -> LogFormat {
        if self.log_json {
            LogFormat::Json
        } else {
            self.log_format
        }
    }

    /// The filter directives used when `RUST_LOG` is unset.
    pub fn directives(&self, default: &str) -> String {
        match self.verbose {
            0 => default.to_owned(),
            1 => "debug".to_owned(),
            _ => "trace".to_owned(),
        }
    }
}

/// Installs the global subscriber (a second call is a no-op). `default` is the filter when
/// `RUST_LOG` is unset, e.g. `"info"`.
pub fn init_tracing(args: &LogArgs, default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => EnvFilter::try_new(&s).unwrap_or_else(|e| {
            eprintln!("RUST_LOG={s:?} is not a valid filter ({e}); using {default:?}");
            EnvFilter::new(default)
        }),
        _ => {
            EnvFilter::try_new(args.directives(default)).unwrap_or_else(|_| EnvFilter::new("info"))
        }
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_set = match args.format() {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
}
