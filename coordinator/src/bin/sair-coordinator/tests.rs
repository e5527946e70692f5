use sair_service::config::MapEnv;

use super::cli::{self, LoadError};

/// The pipelines file's top-level keys are option values; its tables are not options; flags
/// beat variables beat the file.
#[test]
fn flag_beats_variable_beats_the_pipelines_files_keys() {
    let dir = std::env::temp_dir().join(format!("sair-coordinator-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("p.toml");
    std::fs::write(
        &file,
        "policy = \"hpa\"\ninterval = \"7s\"\n[pipeline]\nname = \"p\"\nslo_p99_ms = 100\n\
         [[pipeline.stages]]\nname = \"s\"\n[cost]\ncpu_replica = 1\n[workload]\npattern = \"poisson\"\n",
    )
    .expect("write");
    let f = file.to_string_lossy().into_owned();
    let base = ["sair-coordinator", "--config", &f, "--actuator", "dry-run"];
    let policy = |args: &[&str], env: &MapEnv| -> (String, std::time::Duration) {
        let argv = base.iter().chain(args).copied();
        match cli::load(argv, env) {
            Ok((c, _)) => (c.policy, c.interval),
            Err(LoadError::Config(e)) => panic!("{e}"),
            Err(LoadError::NotACommand) => panic!("not a command"),
        }
    };
    let env = MapEnv::new().with("SAIR_POLICY", "kpa");
    assert_eq!(policy(&["--policy", "static"], &env).0, "static");
    assert_eq!(policy(&[], &env).0, "kpa");
    let (p, interval) = policy(&[], &MapEnv::new());
    assert_eq!(p, "hpa");
    assert_eq!(interval, std::time::Duration::from_secs(7));
    // The hidden subcommand is not a command (refused by the overlay or by `load`: exit 64).
    let argv = base.iter().copied().chain([cli::FILE_TABLES]);
    assert!(cli::load(argv, &MapEnv::new()).is_err());
    // A misspelt top-level key is an error naming it.
    std::fs::write(&file, "polcy = \"hpa\"\n[pipeline]\nname = \"p\"\n").expect("write");
    match cli::load(base, &MapEnv::new()) {
        Err(LoadError::Config(e)) => assert!(e.to_string().contains("polcy"), "{e}"),
        _ => panic!("polcy accepted"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
