use std::time::Duration;

use clap::Parser;

use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    demo: DemoArgs,
}

fn parse(args: &[&str]) -> Result<DemoArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("demo").chain(args.iter().copied())).map(|c| c.demo)
}

#[test]
fn defaults_are_the_readme_run() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.policy, "sair");
    assert_eq!(a.pattern, Pattern::Burst);
    assert_eq!(a.duration, Duration::from_secs(180));
    assert_eq!(a.interval, Duration::from_secs(5));
    a.validate().unwrap();
}

#[test]
fn numeric_flags_are_range_checked_by_name() {
    for (flag, bad) in [
        ("--duration", "5s"),
        ("--duration", "2h"),
        ("--duration", "30"),
        ("--interval", "0s"),
        ("--interval", "10m"),
        ("--rate", "0"),
        ("--rate", "NaN"),
        ("--peak", "1e9"),
    ] {
        let e = parse(&[flag, bad]).unwrap_err();
        assert!(
            e.to_string().contains(flag),
            "{flag} {bad}: the error names the flag: {e}"
        );
        assert_eq!(
            sair_service::exit::clap_exit(&e),
            sair_service::exit::Exit::Usage
        );
    }
}

#[test]
fn relations_between_flags_are_checked() {
    let a = parse(&["--rate", "50", "--peak", "10"]).unwrap();
    assert!(a.validate().unwrap_err().to_string().contains("--peak"));
    let a = parse(&["--duration", "20s", "--interval", "10s"]).unwrap();
    assert!(a.validate().unwrap_err().to_string().contains("--interval"));
    assert_eq!(
        a.validate().unwrap_err().exit(),
        sair_service::exit::Exit::Usage
    );
}

#[test]
fn the_shipped_pipeline_names_its_slo_and_placeholders() {
    assert_eq!(pipeline::slo_p99_s(pipeline::SHIPPED), Some(0.1));
    assert_eq!(
        pipeline::name(pipeline::SHIPPED).as_deref(),
        Some("image-classification")
    );
    let r = pipeline::render(
        pipeline::SHIPPED,
        std::path::Path::new("/tmp/a \"b\""),
        std::path::Path::new("/bin"),
    );
    assert!(!r.contains("@RUN@") && !r.contains("@BIN@"));
    assert!(r.contains(r#"/tmp/a \"b\"/lib"#));
}

#[test]
fn bound_lines_are_read() {
    let m = child::parse_bound(
        r#"{"event":"bound","binary":"x","addresses":{"http":"127.0.0.1:4000","mesh":"127.0.0.1:4001"}}"#,
    )
    .unwrap();
    assert_eq!(m["http"].port(), 4000);
    assert!(child::parse_bound("hello").is_none());
    assert!(child::parse_bound(r#"{"event":"bound","addresses":{"a":"nope"}}"#).is_none());
}

#[test]
fn missing_binaries_are_named_with_the_build_command() {
    let dir = std::env::temp_dir().join(format!("sair-demo-bins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = bins::Bins::in_dir(dir.clone()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("sair-coordinator") && msg.contains("cargo build --release"),
        "{msg}"
    );
    assert_eq!(e.exit(), sair_service::exit::Exit::Unavailable);
    let _ = std::fs::remove_dir_all(dir);
}
