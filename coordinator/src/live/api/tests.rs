use std::time::Instant;

use hyper::{Method, StatusCode};

use super::{PipelineView, Shared, respond};
use crate::live::observe::{Observer, PipelineSpec, StageAlloc};
use crate::policies::Prices;
use crate::policy::{Action, Decision, DecisionSource, Explanation, StageKind, StageSpec};

fn shared_with_one_decision() -> std::sync::Arc<std::sync::Mutex<Shared>> {
    let spec = PipelineSpec {
        name: "p".into(),
        stages: vec![StageSpec {
            name: "infer".into(),
            kind: StageKind::Gpu,
            concurrency: 1,
            min_replicas: 1,
            max_replicas: 2,
        }],
        slo_p99_s: 0.1,
        gpus: 1,
        prices: Prices::default(),
    };
    let now = Instant::now();
    let alloc = [StageAlloc {
        serving: 1,
        desired: 2,
        rho: 0.5,
    }];
    let obs = Observer::new(spec, 3.0, now).peek(now, 0.0, &alloc);
    let shared = Shared::new(10);
    {
        let mut s = shared.lock().expect("lock");
        s.pipelines = vec![PipelineView::of(&obs, Some("infer".into()))];
        for k in 0..3 {
            let d = Decision::new(
                Action {
                    replicas: vec![2],
                    rho: vec![0.5],
                    shares: Vec::new(),
                },
                Some(0),
                format!("decision {k}"),
            )
            .explained(Explanation::from_source(DecisionSource::Baseline));
            s.decisions.observe("hpa", &obs.state, &d, None);
        }
    }
    shared
}

fn get(path: &str, query: Option<&str>) -> (StatusCode, serde_json::Value) {
    let shared = shared_with_one_decision();
    let admin = sair_service::admin::Admin::new(|| "metrics\n".into());
    let (status, _, body) = respond(&shared, &admin, &Method::GET, path, query);
    let v = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (status, v)
}

#[test]
fn pipelines_have_the_contract_shape() {
    let (status, v) = get("/v1/pipelines", None);
    assert_eq!(status, StatusCode::OK);
    tracing::info!(%v, "pipelines");
    let p = &v["pipelines"][0];
    for k in [
        "name",
        "slo_p99_s",
        "e2e_p99_s",
        "e2e_p50_s",
        "arrival_rate",
        "cost_per_hour",
        "bottleneck",
        "stale",
        "stages",
    ] {
        assert!(p.get(k).is_some(), "pipeline lacks {k}: {p}");
    }
    assert_eq!(p["bottleneck"], "infer");
    assert_eq!(p["stale"], true);
    let s = &p["stages"][0];
    for k in [
        "name",
        "kind",
        "replicas",
        "replicas_desired",
        "rho",
        "rho_measured",
        "arrival_rate",
        "queue_wait_p99_s",
        "service_p99_s",
        "busy_fraction",
        "stale",
    ] {
        assert!(s.get(k).is_some(), "stage lacks {k}: {s}");
    }
    assert_eq!(s["kind"], "gpu");
    assert_eq!(s["replicas"], 1);
    assert_eq!(s["replicas_desired"], 2);
    assert_eq!(s["rho"], 0.5);
}

#[test]
fn decisions_are_newest_last_and_limited() {
    let (status, v) = get("/v1/decisions", Some("limit=2"));
    assert_eq!(status, StatusCode::OK);
    let d = v["decisions"].as_array().expect("array");
    assert_eq!(d.len(), 2);
    assert_eq!(d[1]["rationale"], "decision 2");
    assert_eq!(d[1]["source"], "baseline");
    assert_eq!(d[1]["bottleneck"], "infer");
    let (_, v) = get("/v1/decisions", None);
    assert_eq!(v["decisions"].as_array().map(Vec::len), Some(3));
    let (status, _) = get("/v1/decisions", Some("limit=x"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get("/metrics", None);
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get("/nope", None);
    assert_eq!(status, StatusCode::NOT_FOUND);
}
