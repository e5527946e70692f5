use super::*;

fn parse(text: &str) -> Result<LocalStageRun, toml::de::Error> {
    toml::from_str(text)
}

#[test]
fn the_run_table_parses_with_defaults() {
    let run = parse(r#"command = ["sair-stage", "--listen", "127.0.0.1:{port}"]"#).expect("parses");
    assert_eq!(run.ready_path, "/healthz");
    assert_eq!(run.startup_timeout, Duration::from_secs(60));
    let run = parse(
        r#"
        command = ["x"]
        startup = "3s"
        env = { A = "{segment}" }
        queue_timeout = "500ms"
        "#,
    )
    .expect("parses");
    assert_eq!(run.startup_timeout, Duration::from_secs(3));
    assert_eq!(run.queue_timeout, Some(Duration::from_millis(500)));
}

#[test]
fn unknown_keys_and_bad_durations_are_refused() {
    let err = parse("command = [\"x\"]\nbogus = 1").expect_err("unknown key");
    assert!(err.to_string().contains("bogus"), "{err}");
    assert!(parse("command = [\"x\"]\nstartup_timeout = \"soon\"").is_err());
}

#[test]
fn placeholders_are_replaced() {
    let vars = Placeholders {
        port: 8123,
        replica: 2,
        segment: "p.s.2",
        pipeline: "p",
        stage: "s",
    };
    assert_eq!(
        expand(
            "127.0.0.1:{port}/{replica}/{segment}/{pipeline}/{stage}/{other}",
            &vars
        ),
        "127.0.0.1:8123/2/p.s.2/p/s/{other}"
    );
}

#[test]
fn bad_stages_are_named() {
    let ok = LocalStage {
        stage: StageRef::new("p", "s"),
        gpu: false,
        concurrency: 1,
        next: None,
        run: parse(r#"command = ["x"]"#).expect("parses"),
    };
    assert!(validate(&ok).is_ok());
    let mut dotted = ok.clone();
    dotted.stage.pipeline = "a.b".into();
    let mut empty = ok.clone();
    empty.run.command.clear();
    let mut path = ok.clone();
    path.run.ready_path = "healthz".into();
    let mut zero = ok.clone();
    zero.concurrency = 0;
    for bad in [dotted, empty, path, zero] {
        let err = validate(&bad).expect_err("refused");
        assert!(matches!(err, ActuatorError::InvalidConfig { .. }), "{err}");
    }
}

#[test]
fn bare_names_resolve_beside_first_then_on_path() {
    let dir = std::env::temp_dir().join(format!("sair-act-resolve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    assert_eq!(
        resolve_program("sh", &dir, std::env::var_os("PATH")).map(|p| p.is_absolute()),
        Some(true)
    );
    assert!(resolve_program("no-such-program-sair", &dir, std::env::var_os("PATH")).is_none());
    assert!(resolve_program("/nonexistent/x", &dir, None).is_none());
    let _ = std::fs::remove_dir_all(&dir);
}
