//! The TOML file of the overlay: read, parsed, and every key checked against the options of
//! the whole command tree.

use super::{is_option, toml_key};
use crate::ConfigError;
use clap::Command;
use std::collections::BTreeSet;
use std::path::PathBuf;

pub(super) fn read_table(cmd: &Command, path: &PathBuf) -> Result<toml::Table, ConfigError> {
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
