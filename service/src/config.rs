//! One configuration overlay for every binary: **flag > `SAIR_*` environment variable > TOML
//! file > default**, with the options, their types and their validation all taken from the
//! binary's clap definition, never from a hand-kept list of field names.
//!
//! How it works ([`load`]):
//! 1. The command line is parsed with environment reading switched off and requirements
//!    relaxed, to learn which options were given explicitly as flags.
//! 2. The TOML file comes from the option whose long name is `config` (`--config PATH` or its
//!    variable, `SAIR_CONFIG`). Its keys are long option names with `_` for `-`; a key that is
//!    no option anywhere in the command tree is an error naming the key and the file.
//! 3. For every other option of the active (sub)command, a value is taken from its variable
//!    (read through the injected [`EnvSource`]) or else from the file. Each such value is first
//!    checked with the option's own clap value parser, so an error names the variable or the
//!    key, then passed to clap as `--long=value`, and the command line is parsed again with the
//!    full rules (required options, `requires`, conflicts).
//!
//! An option that conflicts with one given at a higher precedence is not taken from a lower
//! one: that is how a hidden legacy alias (`--control-period-ms`) and its successor
//! (`--control-period`) coexist.
//!
//! `--help` is rendered by the unmodified command, so it shows every `[env: SAIR_…]` name.

use crate::ConfigError;
use clap::builder::Resettable;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, Parser};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;

mod check;

pub use check::{Field, check_every_field, walk_fields};

/// Where configuration reads environment variables. Tests inject a [`MapEnv`]; binaries use
/// [`ProcessEnv`]. Config code never mutates the process environment.
pub trait EnvSource {
    /// The value of `key`, if set.
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment. A value that is not UTF-8 is passed on lossily, so that its
/// option's parser reports it rather than it being ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var_os(key).map(|v| v.to_string_lossy().into_owned())
    }
}

/// A fixed set of variables (tests).
#[derive(Debug, Clone, Default)]
pub struct MapEnv(BTreeMap<String, String>);

impl MapEnv {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value`.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for MapEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl EnvSource for MapEnv {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// Where an option's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Its default (or unset, for an option without one).
    Default,
    /// The TOML file.
    File {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// An environment variable.
    Env {
        /// The variable.
        var: String,
    },
    /// The command line.
    Flag,
}

impl Source {
    /// Higher wins: default 0, file 1, env 2, flag 3.
    pub fn rank(&self) -> u8 {
        match self {
            Self::Default => 0,
            Self::File { .. } => 1,
            Self::Env { .. } => 2,
            Self::Flag => 3,
        }
    }
}

/// A loaded configuration: the value, and where each option came from.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The parsed configuration.
    pub value: T,
    /// The TOML file, if one was named.
    pub config_file: Option<PathBuf>,
    sources: BTreeMap<String, Source>,
}

impl<T> Loaded<T> {
    /// Where the option with clap id `id` (the field name) came from; `Default` for an id of
    /// no active option.
    pub fn source(&self, id: &str) -> &Source {
        self.sources.get(id).unwrap_or(&Source::Default)
    }

    /// Every active option's id and source.
    pub fn sources(&self) -> impl Iterator<Item = (&str, &Source)> {
        self.sources.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Logs each option that did not come from its default, at debug level.
    pub fn log_sources(&self) {
        for (id, s) in self.sources() {
            if *s != Source::Default {
                tracing::debug!(option = id, source = ?s, "configuration");
            }
        }
    }
}

/// Parses `args` (with the binary name first, as from `std::env::args_os()`) into `T`, with
/// the overlay described in the [module docs](self).
pub fn load<T: Parser>(
    args: impl IntoIterator<Item = impl Into<OsString>>,
    env: &dyn EnvSource,
) -> Result<Loaded<T>, ConfigError> {
    let (matches, loaded) = load_command(T::command(), args, env)?;
    let value = T::from_arg_matches(&matches)?;
    Ok(Loaded {
        value,
        config_file: loaded.config_file,
        sources: loaded.sources,
    })
}

/// [`load`] for a builder-API [`Command`]: the final matches and the sources.
pub fn load_command(
    cmd: Command,
    args: impl IntoIterator<Item = impl Into<OsString>>,
    env: &dyn EnvSource,
) -> Result<(ArgMatches, Loaded<()>), ConfigError> {
    let argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let first = match relaxed(without_env(cmd.clone())).try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => return Err(ConfigError::Clap(help_with_env(&cmd, &argv, e))),
    };
    let chain = active_chain(&cmd, &first);
    let mut sources = BTreeMap::new();

    // The file: from `--config` or its variable.
    let mut root_tokens: Vec<OsString> = Vec::new();
    let mut leaf_tokens: Vec<OsString> = Vec::new();
    let mut config_file = None;
    for (depth, (level, m)) in chain.iter().enumerate() {
        if let Some(arg) = level
            .get_arguments()
            .find(|a| a.get_long() == Some("config"))
        {
            let id = arg.get_id().as_str();
            if m.value_source(id) == Some(ValueSource::CommandLine) {
                config_file = m.get_raw(id).and_then(|mut v| v.next()).map(PathBuf::from);
                sources.insert(id.to_owned(), Source::Flag);
            } else if let Some(var) = env_name(arg)
                && let Some(v) = env.get(&var)
            {
                let tokens = if depth == 0 {
                    &mut root_tokens
                } else {
                    &mut leaf_tokens
                };
                tokens.push(format!("--config={v}").into());
                config_file = Some(PathBuf::from(v));
                sources.insert(id.to_owned(), Source::Env { var });
            }
        }
    }
    let file = match &config_file {
        Some(path) => Some((path.clone(), read_table(&cmd, path)?)),
        None => None,
    };

    for (depth, (level, m)) in chain.iter().enumerate() {
        let args: Vec<&Arg> = level.get_arguments().filter(|a| is_option(a)).collect();
        for a in &args {
            if m.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine) {
                sources.insert(a.get_id().to_string(), Source::Flag);
            }
        }
        let beaten = |a: &Arg, sources: &BTreeMap<String, Source>, rank: u8| {
            conflicts(level, a)
                .iter()
                .any(|c| sources.get(c).is_some_and(|s| s.rank() >= rank))
        };
        let mut tokens = Vec::new();
        // Environment, then file: each only where no higher source gave the option (or one it
        // conflicts with).
        for a in &args {
            let id = a.get_id().to_string();
            if sources.contains_key(&id) || beaten(a, &sources, 3) {
                continue;
            }
            if let Some(var) = env_name(a)
                && let Some(v) = env.get(&var)
            {
                let t = tokens_for(a, std::slice::from_ref(&v)).map_err(|reason| {
                    ConfigError::BadEnv {
                        var: var.clone(),
                        value: v.clone(),
                        reason,
                    }
                })?;
                tokens.extend(t);
                sources.insert(id, Source::Env { var });
            }
        }
        if let Some((path, table)) = &file {
            for a in &args {
                let id = a.get_id().to_string();
                if sources.contains_key(&id) || beaten(a, &sources, 2) {
                    continue;
                }
                let key = toml_key(a);
                let Some(value) = table.get(&key) else {
                    continue;
                };
                let bad = |reason: String| ConfigError::BadFileValue {
                    key: key.clone(),
                    path: path.clone(),
                    value: value.to_string(),
                    reason,
                };
                let strings = toml_strings(value).map_err(bad)?;
                tokens.extend(tokens_for(a, &strings).map_err(bad)?);
                sources.insert(
                    id,
                    Source::File {
                        path: path.clone(),
                        key,
                    },
                );
            }
        }
        if depth == 0 {
            root_tokens.extend(tokens);
        } else {
            leaf_tokens.extend(tokens);
        }
        for a in &args {
            sources
                .entry(a.get_id().to_string())
                .or_insert(Source::Default);
        }
    }

    // Root-level options right after the binary name; deeper ones at the end of the leaf's
    // arguments (before a `--`, which only the leaf can have consumed).
    let mut second: Vec<OsString> =
        Vec::with_capacity(argv.len() + root_tokens.len() + leaf_tokens.len());
    second.extend(argv.first().cloned());
    second.extend(root_tokens.iter().cloned());
    let rest = argv.get(1..).unwrap_or_default();
    let dashdash = rest.iter().position(|a| a == "--").unwrap_or(rest.len());
    second.extend(rest[..dashdash].iter().cloned());
    second.extend(leaf_tokens.iter().cloned());
    second.extend(rest[dashdash..].iter().cloned());

    let matches = without_env(cmd.clone())
        .try_get_matches_from(&second)
        .map_err(|e| blame(&chain_args(&chain), &sources, e))?;
    Ok((
        matches,
        Loaded {
            value: (),
            config_file,
            sources,
        },
    ))
}

/// The commands from the root to the active subcommand, each with its matches.
fn active_chain<'a>(root: &'a Command, m: &'a ArgMatches) -> Vec<(&'a Command, &'a ArgMatches)> {
    let mut chain = vec![(root, m)];
    let (mut cmd, mut m) = (root, m);
    while let Some((name, sub_m)) = m.subcommand() {
        let Some(sub) = cmd.find_subcommand(name) else {
            break;
        };
        chain.push((sub, sub_m));
        (cmd, m) = (sub, sub_m);
    }
    chain
}

fn chain_args<'a>(chain: &[(&'a Command, &ArgMatches)]) -> Vec<&'a Arg> {
    chain.iter().flat_map(|(c, _)| c.get_arguments()).collect()
}

/// The command with no `env` on any option: the injected [`EnvSource`] is the only one read.
fn without_env(cmd: Command) -> Command {
    cmd.mut_args(|a| a.env(None)).mut_subcommands(without_env)
}

/// The command without requirements: pass 1 only learns which flags were given.
fn relaxed(cmd: Command) -> Command {
    cmd.mut_args(|a| a.required(false).requires(Resettable::Reset))
        .mut_subcommands(relaxed)
}

/// `--help` / `--version` rendered by the unmodified command, so help shows `[env: …]`.
fn help_with_env(cmd: &Command, argv: &[OsString], e: clap::Error) -> clap::Error {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            cmd.clone().try_get_matches_from(argv).err().unwrap_or(e)
        }
        _ => e,
    }
}

/// An option the overlay fills: has a long name, takes part in configuration.
fn is_option(a: &Arg) -> bool {
    a.get_long().is_some()
        && a.get_long() != Some("config")
        && !matches!(
            a.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
}

/// The variable of an option, as declared with clap's `env`.
pub(crate) fn env_name(a: &Arg) -> Option<String> {
    a.get_env().map(|e| e.to_string_lossy().into_owned())
}

/// The TOML key of an option: its long name with `_` for `-`.
pub fn toml_key(a: &Arg) -> String {
    a.get_long().unwrap_or_default().replace('-', "_")
}

/// Ids of the options `a` conflicts with, in either direction, within `level`.
fn conflicts(level: &Command, a: &Arg) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = level
        .get_arg_conflicts_with(a)
        .iter()
        .map(|c| c.get_id().to_string())
        .collect();
    for other in level.get_arguments() {
        if other.get_id() != a.get_id()
            && level
                .get_arg_conflicts_with(other)
                .iter()
                .any(|c| c.get_id() == a.get_id())
        {
            out.insert(other.get_id().to_string());
        }
    }
    out
}

fn read_table(cmd: &Command, path: &PathBuf) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::FileRead {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|e| ConfigError::FileSyntax {
        path: path.clone(),
        source: Box::new(e),
    })?;
    let mut known = BTreeSet::new();
    collect_keys(cmd, &mut known);
    if let Some(key) = table.keys().find(|k| !known.contains(*k)) {
        return Err(ConfigError::UnknownKey {
            key: key.clone(),
            path: path.clone(),
        });
    }
    Ok(table)
}

/// Every option's key anywhere in the command tree: one file may serve several subcommands.
fn collect_keys(cmd: &Command, out: &mut BTreeSet<String>) {
    out.extend(cmd.get_arguments().filter(|a| is_option(a)).map(toml_key));
    for sub in cmd.get_subcommands() {
        collect_keys(sub, out);
    }
}

/// A TOML value as option values: scalars as their text, arrays element by element.
fn toml_strings(v: &toml::Value) -> Result<Vec<String>, String> {
    fn scalar(v: &toml::Value) -> Result<String, String> {
        Ok(match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Array(_) | toml::Value::Table(_) => {
                return Err("expected a value or a list of values".to_owned());
            }
        })
    }
    match v {
        toml::Value::Array(items) => items.iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean (true/false)")),
    }
}

/// The command-line tokens that give option `a` the `values`, each first checked with the
/// option's own value parser.
fn tokens_for(a: &Arg, values: &[String]) -> Result<Vec<OsString>, String> {
    let long = a.get_long().unwrap_or_default();
    let one = || match values {
        [v] => Ok(v.as_str()),
        _ => Err("expected one value, not a list".to_owned()),
    };
    Ok(match a.get_action() {
        ArgAction::SetTrue => match parse_bool(one()?)? {
            true => vec![format!("--{long}").into()],
            false => vec![],
        },
        ArgAction::SetFalse => match parse_bool(one()?)? {
            false => vec![format!("--{long}").into()],
            true => vec![],
        },
        ArgAction::Count => {
            let n: u8 = one()?
                .trim()
                .parse()
                .map_err(|_| format!("{:?} is not a count (0–255)", one().unwrap_or_default()))?;
            vec![OsString::from(format!("--{long}")); usize::from(n)]
        }
        _ => {
            for v in values {
                check_value(a, v)?;
            }
            let many = a.get_num_args().is_some_and(|r| r.max_values() > 1);
            match (a.get_action(), values) {
                (_, [v]) => vec![format!("--{long}={v}").into()],
                (ArgAction::Append, vs) => {
                    vs.iter().map(|v| format!("--{long}={v}").into()).collect()
                }
                (_, vs) if a.get_value_delimiter().is_some() => {
                    let d = a.get_value_delimiter().unwrap_or(',');
                    vec![format!("--{long}={}", vs.join(&d.to_string())).into()]
                }
                (_, vs) if many => std::iter::once(OsString::from(format!("--{long}")))
                    .chain(vs.iter().map(OsString::from))
                    .collect(),
                _ => return Err("expected one value, not a list".to_owned()),
            }
        }
    })
}

/// Runs `a`'s value parser on `value` in a one-option command, to get an error that can be
/// blamed on the variable or key rather than on a flag nobody typed.
fn check_value(a: &Arg, value: &str) -> Result<(), String> {
    let mut probe = Arg::new("value")
        .long("value")
        .value_parser(a.get_value_parser().clone())
        .action(ArgAction::Append)
        .allow_hyphen_values(true)
        .ignore_case(a.is_ignore_case_set());
    if let Some(d) = a.get_value_delimiter() {
        probe = probe.value_delimiter(d);
    }
    Command::new("probe")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--value={value}")])
        .map(drop)
        .map_err(|e| reason(&e))
}

/// The cause of a clap value error without clap's `error:` framing and usage text.
fn reason(e: &clap::Error) -> String {
    use std::error::Error as _;
    if let Some(src) = e.source() {
        return src.to_string();
    }
    let valid = match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(v)) => format!(" (possible values: {})", v.join(", ")),
        _ => String::new(),
    };
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    format!("{}{valid}", first.trim_start_matches("error: "))
}

/// Maps a clap error of the second parse back to the variable or key that caused it.
fn blame(args: &[&Arg], sources: &BTreeMap<String, Source>, e: clap::Error) -> ConfigError {
    let named: Vec<String> = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => vec![],
    };
    let culprit = args.iter().find(|a| {
        let flag = format!("--{}", a.get_long().unwrap_or_default());
        named.iter().any(|n| {
            n == &flag || n.starts_with(&format!("{flag} ")) || n.starts_with(&format!("{flag}="))
        })
    });
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    let why = first.trim_start_matches("error: ").to_owned();
    match culprit.and_then(|a| sources.get(a.get_id().as_str())) {
        Some(Source::Env { var }) => ConfigError::Rejected {
            origin: format!("environment variable {var}"),
            reason: why,
        },
        Some(Source::File { path, key }) => ConfigError::Rejected {
            origin: format!("config file {} key `{key}`", path.display()),
            reason: why,
        },
        _ => ConfigError::Clap(e),
    }
}

#[cfg(test)]
mod tests;
