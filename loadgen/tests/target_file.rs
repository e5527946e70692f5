//! `sair-loadgen --target file:PATH`: requests spread over the file's entries, the file re-read
//! during the run, and a file that lists nothing is a clear error after a bounded wait.

use sair_tests::{LoadgenRun, Stage, scratch};
use serde_json::Value;
use std::time::Duration;

fn loadgen(args: &[&str]) -> LoadgenRun {
    sair_tests::loadgen()
        .program(env!("CARGO_BIN_EXE_sair-loadgen"))
        .args(args)
        .run()
}

/// A stage that names itself in Server-Timing, so the report counts what each one served.
fn named_stage(name: &str) -> Stage {
    sair_tests::stage()
        .program(env!("CARGO_BIN_EXE_sair-stage"))
        .args(["--cpu-ms", "0", "--server-timing", name])
        .run()
}

fn served(report: &Value, name: &str) -> u64 {
    report
        .pointer(&format!("/stages/{name}/count"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

#[test]
fn requests_spread_over_the_entries() {
    let (a, b) = (named_stage("a"), named_stage("b"));
    let file = scratch("loadgen-file").join("entry.endpoints");
    std::fs::write(
        &file,
        format!("# written by a test\n{}\n{}\n", a.addr(), b.addr()),
    )
    .expect("write the list");
    let target = format!("file:{}", file.display());
    let run = loadgen(&["--target", &target, "--rate", "100", "--duration", "2s"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let report = run.report.expect("a report");
    let (na, nb) = (served(&report, "a"), served(&report, "b"));
    tracing::info!(na, nb, "served");
    assert!(na + nb >= 150, "{report}");
    // Round-robin: within a few requests of half each.
    assert!(na.abs_diff(nb) <= 4, "a {na}, b {nb}");
}

#[test]
fn a_changed_list_is_followed_during_the_run() {
    let (a, b) = (named_stage("a"), named_stage("b"));
    let dir = scratch("loadgen-file-change");
    let file = dir.join("entry.endpoints");
    std::fs::write(&file, format!("{}\n", a.addr())).expect("write the list");
    let target = format!("file:{}", file.display());
    // Replace the list (write + rename, as the actuator does) a second into the run.
    let (f, to) = (file.clone(), b.addr());
    let changer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, format!("{to}\n")).expect("write");
        std::fs::rename(&tmp, &f).expect("rename");
    });
    let run = loadgen(&["--target", &target, "--rate", "100", "--duration", "3s"]);
    changer.join().expect("the changer thread");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let report = run.report.expect("a report");
    let (na, nb) = (served(&report, "a"), served(&report, "b"));
    assert!(na >= 50, "a served {na} before the change");
    assert!(nb >= 100, "b served {nb} after the change");
    assert_eq!(report.pointer("/errors/connect"), None, "{report}");
}

#[test]
fn an_empty_list_is_a_clear_error_after_a_bounded_wait() {
    let file = scratch("loadgen-file-empty").join("entry.endpoints");
    std::fs::write(&file, "# no replica serving yet\n").expect("write");
    let target = format!("file:{}", file.display());
    let run = loadgen(&["--target", &target, "--duration", "1s"]);
    assert_eq!(run.code, Some(69), "{}", run.stderr);
    assert!(
        run.stderr.contains("has no endpoint") && run.stderr.contains("lists no host:port"),
        "{}",
        run.stderr
    );
    // WAIT_FOR_ENTRIES (10 s) plus the process's own start and exit.
    assert!(run.wall < Duration::from_secs(20), "took {:?}", run.wall);
    assert!(run.report.is_none());

    let run = loadgen(&["--target", "file:", "--duration", "1s"]);
    assert_ne!(run.code, Some(0));
}
