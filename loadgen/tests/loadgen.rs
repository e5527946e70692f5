//! `sair-loadgen` end to end against scripted loopback servers and `sair-stage`.

use sair_tests::scripted::{Behaviour, serve};
use sair_tests::{LoadgenRun, Stage, scratch};
use serde_json::Value;
use std::time::Duration;

/// `sair-loadgen` from this package's build, bounded, its report read back.
fn loadgen(args: &[&str]) -> LoadgenRun {
    sair_tests::loadgen()
        .program(env!("CARGO_BIN_EXE_sair-loadgen"))
        .args(args)
        .run()
}

/// `sair-stage` from this package's build.
fn spawn_stage(args: &[&str]) -> Stage {
    sair_tests::stage()
        .program(env!("CARGO_BIN_EXE_sair-stage"))
        .args(args)
        .run()
}

/// The checked-in report schema, compiled by the `jsonschema` crate.
fn report_schema() -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report.schema.json");
    let text = std::fs::read(&path).expect("read the checked-in schema");
    let schema: Value = serde_json::from_slice(&text).expect("the schema is JSON");
    jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid JSON Schema: {e}", path.display()))
}

/// Every violation of the schema by `report`, each with its JSON path.
fn schema_violations(schema: &jsonschema::Validator, report: &Value) -> Vec<String> {
    schema
        .iter_errors(report)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn f(v: &Value, ptr: &str) -> f64 {
    v.pointer(ptr)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{ptr} missing in {v}"))
}

fn u(v: &Value, ptr: &str) -> u64 {
    v.pointer(ptr)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{ptr} missing in {v}"))
}

#[test]
fn a_one_second_stall_shows_as_one_second_tail_latency() {
    let addr = serve(Behaviour::StallOneSecond);
    let url = format!("http://{addr}/");
    // 3 s at 100/s with enough connections that nothing is dropped during the stall.
    let run = loadgen(&[
        "--target",
        &url,
        "--duration",
        "3s",
        "--rate",
        "100",
        "--connections",
        "400",
        "--seed",
        "7",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let r = run.report.unwrap();
    assert_eq!(u(&r, "/dropped"), 0);
    assert_eq!(u(&r, "/completed"), u(&r, "/sent"));
    // About a third of the requests arrive during the stall, with latencies spread from 1 s
    // down to 0. A closed-loop tool would record one slow request per connection instead.
    let p90 = f(&r, "/latency_ms/p90");
    let p99 = f(&r, "/latency_ms/p99");
    let max = f(&r, "/latency_ms/max");
    assert!(p90 > 500.0, "p90 {p90} ms");
    assert!(p99 > 850.0 && p99 < 1500.0, "p99 {p99} ms");
    assert!(max > 900.0 && max < 1600.0, "max {max} ms");
    // The stalled second is the slow one in the timeline.
    let tl = r["timeline"].as_array().unwrap();
    assert!(f(&tl[1], "/p50_ms") > 300.0, "{}", tl[1]);
    assert!(f(&tl[2], "/p99_ms") < 300.0, "{}", tl[2]);
}

#[test]
fn arrivals_without_a_free_connection_are_dropped_not_delayed() {
    let addr = serve(Behaviour::Delay(Duration::from_millis(100)));
    let url = format!("http://{addr}/");
    // One connection serves at most ~10 requests per second; 50 per second are scheduled.
    let run = loadgen(&[
        "--target",
        &url,
        "--duration",
        "2s",
        "--rate",
        "50",
        "--connections",
        "1",
        "--seed",
        "3",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let r = run.report.unwrap();
    let (scheduled, sent, dropped) = (u(&r, "/scheduled"), u(&r, "/sent"), u(&r, "/dropped"));
    assert_eq!(sent + dropped, scheduled, "{r}");
    assert!(sent <= 25, "sent {sent}");
    assert!(dropped >= scheduled / 2, "dropped {dropped} of {scheduled}");
    // Sent requests waited at most the 10 ms drop bound for their connection (plus scheduling
    // noise on a busy machine, hence the generous bound).
    assert!(f(&r, "/send_lag_ms/p50") < 20.0, "{}", r["send_lag_ms"]);
    let per_second: u64 = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| u(s, "/dropped"))
        .sum();
    assert_eq!(per_second, dropped);
}

#[test]
fn the_report_matches_the_checked_in_schema() {
    let stage = spawn_stage(&[
        "--cpu-ms",
        "1",
        "--concurrency",
        "2",
        "--server-timing",
        "embed",
    ]);
    let run = loadgen(&[
        "--target",
        &stage.url(),
        "--duration",
        "2s",
        "--pattern",
        "burst",
        "--rate",
        "20",
        "--peak",
        "100",
        "--burst-every",
        "1",
        "--burst-len",
        "0.5",
        "--method",
        "POST",
        "--body-size",
        "100",
        "--header",
        "x-test: 1",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let r = run.report.unwrap();
    let schema = report_schema();
    let bad = schema_violations(&schema, &r);
    assert!(bad.is_empty(), "{bad:#?}\n{r}");
    // Every field the issue lists is there and filled in.
    assert!(u(&r, "/completed") > 20);
    assert!(r["errors"].is_object());
    assert!(f(&r, "/achieved_rps") > 0.0);
    for p in ["p50", "p90", "p99", "p999", "max", "mean"] {
        assert!(f(&r, &format!("/latency_ms/{p}")) > 0.0, "{p}");
    }
    let tl = r["timeline"].as_array().unwrap();
    assert_eq!(tl.len(), 2);
    assert!(f(&r, "/stages/embed/service_p50_ms") >= 0.9);
    assert!(u(&r, "/stages/embed/count") > 20);
    assert!(run.stdout.contains("stage embed"), "{}", run.stdout);
    // A schema violation is caught (the checker can fail).
    assert!(r["fell_behind"].is_boolean(), "{r}");
    assert!(r["undispatched"].is_u64(), "{r}");
    let mut broken = r.clone();
    broken["latency_ms"].as_object_mut().unwrap().remove("p99");
    broken["timeline"][0]["rps"] = Value::from(-1);
    broken["fell_behind"] = Value::from("no");
    let bad = schema_violations(&schema, &broken);
    assert_eq!(bad.len(), 3, "{bad:?}");
}

#[test]
fn an_unreachable_target_fails_before_the_run() {
    // Bind then drop a listener: the port is closed.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let run = loadgen(&["--target", &format!("http://{addr}/"), "--duration", "30s"]);
    assert_eq!(run.code, Some(69));
    assert!(run.stderr.contains("unreachable"), "{}", run.stderr);
    assert!(run.wall < Duration::from_secs(10), "took {:?}", run.wall);
    assert!(run.report.is_none());
}

#[test]
fn bad_input_names_the_parameter_and_exits_64() {
    let cases: &[(&[&str], &str)] = &[
        (&["--rate", "-5"], "`rate`"),
        (
            &["--pattern", "ramp", "--rate", "100", "--peak", "50"],
            "`peak`",
        ),
        (
            &["--pattern", "burst", "--peak", "500", "--burst-len", "-1"],
            "`burst-len`",
        ),
        (
            &["--pattern", "sine", "--peak", "500", "--period", "0"],
            "`period`",
        ),
        (
            &["--pattern", "trace:/nonexistent/trace.csv"],
            "trace:/nonexistent/trace.csv",
        ),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["--target", "http://127.0.0.1:9/"];
        args.extend_from_slice(flags);
        let run = loadgen(&args);
        assert_eq!(run.code, Some(64), "{flags:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{flags:?}: {}", run.stderr);
    }
    let dir = scratch("trace");
    let empty = dir.join("empty.csv");
    std::fs::write(&empty, "second,rps\n").unwrap();
    let run = loadgen(&[
        "--target",
        "http://127.0.0.1:9/",
        "--pattern",
        &format!("trace:{}", empty.display()),
    ]);
    assert_eq!(run.code, Some(64));
    assert!(
        run.stderr.contains("no `second,rps` points"),
        "{}",
        run.stderr
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_failing_server_still_ends_on_time_and_reports_errors() {
    let failing = serve(Behaviour::Status(503));
    let run = loadgen(&[
        "--target",
        &format!("http://{failing}/"),
        "--duration",
        "1s",
        "--rate",
        "50",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let r = run.report.unwrap();
    assert_eq!(u(&r, "/completed"), 0);
    assert_eq!(u(&r, "/errors/http_5xx"), u(&r, "/sent"));
    assert!(u(&r, "/sent") > 20);

    // A server that never answers: every request times out and the run still ends within
    // duration + timeout.
    let hole = serve(Behaviour::BlackHole);
    let run = loadgen(&[
        "--target",
        &format!("http://{hole}/"),
        "--duration",
        "1s",
        "--rate",
        "20",
        "--timeout",
        "500ms",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let r = run.report.unwrap();
    assert_eq!(u(&r, "/errors/timeout"), u(&r, "/sent"));
    assert!(f(&r, "/elapsed_s") < 3.0, "elapsed {}", r["elapsed_s"]);
    assert!(run.wall < Duration::from_secs(15), "took {:?}", run.wall);
}

#[test]
fn same_seed_same_schedule_over_the_network() {
    let stage = spawn_stage(&["--cpu-ms", "0"]);
    let args = [
        "--target",
        &stage.url(),
        "--duration",
        "1s",
        "--rate",
        "200",
        "--pattern",
        "poisson",
        "--seed",
        "11",
    ];
    let a = loadgen(&args).report.unwrap();
    let b = loadgen(&args).report.unwrap();
    assert_eq!(a["scheduled"], b["scheduled"]);
    let expected = sair_loadgen::pattern::schedule(
        &sair_loadgen::pattern::Pattern::Poisson { rate: 200.0 },
        1.0,
        11,
    );
    assert_eq!(u(&a, "/scheduled"), expected.len() as u64);
}

#[test]
fn the_timeline_follows_the_pattern() {
    let stage = spawn_stage(&["--cpu-ms", "0"]);
    let dir = scratch("trace-run");
    let trace = dir.join("trace.csv");
    // 40/s for the first two trace seconds, 300/s after; played at double speed.
    std::fs::write(&trace, "second,rps\n0,40\n2,300\n").unwrap();
    let trace_arg = format!("trace:{}", trace.display());
    let url = stage.url();
    let runs: [&[&str]; 2] = [
        &[
            "--pattern",
            "step",
            "--rate",
            "40",
            "--peak",
            "300",
            "--step-at",
            "1",
        ],
        &["--pattern", &trace_arg, "--speed", "2"],
    ];
    for extra in runs {
        let mut args = vec!["--target", &url, "--duration", "2s", "--seed", "5"];
        args.extend_from_slice(extra);
        let run = loadgen(&args);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let r = run.report.unwrap();
        let tl = r["timeline"].as_array().unwrap();
        let (low, high) = (u(&tl[0], "/rps"), u(&tl[1], "/rps"));
        // Poisson counts: 40 and 300 per second, within about 5 standard deviations.
        assert!((10..=75).contains(&low), "{extra:?}: first second {low}");
        assert!(
            (215..=390).contains(&high),
            "{extra:?}: second second {high}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn clap_parse_errors_exit_64_and_help_exits_0() {
    // An unknown flag and a missing --target are usage errors (64), not clap's default 2.
    for args in [&["--target", "http://127.0.0.1:9/", "--bogus"][..], &[][..]] {
        let run = loadgen(args);
        assert_eq!(run.code, Some(64), "{args:?}: {}", run.stderr);
    }
    // A bad value in the config file names the key and the file.
    let dir = scratch("bad-config");
    let file = dir.join("loadgen.toml");
    std::fs::write(&file, "rate = \"fast\"\n").unwrap();
    let config = file.display().to_string();
    let run = loadgen(&["--target", "http://127.0.0.1:9/", "--config", &config]);
    assert_eq!(run.code, Some(64), "{}", run.stderr);
    assert!(
        run.stderr.contains("`rate`") && run.stderr.contains("loadgen.toml"),
        "{}",
        run.stderr
    );
    std::fs::remove_dir_all(&dir).ok();
    let help = sair_tests::run_bounded(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sair-loadgen"));
            c.arg("--help");
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("--config"), "{}", help.stdout);
}

#[test]
fn slo_counts_late_completions_and_the_report_stays_valid() {
    // Every request costs at least 20 ms of CPU: all late against 5 ms, none against 10 s.
    let stage = spawn_stage(&["--cpu-ms", "20", "--concurrency", "4"]);
    let url = stage.url();
    let schema = report_schema();
    for (slo, all_late) in [("5ms", true), ("10s", false)] {
        let run = loadgen(&[
            "--target",
            &url,
            "--rate",
            "20",
            "--duration",
            "2s",
            "--slo",
            slo,
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let report = run.report.expect("a report");
        assert_eq!(schema_violations(&schema, &report), Vec::<String>::new());
        let (completed, late) = (u(&report, "/completed"), u(&report, "/late"));
        assert!(completed > 20, "{report}");
        if all_late {
            assert_eq!(late, completed, "{report}");
            assert_eq!(f(&report, "/slo_ms"), 5.0);
        } else {
            assert_eq!(late, 0, "{report}");
        }
    }
    // Without --slo neither field is written; --slo 0 is refused naming the flag.
    let run = loadgen(&["--target", &url, "--rate", "20", "--duration", "1s"]);
    let report = run.report.expect("a report");
    assert!(report.get("late").is_none() && report.get("slo_ms").is_none());
    let run = loadgen(&["--target", &url, "--slo", "0s"]);
    assert_eq!(run.code, Some(64), "{}", run.stderr);
    assert!(run.stderr.contains("slo"), "{}", run.stderr);
}
