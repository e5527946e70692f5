//! `sair certs`, run as a real process: a cluster CA and member certificates on disk, keys
//! 0600, a member certificate that verifies against its CA (as a mesh server and as a mesh
//! client) and not against another CA, and refusals with their exit codes.
#![allow(clippy::unwrap_used)] // test helpers: a failed fixture should panic

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use sair_mesh::certs::{MESH_SERVER_NAME, MeshTls};

fn scratch(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("sair-certs-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sair(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sair"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SAIR_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = sair(args);
    assert!(
        out.status.success(),
        "sair {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Verifies `member`'s certificate against the CA `ca` both ways a mesh peer does.
fn verifies(member: &MeshTls, ca: &MeshTls) -> bool {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca.ca.clone()).unwrap();
    let roots = Arc::new(roots);
    let server = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .unwrap();
    let client = WebPkiClientVerifier::builder_with_provider(roots, provider)
        .build()
        .unwrap();
    let leaf = &member.chain[0];
    let as_server = server
        .verify_server_cert(
            leaf,
            &[],
            &ServerName::try_from(MESH_SERVER_NAME).unwrap(),
            &[],
            UnixTime::now(),
        )
        .is_ok();
    let as_client = client
        .verify_client_cert(leaf, &[], UnixTime::now())
        .is_ok();
    assert_eq!(as_server, as_client, "server and client verdicts differ");
    as_server
}

#[test]
fn init_and_issue_write_keys_0600_and_a_member_verifies_against_its_ca_only() {
    let dir = scratch("ok");
    let (ca, other_ca, node) = (dir.join("ca"), dir.join("other-ca"), dir.join("node-1"));
    let said = ok(&["certs", "init", "--out", s(&ca)]);
    assert!(said.contains("ca.key"), "{said}");
    ok(&["certs", "init", "--out", s(&other_ca)]);
    let said = ok(&[
        "certs",
        "issue",
        "--ca",
        s(&ca),
        "--name",
        "node-1",
        "--out",
        s(&node),
    ]);
    assert!(said.contains("node-1.key"), "{said}");
    assert_eq!(mode(&ca.join("ca.key")), 0o600);
    assert_eq!(mode(&node.join("node-1.key")), 0o600);
    assert_eq!(
        mode(&ca.join("ca.pem")) & 0o077,
        0o044,
        "the CA certificate is public"
    );

    let member = MeshTls::from_files(
        &node.join("node-1.pem"),
        &node.join("node-1.key"),
        &ca.join("ca.pem"),
    )
    .unwrap();
    let foreign = MeshTls::from_files(
        &node.join("node-1.pem"),
        &node.join("node-1.key"),
        &other_ca.join("ca.pem"),
    )
    .unwrap();
    assert!(
        verifies(&member, &member),
        "member certificate against its CA"
    );
    assert!(
        !verifies(&member, &foreign),
        "member certificate against another CA"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refusals_have_their_exit_codes_and_name_the_problem() {
    let dir = scratch("bad");
    let ca = dir.join("ca");
    ok(&["certs", "init", "--out", s(&ca)]);
    // A CA is never overwritten.
    let out = sair(&["certs", "init", "--out", s(&ca)]);
    assert_eq!(out.status.code(), Some(73), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ca.key"));
    // A bad member name: 64, naming the name.
    let out = sair(&[
        "certs",
        "issue",
        "--ca",
        s(&ca),
        "--name",
        "no/slash",
        "--out",
        s(&dir),
    ]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/slash"));
    // No CA there: 66, naming the file.
    let missing = dir.join("nowhere");
    let out = sair(&[
        "certs",
        "issue",
        "--ca",
        s(&missing),
        "--name",
        "n1",
        "--out",
        s(&dir),
    ]);
    assert_eq!(out.status.code(), Some(66), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ca.key"));
    // A missing flag: 64.
    let out = sair(&["certs", "issue", "--ca", s(&ca)]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
