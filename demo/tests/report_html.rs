//! `report.html` is checked in a real browser: headless Chromium (Debian's `chromium`) loads
//! the page from a file, with no network, and its DOM must hold the results table, the four
//! plots and the decisions. Where no Chromium is installed the test says so and passes
//! (`apt-get install chromium` enables it).

// In a test, a failed unwrap is a failed test that names the operation.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sair_demo::api::{PipelineView, StageView};
use sair_demo::report::{self, Inputs, Results};
use sair_demo::series::Sample;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

fn sample(t: f64, replicas: u32, rho: f64) -> Sample {
    Sample::of(
        t,
        &PipelineView {
            name: "image-classification".into(),
            slo_p99_s: Some(0.1),
            e2e_p99_s: Some(0.02 + t / 1e3),
            e2e_p50_s: Some(0.01),
            cost_per_hour: Some(0.5 + rho),
            bottleneck: Some("infer".into()),
            stages: vec![
                StageView {
                    name: "pre".into(),
                    kind: "cpu".into(),
                    replicas: Some(1),
                    ..StageView::default()
                },
                StageView {
                    name: "infer".into(),
                    kind: "gpu".into(),
                    replicas: Some(replicas),
                    rho: Some(rho),
                    rho_measured: Some(rho * 0.95),
                    ..StageView::default()
                },
            ],
            ..PipelineView::default()
        },
    )
}

#[test]
fn report_html_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED: no chromium on PATH; install Debian's chromium (apt-get install chromium) \
             to check report.html in a real browser"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("sair-demo-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let samples: Vec<Sample> = (0..60)
        .map(|t| {
            let t = f64::from(t);
            sample(t, if (20.0..40.0).contains(&t) { 2 } else { 1 }, 0.4)
        })
        .collect();
    let loadgen = serde_json::json!({"scheduled": 900, "completed": 900, "late": 3,
        "latency_ms": {"p50": 9.0, "p99": 60.0},
        "timeline": (0..60).map(|t| serde_json::json!({"t": t, "completed": 15, "p99_ms": 40.0}))
            .collect::<Vec<_>>()});
    let decisions = vec![
        serde_json::json!({"time": 22.0, "action": {"replicas": [1, 2, 1]},
        "source": "model", "bottleneck": "infer", "rationale": "infer queue wait grows"}),
    ];
    let mut results = Results {
        policy: "sair".into(),
        pattern: "burst".into(),
        pipeline: "image-classification".into(),
        duration_s: 60.0,
        interval_s: 5.0,
        slo_p99_ms: Some(100.0),
        bursts: vec![[20.0, 35.0]],
        decisions: 1,
        ..Results::default()
    };
    report::fill(&mut results, &loadgen, &samples);
    let html = report::write(
        &dir,
        &Inputs {
            results,
            loadgen: &loadgen,
            samples: &samples,
            decisions: &decisions,
            events: &[],
        },
    )
    .unwrap();

    let mut child = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--dump-dom",
        ])
        .arg(format!("file://{}", html.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let dom = reader.join().unwrap();
    assert!(
        dom.contains("id=\"results\""),
        "no results table in the DOM: {dom:.2000}"
    );
    assert!(dom.contains("id=\"decisions\""), "{dom:.2000}");
    assert!(dom.contains("infer queue wait grows"));
    assert_eq!(dom.matches("<svg").count(), 4, "four inline plots");
    let _ = std::fs::remove_dir_all(dir);
}
