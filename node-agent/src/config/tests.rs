use super::*;
use sair_service::ConfigError;
use sair_service::config::{MapEnv, Source, check_every_field, load};

fn file(tag: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "sair-agent-config-{}-{tag}.toml",
        std::process::id()
    ));
    std::fs::write(&p, text).unwrap();
    p
}

fn load_run(argv: &[&str], file_text: &str, tag: &str) -> Result<RunArgs, ConfigError> {
    let path = file(tag, file_text);
    let argv = std::iter::once("sair-node-agent")
        .chain(argv.iter().copied())
        .map(str::to_owned)
        .chain(["--config".to_owned(), path.display().to_string()]);
    let cli = load::<Cli>(argv, &MapEnv::new())?.value;
    match cli.command {
        Command::Run(a) => Ok(a),
        other => panic!("not run: {other:?}"),
    }
}

fn run_args(argv: &[&str], file: &str, tag: &str) -> RunArgs {
    load_run(argv, file, tag).unwrap()
}

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let file = r#"
        shm_dir = "/from/file"
        control_period_ms = 250
        share_headroom = 0.1
        node_name = "file-node"
    "#;
    let a = run_args(&["run", "--control-period-ms", "120"], file, "flags");
    assert_eq!(a.period(), Duration::from_millis(120), "flag wins");
    assert_eq!(
        a.shm.shm_dir,
        PathBuf::from("/from/file"),
        "file beats default"
    );
    assert_eq!(a.share_headroom, 0.1);
    assert_eq!(a.node_name.as_deref(), Some("file-node"));
    assert_eq!(a.gc_idle(), Duration::from_secs(600), "default kept");
    a.validate().unwrap();
}

#[test]
fn unknown_keys_and_bad_values_are_configuration_errors() {
    let e = load_run(&["run"], "control_periodd = \"5s\"", "unknown").unwrap_err();
    assert!(
        matches!(&e, ConfigError::UnknownKey { key, .. } if key == "control_periodd"),
        "{e}"
    );
    // A duration needs its unit.
    assert!(matches!(
        load_run(&["run"], "control_period = 5", "nounit").unwrap_err(),
        ConfigError::BadFileValue { .. }
    ));
    assert!(matches!(
        load_run(&["run"], "control_period_ms = \"fast\"", "fast").unwrap_err(),
        ConfigError::BadFileValue { .. }
    ));
    let a = run_args(&["run"], "control_period_ms = 5", "short");
    assert!(a.validate().unwrap_err().is_config());
    let a = run_args(&["run"], "control_period = \"5ms\"", "short-new");
    assert!(a.validate().unwrap_err().is_config());
}

#[test]
fn new_duration_syntax_and_legacy_aliases_mean_the_same() {
    let new = run_args(
        &[
            "run",
            "--control-period",
            "120ms",
            "--gc-idle",
            "2s",
            "--burst",
            "7ms",
        ],
        "",
        "new",
    );
    let old = run_args(
        &[
            "run",
            "--control-period-ms",
            "120",
            "--gc-idle-seconds",
            "2",
            "--burst-us",
            "7000",
        ],
        "",
        "old",
    );
    assert_eq!(new.period(), old.period());
    assert_eq!(new.gc_idle(), old.gc_idle());
    assert_eq!(new.burst.ns(), 7_000_000);
    assert_eq!(old.burst.ns(), 7_000_000);
}

#[test]
fn environment_sits_between_flags_and_the_file() {
    let path = file("env", "control_period = \"300ms\"\nnode_name = \"file\"\n");
    let env = MapEnv::new()
        .with("SAIR_CONTROL_PERIOD", "200ms")
        .with("SAIR_NODE_NAME", "env")
        .with("SAIR_CONFIG", path.display().to_string());
    let l = load::<Cli>(["sair-node-agent", "run", "--node-name", "flag"], &env).unwrap();
    assert_eq!(
        *l.source("control_period"),
        Source::Env {
            var: "SAIR_CONTROL_PERIOD".into()
        }
    );
    assert_eq!(*l.source("node_name"), Source::Flag);
    let Command::Run(a) = l.value.command else {
        panic!("not run")
    };
    assert_eq!(a.period(), Duration::from_millis(200));
    assert_eq!(a.node_name.as_deref(), Some("flag"));
}

#[test]
fn every_subcommand_reads_the_file() {
    let path = file("status", "shm_dir = \"/from/file\"\nsample = \"1s\"\n");
    let l = load::<Cli>(
        [
            "sair-node-agent",
            "status",
            "--config",
            path.to_str().unwrap(),
        ],
        &MapEnv::new(),
    )
    .unwrap();
    let Command::Status(s) = l.value.command else {
        panic!("not status")
    };
    assert_eq!(s.shm.shm_dir, PathBuf::from("/from/file"));
    assert_eq!(s.sample(), Duration::from_secs(1));
}

/// Every option of every subcommand, through flag, variable and file: a new option is checked
/// the day it is added, and one without a default needs a sample here.
#[test]
fn every_field_follows_the_overlay() {
    let samples = [
        ("control_period_ms", "100"),
        ("gc_idle_seconds", "60"),
        ("burst_us", "5000"),
        ("sample_ms", "100"),
        ("nvml_lib", "/usr/lib/libnvidia-ml.so.1"),
        ("node_name", "n1"),
        ("tls_cert", "/tls/cert.pem"),
        ("tls_key", "/tls/key.pem"),
        ("segment", "seg-a"),
        ("rate", "0.5"),
        ("gpu", "1"),
        ("owner_uid", "1000"),
        ("mesh_listen", "127.0.0.1:7946"),
        ("seeds", "127.0.0.1:7947"),
        ("cert", "/tls/n1.pem"),
        ("key", "/tls/n1.key"),
        ("ca", "/tls/ca.pem"),
    ];
    let checked = check_every_field::<Cli>(&samples).unwrap_or_else(|e| panic!("{e}"));
    for name in [
        "log_format",
        "run.control_period",
        "run.control_period_ms",
        "run.tls_dir",
        "set-rate.rate",
        "status.sample_ms",
        "remove.segment",
    ] {
        assert!(checked.contains(&name.to_owned()), "{name} in {checked:?}");
    }
}
