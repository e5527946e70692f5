use super::*;

#[test]
fn unknown_policy_lists_known_names() {
    let ctx = test_util::context(&[(1, 4)]);
    let e = build("nope", &ctx)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("unknown policy `nope`"), "{e}");
    for n in BASELINES {
        assert!(e.contains(n), "{e}");
    }
    assert!(e.contains("sair"), "{e}");
}

#[test]
fn every_known_name_builds() {
    let ctx = test_util::context(&[(1, 4), (2, 8)]);
    for n in known() {
        let p = build(&n, &ctx).unwrap();
        assert_eq!(p.name(), n);
    }
}
