use super::*;
use crate::api::{PipelineView, StageView};

fn sample(t: f64, cost: f64, replicas: u32) -> Sample {
    Sample::of(
        t,
        &PipelineView {
            name: "p".into(),
            slo_p99_s: Some(0.1),
            e2e_p99_s: Some(0.05 + t / 1000.0),
            cost_per_hour: Some(cost),
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
                    rho: Some(0.4),
                    rho_measured: Some(0.38),
                    ..StageView::default()
                },
            ],
            ..PipelineView::default()
        },
    )
}

fn loadgen() -> serde_json::Value {
    serde_json::json!({
        "scheduled": 1000, "sent": 990, "completed": 985, "dropped": 10, "undispatched": 0,
        "errors": {"http_5xx": 5}, "late": 20, "fell_behind": false,
        "latency_ms": {"p50": 8.0, "p99": 120.0},
        "timeline": [
            {"t": 0, "completed": 10, "p99_ms": 10.0},
            {"t": 10, "completed": 30, "p99_ms": 200.0},
            {"t": 11, "completed": 10, "p99_ms": 100.0}
        ]
    })
}

#[test]
fn figures_follow_the_eval_definitions() {
    let samples = [
        sample(0.0, 3.6, 1),
        sample(10.0, 7.2, 2),
        sample(20.0, 7.2, 2),
    ];
    let mut r = Results {
        bursts: burst_windows(10.0, 5.0, 20.0),
        ..Results::default()
    };
    fill(&mut r, &loadgen(), &samples);
    assert_eq!(r.bursts, vec![[10.0, 15.0]]);
    // (late 20 + failed 5 + dropped 10) / scheduled 1000.
    assert_eq!(r.slo_violation_rate, Some(0.035));
    // 3.6 $/h for 10 s + 7.2 $/h for 10 s = 0.01 + 0.02 $.
    assert!((r.cost_usd - 0.03).abs() < 1e-12);
    assert!((r.cost_per_1k.unwrap() - 0.03 / 985.0 * 1000.0).abs() < 1e-12);
    // Request-weighted per-second P99 in [10, 15): (200·30 + 100·10) / 40.
    assert_eq!(r.burst_p99_ms, Some(175.0));
    assert_eq!(r.p99_ms, Some(120.0));
}

#[test]
fn without_late_counts_the_violation_rate_is_unknown_not_guessed() {
    let mut lg = loadgen();
    lg.as_object_mut().unwrap().remove("late");
    let mut r = Results::default();
    fill(&mut r, &lg, &[]);
    assert_eq!(r.slo_violation_rate, None);
    assert_eq!(r.cost_per_1k, Some(0.0));
}

#[test]
fn the_report_folder_is_complete_and_self_contained() {
    let dir = std::env::temp_dir().join(format!("sair-demo-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let samples = [
        sample(0.0, 3.6, 1),
        sample(10.0, 7.2, 2),
        sample(20.0, 7.2, 1),
    ];
    let decisions = vec![
        serde_json::json!({"time": 5.0, "action": {"scale": "infer"},
        "source": "model", "bottleneck": "infer", "rationale": "queue <grows> & more"}),
    ];
    let mut results = Results {
        policy: "sair".into(),
        bursts: vec![[10.0, 15.0]],
        slo_p99_ms: Some(100.0),
        duration_s: 20.0,
        ..Results::default()
    };
    let lg = loadgen();
    fill(&mut results, &lg, &samples);
    let events = vec![(12.0, "agent exited; restarted".to_string())];
    let html = write(
        &dir,
        &Inputs {
            results,
            loadgen: &lg,
            samples: &samples,
            decisions: &decisions,
            events: &events,
        },
    )
    .unwrap();
    for f in [
        "results.json",
        "decisions.json",
        "timeseries.json",
        "timeseries.csv",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    for p in ["p99", "replicas", "rho", "cost"] {
        let svg = std::fs::read_to_string(dir.join("plots").join(format!("{p}.svg"))).unwrap();
        assert!(svg.contains("<svg"), "{p}");
    }
    let page = std::fs::read_to_string(html).unwrap();
    assert!(page.contains("queue &lt;grows&gt; &amp; more"));
    assert_eq!(page.matches("<svg").count(), 4);
    assert!(
        !page.contains("src=") && !page.contains("href="),
        "no external resources"
    );
    let d: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("decisions.json")).unwrap())
            .unwrap();
    for k in ["time", "action", "source", "bottleneck", "rationale"] {
        assert!(d[0].get(k).is_some(), "{k}");
    }
    let csv = std::fs::read_to_string(dir.join("timeseries.csv")).unwrap();
    assert!(csv.starts_with("t_s,") && csv.contains("infer_replicas"));
    assert_eq!(csv.lines().count(), 4);
    let _ = std::fs::remove_dir_all(dir);
}
