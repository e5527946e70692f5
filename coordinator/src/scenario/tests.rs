use std::path::Path;

use super::*;

const GOOD: &str = r#"
[pipeline]
name = "image-classification"
slo_p99_ms = 150
[[pipeline.stages]]
name = "pre"
kind = "cpu"
service_ms = 4.0
dist = "lognormal"
cv = 0.3
concurrency = 1
min_replicas = 1
max_replicas = 16
startup_s = 10
[[pipeline.stages]]
name = "infer"
kind = "gpu"
service_ms = 8.0
min_replicas = 1
max_replicas = 4
replicas = 2
rho = 0.5
[workload]
pattern = "burst"
rate = 100
peak = 400
duration_s = 1800
burst_every_s = 300
burst_len_s = 60
[cost]
cpu_replica = 0.048
gpu = 1.10
gpus = 2
[control]
interval_s = 30
"#;

fn err(text: &str) -> String {
    match Scenario::parse("x", text, Path::new(".")) {
        Ok(_) => panic!("accepted a bad scenario"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_issue_example_parses() {
    let s = Scenario::parse("x", GOOD, Path::new(".")).unwrap();
    assert_eq!(s.stages.len(), 2);
    assert_eq!(s.stages[1].initial_replicas, 2);
    assert!(matches!(s.pattern, Pattern::Burst { .. }));
    assert!((s.slo_p99_s - 0.15).abs() < 1e-12);
    assert_eq!(s.context(1, None).peak_rate_rps, 400.0);
}

#[test]
fn bad_scenarios_name_field_and_problem() {
    let e = err(&GOOD.replace("service_ms = 4.0\n", ""));
    assert!(e.contains("missing field `service_ms`"), "{e}");
    let e = err(&GOOD.replace("\"burst\"", "\"zigzag\""));
    assert!(
        e.contains("workload.pattern") && e.contains("unknown pattern `zigzag`"),
        "{e}"
    );
    let e = err(&GOOD.replace("max_replicas = 16", "max_replicas = 0"));
    assert!(
        e.contains("pipeline.stages[0].min_replicas") && e.contains("greater than"),
        "{e}"
    );
    let e = err(&GOOD
        .replace("rho = 0.5", "rho = 1.0")
        .replace("gpus = 2", "gpus = 1"));
    assert!(
        e.contains("rho") && e.contains("more than the 1 GPUs"),
        "{e}"
    );
    let e = err(&GOOD.replace("startup_s = 10", "startup_s = -1"));
    assert!(
        e.contains("pipeline.stages[0].startup_s") && e.contains(">= 0"),
        "{e}"
    );
    let e = err(&GOOD.replace("duration_s = 1800", "duration_s = -5"));
    assert!(e.contains("workload.duration_s"), "{e}");
    let e = err(&GOOD.replace("cv = 0.3", "cv = 0.3\ncolour = 1"));
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = err(&GOOD.replace("burst_len_s = 60", ""));
    assert!(
        e.contains("workload.burst_len_s") && e.contains("missing"),
        "{e}"
    );
    let e = err(&GOOD.replace("\"burst\"", "\"poisson\""));
    assert!(
        e.contains("workload.peak") && e.contains("does not apply"),
        "{e}"
    );
}

#[test]
fn trace_paths_are_relative_to_the_file() {
    let dir = std::env::temp_dir().join(format!("sair-scn-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("traces")).unwrap();
    std::fs::write(dir.join("traces/t.csv"), "second,rps\n0,10\n60,20\n").unwrap();
    let text = GOOD
        .replace(
            "pattern = \"burst\"",
            "pattern = \"trace\"\ntrace = \"traces/t.csv\"",
        )
        .replace("rate = 100\npeak = 400\n", "")
        .replace("burst_every_s = 300\nburst_len_s = 60\n", "");
    let f = dir.join("s.toml");
    std::fs::write(&f, text).unwrap();
    let s = Scenario::load(&f).unwrap();
    assert!(matches!(s.pattern, Pattern::Trace { .. }));
    std::fs::remove_file(dir.join("traces/t.csv")).unwrap();
    let e = Scenario::load(&f).unwrap_err().to_string();
    assert!(e.contains("s.toml") && e.contains("workload.trace"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
