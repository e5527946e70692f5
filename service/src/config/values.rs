//! Turning a variable's or a TOML key's value into command-line tokens for clap, each value
//! first checked with the option's own parser so that an error can name its origin.

use clap::error::{ContextKind, ContextValue};
use clap::{Arg, ArgAction, Command};
use std::ffi::OsString;

/// A TOML value as option values: scalars as their text, arrays element by element.
pub(super) fn toml_strings(v: &toml::Value) -> Result<Vec<String>, String> {
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
pub(super) fn tokens_for(a: &Arg, values: &[String]) -> Result<Vec<OsString>, String> {
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
