use std::collections::BTreeMap;

use sair_service::ConfigError;
use sair_service::config::{MapEnv, Source, check_every_field, load};
use sair_service::exit::{Exit, clap_exit};

use super::*;

/// `sair ARGS` through the overlay: the eval options and where each came from.
fn eval_args(
    args: &[&str],
    env: &MapEnv,
) -> Result<(EvalArgs, BTreeMap<String, Source>), ConfigError> {
    let argv = std::iter::once("sair").chain(args.iter().copied());
    let l = load::<Cli>(argv, env)?;
    let sources = l
        .sources()
        .map(|(id, s)| (id.to_owned(), s.clone()))
        .collect();
    let Command::Eval(a) = l.value.command else {
        panic!("not eval");
    };
    Ok((a, sources))
}

/// Every option of every subcommand, through flag, variable and file: a new option is checked
/// the day it is added, and one without a default needs a sample here.
#[test]
fn every_field_follows_the_overlay() {
    let samples = [
        ("scenario", "coordinator/scenarios"),
        ("jobs", "2"),
        ("state_dir", "/tmp/sair-state"),
        ("llm_url", "http://127.0.0.1:18080/v1"),
        ("llm_api_key_env", "SAIR_TEST_KEY"),
        ("pipeline", "demo"),
        ("stage", "pre"),
        ("next", "dns:infer.demo.svc:4180"),
        ("container", "server"),
        ("upstream_port", "8000"),
        ("out", "/tmp/sair-certs"),
        ("ca", "/tmp/sair-ca"),
        ("name", "node-1"),
    ];
    let checked = check_every_field::<Cli>(&samples).unwrap_or_else(|e| panic!("{e}"));
    for name in [
        "log_format",
        "log_json",
        "verbose",
        "eval.scenario",
        "eval.policy",
        "eval.seeds",
        "eval.out",
        "eval.jobs",
        "eval.state_dir",
        "eval.quiet",
        "eval.llm_url",
        "eval.llm_model",
        "eval.llm_api_key_env",
        "inject.pipeline",
        "inject.stage",
        "inject.gpu",
        "inject.next",
        "inject.container",
        "inject.upstream_port",
        "inject.sidecar_image",
        "inject.intercept_image",
        "certs.init.out",
        "certs.issue.ca",
        "certs.issue.name",
        "certs.issue.out",
    ] {
        assert!(checked.contains(&name.to_owned()), "{name} in {checked:?}");
    }
}

#[test]
fn flag_beats_variable_beats_file() {
    let dir = std::env::temp_dir().join(format!("sair-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sair.toml");
    std::fs::write(
        &file,
        "scenario = [\"a.toml\", \"b.toml\"]\nseeds = 7\npolicy = \"hpa\"\nout = \"from-file\"\n",
    )
    .unwrap();
    let env = MapEnv::new()
        .with("SAIR_CONFIG", file.display().to_string())
        .with("SAIR_SEEDS", "5")
        .with("SAIR_POLICY", "sair,static");
    let (a, l) = eval_args(&["eval", "--seeds", "2"], &env).unwrap();
    assert_eq!(a.seeds, 2);
    assert_eq!(l["seeds"], Source::Flag);
    assert_eq!(a.policy, ["sair", "static"]);
    assert_eq!(
        l["policy"],
        Source::Env {
            var: "SAIR_POLICY".into()
        }
    );
    assert_eq!(
        a.scenario,
        [PathBuf::from("a.toml"), PathBuf::from("b.toml")]
    );
    assert_eq!(a.out, PathBuf::from("from-file"));
    assert!(matches!(&l["out"], Source::File { key, .. } if key == "out"));
    assert_eq!(a.llm_model, "smollm2-135m-instruct");
    assert_eq!(l["llm_model"], Source::Default);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_values_are_usage_errors_naming_their_source() {
    // A flag clap refuses: 64, not clap's own 2.
    match eval_args(
        &["eval", "--scenario", "x.toml", "--seeds", "-1"],
        &MapEnv::new(),
    ) {
        Err(ConfigError::Clap(e)) => assert_eq!(clap_exit(&e), Exit::Usage),
        other => panic!("{other:?}"),
    }
    match eval_args(
        &["eval", "--scenario", "x.toml", "--seeds", "0"],
        &MapEnv::new(),
    ) {
        Err(ConfigError::Clap(e)) => assert_eq!(clap_exit(&e), Exit::Usage),
        other => panic!("{other:?}"),
    }
    // A variable: the error names it.
    let env = MapEnv::new().with("SAIR_SEEDS", "many");
    match eval_args(&["eval", "--scenario", "x.toml"], &env) {
        Err(e @ ConfigError::BadEnv { .. }) => assert!(e.to_string().contains("SAIR_SEEDS"), "{e}"),
        other => panic!("{other:?}"),
    }
    // --help is not an error.
    match eval_args(&["eval", "--help"], &MapEnv::new()) {
        Err(ConfigError::Clap(e)) => assert_eq!(clap_exit(&e), Exit::Ok),
        other => panic!("{other:?}"),
    }
}
