use super::rho::{Outcome, RhoBook};
use super::*;
use sair_mesh::leader::{Decision, Epoch};
use sair_wire::keys::{self, RhoTarget};

fn epoch(term: u64, leader: &str) -> Epoch {
    Epoch {
        term,
        leader: leader.to_owned(),
    }
}

fn decision(term: u64, leader: &str, rho: f64) -> Vec<u8> {
    Decision {
        epoch: epoch(term, leader),
        body: keys::encode(&RhoTarget { rho }),
    }
    .to_bytes()
}

fn entry(member: &str, key: &str, value: Vec<u8>) -> rho::Entry {
    (member.to_owned(), key.to_owned(), value)
}

/// The wire's mesh-value bounds are the mesh's: a report that validates has a key and a value
/// the mesh accepts (the agent publishes every report it holds).
#[test]
fn the_wires_key_and_value_bounds_are_the_meshs() {
    let limits = sair_mesh::state::StateLimits::default();
    assert_eq!(keys::VALUE_LIMIT, limits.max_value_bytes);
    assert_eq!(keys::MAX_KEY_BYTES, limits.max_key_bytes);
    assert!(keys::MAX_REPORT_VALUE_BYTES <= limits.max_value_bytes);
}

#[test]
fn the_leaders_decision_reaches_the_segments_of_its_stage_once() {
    let mut book = RhoBook::default();
    let key = keys::rho_key("demo", "infer");
    let out = book.evaluate(vec![entry("c1", &key, decision(3, "c1", 0.4))], Some("c1"));
    assert_eq!(out, [Outcome::Admitted]);
    let segs = vec![
        ("demo.infer.a".to_owned(), Mode::Cap),
        ("demo.infer.b".to_owned(), Mode::Share),
        ("demo.pre.c".to_owned(), Mode::Cap),
        ("loose".to_owned(), Mode::Off),
    ];
    let ups = book.updates(&segs);
    assert_eq!(ups.len(), 2, "{ups:?}");
    assert!(ups.iter().all(|u| u.rate == 0.4 && u.gpu.is_none()));
    assert_eq!(ups[1].mode, Mode::Share, "share stays share");
    assert!(book.updates(&segs).is_empty(), "handed on once");
    // The same value again is not evaluated again.
    assert!(
        book.evaluate(vec![entry("c1", &key, decision(3, "c1", 0.4))], Some("c1"))
            .is_empty()
    );
    // A new decision is handed on again.
    let out = book.evaluate(vec![entry("c1", &key, decision(3, "c1", 0.3))], Some("c1"));
    assert_eq!(out, [Outcome::Admitted]);
    assert_eq!(book.updates(&segs).len(), 2);
}

#[test]
fn stale_epochs_and_other_members_are_ignored() {
    let mut book = RhoBook::default();
    let key = keys::rho_key("demo", "infer");
    book.observe(
        &[entry(
            "c1",
            sair_mesh::leader::EPOCH_KEY,
            epoch(5, "c1").to_bytes(),
        )],
        Some("c1"),
    );
    assert_eq!(book.newest(), Some(&epoch(5, "c1")));
    let out = book.evaluate(vec![entry("c1", &key, decision(4, "c1", 0.9))], Some("c1"));
    assert_eq!(out, [Outcome::Stale]);
    assert_eq!(book.target("demo", "infer"), None);
    // A member writing under the leader's epoch is not the leader.
    let out = book.evaluate(vec![entry("c2", &key, decision(5, "c1", 0.9))], Some("c1"));
    assert_eq!(out, [Outcome::NotLeader]);
    // Not the leader seen now: refused, and re-read (but not recounted) until it is.
    let k2 = keys::rho_key("demo", "pre");
    let out = book.evaluate(vec![entry("c0", &k2, decision(6, "c0", 0.2))], Some("c1"));
    assert_eq!(out, [Outcome::NotLeader]);
    let out = book.evaluate(vec![entry("c0", &k2, decision(6, "c0", 0.2))], Some("c1"));
    assert!(out.is_empty(), "{out:?}");
    let out = book.evaluate(vec![entry("c0", &k2, decision(6, "c0", 0.2))], Some("c0"));
    assert_eq!(out, [Outcome::Admitted]);
    assert_eq!(book.target("demo", "pre"), Some(0.2));
    // Garbage.
    let out = book.evaluate(vec![entry("c0", &k2, b"junk".to_vec())], Some("c0"));
    assert_eq!(out, [Outcome::Malformed]);
}

#[test]
fn a_batch_is_evaluated_in_epoch_order() {
    let mut book = RhoBook::default();
    let out = book.evaluate(
        vec![
            entry("c1", &keys::rho_key("p", "b"), decision(2, "c1", 0.5)),
            entry("c1", &keys::rho_key("p", "a"), decision(1, "c1", 0.5)),
        ],
        Some("c1"),
    );
    assert_eq!(out, [Outcome::Admitted, Outcome::Admitted]);
}

fn args(listen: Option<&str>, seeds: &[&str]) -> MeshArgs {
    MeshArgs {
        mesh_listen: listen.map(str::to_owned),
        seeds: seeds.iter().map(|s| (*s).to_owned()).collect(),
        cert: Some("c.pem".into()),
        key: Some("k.pem".into()),
        ca: Some("ca.pem".into()),
    }
}

fn config_message(r: Result<Option<MeshPlan>, MeshFlagError>) -> String {
    match r.map_err(AgentError::from) {
        Err(e @ AgentError::Config(_)) => e.to_string(),
        other => panic!("not a configuration error: {other:?}"),
    }
}

#[test]
fn bad_mesh_flags_are_configuration_errors_naming_the_flag() {
    assert_eq!(MeshArgs::default().plan().unwrap(), None);
    let plan = args(Some("127.0.0.1:0"), &["127.0.0.1:7946", " localhost:7947 "])
        .plan()
        .unwrap()
        .unwrap();
    assert_eq!(plan.seeds.len(), 2);
    assert!(config_message(args(Some("nope"), &[]).plan()).contains("--mesh-listen"));
    assert!(config_message(args(Some("0.0.0.0:7946"), &[]).plan()).contains("--mesh-listen"));
    assert!(config_message(args(Some("127.0.0.1:0"), &["x"]).plan()).contains("--seeds"));
    assert!(config_message(args(Some("127.0.0.1:0"), &["127.0.0.1:0"]).plan()).contains("--seeds"));
    let mut no_ca = args(Some("127.0.0.1:0"), &[]);
    no_ca.ca = None;
    assert!(config_message(no_ca.plan()).contains("--ca"));
    let off = MeshArgs {
        seeds: vec!["127.0.0.1:7946".into()],
        ..MeshArgs::default()
    };
    assert!(config_message(off.plan()).contains("--seeds"));
}

#[test]
fn unreadable_certificates_name_their_flag() {
    let dir = std::env::temp_dir().join(format!("sair-agent-mesh-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = sair_mesh::certs::init_ca(&dir.join("ca")).unwrap();
    let m = sair_mesh::certs::issue(&dir.join("ca"), "n1", &dir.join("n1")).unwrap();
    let plan = |cert: &Path, key: &Path, ca: &Path| MeshPlan {
        listen: "127.0.0.1:0".parse().unwrap(),
        seeds: vec![],
        cert: cert.into(),
        key: key.into(),
        ca: ca.into(),
    };
    let missing = dir.join("missing.pem");
    assert!(tls(&plan(&m.cert, &m.key, &ca.cert)).is_ok());
    for (p, flag) in [
        (plan(&missing, &m.key, &ca.cert), "--cert"),
        (plan(&m.cert, &missing, &ca.cert), "--key"),
        (plan(&m.cert, &m.key, &missing), "--ca"),
        (plan(&m.cert, &m.cert, &ca.cert), "--key"),
    ] {
        match tls(&p) {
            Err(e @ AgentError::Config(_)) => {
                let s = e.to_string();
                assert!(s.contains(flag), "{flag}: {s}");
            }
            other => panic!("{flag}: {other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
