//! The `sair eval` command line, run as a real process.
#![allow(clippy::unwrap_used)] // test helpers: a failed fixture write should panic

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sair(args: &[&str]) -> Output {
    sair_env(args, &[])
}

/// `sair eval --scenario SC --policy POLICY --out OUT --quiet EXTRA…`.
fn eval_quiet(sc: &str, policy: &str, out: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "eval",
        "--scenario",
        sc,
        "--policy",
        policy,
        "--out",
        out,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    sair(&args)
}

/// Removes `RUST_LOG` and every `SAIR_*` variable of the test's own environment from the
/// child: the CLI reads any `SAIR_<OPTION>`, and the test command itself exports
/// `SAIR_LLM_URL` (for the real-LLM test), which would otherwise turn every `sair eval` here
/// into an LLM run, slow and with `llm` decisions.
fn clean_env(c: &mut Command) {
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SAIR_") {
            c.env_remove(k);
        }
    }
}

/// `sair ARGS` with the logging and `SAIR_*` variables of the test's own environment removed
/// and `env` set on the child only.
fn sair_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sair"));
    c.args(args);
    clean_env(&mut c);
    c.envs(env.iter().copied());
    c.output().expect("run sair")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sair-eval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const SHORT: &str = r#"
[pipeline]
name = "short"
slo_p99_ms = 60
[[pipeline.stages]]
name = "pre"
kind = "cpu"
service_ms = 3.0
min_replicas = 1
max_replicas = 6
startup_s = 5
[[pipeline.stages]]
name = "infer"
kind = "gpu"
service_ms = 5.0
min_replicas = 1
max_replicas = 2
startup_s = 10
rho = 0.5
[[pipeline.stages]]
name = "post"
kind = "cpu"
service_ms = 1.0
min_replicas = 1
max_replicas = 4
[workload]
pattern = "ramp"
rate = 50
peak = 250
duration_s = 120
[cost]
cpu_replica = 0.048
gpu = 1.10
gpus = 2
[control]
interval_s = 15
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn eval_writes_every_output() {
    let d = tmp("ok");
    let sc = write(&d, "short.toml", SHORT);
    let out = d.join("out");
    let o = eval_quiet(
        sc.to_str().unwrap(),
        "static,hpa,vpa,threshold,kpa,sair",
        out.to_str().unwrap(),
        &["--seeds", "2"],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for p in ["static", "hpa", "vpa", "threshold", "kpa", "sair"] {
        assert!(stdout.contains(&format!("| {p} |")), "{stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let recs = json.as_array().unwrap();
    assert_eq!(recs.len(), 12);
    for r in recs {
        for k in [
            "scenario",
            "policy",
            "seed",
            "p50_ms",
            "p99_ms",
            "slo_violation_rate",
            "cost_per_1k",
            "whole_gpu_cost_per_1k",
            "actions",
            "bottleneck_accuracy",
            "completed",
            "dropped",
        ] {
            assert!(r.get(k).is_some(), "{k} missing in {r}");
        }
        assert!(r["completed"].as_u64().unwrap() > 10_000, "{r}");
        let named = r["policy"] == "sair";
        assert_eq!(!r["bottleneck_accuracy"].is_null(), named, "{r}");
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
    assert!(
        std::fs::read_to_string(out.join("results.md"))
            .unwrap()
            .contains("| kpa |")
    );
    for suffix in ["latency", "allocation", "cost-p99"] {
        let svg = std::fs::read_to_string(out.join(format!("plots/short-{suffix}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{suffix}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_scenario_names_file_field_and_problem_and_runs_nothing() {
    let d = tmp("bad");
    let cases = [
        (
            SHORT.replace("service_ms = 3.0\n", ""),
            "missing field `service_ms`",
        ),
        (
            SHORT.replace("\"ramp\"", "\"wobble\""),
            "unknown pattern `wobble`",
        ),
        (
            SHORT.replace("max_replicas = 6", "max_replicas = 0"),
            "pipeline.stages[0].min_replicas",
        ),
        (
            SHORT
                .replace("rho = 0.5", "rho = 1.0\nreplicas = 2")
                .replace("gpus = 2", "gpus = 1"),
            "more than the 1 GPUs",
        ),
        (
            SHORT.replace("startup_s = 5", "startup_s = -3"),
            "pipeline.stages[0].startup_s",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let sc = write(&d, &format!("bad{i}.toml"), text);
        let out = d.join(format!("out{i}"));
        let o = sair(&[
            "eval",
            "--scenario",
            sc.to_str().unwrap(),
            "--seeds",
            "1",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(64), "{err}");
        assert!(err.contains(&format!("bad{i}.toml")), "{err}");
        assert!(err.contains(want), "want {want:?} in {err}");
        assert!(!out.exists(), "nothing may run on a bad scenario");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn unknown_policy_lists_known_ones() {
    let d = tmp("pol");
    let sc = write(&d, "short.toml", SHORT);
    let o = sair(&[
        "eval",
        "--scenario",
        sc.to_str().unwrap(),
        "--policy",
        "hpa,magic",
        "--out",
        d.join("out").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(err.contains("unknown policy `magic`"), "{err}");
    for n in ["static", "hpa", "vpa", "threshold", "kpa", "sair"] {
        assert!(err.contains(n), "{err}");
    }
    assert!(!d.join("out").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn shipped_scenarios_all_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let all = sair_coordinator::scenario::Scenario::load_all(&[dir]).unwrap();
    assert_eq!(all.len(), 15);
    assert!(all.iter().any(|s| {
        s.stages.len() == 5
            && s.stages
                .iter()
                .filter(|st| st.kind == sair_coordinator::policy::StageKind::Gpu)
                .count()
                == 2
    }));
}

#[test]
fn bad_flags_exit_64_and_help_exits_0() {
    for args in [
        &["eval", "--scenario", "x.toml", "--seeds", "-1"][..],
        &["eval", "--scenario", "x.toml", "--seeds", "0"],
        &["eval", "--no-such-flag"],
        &["eval"],
    ] {
        let o = sair(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {err}");
    }
    let o = sair_env(&["eval", "--scenario", "x.toml"], &[("SAIR_SEEDS", "many")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(
        err.contains("SAIR_SEEDS"),
        "the error names the variable: {err}"
    );
    for args in [&["--help"][..], &["eval", "--help"], &["--version"]] {
        let o = sair(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(!o.stdout.is_empty(), "{args:?}");
    }
}

/// A first run shows the tables and no per-decision log; `-v` and `RUST_LOG` bring it back.
#[test]
fn the_log_is_quiet_by_default_and_verbose_on_request() {
    let d = tmp("log");
    let sc = write(&d, "short.toml", SHORT);
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let out = d.join("out");
        let mut args = vec![
            "eval",
            "--scenario",
            sc.to_str().unwrap(),
            "--policy",
            "sair",
            "--seeds",
            "1",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let o = sair_env(&args, env);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{extra:?} {env:?}: {err}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("| sair |"),
            "the table is printed"
        );
        err
    };
    let quiet = run(&[], &[]);
    assert!(
        !quiet.contains("decision"),
        "no per-decision log by default: {quiet}"
    );
    let verbose = run(&["-v"], &[]);
    assert!(verbose.contains("decision"), "-v: {verbose}");
    let env = run(&[], &[("RUST_LOG", "info")]);
    assert!(env.contains("decision"), "RUST_LOG=info: {env}");
    let json = run(&["--log-format", "json"], &[("RUST_LOG", "info")]);
    assert!(
        json.lines()
            .any(|l| l.starts_with('{') && l.contains("decision")),
        "{json}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// `sair ARGS` with its address space limited to `kib` KiB and its time to 300 s (`timeout
/// -s KILL`: the exit status is then not 64), so that a run that allocates or loops with rate ×
/// duration fails here rather than exhausting the shared machine. The time limit is a safety
/// net far above what a refusal takes, not a timing assertion.
fn sair_limited(args: &[&str], kib: u64) -> Output {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!(
            "ulimit -v {kib} && exec timeout -s KILL 300 \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_sair"))
        .args(args);
    clean_env(&mut c);
    c.output().expect("run sair")
}

#[test]
fn an_out_that_is_a_file_is_refused_before_any_simulation() {
    let d = tmp("out-file");
    let sc = write(&d, "short.toml", SHORT);
    let out = write(&d, "results", "not a directory");
    let state = d.join("state");
    let o = eval_quiet(
        sc.to_str().unwrap(),
        "sair",
        out.to_str().unwrap(),
        &["--seeds", "1", "--state-dir", state.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(73), "{err}");
    assert!(err.contains(out.to_str().unwrap()), "names --out: {err}");
    // The SAIR policy opens its store under --state-dir when a run starts: none did.
    assert!(
        !state.join("short").exists(),
        "a simulation ran before --out was checked"
    );
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn huge_scenarios_are_refused_before_allocation_naming_file_and_field() {
    let d = tmp("huge");
    let many_stages: String = (0..70)
        .map(|i| {
            format!(
                "[[pipeline.stages]]\nname = \"s{i}\"\nkind = \"cpu\"\nservice_ms = 1.0\nmin_replicas = 1\nmax_replicas = 2\n"
            )
        })
        .collect();
    let cases = [
        (SHORT.replace("peak = 250", "peak = 1e12"), "workload.peak"),
        (
            SHORT
                .replace("pattern = \"ramp\"", "pattern = \"poisson\"")
                .replace("peak = 250\n", "")
                .replace("rate = 50", "rate = 1e12"),
            "workload.rate",
        ),
        (
            SHORT.replace("duration_s = 120", "duration_s = 1e12"),
            "workload.duration_s",
        ),
        (SHORT.replace("gpus = 2", "gpus = 4000000000"), "cost.gpus"),
        (
            SHORT.replace("max_replicas = 6", "max_replicas = 4000000000"),
            "pipeline.stages[0].max_replicas",
        ),
        (
            SHORT.replace("[workload]", &format!("{many_stages}[workload]")),
            "pipeline.stages",
        ),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        let sc = write(&d, &format!("huge{i}.toml"), text);
        let out = d.join(format!("out{i}"));
        // Refused at parse time: under a 2 GiB address-space limit a run sized from these
        // numbers would abort or be killed (never exit 64), and nothing is written. No
        // wall-clock bound here: a loaded CI machine may take any time to start the binary.
        let o = sair_limited(
            &[
                "eval",
                "--scenario",
                sc.to_str().unwrap(),
                "--policy",
                "static",
                "--seeds",
                "1",
                "--jobs",
                "1",
                "--out",
                out.to_str().unwrap(),
                "--quiet",
            ],
            2 * 1024 * 1024,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(64), "case {i} ({field}): {err}");
        assert!(err.contains(&format!("huge{i}.toml")), "{err}");
        assert!(err.contains(field), "want {field:?} in {err}");
        assert!(!out.exists(), "nothing may run on a refused scenario");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_zero_rate_is_a_clear_error_never_nan() {
    let d = tmp("zero-rate");
    let zero = SHORT
        .replace("pattern = \"ramp\"", "pattern = \"poisson\"")
        .replace("peak = 250\n", "")
        .replace("rate = 50", "rate = 0");
    let sc = write(&d, "zero.toml", &zero);
    let out = d.join("out");
    let o = eval_quiet(
        sc.to_str().unwrap(),
        "static",
        out.to_str().unwrap(),
        &["--seeds", "1"],
    );
    let (stdout, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(!stdout.contains("NaN"), "{stdout}");
    assert_eq!(o.status.code(), Some(64), "{stdout}\n{err}");
    assert!(
        err.contains("zero.toml") && err.contains("workload.rate"),
        "{err}"
    );
    // A ramp that starts at 0 has arrivals: it runs, with well-defined figures.
    let ramp = write(&d, "ramp0.toml", &SHORT.replace("rate = 50", "rate = 0"));
    let o = eval_quiet(
        ramp.to_str().unwrap(),
        "static",
        out.to_str().unwrap(),
        &["--seeds", "1"],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stdout.contains("NaN"), "{stdout}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_seed_count_too_large_to_run_is_a_flag_error() {
    // Before: accepted, then the task list grew until memory ran out.
    let d = tmp("seeds");
    let sc = write(&d, "short.toml", SHORT);
    let out = d.join("out");
    for seeds in ["18446744073709551615", "1000001"] {
        let o = sair_limited(
            &[
                "eval",
                "--scenario",
                sc.to_str().unwrap(),
                "--policy",
                "static",
                "--seeds",
                seeds,
                "--out",
                out.to_str().unwrap(),
                "--quiet",
            ],
            2 * 1024 * 1024,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(64), "--seeds {seeds}: {err}");
        assert!(err.contains("--seeds"), "{err}");
        assert!(!out.exists());
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// Every decision of every run lands in `decisions.jsonl`, one JSON object per line, keyed by
/// scenario, policy and seed, with its source and rationale; SAIR's carry candidates and, all
/// but each run's last, the reward they earned.
#[test]
fn eval_writes_every_decision_to_decisions_jsonl() {
    let d = tmp("decisions");
    let sc = write(&d, "short.toml", SHORT);
    let out = d.join("out");
    let o = eval_quiet(
        sc.to_str().unwrap(),
        "hpa,sair",
        out.to_str().unwrap(),
        &["--seeds", "2"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out.join("decisions.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        for k in [
            "scenario",
            "policy",
            "seed",
            "time",
            "pipeline",
            "state",
            "action",
            "source",
            "bottleneck",
            "rationale",
            "candidates",
            "reward",
        ] {
            assert!(l.get(k).is_some(), "{k} missing in {l}");
        }
        assert_eq!(l["scenario"], "short");
        assert!(!l["rationale"].as_str().unwrap().is_empty(), "{l}");
        let source = l["source"].as_str().unwrap();
        if l["policy"] == "hpa" {
            assert_eq!(source, "baseline", "{l}");
            assert!(l["reward"].is_null(), "{l}");
        } else {
            assert!(
                ["model", "guard", "explore", "fallback"].contains(&source),
                "{l}"
            );
        }
    }
    for (policy, seed) in [("hpa", 1), ("hpa", 2), ("sair", 1), ("sair", 2)] {
        let run: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["policy"] == policy && l["seed"] == seed)
            .collect();
        assert!(run.len() >= 4, "{policy} seed {seed}: {} lines", run.len());
        let times: Vec<f64> = run.iter().map(|l| l["time"].as_f64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
        if policy == "sair" {
            let (last, earlier) = run.split_last().unwrap();
            assert!(
                earlier.iter().all(|l| l["reward"].is_f64()),
                "every SAIR decision but the last has its reward"
            );
            assert!(last["reward"].is_null());
            assert!(
                run.iter()
                    .any(|l| l["source"] == "model"
                        && !l["candidates"].as_array().unwrap().is_empty())
            );
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// A `decisions.jsonl` that cannot be written (here a directory in its place) is refused
/// before any simulation, naming the path.
#[test]
fn an_unwritable_decisions_file_is_refused_before_any_simulation() {
    let d = tmp("decisions-dir");
    let sc = write(&d, "short.toml", SHORT);
    let out = d.join("out");
    std::fs::create_dir_all(out.join("decisions.jsonl")).unwrap();
    let state = d.join("state");
    let o = eval_quiet(
        sc.to_str().unwrap(),
        "sair",
        out.to_str().unwrap(),
        &["--seeds", "1", "--state-dir", state.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(73), "{err}");
    assert!(err.contains("decisions.jsonl"), "names the file: {err}");
    assert!(
        !state.join("short").exists(),
        "a simulation ran before the decisions file was checked"
    );
    assert!(!out.join("results.json").exists());
    std::fs::remove_dir_all(&d).unwrap();
}
