use super::*;

#[test]
fn the_documented_line_parses() {
    let b = Bound::parse(
        r#"{"event":"bound","binary":"sair-sidecar","addresses":{"listen":"127.0.0.1:40123","admin":"127.0.0.1:40124"}}"#,
    )
    .unwrap();
    assert_eq!(b.binary, "sair-sidecar");
    assert_eq!(b.get("listen"), Some("127.0.0.1:40123".parse().unwrap()));
    assert_eq!(b.get("admin"), Some("127.0.0.1:40124".parse().unwrap()));
    assert_eq!(b.get("mesh"), None);
}

#[test]
fn other_output_is_not_a_bound_line() {
    for line in [
        "",
        "listening on 127.0.0.1:8080",
        "{}",
        r#"{"event":"ready","binary":"x","addresses":{}}"#,
        r#"{"event":"bound"}"#,
    ] {
        assert_eq!(
            Bound::parse(line),
            Err(BoundLineError::NotBoundLine),
            "{line}"
        );
    }
}

#[test]
fn a_bad_address_names_the_role() {
    let e = Bound::parse(r#"{"event":"bound","binary":"b","addresses":{"admin":"nowhere"}}"#)
        .unwrap_err();
    assert_eq!(
        e,
        BoundLineError::BadAddress {
            role: "admin".into(),
            value: "nowhere".into()
        }
    );
}
