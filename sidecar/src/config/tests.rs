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
