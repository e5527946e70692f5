//! Every option of `sair-loadgen` and `sair-stage`, walked from clap's own definition
//! (`sair_service::config::walk_fields`, never a hand-kept list), through all four sources of
//! `sair_service::config::load`: its variable alone, the `--config` TOML file alone, the
//! variable over the file, and the flag over both.
//!
//! The two binaries keep their own variable prefixes (`SAIR_LOADGEN_*`, `SAIR_STAGE_*`, as
//! documented in docs/loadgen.md) rather than the plain `SAIR_<FLAG>` of the long-running
//! services, so that `SAIR_RATE` or `SAIR_LISTEN` exported for one tool in a shell does not
//! change another; only the shared logging options (`sair_service::logging::LogArgs`) use the
//! plain names. `sair_service::config::check_every_field` enforces the plain names, hence this
//! walk with the same sources.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use sair_loadgen::cli::LoadgenArgs;
use sair_loadgen::stage::StageArgs;
use sair_service::config::{Field, MapEnv, Source, load, walk_fields};

/// The logging options every binary shares, named by the plain rule.
const SHARED: &[&str] = &["log_format", "log_json", "verbose"];

/// A value for `f`: from `samples` by id, else its default (`true` / `1` for flags).
fn sample(f: &Field, samples: &[(&str, &str)]) -> Option<String> {
    samples
        .iter()
        .find(|(k, _)| *k == f.id)
        .map(|(_, v)| (*v).to_owned())
        .or_else(|| {
            if f.is_flag {
                Some("true".into())
            } else if f.is_count {
                Some("1".into())
            } else {
                f.default.clone()
            }
        })
}

/// `key = value` in TOML: a boolean for a flag, a number when it reads as one, else a string;
/// an array for a repeatable option.
fn toml_line(f: &Field, value: &str) -> String {
    let v = if f.is_flag || value.parse::<f64>().is_ok() {
        value.to_owned()
    } else {
        serde_json::Value::String(value.to_owned()).to_string()
    };
    if f.is_list {
        format!("{} = [{v}]\n", f.key)
    } else {
        format!("{} = {v}\n", f.key)
    }
}

fn flag(f: &Field, value: &str) -> Vec<OsString> {
    if f.is_flag || f.is_count {
        vec![format!("--{}", f.long).into()]
    } else {
        vec![format!("--{}={value}", f.long).into()]
    }
}

/// Checks every field of `T`; `required` are flags every command line needs (except when the
/// field under test is that option). Returns the ids checked.
fn walk_every_field<T: Parser + CommandFactory>(
    binary: &str,
    prefix: &str,
    required: &[(&str, &str)],
    samples: &[(&str, &str)],
    dir: &Path,
) -> Vec<String> {
    let fields = walk_fields::<T>();
    assert!(fields.len() > 10, "{binary}: only {} fields", fields.len());
    let mut failures = Vec::new();
    let mut checked = Vec::new();
    for f in &fields {
        let expected_var = if SHARED.contains(&f.id.as_str()) {
            f.conventional_env()
        } else {
            format!("{prefix}{}", f.long.to_ascii_uppercase().replace('-', "_"))
        };
        if f.env.as_deref() != Some(expected_var.as_str()) {
            failures.push(format!(
                "{}: variable {:?}, expected {expected_var}",
                f.id, f.env
            ));
            continue;
        }
        let Some(value) = sample(f, samples) else {
            failures.push(format!("{}: no default and no sample", f.id));
            continue;
        };
        let file = dir.join(format!("{binary}-{}.toml", f.id));
        std::fs::write(&file, toml_line(f, &value)).expect("write the scratch TOML file");
        let config: OsString = format!("--config={}", file.display()).into();
        let base: Vec<OsString> = std::iter::once(OsString::from(binary))
            .chain(
                required
                    .iter()
                    .filter(|(id, _)| *id != f.id)
                    .map(|(id, v)| format!("--{}={v}", id.replace('_', "-")).into()),
            )
            .collect();
        let env = MapEnv::new().with(expected_var.clone(), value.clone());
        let by_env = Source::Env {
            var: expected_var.clone(),
        };
        let by_file = Source::File {
            path: PathBuf::from(&file),
            key: f.key.clone(),
        };
        let cases: [(&str, Vec<OsString>, MapEnv, Source); 4] = [
            ("variable alone", vec![], env.clone(), by_env.clone()),
            ("file alone", vec![config.clone()], MapEnv::new(), by_file),
            (
                "variable over file",
                vec![config.clone()],
                env.clone(),
                by_env,
            ),
            (
                "flag over variable and file",
                [flag(f, &value), vec![config.clone()]].concat(),
                env,
                Source::Flag,
            ),
        ];
        for (what, extra, env, expected) in cases {
            let argv = base.iter().cloned().chain(extra);
            match load::<T>(argv, &env) {
                Ok(loaded) if *loaded.source(&f.id) == expected => {}
                Ok(loaded) => failures.push(format!(
                    "{}: {what}: source {:?}, expected {expected:?}",
                    f.id,
                    loaded.source(&f.id)
                )),
                Err(e) => failures.push(format!("{}: {what}: {e}", f.id)),
            }
        }
        checked.push(f.id.clone());
    }
    assert!(failures.is_empty(), "{binary}:\n{}", failures.join("\n"));
    checked
}

fn scratch(tag: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("sair-loadgen-config-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the scratch dir");
    dir
}

#[test]
fn every_loadgen_option_comes_from_flag_variable_or_file() {
    let dir = scratch("loadgen");
    let checked = walk_every_field::<LoadgenArgs>(
        "sair-loadgen",
        "SAIR_LOADGEN_",
        &[("target", "http://127.0.0.1:9/")],
        &[
            ("target", "http://127.0.0.1:8/"),
            ("body_size", "3"),
            ("body_file", "/dev/null"),
            ("headers", "x-a: 1"),
            ("out", "/tmp/report.json"),
            ("peak", "50"),
            ("slo", "250ms"),
        ],
        &dir,
    );
    for id in [
        "target",
        "duration",
        "drop_after",
        "pattern",
        "quiet",
        "log_format",
    ] {
        assert!(
            checked.iter().any(|c| c == id),
            "{id} not walked: {checked:?}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_stage_option_comes_from_flag_variable_or_file() {
    let dir = scratch("stage");
    let checked = walk_every_field::<StageArgs>(
        "sair-stage",
        "SAIR_STAGE_",
        &[],
        &[("server_timing", "embed"), ("listen", "127.0.0.1:0")],
        &dir,
    );
    for id in [
        "listen",
        "cpu_ms",
        "dist",
        "echo",
        "server_timing",
        "verbose",
    ] {
        assert!(
            checked.iter().any(|c| c == id),
            "{id} not walked: {checked:?}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_config_file_sets_options_and_the_flag_still_wins() {
    let dir = scratch("file");
    let file = dir.join("loadgen.toml");
    std::fs::write(
        &file,
        "target = \"http://127.0.0.1:7/\"\nduration = \"2m\"\nrate = 5.5\nheader = [\"x-a: 1\", \"x-b: 2\"]\n",
    )
    .unwrap();
    let loaded = load::<LoadgenArgs>(
        [
            "sair-loadgen",
            "--config",
            file.to_str().unwrap(),
            "--rate",
            "7",
        ],
        &MapEnv::new(),
    )
    .unwrap();
    let a = loaded.value;
    assert_eq!(a.target, "http://127.0.0.1:7/");
    assert_eq!(a.duration, std::time::Duration::from_secs(120));
    assert_eq!(a.rate, 7.0);
    assert_eq!(a.headers, ["x-a: 1", "x-b: 2"]);
    // An unknown key is an error naming the key and the file.
    std::fs::write(&file, "target = \"http://127.0.0.1:7/\"\nrps = 5\n").unwrap();
    let e = load::<LoadgenArgs>(
        ["sair-loadgen", "--config", file.to_str().unwrap()],
        &MapEnv::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`rps`") && e.contains("loadgen.toml"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn durations_take_the_house_syntax_and_bare_seconds() {
    let parse = |d: &str| {
        load::<LoadgenArgs>(
            [
                "sair-loadgen",
                "--target",
                "http://127.0.0.1:9/",
                "--duration",
                d,
            ],
            &MapEnv::new(),
        )
        .map(|l| l.value.duration)
    };
    assert_eq!(parse("10s").unwrap(), std::time::Duration::from_secs(10));
    assert_eq!(parse("1m 30s").unwrap(), std::time::Duration::from_secs(90));
    assert_eq!(
        parse("1.5").unwrap(),
        std::time::Duration::from_millis(1500)
    );
    assert!(parse("31d").is_err(), "longer than 30 days is refused");
    assert!(parse("5 parsecs").is_err());
}
