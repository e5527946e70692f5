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
