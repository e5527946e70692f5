use std::os::unix::fs::PermissionsExt;

use super::*;

fn scratch(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("sair-mesh-{tag}-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_then_issue_writes_loadable_files_with_private_keys_0600() {
    let dir = scratch("certs");
    let ca = init_ca(&dir.join("ca")).unwrap();
    assert_eq!(mode(&ca.key), 0o600);
    let member = issue(&dir.join("ca"), "node-1", &dir.join("node-1")).unwrap();
    assert_eq!(mode(&member.key), 0o600);
    assert_eq!(member.cert, dir.join("node-1").join("node-1.pem"));
    let tls = MeshTls::from_files(&member.cert, &member.key, &ca.cert).unwrap();
    assert_eq!(tls.chain.len(), 1);
    // The issuer rebuilt from the CA key is the same CA: the leaf verifies against ca.pem.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(tls.ca.clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    verifier
        .verify_client_cert(&tls.chain[0], &[], rustls::pki_types::UnixTime::now())
        .unwrap();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn init_refuses_to_overwrite_a_ca_and_issue_refuses_bad_names() {
    let dir = scratch("certs-refuse");
    init_ca(&dir).unwrap();
    assert!(matches!(init_ca(&dir), Err(CertError::Exists { .. })));
    assert!(matches!(
        issue(&dir, "bad name", &dir),
        Err(CertError::Name(_))
    ));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreadable_files_are_named_in_the_error() {
    let dir = scratch("certs-missing");
    let missing = dir.join("nope.pem");
    let err = MeshTls::from_files(&missing, &missing, &missing).unwrap_err();
    assert!(err.to_string().contains("nope.pem"), "{err}");
    let garbage = dir.join("garbage.pem");
    fs::write(&garbage, "not pem").unwrap();
    let err = MeshTls::from_files(&garbage, &garbage, &garbage).unwrap_err();
    assert!(err.to_string().contains("garbage.pem"), "{err}");
    let err = issue(&dir, "n", &dir).unwrap_err();
    assert!(err.to_string().contains("ca.key"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}
