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
mod file;
mod values;

pub use check::{Field, check_every_field, check_every_field_named, walk_fields};
use file::read_table;
use values::{tokens_for, toml_strings};

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
///
/// Options of the root command are placed right after the binary name, options of deeper
/// commands at the end of the arguments: a non-global option of an intermediate subcommand
/// (`bin a --x b`) cannot be filled from a variable or the file. No SAIR binary has one.
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
    let mut tokens: [Vec<OsString>; 2] = Default::default();
    let config_file = config_file(&chain, env, &mut sources, &mut tokens);
    let file = match &config_file {
        Some(path) => Some(FileSource {
            path: path.clone(),
            table: read_table(&cmd, path)?,
        }),
        None => None,
    };
    for (depth, (level, m)) in chain.iter().enumerate() {
        let t = overlay_level(level, m, env, file.as_ref(), &mut sources)?;
        tokens[usize::from(depth > 0)].extend(t);
    }
    let [root, deeper] = tokens;
    let second = splice(&argv, root, deeper);
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

/// The parsed TOML file.
struct FileSource {
    path: PathBuf,
    table: toml::Table,
}

/// The file named by the option whose long name is `config`, given as a flag or through its
/// variable (then passed on to clap as a token, so the binary sees it too).
fn config_file(
    chain: &[(&Command, &ArgMatches)],
    env: &dyn EnvSource,
    sources: &mut BTreeMap<String, Source>,
    tokens: &mut [Vec<OsString>; 2],
) -> Option<PathBuf> {
    let mut path = None;
    for (depth, (level, m)) in chain.iter().enumerate() {
        let Some(arg) = level
            .get_arguments()
            .find(|a| a.get_long() == Some("config"))
        else {
            continue;
        };
        let id = arg.get_id().as_str();
        if m.value_source(id) == Some(ValueSource::CommandLine) {
            path = m.get_raw(id).and_then(|mut v| v.next()).map(PathBuf::from);
            sources.insert(id.to_owned(), Source::Flag);
        } else if let Some(var) = env_name(arg)
            && let Some(v) = env.get(&var)
        {
            tokens[usize::from(depth > 0)].push(format!("--config={v}").into());
            path = Some(PathBuf::from(v));
            sources.insert(id.to_owned(), Source::Env { var });
        }
    }
    path
}

/// Tokens for the options of one command that no flag gave: from the variable, else from the
/// file, each only where no higher source gave the option or one it conflicts with. Records
/// every option's source.
fn overlay_level(
    level: &Command,
    m: &ArgMatches,
    env: &dyn EnvSource,
    file: Option<&FileSource>,
    sources: &mut BTreeMap<String, Source>,
) -> Result<Vec<OsString>, ConfigError> {
    let args: Vec<&Arg> = level.get_arguments().filter(|a| is_option(a)).collect();
    for a in &args {
        if m.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine) {
            sources.insert(a.get_id().to_string(), Source::Flag);
        }
    }
    let open = |a: &Arg, sources: &BTreeMap<String, Source>, rank: u8| {
        !sources.contains_key(a.get_id().as_str())
            && !conflicts(level, a)
                .iter()
                .any(|c| sources.get(c).is_some_and(|s| s.rank() >= rank))
    };
    let mut tokens = Vec::new();
    for a in &args {
        if !open(a, sources, Source::Flag.rank()) {
            continue;
        }
        let Some(var) = env_name(a) else { continue };
        let Some(v) = env.get(&var) else { continue };
        let t = tokens_for(a, std::slice::from_ref(&v)).map_err(|reason| ConfigError::BadEnv {
            var: var.clone(),
            value: v.clone(),
            reason,
        })?;
        tokens.extend(t);
        sources.insert(a.get_id().to_string(), Source::Env { var });
    }
    if let Some(file) = file {
        let env_rank = Source::Env { var: String::new() }.rank();
        for a in &args {
            if !open(a, sources, env_rank) {
                continue;
            }
            let key = toml_key(a);
            let Some(value) = file.table.get(&key) else {
                continue;
            };
            let bad = |reason: String| ConfigError::BadFileValue {
                key: key.clone(),
                path: file.path.clone(),
                value: value.to_string(),
                reason,
            };
            let strings = toml_strings(value).map_err(bad)?;
            tokens.extend(tokens_for(a, &strings).map_err(bad)?);
            let path = file.path.clone();
            sources.insert(a.get_id().to_string(), Source::File { path, key });
        }
    }
    for a in &args {
        sources
            .entry(a.get_id().to_string())
            .or_insert(Source::Default);
    }
    Ok(tokens)
}

/// The second command line: root-level tokens right after the binary name, deeper ones at the
/// end of the arguments but before a `--` (which only the leaf can have consumed).
fn splice(argv: &[OsString], root: Vec<OsString>, deeper: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len() + root.len() + deeper.len());
    out.extend(argv.first().cloned());
    out.extend(root);
    let rest = argv.get(1..).unwrap_or_default();
    let dashdash = rest.iter().position(|a| a == "--").unwrap_or(rest.len());
    out.extend(rest[..dashdash].iter().cloned());
    out.extend(deeper);
    out.extend(rest[dashdash..].iter().cloned());
    out
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
