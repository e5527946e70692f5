//! Stage chaining: bodies flow on, Server-Timing accumulates, P2C spreads, failures are named.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_of_three_returns_last_body_and_six_timings() {
    let (ua, ub, uc) = (
        upstream("a", Duration::from_millis(2)).await,
        upstream("b", Duration::from_millis(2)).await,
        upstream("c", Duration::from_millis(2)).await,
    );
    let sc = sidecar(&["--stage", "c", "--upstream", &uc.url()]).await;
    let sb = sidecar(&[
        "--stage",
        "b",
        "--upstream",
        &ub.url(),
        "--next",
        &sc.addr.to_string(),
    ])
    .await;
    let sa = sidecar(&[
        "--stage",
        "a",
        "--upstream",
        &ua.url(),
        "--next",
        &sb.addr.to_string(),
    ])
    .await;
    let (status, h, body) = post(&sa.url(), "x").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"x|a|b|c");
    let names: Vec<String> = server_timing(&h).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "a-queue",
            "a-service",
            "b-queue",
            "b-service",
            "c-queue",
            "c-service"
        ],
        "all six entries, in pipeline order"
    );
    // Downstream time never counts in an earlier stage's service time: a's service is its
    // own model server's ~2 ms, not the whole chain.
    let (_, a_service) = timing_of(&h, "a");
    let (_, c_service) = timing_of(&h, "c");
    assert!(a_service < 2.0 + 50.0 && c_service >= 2.0);
    // The request id generated at entry reached the last model server.
    let rid = h["x-sair-request-id"].to_str().unwrap();
    assert!(!rid.is_empty());
    assert_eq!(h["x-seen-request-id"], rid);
    // Only the entry sidecar records the pipeline histogram.
    let entry = sa.metrics_text().await;
    assert!(
        entry.contains("sair_pipeline_request_seconds_count{pipeline=\"test\",stage=\"a\"} 1"),
        "{entry}"
    );
    let later = sb.sample("sair_pipeline_request_seconds_count", &[]).await;
    assert!(
        matches!(later, None | Some(0.0)),
        "non-entry stage recorded {later:?}"
    );
    // A caller-provided request id and start are passed on, not replaced.
    let req = http::Request::post(sa.url())
        .header("x-sair-request-id", "given-id")
        .header("x-sair-start", "12345")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"y")))
        .unwrap();
    let (_, h, _) = send(&client(), req).await.unwrap();
    assert_eq!(h["x-seen-request-id"], "given-id");
    assert_eq!(h["x-sair-start"], "12345");
    for s in [sa, sb, sc] {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_spreads_over_three_replicas_within_15_percent() {
    let _exclusive = EXCLUSIVE.lock().await;
    let replicas = [
        upstream("r1", Duration::from_millis(3)).await,
        upstream("r2", Duration::from_millis(3)).await,
        upstream("r3", Duration::from_millis(3)).await,
    ];
    let first = upstream("front", Duration::ZERO).await;
    let next = replicas
        .iter()
        .map(|r| r.addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let sa = sidecar(&[
        "--stage",
        "front",
        "--upstream",
        &first.url(),
        "--next",
        &next,
    ])
    .await;
    const TOTAL: usize = 600;
    const WORKERS: usize = 12;
    let url = sa.url();
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let c = client();
                for _ in 0..TOTAL / WORKERS {
                    let (status, _, _) = post_with(&c, &url, "x").await.unwrap();
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let hits: Vec<u64> = replicas.iter().map(|r| r.hits()).collect();
    println!("replica hits: {hits:?}");
    assert_eq!(hits.iter().sum::<u64>(), TOTAL as u64);
    let even = TOTAL as f64 / 3.0;
    for h in &hits {
        assert!(
            (*h as f64 - even).abs() <= 0.15 * even,
            "replica hits {hits:?} not within ±15% of {even}"
        );
    }
    sa.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_down_the_chain_name_the_failing_stage() {
    let (ua, ub) = (
        upstream("a", Duration::ZERO).await,
        upstream("b", Duration::ZERO).await,
    );
    // b's model server is gone: b answers 502 naming itself, and a passes that on.
    let dead = closed_port().await;
    // Without connect retries (`--connect-retry-for 0`), as before: an immediate 502.
    let sb = sidecar(&[
        "--stage",
        "b",
        "--upstream",
        &format!("http://{dead}"),
        "--connect-retry-for",
        "0",
    ])
    .await;
    let sa = sidecar(&[
        "--stage",
        "a",
        "--upstream",
        &ua.url(),
        "--next",
        &sb.addr.to_string(),
    ])
    .await;
    let (status, h, body) = post(&sa.url(), "x").await.unwrap();
    assert_eq!(status, 502);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["stage"], "b", "{v}");
    assert!(server_timing(&h).iter().any(|(n, _)| n == "a-service"));
    // The next stage itself is unreachable: a answers 502 naming the next stage.
    let dead_next = closed_port().await;
    let sa2 = sidecar(&[
        "--stage",
        "a",
        "--upstream",
        &ub.url(),
        "--next",
        &dead_next.to_string(),
        "--next-stage",
        "b",
        "--connect-retry-for",
        "0",
    ])
    .await;
    let (status, _, body) = post(&sa2.url(), "x").await.unwrap();
    assert_eq!(status, 502);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["stage"], "b", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains(&dead_next.to_string()),
        "{v}"
    );
    assert_eq!(
        sa2.sample("sair_stage_requests_total", &["outcome=\"upstream_error\""])
            .await,
        Some(1.0)
    );
    for s in [sa, sb, sa2] {
        s.stop().await;
    }
}
