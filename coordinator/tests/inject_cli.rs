//! `sair inject`, run as a real process: golden files in `tests/inject-golden/` and bad input.
//!
//! Each case is `NAME.yaml` injected with its arguments into `NAME.golden.yaml`. Set
//! `SAIR_BLESS=1` to rewrite the golden files after an intended change, then read the diff.
//! scripts/validate-manifests.sh checks every golden file against the Kubernetes schemas.
#![allow(clippy::unwrap_used)] // test helpers: a missing fixture should panic

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The golden cases: input file stem and the `sair inject` arguments.
const CASES: &[(&str, &[&str])] = &[
    (
        "deployment",
        &[
            "--pipeline",
            "demo",
            "--stage",
            "pre",
            "--next",
            "dns:infer-sair.demo.svc.cluster.local:4180",
        ],
    ),
    (
        "multi",
        &[
            "--pipeline",
            "demo",
            "--stage",
            "infer",
            "--gpu",
            "--next",
            "dns:post.demo.svc.cluster.local:4180",
        ],
    ),
    ("statefulset", &["--pipeline", "demo", "--stage", "post"]),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inject-golden")
}

/// `sair inject ARGS` with `stdin` on its standard input, and no SAIR_* or logging variables
/// from the test's own environment.
fn sair_inject(args: &[&str], stdin: &str) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sair"));
    c.arg("inject").args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SAIR_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sair");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait for sair")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn golden_files_round_trip() {
    let bless = std::env::var_os("SAIR_BLESS").is_some();
    for (name, args) in CASES {
        let input = dir().join(format!("{name}.yaml"));
        let golden = dir().join(format!("{name}.golden.yaml"));
        // From a file argument.
        let mut a: Vec<&str> = vec![input.to_str().unwrap()];
        a.extend_from_slice(args);
        let out = sair_inject(&a, "");
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let got = text(&out.stdout);
        if bless {
            std::fs::write(&golden, &got).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap();
        assert_eq!(
            got,
            want,
            "{name}: output differs from {}",
            golden.display()
        );
        // The same from stdin, with `-`.
        let mut a = vec!["-"];
        a.extend_from_slice(args);
        let out = sair_inject(&a, &std::fs::read_to_string(&input).unwrap());
        assert_eq!(text(&out.stdout), want, "{name} from stdin");
    }
}

/// A workload that already has the sidecar comes out unchanged, byte for byte.
#[test]
fn injecting_an_injected_file_changes_nothing() {
    for (name, args) in CASES {
        let golden = std::fs::read_to_string(dir().join(format!("{name}.golden.yaml"))).unwrap();
        let out = sair_inject(args, &golden);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            golden,
            "{name}: second injection changed it"
        );
    }
}

/// Bad input: exit 2, an error naming the document, and nothing on stdout.
#[test]
fn bad_input_exits_2_naming_the_document_and_writes_nothing() {
    let deployment = std::fs::read_to_string(dir().join("deployment.yaml")).unwrap();
    let no_containers = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: empty\nspec:\n  \
                         selector:\n    matchLabels: {app: x}\n  template:\n    metadata:\n      \
                         labels: {app: x}\n    spec:\n      containers: []\n";
    let cases: [(&str, String, &str); 5] = [
        (
            "not YAML",
            format!("{deployment}---\nkind: [Deployment\n"),
            "document 2: not YAML",
        ),
        (
            "not a workload kind",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n".to_owned(),
            "document 1 (ConfigMap/settings): ConfigMap is not a workload kind",
        ),
        (
            "no containers",
            format!("{deployment}---\n{no_containers}"),
            "document 2 (Deployment/empty): the pod template has no containers",
        ),
        (
            "not a Kubernetes object",
            "- just\n- a list\n".to_owned(),
            "document 1: not a Kubernetes object",
        ),
        (
            "empty",
            "# nothing here\n".to_owned(),
            "holds no Kubernetes object",
        ),
    ];
    for (what, input, message) in cases {
        let out = sair_inject(&["--pipeline", "demo", "--stage", "pre"], &input);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(out.stdout.is_empty(), "{what}: wrote {}", text(&out.stdout));
        assert!(err.contains(message), "{what}: {err:?} lacks {message:?}");
        assert!(err.starts_with("sair: error: stdin: "), "{what}: {err:?}");
    }
}

#[test]
fn bad_flags_and_missing_files_use_the_house_exit_codes() {
    // A pipeline name that is no DNS label is a usage error (64), like every bad flag.
    let out = sair_inject(&["--pipeline", "Demo", "--stage", "pre"], "");
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    // A file that does not exist: 66 (sysexits EX_NOINPUT), naming it.
    let out = sair_inject(
        &[
            "/nonexistent/app.yaml",
            "--pipeline",
            "demo",
            "--stage",
            "pre",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(66), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("/nonexistent/app.yaml"));
    assert!(out.stdout.is_empty());
}
