use std::path::Path;

use super::PipelinesFile;
use crate::policy::StageKind;

const GOOD: &str = r#"
interval = "10s"
policy = "hpa"

[pipeline]
name = "image-classification"
slo_p99_ms = 100

[[pipeline.stages]]
name = "pre"
kind = "cpu"
concurrency = 1
min_replicas = 1
max_replicas = 4
replicas = 1
[pipeline.stages.run]
command = ["sair-stage", "--cpu-ms", "4", "--listen", "127.0.0.1:{port}"]

[[pipeline.stages]]
name = "infer"
kind = "gpu"
service_ms = 1.2
min_replicas = 1
max_replicas = 2
replicas = 1
rho = 0.5
[pipeline.stages.kubernetes]
deployment = "infer"

[cost]
cpu_replica = 0.048
gpu = 1.10
gpus = 1
"#;

fn parse(text: &str) -> Result<PipelinesFile, String> {
    PipelinesFile::parse(text, Path::new("."))
}

#[test]
fn a_pipelines_file_with_run_tables_and_option_keys_parses() {
    let f = parse(GOOD).expect("valid");
    tracing::info!(?f.runs, "parsed");
    assert_eq!(f.pipeline(), "image-classification");
    assert_eq!(f.stage_names(), ["pre", "infer"]);
    assert_eq!(f.scenario.stages[1].kind, StageKind::Gpu);
    assert_eq!(f.scenario.stages[1].initial_rho, 0.5);
    assert!(f.runs[0].local.is_some() && f.runs[0].kubernetes.is_none());
    assert!(f.runs[1].kubernetes.is_some());
    assert_eq!(f.service_given, [false, true]);
    assert!(!f.has_workload);
    assert_eq!(f.planned_peak_rps(), None);
    assert_eq!(f.gpu_stages(), [1]);
    let ctx = f.context(10.0, 1, None, None);
    assert_eq!(ctx.interval_s, 10.0);
    assert!(ctx.known_workload.is_none());
    assert_eq!(ctx.peak_rate_rps, 0.0);
}

#[test]
fn every_shipped_scenario_is_a_valid_pipelines_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("scenarios dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "toml") {
            let f = PipelinesFile::load(&p).unwrap_or_else(|e| panic!("{e}"));
            assert!(f.has_workload);
            assert!(f.planned_peak_rps().is_some_and(|r| r > 0.0));
            n += 1;
        }
    }
    assert!(n > 0);
}

fn expect_error(text: &str, needle: &str) {
    match parse(text) {
        Ok(_) => panic!("accepted a file that should fail with {needle:?}"),
        Err(e) => assert!(
            e.contains(needle),
            "error {e:?} does not mention {needle:?}"
        ),
    }
}

#[test]
fn bounds_that_cannot_hold_are_named() {
    expect_error(
        &GOOD.replace("max_replicas = 4", "max_replicas = 0"),
        "pipeline.stages[0].min_replicas",
    );
    expect_error(
        &GOOD.replace(
            "max_replicas = 4\nreplicas = 1",
            "max_replicas = 4\nreplicas = 9",
        ),
        "pipeline.stages[0].replicas",
    );
    // Two replicas at ρ = 0.75 cannot share one GPU.
    expect_error(
        &GOOD.replace("rho = 0.5", "rho = 0.75").replace(
            "max_replicas = 2\nreplicas = 1",
            "max_replicas = 2\nreplicas = 2",
        ),
        "GPU shares",
    );
    expect_error(&GOOD.replace("rho = 0.5", "rho = 1.5"), "stages[1].rho");
}

#[test]
fn bad_structure_and_names_are_named() {
    expect_error("[cost]\ncpu_replica = 1\ngpu = 1\n", "pipeline.stages");
    expect_error(
        &GOOD.replace("name = \"pre\"", "name = \"pre.x\""),
        "stages[0].name",
    );
    expect_error(
        &GOOD.replace("name = \"image-classification\"", "name = \"a/b\""),
        "pipeline.name",
    );
    expect_error(
        &GOOD.replace("name = \"infer\"", "name = \"pre\""),
        "duplicate stage name",
    );
    expect_error(
        &GOOD.replace("concurrency = 1", "concurency = 1"),
        "concurency",
    );
    expect_error(
        &GOOD.replace(
            "[pipeline.stages.run]\ncommand",
            "run = 3\n[pipeline.stages.x]\ncommand",
        ),
        "stages[0].run",
    );
    expect_error("not toml [", "not valid TOML");
}
