use super::*;

#[test]
fn parses_the_sidecar_format_in_order() {
    let e = parse(
        "embed-queue;dur=1.250, embed-service;dur=3.000, rank-queue;dur=0.5, rank-service;dur=7",
    );
    assert_eq!(e.len(), 4);
    assert_eq!(
        e[0],
        Entry {
            stage: "embed".into(),
            part: Part::Queue,
            dur_ms: 1.25
        }
    );
    assert_eq!(e[1].part, Part::Service);
    assert_eq!(e[3].stage, "rank");
    assert_eq!(e[3].dur_ms, 7.0);
}

#[test]
fn ignores_foreign_and_malformed_entries() {
    let e = parse(
        "cache;desc=\"hit\", db;dur=2, x-queue, y-service;dur=abc, -queue;dur=1, z-queue;desc=a;dur=\"4.5\", w-service;dur=-1",
    );
    assert_eq!(
        e,
        vec![Entry {
            stage: "z".into(),
            part: Part::Queue,
            dur_ms: 4.5
        }]
    );
    assert!(parse("").is_empty());
}

#[test]
fn stage_names_may_contain_dashes() {
    let e = parse("pre-proc-queue;dur=1");
    assert_eq!(e[0].stage, "pre-proc");
}
