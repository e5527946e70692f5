//! The crate's one error type. Every variant names what was wrong, where it came from (flag,
//! variable, file and key) and therefore what to change.

use std::path::PathBuf;

/// Why a configuration could not be loaded. Every variant is a usage error (exit 64) except
/// that [`ConfigError::Clap`] also carries `--help` / `--version`, which exit 0; use
/// [`ConfigError::report`] to print it and get the exit code.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// clap refused the command line (or was asked for `--help` / `--version`).
    #[error("{0}")]
    Clap(#[from] clap::Error),
    /// An environment variable holds a value its option does not accept.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    BadEnv {
        /// The variable, e.g. `SAIR_CONTROL_PERIOD`.
        var: String,
        /// Its value.
        value: String,
        /// What the option's parser said.
        reason: String,
    },
    /// The configuration file cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    FileRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    #[error("config file {} is not valid TOML: {source}", path.display())]
    FileSyntax {
        /// The file.
        path: PathBuf,
        /// The TOML error (with line and column).
        source: Box<toml::de::Error>,
    },
    /// The configuration file has a key that is no option of this binary.
    #[error(
        "config file {}: unknown key `{key}` (keys are the long option names with `_` for `-`)",
        path.display()
    )]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// A key of the configuration file holds a value its option does not accept.
    #[error("config file {}: key `{key}` = {value} is invalid: {reason}", path.display())]
    BadFileValue {
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
        /// The value as TOML.
        value: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A value from a variable or the file that clap refused in combination with the others
    /// (a conflict, a missing companion option).
    #[error("{origin}: {reason}")]
    Rejected {
        /// `environment variable SAIR_…` or `config file PATH key `…``.
        origin: String,
        /// What clap said.
        reason: String,
    },
}

impl ConfigError {
    /// Prints the error (or the help / version text) and returns the exit code: 0 for
    /// `--help` / `--version`, 64 otherwise.
    pub fn report(&self, binary: &str) -> std::process::ExitCode {
        match self {
            Self::Clap(e) => crate::exit::clap_error(e),
            other => {
                eprintln!("{binary}: {other}");
                crate::exit::Exit::Usage.into()
            }
        }
    }

    /// True for `--help` / `--version` (not an error; exit 0).
    pub fn is_display(&self) -> bool {
        matches!(self, Self::Clap(e) if !e.use_stderr())
    }
}
