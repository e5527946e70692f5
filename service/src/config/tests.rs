use super::*;
use clap::{Args, Subcommand};
use std::time::Duration;

/// A binary-like config: a global `--config`, a `run` subcommand with every kind of field,
/// a second subcommand with a required option, and a legacy alias.
#[derive(Debug, Parser)]
#[command(name = "demo", version)]
struct Cli {
    /// TOML file.
    #[arg(long, env = "SAIR_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    log: crate::logging::LogArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run.
    Run(RunArgs),
    /// Set.
    Set(SetArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Listen address.
    #[arg(long, env = "SAIR_LISTEN", default_value = "127.0.0.1:0")]
    listen: String,
    /// A period.
    #[arg(long, env = "SAIR_PERIOD", default_value = "150ms", value_parser = crate::duration::parse_duration)]
    period: Duration,
    /// Legacy spelling of --period, in milliseconds.
    #[arg(long, env = "SAIR_PERIOD_MS", hide = true, conflicts_with = "period")]
    period_ms: Option<u64>,
    /// A count.
    #[arg(long, env = "SAIR_KEYS", default_value_t = 256)]
    keys: usize,
    /// A flag.
    #[arg(long, env = "SAIR_JSON")]
    json: bool,
    /// A list.
    #[arg(long, env = "SAIR_PEER", value_delimiter = ',')]
    peer: Vec<String>,
    /// An optional name.
    #[arg(long, env = "SAIR_NAME")]
    name: Option<String>,
    /// A certificate (with --key).
    #[arg(long, env = "SAIR_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// A key (with --cert).
    #[arg(long, env = "SAIR_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// A choice.
    #[arg(long, env = "SAIR_MODE", default_value = "cap", value_parser = ["off", "cap", "share"])]
    mode: String,
}

#[derive(Debug, Args)]
struct SetArgs {
    /// Required.
    #[arg(long, env = "SAIR_RATE")]
    rate: f64,
}

fn file(tag: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "sair-service-cfg-{}-{tag}.toml",
        std::process::id()
    ));
    std::fs::write(&p, text).unwrap();
    p
}

fn run(args: &[&str], env: &MapEnv) -> Result<(RunArgs, Loaded<()>), ConfigError> {
    let argv = std::iter::once("demo").chain(args.iter().copied());
    let l = load::<Cli>(argv, env)?;
    let sources = Loaded {
        value: (),
        config_file: l.config_file.clone(),
        sources: l.sources.clone(),
    };
    match l.value.command {
        Cmd::Run(r) => Ok((r, sources)),
        Cmd::Set(_) => panic!("not run"),
    }
}

#[test]
fn defaults_when_nothing_is_given() {
    let (r, l) = run(&["run"], &MapEnv::new()).unwrap();
    assert_eq!(r.listen, "127.0.0.1:0");
    assert_eq!(r.period, Duration::from_millis(150));
    assert_eq!(*l.source("listen"), Source::Default);
    assert_eq!(*l.source("period"), Source::Default);
}

#[test]
fn precedence_flag_env_file_default_per_source() {
    let f = file(
        "prec",
        "listen = \"10.0.0.1:1\"\nkeys = 7\nperiod = \"2s\"\nname = \"file\"\n",
    );
    let env = MapEnv::new()
        .with("SAIR_KEYS", "8")
        .with("SAIR_PERIOD", "3s")
        .with("SAIR_CONFIG", f.display().to_string());
    let (r, l) = run(&["run", "--period", "4s"], &env).unwrap();
    // flag > env > file > default, one option at each level.
    assert_eq!(r.period, Duration::from_secs(4));
    assert_eq!(*l.source("period"), Source::Flag);
    assert_eq!(r.keys, 8);
    assert_eq!(
        *l.source("keys"),
        Source::Env {
            var: "SAIR_KEYS".into()
        }
    );
    assert_eq!(r.listen, "10.0.0.1:1");
    assert_eq!(
        *l.source("listen"),
        Source::File {
            path: f.clone(),
            key: "listen".into()
        }
    );
    assert_eq!(r.name.as_deref(), Some("file"));
    assert_eq!(r.mode, "cap");
    assert_eq!(*l.source("mode"), Source::Default);
    assert_eq!(l.config_file.as_deref(), Some(f.as_path()));
    assert_eq!(
        *l.source("config"),
        Source::Env {
            var: "SAIR_CONFIG".into()
        }
    );
}

#[test]
fn subcommand_config_flag_after_the_subcommand() {
    let f = file("sub", "keys = 3\n");
    let (r, l) = run(&["run", "--config", f.to_str().unwrap()], &MapEnv::new()).unwrap();
    assert_eq!(r.keys, 3);
    assert_eq!(*l.source("config"), Source::Flag);
    // And before it (a global option).
    let (r, _) = run(&["--config", f.to_str().unwrap(), "run"], &MapEnv::new()).unwrap();
    assert_eq!(r.keys, 3);
}

#[test]
fn bool_vec_and_option_fields_from_each_source() {
    let f = file(
        "kinds",
        "json = true\npeer = [\"a\", \"b\"]\nname = \"n\"\n",
    );
    let (r, l) = run(&["run", "--config", f.to_str().unwrap()], &MapEnv::new()).unwrap();
    assert!(r.json);
    assert_eq!(r.peer, ["a", "b"]);
    assert_eq!(r.name.as_deref(), Some("n"));
    assert!(matches!(l.source("peer"), Source::File { .. }));

    let env = MapEnv::new()
        .with("SAIR_JSON", "false")
        .with("SAIR_PEER", "c,d,e")
        .with("SAIR_NAME", "m");
    let (r, l) = run(&["run", "--config", f.to_str().unwrap()], &env).unwrap();
    assert!(!r.json, "SAIR_JSON=false beats the file's true");
    assert_eq!(
        *l.source("json"),
        Source::Env {
            var: "SAIR_JSON".into()
        }
    );
    assert_eq!(r.peer, ["c", "d", "e"]);
    assert_eq!(r.name.as_deref(), Some("m"));

    let (r, _) = run(&["run", "--json", "--peer", "x", "--name", "f"], &env).unwrap();
    assert!(r.json);
    assert_eq!(r.peer, ["x"]);
    assert_eq!(r.name.as_deref(), Some("f"));

    let e = run(&["run"], &MapEnv::new().with("SAIR_JSON", "maybe")).unwrap_err();
    assert!(e.to_string().contains("SAIR_JSON"), "{e}");
}

#[test]
fn unknown_toml_key_names_the_key_and_the_file() {
    let f = file("unknown", "listen = \"x\"\nlisen = \"typo\"\n");
    let e = run(&["run", "--config", f.to_str().unwrap()], &MapEnv::new()).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, ConfigError::UnknownKey { ref key, .. } if key == "lisen"),
        "{msg}"
    );
    assert!(
        msg.contains("lisen") && msg.contains(&f.display().to_string()),
        "{msg}"
    );
    assert_eq!(crate::exit::Exit::Usage.code(), 64);
}

#[test]
fn a_key_of_another_subcommand_is_not_unknown() {
    let f = file("other", "rate = 0.5\nkeys = 2\n");
    let (r, _) = run(&["run", "--config", f.to_str().unwrap()], &MapEnv::new()).unwrap();
    assert_eq!(r.keys, 2);
}

#[test]
fn bad_env_value_names_the_variable() {
    let e = run(&["run"], &MapEnv::new().with("SAIR_KEYS", "many")).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, ConfigError::BadEnv { ref var, .. } if var == "SAIR_KEYS"),
        "{msg}"
    );
    assert!(msg.contains("many"), "{msg}");
    let e = run(&["run"], &MapEnv::new().with("SAIR_PERIOD", "150")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("SAIR_PERIOD") && msg.contains("no unit"),
        "{msg}"
    );
    let e = run(&["run"], &MapEnv::new().with("SAIR_MODE", "loud")).unwrap_err();
    assert!(e.to_string().contains("SAIR_MODE"), "{e}");
}

#[test]
fn bad_file_value_names_the_key() {
    let f = file("badval", "period = \"soon\"\n");
    let e = run(&["run", "--config", f.to_str().unwrap()], &MapEnv::new()).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, ConfigError::BadFileValue { ref key, .. } if key == "period"),
        "{msg}"
    );
    assert!(msg.contains(&f.display().to_string()), "{msg}");
    let f = file("table", "[listen]\nx = 1\n");
    let e = run(&["run", "--config", f.to_str().unwrap()], &MapEnv::new()).unwrap_err();
    assert!(e.to_string().contains("listen"), "{e}");
    let f = file("syntax", "listen = \n");
    let e = run(&["run", "--config", f.to_str().unwrap()], &MapEnv::new()).unwrap_err();
    assert!(matches!(e, ConfigError::FileSyntax { .. }), "{e}");
    let e = run(
        &["run", "--config", "/nonexistent/sair.toml"],
        &MapEnv::new(),
    )
    .unwrap_err();
    assert!(matches!(e, ConfigError::FileRead { .. }), "{e}");
}

#[test]
fn legacy_alias_loses_to_a_higher_source_of_its_successor() {
    // Legacy flag, new name in the environment: the flag wins, the variable is not used.
    let env = MapEnv::new().with("SAIR_PERIOD", "3s");
    let (r, l) = run(&["run", "--period-ms", "20"], &env).unwrap();
    assert_eq!(r.period_ms, Some(20));
    assert_eq!(*l.source("period"), Source::Default);
    // New flag, legacy variable: the flag wins.
    let env = MapEnv::new().with("SAIR_PERIOD_MS", "20");
    let (r, l) = run(&["run", "--period", "1s"], &env).unwrap();
    assert_eq!((r.period, r.period_ms), (Duration::from_secs(1), None));
    assert_eq!(*l.source("period_ms"), Source::Default);
    // Both as flags: a usage error.
    let e = run(
        &["run", "--period", "1s", "--period-ms", "5"],
        &MapEnv::new(),
    )
    .unwrap_err();
    assert!(matches!(e, ConfigError::Clap(_)), "{e}");
    // Both as variables: an error that names one of them.
    let env = MapEnv::new()
        .with("SAIR_PERIOD_MS", "20")
        .with("SAIR_PERIOD", "1s");
    let e = run(&["run"], &env).unwrap_err();
    assert!(e.to_string().contains("SAIR_PERIOD"), "{e}");
}

#[test]
fn requires_is_satisfied_across_sources() {
    let env = MapEnv::new().with("SAIR_KEY", "/k.pem");
    let (r, l) = run(&["run", "--cert", "/c.pem"], &env).unwrap();
    assert_eq!(r.key.as_deref(), Some(std::path::Path::new("/k.pem")));
    assert_eq!(*l.source("cert"), Source::Flag);
    // Missing companion: a usage error.
    let e = run(&["run", "--cert", "/c.pem"], &MapEnv::new()).unwrap_err();
    assert_eq!(
        crate::exit::clap_exit(match &e {
            ConfigError::Clap(c) => c,
            other => panic!("{other}"),
        }),
        crate::exit::Exit::Usage
    );
}

#[test]
fn required_option_from_env() {
    let l = load::<Cli>(["demo", "set"], &MapEnv::new().with("SAIR_RATE", "0.25")).unwrap();
    assert!(matches!(l.value.command, Cmd::Set(SetArgs { rate }) if rate == 0.25));
    let e = load::<Cli>(["demo", "set"], &MapEnv::new()).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Clap(c) if c.kind() == clap::error::ErrorKind::MissingRequiredArgument),
        "{e}"
    );
}

#[test]
fn global_log_options_from_env_and_verbose_count() {
    let env = MapEnv::new().with("SAIR_LOG_FORMAT", "json");
    let l = load::<Cli>(["demo", "run", "-vv"], &env).unwrap();
    assert_eq!(l.value.log.format(), crate::logging::LogFormat::Json);
    assert_eq!(l.value.log.verbose, 2);
    assert_eq!(l.value.log.directives("info"), "trace");
    let l = load::<Cli>(["demo", "run", "--log-json"], &MapEnv::new()).unwrap();
    assert_eq!(l.value.log.format(), crate::logging::LogFormat::Json);
    let l = load::<Cli>(["demo", "run"], &MapEnv::new().with("SAIR_VERBOSE", "1")).unwrap();
    assert_eq!(l.value.log.directives("info"), "debug");
}

#[test]
fn clap_errors_exit_64_and_help_exits_0_with_env_names() {
    let e = load::<Cli>(["demo", "run", "--bogus"], &MapEnv::new()).unwrap_err();
    assert!(!e.is_display());
    let ConfigError::Clap(c) = &e else {
        panic!("{e}")
    };
    assert_eq!(crate::exit::clap_exit(c), crate::exit::Exit::Usage);

    let e = load::<Cli>(["demo", "run", "--help"], &MapEnv::new()).unwrap_err();
    assert!(e.is_display());
    let ConfigError::Clap(c) = &e else {
        panic!("{e}")
    };
    assert_eq!(crate::exit::clap_exit(c), crate::exit::Exit::Ok);
    let help = c.render().to_string();
    assert!(help.contains("[env: SAIR_LISTEN"), "{help}");
    assert!(help.contains("[env: SAIR_PERIOD"), "{help}");
    assert!(
        !help.contains("--period-ms"),
        "legacy aliases are hidden: {help}"
    );

    let e = load::<Cli>(["demo", "--version"], &MapEnv::new()).unwrap_err();
    assert!(e.is_display());
    let e = load::<Cli>(["demo", "run", "--keys", "x"], &MapEnv::new()).unwrap_err();
    let ConfigError::Clap(c) = &e else {
        panic!("{e}")
    };
    assert_eq!(crate::exit::clap_exit(c), crate::exit::Exit::Usage);
}

#[test]
fn process_env_is_not_read_by_clap() {
    // PATH is set in every process; an option whose env is PATH must still come only from
    // the injected source.
    #[derive(Debug, Parser)]
    struct P {
        #[arg(long, env = "PATH", default_value = "d")]
        path: String,
    }
    let l = load::<P>(["p"], &MapEnv::new()).unwrap();
    assert_eq!(l.value.path, "d");
}

#[test]
fn every_field_of_a_config_is_walked_and_checked() {
    let fields = walk_fields::<Cli>();
    let names: Vec<String> = fields.iter().map(Field::name).collect();
    for n in [
        "log_format",
        "verbose",
        "run.listen",
        "run.period_ms",
        "run.peer",
        "set.rate",
    ] {
        assert!(names.contains(&n.to_owned()), "{n} in {names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("config") || n.ends_with("help"))
    );

    let samples = [
        ("period_ms", "20"),
        ("peer", "a"),
        ("name", "n"),
        ("cert", "/c.pem"),
        ("key", "/k.pem"),
        ("rate", "0.5"),
    ];
    let checked = check_every_field::<Cli>(&samples).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checked.len(), names.len(), "{checked:?}");

    // A forgotten sample fails, naming the field.
    let e = check_every_field::<Cli>(&samples[1..]).unwrap_err();
    assert!(
        e.contains("run.period_ms") && e.contains("no sample"),
        "{e}"
    );
}

#[test]
fn the_naming_rule_is_checked() {
    #[derive(Debug, Parser)]
    struct Bad {
        /// Wrong variable.
        #[arg(long, env = "SAIR_OTHER", default_value = "1")]
        thing: u32,
        /// No variable.
        #[arg(long, default_value = "1")]
        plain: u32,
    }
    let e = check_every_field::<Bad>(&[]).unwrap_err();
    assert!(e.contains("thing") && e.contains("SAIR_THING"), "{e}");
    assert!(e.contains("plain") && e.contains("SAIR_PLAIN"), "{e}");
}

#[test]
fn another_naming_rule_can_be_checked() {
    #[derive(Debug, Parser)]
    struct Prefixed {
        /// Shared, plain name.
        #[command(flatten)]
        log: crate::logging::LogArgs,
        /// Binary-specific prefix.
        #[arg(long, env = "SAIR_LOADGEN_RATE", default_value = "1")]
        rate: u32,
    }
    let plain = ["log_format", "log_json", "verbose"];
    let naming = |f: &Field| {
        if plain.contains(&f.id.as_str()) {
            f.conventional_env()
        } else {
            format!(
                "SAIR_LOADGEN_{}",
                f.long.to_ascii_uppercase().replace('-', "_")
            )
        }
    };
    let checked =
        check_every_field_named::<Prefixed>(&[], naming).unwrap_or_else(|e| panic!("{e}"));
    assert!(checked.contains(&"rate".to_owned()), "{checked:?}");
    let e = check_every_field::<Prefixed>(&[]).unwrap_err();
    assert!(e.contains("SAIR_RATE"), "{e}");
}

#[test]
fn values_from_env_go_before_a_double_dash() {
    #[derive(Debug, Parser)]
    struct P {
        /// An option.
        #[arg(long, env = "SAIR_X", default_value = "d")]
        x: String,
        /// Everything after `--`.
        #[arg(last = true)]
        rest: Vec<String>,
    }
    let l = load::<P>(
        ["p", "--", "--x=not-an-option"],
        &MapEnv::new().with("SAIR_X", "e"),
    )
    .unwrap();
    assert_eq!(l.value.x, "e");
    assert_eq!(l.value.rest, ["--x=not-an-option"]);
}
