use super::*;

fn args(listen: Option<&str>, seeds: &[&str]) -> MeshArgs {
    MeshArgs {
        mesh_listen: listen.map(str::to_owned),
        seeds: seeds.iter().map(|s| (*s).to_owned()).collect(),
        cert: Some("c.pem".into()),
        key: Some("k.pem".into()),
        ca: Some("ca.pem".into()),
    }
}

fn message(r: Result<Option<MeshPlan>, MeshFlagError>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(p) => panic!("not an error: {p:?}"),
    }
}

#[test]
fn without_mesh_listen_the_member_is_off_the_mesh() {
    assert_eq!(MeshArgs::default().plan(), Ok(None));
    let none = MeshArgs {
        mesh_listen: Some("none".into()),
        ..MeshArgs::default()
    };
    assert_eq!(none.plan(), Ok(None));
    // Another mesh flag without --mesh-listen is a mistake, named.
    let off = MeshArgs {
        seeds: vec!["127.0.0.1:7946".into()],
        ..MeshArgs::default()
    };
    assert!(message(off.plan()).contains("--seeds"));
}

#[test]
fn bad_mesh_flags_are_errors_naming_the_flag() {
    let plan = args(Some("127.0.0.1:0"), &["127.0.0.1:7946", " localhost:7947 "])
        .plan()
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("a plan"));
    assert_eq!(plan.seeds.len(), 2);
    assert_eq!(plan.cert, PathBuf::from("c.pem"));
    assert!(message(args(Some("nope"), &[]).plan()).contains("--mesh-listen"));
    assert!(message(args(Some("0.0.0.0:7946"), &[]).plan()).contains("--mesh-listen"));
    assert!(message(args(Some("127.0.0.1:0"), &["x"]).plan()).contains("--seeds"));
    assert!(message(args(Some("127.0.0.1:0"), &["127.0.0.1:0"]).plan()).contains("--seeds"));
    for bad in [
        "localhost",
        "localhost:x",
        ":7946",
        "localhost:70000",
        "0.0.0.0:7946",
    ] {
        let e = args(Some("127.0.0.1:0"), &[bad]).plan().err();
        assert!(
            e.as_ref().is_some_and(|e| !e.is_unavailable()),
            "{bad}: {e:?}"
        );
    }
    for flag in ["--cert", "--key", "--ca"] {
        let mut a = args(Some("127.0.0.1:0"), &[]);
        match flag {
            "--cert" => a.cert = None,
            "--key" => a.key = None,
            _ => a.ca = None,
        }
        assert!(message(a.plan()).contains(flag), "{flag}");
    }
}

#[test]
fn the_flags_come_from_sair_variables_too() {
    use clap::Parser;
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        mesh: MeshArgs,
    }
    let cli = Cli::try_parse_from([
        "x",
        "--mesh-listen",
        "127.0.0.1:0",
        "--seeds",
        "127.0.0.1:1,127.0.0.1:2",
        "--cert",
        "c",
        "--key",
        "k",
        "--ca",
        "a",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cli.mesh.seeds.len(), 2);
    let ids: Vec<String> = <Cli as clap::CommandFactory>::command()
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    for var in [
        "SAIR_MESH_LISTEN",
        "SAIR_SEEDS",
        "SAIR_CERT",
        "SAIR_KEY",
        "SAIR_CA",
    ] {
        assert!(ids.iter().any(|v| v == var), "{var}: {ids:?}");
    }
}

#[test]
fn a_seed_name_that_does_not_resolve_is_unavailable_not_a_usage_error() {
    // `.invalid` never resolves (RFC 6761): as a headless Service before its first Pod is ready.
    let e = args(Some("127.0.0.1:0"), &["sair-mesh.invalid:7946"])
        .plan()
        .err()
        .unwrap_or_else(|| panic!("an .invalid name resolved"));
    assert!(e.is_unavailable(), "{e}");
    assert!(e.to_string().contains("sair-mesh.invalid:7946"), "{e}");
}

#[test]
fn a_seed_name_gives_every_address_of_the_listen_family_once() {
    let plan = args(
        Some("127.0.0.1:0"),
        &["localhost:7946", "127.0.0.1:7946", "[::1]:7947"],
    )
    .plan()
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("a plan"));
    // localhost's IPv4 address once (not again for the literal), and the IPv6 literal kept:
    // a literal is taken as written.
    let v4: Vec<_> = plan.seeds.iter().filter(|a| a.is_ipv4()).collect();
    assert_eq!(v4.len(), 1, "{:?}", plan.seeds);
    assert!(plan.seeds.iter().any(|a| a.is_ipv6()), "{:?}", plan.seeds);
}
