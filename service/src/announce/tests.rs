use super::*;

#[test]
fn one_line_with_every_role() {
    let line = bound_line(
        "sair-sidecar",
        &[
            ("listen", "127.0.0.1:40123".parse().unwrap()),
            ("admin", "127.0.0.1:40124".parse().unwrap()),
        ],
    );
    assert!(!line.contains('\n'));
    assert!(
        line.starts_with(r#"{"event":"bound","binary":"sair-sidecar","#),
        "{line}"
    );
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "bound");
    assert_eq!(v["binary"], "sair-sidecar");
    assert_eq!(v["addresses"]["listen"], "127.0.0.1:40123");
    assert_eq!(v["addresses"]["admin"], "127.0.0.1:40124");
}

#[test]
fn odd_names_are_escaped() {
    let line = bound_line("a\"b", &[]);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["binary"], "a\"b");
    assert_eq!(v["addresses"], serde_json::json!({}));
}
