use std::time::Duration;

use super::*;

#[test]
fn defaults_validate() {
    let c = Config::load(["sair-sidecar"]).unwrap();
    c.validate().unwrap();
    assert_eq!(c.histogram_buckets_seconds.first(), Some(&0.0005));
    assert_eq!(c.histogram_buckets_seconds.last(), Some(&60.0));
}

#[test]
fn next_targets_parse() {
    assert_eq!(
        NextTarget::parse("a:1, b:2").unwrap(),
        NextTarget::Static(vec!["a:1".into(), "b:2".into()])
    );
    assert_eq!(
        NextTarget::parse("dns:svc.ns.svc:8080").unwrap(),
        NextTarget::Dns {
            name: "svc.ns.svc".into(),
            port: 8080
        }
    );
    assert_eq!(
        NextTarget::parse("file:/tmp/x").unwrap(),
        NextTarget::File("/tmp/x".into())
    );
    assert!(NextTarget::parse("nohost").is_err());
    assert!(NextTarget::parse("dns:x").is_err());
    assert!(NextTarget::parse("a:99999").is_err());
}

#[test]
fn bad_values_are_refused() {
    for args in [
        vec!["x", "--upstream", "ftp://a"],
        vec!["x", "--queue-timeout-seconds", "0"],
        vec!["x", "--histogram-buckets-seconds", "1,0.5"],
        vec!["x", "--agent", "127.0.0.1:1"],
        vec!["x", "--tls-cert", "/a"],
        vec!["x", "--stage", ""],
    ] {
        let c = Config::load(args.clone()).unwrap();
        assert!(c.validate().is_err(), "{args:?} should not validate");
    }
}

#[test]
fn toml_fills_only_what_flags_did_not_set() {
    let dir = std::env::temp_dir().join(format!("sair-sidecar-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(&path, "stage = \"from-file\"\nmax_concurrency = 7\n").unwrap();
    let c = Config::load([
        "x",
        "--config",
        path.to_str().unwrap(),
        "--max-concurrency",
        "3",
    ])
    .unwrap();
    assert_eq!(c.stage, "from-file");
    assert_eq!(c.max_concurrency, 3);
    std::fs::write(&path, "nonsense_key = 1\n").unwrap();
    assert!(Config::load(["x", "--config", path.to_str().unwrap()]).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_option_is_read_from_flag_env_and_file() {
    // Options without a default need a sample value; everything else uses its default.
    let checked = sair_service::config::check_every_field::<Config>(&[
        ("next", "127.0.0.1:9"),
        ("replica", "r-1"),
        ("agent", "127.0.0.1:7000"),
        ("agent_ca", "/etc/sair/ca.pem"),
        ("tls_cert", "/etc/sair/tls.crt"),
        ("tls_key", "/etc/sair/tls.key"),
        ("queue_timeout_seconds", "2"),
        ("header_read_timeout_seconds", "2"),
        ("upstream_timeout_seconds", "2"),
        ("drain_timeout_seconds", "2"),
        ("report_interval_seconds", "2"),
        ("discovery_interval_seconds", "2"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    for id in [
        "listen",
        "queue_timeout",
        "queue_timeout_seconds",
        "log_format",
    ] {
        assert!(
            checked.iter().any(|c| c == id),
            "{id} not checked: {checked:?}"
        );
    }
}

#[test]
fn durations_take_units_and_the_old_seconds_options_keep_their_meaning() {
    use sair_service::config::MapEnv;
    let load = |args: &[&str], env: &MapEnv| {
        Config::load_with(std::iter::once("x").chain(args.iter().copied()), env)
    };
    let none = MapEnv::new();
    let c = load(&[], &none).unwrap();
    assert_eq!(c.queue_timeout(), Duration::from_secs(30));
    assert_eq!(c.upstream_timeout(), Duration::from_secs(300));
    assert_eq!(c.report_interval(), Duration::from_secs(1));
    assert_eq!(c.connect_retry_window(), Duration::from_secs(10));
    // The retry window never outlasts the upstream timeout.
    let c = load(&["--upstream-timeout", "2s"], &none).unwrap();
    assert_eq!(c.connect_retry_window(), Duration::from_secs(2));
    let c = load(
        &["--queue-timeout", "500ms", "--drain-timeout", "2m"],
        &none,
    )
    .unwrap();
    assert_eq!(c.queue_timeout(), Duration::from_millis(500));
    assert_eq!(c.drain_timeout(), Duration::from_secs(120));
    let c = load(&["--queue-timeout-seconds", "0.5"], &none).unwrap();
    assert_eq!(c.queue_timeout(), Duration::from_millis(500));
    c.validate().unwrap();
    let env = MapEnv::new().with("SAIR_HEADER_READ_TIMEOUT_SECONDS", "0.25");
    assert_eq!(
        load(&[], &env).unwrap().header_read_timeout(),
        Duration::from_millis(250)
    );
    // A bare number is not a duration; the old and the new name together are refused.
    assert!(load(&["--queue-timeout", "30"], &none).is_err());
    assert!(
        load(
            &["--queue-timeout", "1s", "--queue-timeout-seconds", "1"],
            &none
        )
        .is_err()
    );
    assert!(
        load(&["--upstream-timeout", "0s"], &none)
            .unwrap()
            .validate()
            .is_err()
    );
}

/// Every numeric option has a range: a value outside it is refused naming the option, and
/// the bounds themselves are accepted.
#[test]
fn numeric_options_outside_their_range_are_refused_naming_the_option() {
    for (flag, bad) in [
        ("--max-concurrency", "1000001"),
        ("--queue-capacity", "1000001"),
        ("--retry-after-seconds", "86401"),
        ("--max-body-bytes", "0"),
        ("--max-body-bytes", "4294967297"),
        ("--max-header-bytes", "100"),
        ("--max-header-bytes", "8191"),
        ("--max-header-bytes", "16777217"),
        ("--max-headers", "0"),
        ("--max-headers", "1025"),
        ("--upstream-max-headers", "0"),
        ("--upstream-max-headers", "1025"),
        ("--report-buffer", "0"),
        ("--report-buffer", "100001"),
        ("--worker-threads", "1000000"),
        ("--upstream-timeout-seconds", "1e20"),
        ("--upstream-timeout-seconds", "1e18"),
        ("--drain-timeout-seconds", "1e20"),
        ("--drain-timeout-seconds", "2592001"),
        ("--queue-timeout-seconds", "inf"),
        ("--header-read-timeout-seconds", "1e300"),
        ("--report-interval-seconds", "NaN"),
        ("--discovery-interval-seconds", "1e-12"),
        ("--connect-retry-for", "601s"),
    ] {
        let c = Config::load(["x", flag, bad]).unwrap();
        let e = c.validate().expect_err(&format!("{flag} {bad} validated"));
        assert!(
            e.to_string().contains(flag),
            "{flag} {bad}: {e} does not name the option"
        );
    }
    let many = vec!["1"; 257]
        .iter()
        .enumerate()
        .map(|(i, _)| format!("{}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let c = Config::load(["x", "--histogram-buckets-seconds", &many]).unwrap();
    let e = c.validate().unwrap_err();
    assert!(e.to_string().contains("--histogram-buckets-seconds"), "{e}");
    for (flag, edge) in [
        ("--max-concurrency", "1000000"),
        ("--max-header-bytes", "8192"),
        ("--max-header-bytes", "16777216"),
        ("--max-headers", "1024"),
        ("--upstream-max-headers", "1"),
        ("--upstream-max-headers", "1024"),
        ("--worker-threads", "1024"),
        ("--drain-timeout-seconds", "2592000"),
        ("--retry-after-seconds", "0"),
        ("--connect-retry-for", "0s"),
        ("--connect-retry-for", "10m"),
    ] {
        let c = Config::load(["x", flag, edge]).unwrap();
        c.validate()
            .unwrap_or_else(|e| panic!("{flag} {edge} refused: {e}"));
    }
}
