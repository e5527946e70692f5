//! Walking every option of a binary's configuration, and the test helper that checks each one
//! through all three sources. Because the list comes from clap, a new option is checked the
//! day it is added; one with no default and no sample fails the check until it gets a sample.

use super::{EnvSource, MapEnv, Source, env_name, is_option, load_command, toml_key};
use crate::ConfigError;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command, CommandFactory};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// One option of one (sub)command path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Subcommand names from the root to the command that declares the option.
    pub path: Vec<String>,
    /// The clap id (the field name).
    pub id: String,
    /// The long flag, without `--`.
    pub long: String,
    /// The declared variable, if any.
    pub env: Option<String>,
    /// The TOML key.
    pub key: String,
    /// The first default value, if any.
    pub default: Option<String>,
    /// A boolean flag (`--x`, no value).
    pub is_flag: bool,
    /// A counted flag (`-vv`).
    pub is_count: bool,
    /// Repeatable (`Vec<T>`).
    pub is_list: bool,
    /// Hidden from `--help` (a legacy alias).
    pub hidden: bool,
}

impl Field {
    /// `path.id` (`run.metrics_listen`; just `id` at the root).
    pub fn name(&self) -> String {
        let mut p = self.path.clone();
        p.push(self.id.clone());
        p.join(".")
    }

    /// The variable the naming rule asks for: `SAIR_` and the long name upper-cased, `-` → `_`.
    pub fn conventional_env(&self) -> String {
        format!("SAIR_{}", self.long.to_ascii_uppercase().replace('-', "_"))
    }

    fn from_arg(path: &[String], a: &Arg) -> Self {
        Self {
            path: path.to_vec(),
            id: a.get_id().to_string(),
            long: a.get_long().unwrap_or_default().to_owned(),
            env: env_name(a),
            key: toml_key(a),
            default: a
                .get_default_values()
                .first()
                .map(|d| d.to_string_lossy().into_owned()),
            is_flag: matches!(a.get_action(), ArgAction::SetTrue | ArgAction::SetFalse),
            is_count: matches!(a.get_action(), ArgAction::Count),
            is_list: matches!(a.get_action(), ArgAction::Append),
            hidden: a.is_hide_set(),
        }
    }
}

/// Every configurable option of `T` (all subcommands, every level), from clap's `Command`.
/// The `--config` option itself and `--help`/`--version` are not listed.
pub fn walk_fields<T: CommandFactory>() -> Vec<Field> {
    let mut out = Vec::new();
    walk(&T::command(), &mut Vec::new(), &mut out);
    out
}

fn walk(cmd: &Command, path: &mut Vec<String>, out: &mut Vec<Field>) {
    out.extend(
        cmd.get_arguments()
            .filter(|a| is_option(a))
            .map(|a| Field::from_arg(path, a)),
    );
    for sub in cmd.get_subcommands() {
        path.push(sub.get_name().to_owned());
        walk(sub, path, out);
        path.pop();
    }
}

/// Leaf command paths: each one a command line that can run.
fn leaves(cmd: &Command, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let subs: Vec<&Command> = cmd.get_subcommands().collect();
    if subs.is_empty() {
        out.push(path.clone());
    }
    for sub in subs {
        path.push(sub.get_name().to_owned());
        leaves(sub, path, out);
        path.pop();
    }
}

/// Checks every option of `T` through every source, for every subcommand:
///
/// - its variable follows the rule (`SAIR_` + long name, see [`Field::conventional_env`]) and
///   is shown by `--help`;
/// - its TOML key is accepted and lands with source = file;
/// - the variable beats the file, and the flag beats the variable.
///
/// Values: from `samples` by `path.id` (`"set-rate.rate"`), `id` or long name, else the
/// option's default (`true` / `1` for flags). An option with neither fails the check, so a
/// new option cannot be forgotten. Options another one `requires` (or that are required) are
/// added as flags from the samples. Returns the names checked, or every failure, one per line.
pub fn check_every_field<T: CommandFactory>(
    samples: &[(&str, &str)],
) -> Result<Vec<String>, String> {
    check_every_field_named::<T>(samples, Field::conventional_env)
}

/// [`check_every_field`] for a binary whose variables follow another rule than
/// [`Field::conventional_env`] (e.g. `SAIR_LOADGEN_` + the long name): `naming` says which
/// variable each option must declare.
pub fn check_every_field_named<T: CommandFactory>(
    samples: &[(&str, &str)],
    naming: impl Fn(&Field) -> String,
) -> Result<Vec<String>, String> {
    let cmd = T::command();
    let mut paths = Vec::new();
    leaves(&cmd, &mut Vec::new(), &mut paths);
    let has_config = |path: &[String]| {
        let mut c = &cmd;
        let mut found = c.get_arguments().any(|a| a.get_long() == Some("config"));
        for name in path {
            match c.find_subcommand(name) {
                Some(s) => c = s,
                None => break,
            }
            found |= c.get_arguments().any(|a| a.get_long() == Some("config"));
        }
        found
    };
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let dir = scratch_dir();
    for leaf in &paths {
        // The options of every level of this path.
        let mut levels = vec![(Vec::new(), &cmd)];
        let mut c = &cmd;
        for (i, name) in leaf.iter().enumerate() {
            let Some(s) = c.find_subcommand(name) else {
                break;
            };
            levels.push((leaf[..=i].to_vec(), s));
            c = s;
        }
        for (path, level) in &levels {
            for a in level.get_arguments().filter(|a| is_option(a)) {
                let f = Field::from_arg(path, a);
                if !seen.insert(f.name()) {
                    continue;
                }
                match check_field(&cmd, leaf, &f, &naming(&f), samples, has_config(leaf), &dir) {
                    Ok(()) => checked.push(f.name()),
                    Err(e) => failures.push(format!("{}: {e}", f.name())),
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if failures.is_empty() {
        Ok(checked)
    } else {
        Err(failures.join("\n"))
    }
}

fn scratch_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "sair-config-check-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn sample_for<'a>(f: &'a Field, leaf: &[String], samples: &[(&str, &'a str)]) -> Option<String> {
    let qualified = {
        let mut p = leaf.to_vec();
        p.push(f.id.clone());
        p.join(".")
    };
    let lookup = |name: &str| {
        samples
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    lookup(&qualified)
        .or_else(|| lookup(&f.name()))
        .or_else(|| lookup(&f.id))
        .or_else(|| lookup(&f.long))
        .or_else(|| {
            if f.is_flag {
                Some("true".to_owned())
            } else if f.is_count {
                Some("1".to_owned())
            } else {
                f.default.clone()
            }
        })
}

fn flag_tokens(f: &Field, value: &str) -> Vec<OsString> {
    if f.is_flag || f.is_count {
        vec![format!("--{}", f.long).into()]
    } else {
        vec![format!("--{}={value}", f.long).into()]
    }
}

fn toml_value(f: &Field, value: &str) -> toml::Value {
    let v = if f.is_flag {
        toml::Value::Boolean(value == "true")
    } else if let Ok(i) = value.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(x) = value.parse::<f64>()
        && value.contains('.')
    {
        toml::Value::Float(x)
    } else {
        toml::Value::String(value.to_owned())
    };
    if f.is_list {
        toml::Value::Array(vec![v])
    } else {
        v
    }
}

fn check_field(
    cmd: &Command,
    leaf: &[String],
    f: &Field,
    var: &str,
    samples: &[(&str, &str)],
    has_config: bool,
    dir: &Path,
) -> Result<(), String> {
    let var = var.to_owned();
    if f.env.as_deref() != Some(var.as_str()) {
        return Err(format!(
            "its variable is {:?}, the naming rule says {var}",
            f.env
        ));
    }
    let arg_hides_env = |c: &Command| {
        c.get_arguments()
            .find(|a| a.get_id().as_str() == f.id)
            .is_some_and(Arg::is_hide_env_set)
    };
    if arg_hides_env(cmd) || leaf_command(cmd, &f.path).is_some_and(arg_hides_env) {
        return Err("--help hides its variable".to_owned());
    }
    let value = sample_for(f, leaf, samples)
        .ok_or_else(|| "no default and no sample value: add one to the samples".to_owned())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("scratch dir: {e}"))?;
    let file = dir.join(format!("{}.toml", f.name()));
    let mut table = toml::Table::new();
    table.insert(f.key.clone(), toml_value(f, &value));
    std::fs::write(&file, table.to_string())
        .map_err(|e| format!("writing {}: {e}", file.display()))?;
    let config = [OsString::from(format!("--config={}", file.display()))];
    let env = MapEnv::new().with(var.clone(), value.clone());
    let flag = flag_tokens(f, &value);
    let expect_file = Source::File {
        path: file.clone(),
        key: f.key.clone(),
    };
    let expect_env = Source::Env { var: var.clone() };
    let mut cases: Vec<(&str, Vec<OsString>, MapEnv, Source)> = vec![
        ("env alone", vec![], env.clone(), expect_env.clone()),
        ("flag over env", flag.clone(), env.clone(), Source::Flag),
    ];
    if has_config {
        cases.push(("file alone", config.to_vec(), MapEnv::new(), expect_file));
        cases.push(("env over file", config.to_vec(), env, expect_env));
        cases.push((
            "flag over env and file",
            [flag, config.to_vec()].concat(),
            MapEnv::new().with(var.clone(), value.clone()),
            Source::Flag,
        ));
    }
    let mut companions: Vec<OsString> = Vec::new();
    for (what, extra, env, expected) in cases {
        let got = attempt(cmd, leaf, &extra, &mut companions, &env, samples, f)
            .map_err(|e| format!("{what}: {e}"))?;
        if got != expected {
            return Err(format!("{what}: source is {got:?}, expected {expected:?}"));
        }
    }
    Ok(())
}

fn leaf_command<'a>(cmd: &'a Command, path: &[String]) -> Option<&'a Command> {
    let mut c = cmd;
    for name in path {
        c = c.find_subcommand(name)?;
    }
    Some(c)
}

/// Loads `bin <leaf…> <extra> <companions>`; adds a missing required companion option (from
/// the samples) and retries.
fn attempt(
    cmd: &Command,
    leaf: &[String],
    extra: &[OsString],
    companions: &mut Vec<OsString>,
    env: &dyn EnvSource,
    samples: &[(&str, &str)],
    f: &Field,
) -> Result<Source, String> {
    let all = walk_all(cmd);
    for _ in 0..16 {
        let mut argv: Vec<OsString> = vec!["bin".into()];
        argv.extend(leaf.iter().map(OsString::from));
        argv.extend(extra.iter().cloned());
        argv.extend(companions.iter().cloned());
        match load_command(cmd.clone(), argv, env) {
            Ok((_, loaded)) => return Ok(loaded.source(&f.id).clone()),
            Err(ConfigError::Clap(e)) if e.kind() == ErrorKind::MissingRequiredArgument => {
                let missing: Vec<String> = match e.get(ContextKind::InvalidArg) {
                    Some(ContextValue::Strings(v)) => v.clone(),
                    Some(ContextValue::String(s)) => vec![s.clone()],
                    _ => vec![],
                };
                let before = companions.len();
                for m in missing {
                    let long = m
                        .trim_start_matches("--")
                        .split([' ', '='])
                        .next()
                        .unwrap_or_default();
                    let Some(c) = all.iter().find(|c| c.long == long) else {
                        continue;
                    };
                    let Some(v) = sample_for(c, leaf, samples) else {
                        return Err(format!(
                            "{} is required with it and has no sample",
                            c.name()
                        ));
                    };
                    companions.extend(flag_tokens(c, &v));
                }
                if companions.len() == before {
                    return Err(e.render().to_string());
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("too many required companion options".to_owned())
}

fn walk_all(cmd: &Command) -> Vec<Field> {
    let mut out = Vec::new();
    walk(cmd, &mut Vec::new(), &mut out);
    out
}
