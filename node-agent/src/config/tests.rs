use super::*;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

fn run_args(argv: &[&str], file: &str) -> RunArgs {
    let matches = Cli::command()
        .try_get_matches_from(std::iter::once("sair-node-agent").chain(argv.iter().copied()))
        .unwrap();
    let cli = Cli::from_arg_matches(&matches).unwrap();
    let Command::Run(mut args) = cli.command else {
        panic!("not run")
    };
    let sub = matches.subcommand_matches("run").unwrap();
    args.merge_file(FileConfig::parse(file).unwrap(), |id| {
        matches!(
            sub.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    });
    args
}

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let file = r#"
        shm_dir = "/from/file"
        control_period_ms = 250
        share_headroom = 0.1
        node_name = "file-node"
    "#;
    let a = run_args(&["run", "--control-period-ms", "120"], file);
    assert_eq!(a.control_period_ms, 120, "flag wins");
    assert_eq!(
        a.shm.shm_dir,
        PathBuf::from("/from/file"),
        "file beats default"
    );
    assert_eq!(a.share_headroom, 0.1);
    assert_eq!(a.node_name.as_deref(), Some("file-node"));
    assert_eq!(a.gc_idle_seconds, 600, "default kept");
    a.validate().unwrap();
}

#[test]
fn unknown_keys_and_bad_values_are_configuration_errors() {
    assert!(
        FileConfig::parse("control_period = 5")
            .unwrap_err()
            .is_config()
    );
    assert!(
        FileConfig::parse("control_period_ms = \"fast\"")
            .unwrap_err()
            .is_config()
    );
    let a = run_args(&["run"], "control_period_ms = 5");
    assert!(a.validate().unwrap_err().is_config());
}
