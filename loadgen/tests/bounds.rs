//! `sair-loadgen` is bounded before it starts and says when it could not keep to its schedule
//! (issue 14): a full listen backlog, a huge or zero rate, a generator that falls behind and an
//! `--out` that cannot be written. Every target is a loopback server of this test.

use sair_tests::scripted::{Behaviour, serve};
use sair_tests::{Finished, LoadgenRun, run_bounded, scratch};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sair-loadgen");

/// `sair-loadgen` through the harness (it adds `--out` and `--quiet`), killed after `limit`.
fn loadgen(args: &[&str], limit: Duration) -> LoadgenRun {
    sair_tests::loadgen()
        .program(BIN)
        .args(args)
        .limit(limit)
        .run()
}

/// `sair-loadgen ARGS` as given (no `--out` added), its address space limited to `vm_kib`
/// KiB when set, so that a run that allocates with rate × duration fails here and not on the
/// shared machine.
fn loadgen_raw(args: &[&str], vm_kib: Option<u64>, limit: Duration) -> Finished {
    let mut cmd = match vm_kib {
        Some(kib) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
                .arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    cmd.args(args).arg("--quiet");
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("SAIR_") && !k.starts_with("SAIR_TEST_") {
            cmd.env_remove(&*k);
        }
    }
    let done = run_bounded(cmd, limit);
    eprintln!(
        "sair-loadgen {args:?}: exit {:?} in {:?}\nstdout:\n{}\nstderr:\n{}",
        done.code, done.wall, done.stdout, done.stderr
    );
    done
}

/// A listener with a backlog of 1 that never accepts: the kernel completes the first
/// handshakes into its accept queue, then drops every further SYN, so later connects hang.
/// The runtime and the listener live as long as the returned pair.
fn full_backlog() -> (tokio::runtime::Runtime, tokio::net::TcpListener) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a runtime for the listener");
    let listener = rt
        .block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind("127.0.0.1:0".parse().expect("an address"))?;
            s.listen(1)
        })
        .expect("a backlog-1 listener");
    (rt, listener)
}

#[test]
fn a_full_listen_backlog_does_not_hold_the_run() {
    let (_rt, listener) = full_backlog();
    let url = format!("http://{}/", listener.local_addr().expect("its address"));
    // 64 connections, most of which can never be opened. Before: opened one after the other
    // with no connect timeout (each hangs for the kernel's SYN retries, minutes).
    let run = loadgen(
        &[
            "--target",
            &url,
            "--duration",
            "2s",
            "--timeout",
            "1s",
            "--rate",
            "20",
        ],
        Duration::from_secs(45),
    );
    // Reachable: at least one connection was made (the ones in the accept queue).
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let r = run.report.expect("a report");
    assert!(r["sent"].as_u64().unwrap_or(0) > 0, "{r}");
    // duration + timeout + the stated 2 s connect bound, plus a generous margin for a loaded
    // machine (process start, runtime shutdown).
    assert!(run.wall < Duration::from_secs(12), "took {:?}", run.wall);
    assert!(
        r["elapsed_s"].as_f64().unwrap_or(f64::MAX) < 2.0 + 1.0 + 1.0,
        "{}",
        r["elapsed_s"]
    );
}

#[test]
fn a_huge_rate_is_refused_before_any_allocation() {
    // 2 GiB of address space: before, 1e9 built 6.6 GB of schedule and 1e10 aborted.
    for rate in ["1e9", "1e10", "1e300"] {
        let run = loadgen_raw(
            &[
                "--target",
                "http://127.0.0.1:9/",
                "--rate",
                rate,
                "--duration",
                "1s",
            ],
            Some(2 * 1024 * 1024),
            Duration::from_secs(60),
        );
        assert_eq!(run.code, Some(64), "--rate {rate}: {}", run.stderr);
        assert!(run.stderr.contains("--max-requests"), "{}", run.stderr);
        assert!(run.wall < Duration::from_secs(10), "took {:?}", run.wall);
    }
    // A long run at a modest rate is bounded the same way.
    let run = loadgen_raw(
        &[
            "--target",
            "http://127.0.0.1:9/",
            "--rate",
            "1000",
            "--duration",
            "30d",
        ],
        Some(2 * 1024 * 1024),
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(64), "{}", run.stderr);
    assert!(run.stderr.contains("--max-requests"), "{}", run.stderr);
}

#[test]
fn a_zero_rate_is_refused() {
    // A live server: before, the run "succeeded" (exit 0) having sent nothing.
    let addr = serve(Behaviour::Status(200));
    let url = format!("http://{addr}/");
    for flags in [
        &["--rate", "0"][..],
        &["--pattern", "step", "--rate", "0", "--peak", "0"],
    ] {
        let mut args = vec!["--target", &url, "--duration", "1s"];
        args.extend_from_slice(flags);
        let run = loadgen_raw(&args, None, Duration::from_secs(30));
        assert_eq!(run.code, Some(64), "{flags:?}: {}", run.stderr);
        assert!(run.stderr.contains("--rate"), "{}", run.stderr);
        assert!(run.stderr.contains("nothing"), "{}", run.stderr);
    }
}

#[test]
fn a_generator_that_falls_behind_says_so_and_exits_75() {
    let addr = serve(Behaviour::Status(200));
    let url = format!("http://{addr}/");
    // A million requests a second: no machine here sends that many.
    let run = loadgen(
        &[
            "--target",
            &url,
            "--duration",
            "1s",
            "--timeout",
            "1s",
            "--rate",
            "1e6",
            "--connections",
            "4",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(75), "{}", run.stderr);
    let r: Value = run.report.expect("the report is still written");
    assert_eq!(r["fell_behind"], Value::Bool(true), "{r}");
    // The checked-in schema (version 2) has the fields.
    let schema_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report.schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(&schema_path).expect("the schema"))
        .expect("the schema is JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
    let bad: Vec<String> = validator.iter_errors(&r).map(|e| e.to_string()).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    let scheduled = r["scheduled"].as_u64().unwrap_or(0);
    let (sent, dropped, undispatched) = (
        r["sent"].as_u64().unwrap_or(0),
        r["dropped"].as_u64().unwrap_or(0),
        r["undispatched"].as_u64().unwrap_or(0),
    );
    assert_eq!(sent + dropped + undispatched, scheduled, "{r}");
    assert!(undispatched > 0, "{r}");
    assert!(run.stderr.contains("fell behind"), "{}", run.stderr);
    assert!(run.stdout.contains("fell behind"), "{}", run.stdout);
    // The run still ends on time: duration + timeout + the stated grace (the dispatcher gives
    // up 100 ms after the end), with a margin for a loaded machine.
    assert!(
        r["elapsed_s"].as_f64().unwrap_or(f64::MAX) < 1.0 + 1.0 + 0.1 + 2.0,
        "{}",
        r["elapsed_s"]
    );
    assert!(run.wall < Duration::from_secs(15), "took {:?}", run.wall);
}

#[test]
fn an_unwritable_out_is_refused_before_the_run() {
    let addr = serve(Behaviour::Status(200));
    let url = format!("http://{addr}/");
    let dir = scratch("out-refused");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").expect("a file");
    let under_file = file.join("report.json");
    for out in [under_file.as_path(), dir.as_path()] {
        let out = out.display().to_string();
        let run = loadgen_raw(
            &[
                "--target",
                &url,
                "--duration",
                "3s",
                "--rate",
                "10",
                "--out",
                &out,
            ],
            None,
            Duration::from_secs(30),
        );
        // Before: the whole 3 s run, then exit 74 and no summary.
        assert_eq!(run.code, Some(73), "--out {out}: {}", run.stderr);
        assert!(run.stderr.contains(&out), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "nothing ran: {}", run.stdout);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_summary_reaches_stdout_even_when_the_report_cannot_be_written() {
    let addr = serve(Behaviour::Status(200));
    let url = format!("http://{addr}/");
    let dir = scratch("out-lost");
    let out = dir.join("sub").join("report.json");
    std::fs::create_dir_all(out.parent().expect("a parent")).expect("the directory");
    let out_arg = out.display().to_string();
    let sub = dir.join("sub");
    // The directory disappears during the run.
    let remover = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        std::fs::remove_dir_all(&sub).ok();
    });
    let run = loadgen_raw(
        &[
            "--target",
            &url,
            "--duration",
            "2s",
            "--rate",
            "10",
            "--out",
            &out_arg,
        ],
        None,
        Duration::from_secs(30),
    );
    remover.join().ok();
    assert_eq!(run.code, Some(74), "{}", run.stderr);
    assert!(run.stdout.contains("scheduled"), "{}", run.stdout);
    assert!(run.stderr.contains(&out_arg), "{}", run.stderr);
    std::fs::remove_dir_all(&dir).ok();
}
