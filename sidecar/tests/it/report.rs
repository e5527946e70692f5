//! StageReports reach a QUIC receiver; an unreachable agent never stops the serving.

use std::net::SocketAddr;
use std::time::Duration;

use sair_wire::transport::{DevCa, Identity, server_config, server_endpoint};
use sair_wire::{MAX_FRAME_BYTES, Message, StageReport};
use tokio::sync::mpsc;

use crate::support::*;

/// A minimal agent: accepts connections, reads every frame of every uni stream.
fn receiver(
    identity: &Identity,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<StageReport>,
    quinn::Endpoint,
) {
    let endpoint = server_endpoint(
        "127.0.0.1:0".parse().unwrap(),
        server_config(identity, None).unwrap(),
    )
    .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let ep = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok(mut stream) = conn.accept_uni().await {
                    while let Ok(Some(env)) =
                        sair_wire::frame::read(&mut stream, MAX_FRAME_BYTES).await
                    {
                        let Message::StageReport(r) = env.message;
                        let _ = tx.send(r);
                    }
                }
            });
        }
    });
    (addr, rx, endpoint)
}

async fn report_with_traffic(rx: &mut mpsc::UnboundedReceiver<StageReport>) -> StageReport {
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        let r = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("no report with traffic arrived")
            .expect("receiver closed");
        r.validate().unwrap();
        // A window boundary may fall between a request's arrival and its completion: wait
        // for a window that saw a request finish.
        if r.arrivals > 0 && r.completions > 0 {
            return r;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_report_arrives_at_the_agent_over_verified_tls() {
    let ca = DevCa::new().unwrap();
    let (addr, mut rx, _ep) = receiver(&ca.issue(&["localhost"]).unwrap());
    let dir = std::env::temp_dir().join(format!("sair-sidecar-it-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.to_pem().0).unwrap();
    let up = upstream("m", Duration::from_millis(5)).await;
    let sc = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &up.url(),
        "--max-concurrency",
        "2",
        "--replica",
        "r-1",
        "--agent",
        &addr.to_string(),
        "--agent-ca",
        ca_file.to_str().unwrap(),
        "--report-interval-seconds",
        "0.2",
    ])
    .await;
    for _ in 0..10 {
        assert_eq!(post(&sc.url(), "x").await.unwrap().0, 200);
    }
    let r = report_with_traffic(&mut rx).await;
    println!("{r:?}");
    assert_eq!(
        (r.pipeline.as_str(), r.stage.as_str(), r.replica.as_str()),
        ("test", "s", "r-1")
    );
    assert_eq!(r.max_concurrency, 2);
    assert!(r.completions > 0 && r.service.p50 >= 0.005, "{r:?}");
    assert!(r.busy_fraction > 0.0 && r.busy_fraction <= 1.0, "{r:?}");
    sc.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_agent_does_not_stop_the_serving() {
    // Nothing answers QUIC on this UDP port.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead = sock.local_addr().unwrap();
    drop(sock);
    let up = upstream("m", Duration::ZERO).await;
    let sc = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &up.url(),
        "--agent",
        &dead.to_string(),
        "--agent-insecure-skip-verify",
        "--report-interval-seconds",
        "0.05",
        "--report-buffer",
        "1",
    ])
    .await;
    let started = std::time::Instant::now();
    for _ in 0..50 {
        assert_eq!(post(&sc.url(), "x").await.unwrap().0, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "serving slowed down by reporting"
    );
    let sc_ref = &sc;
    eventually("dropped reports counted", || async move {
        let dropped = sc_ref
            .sample("sair_sidecar_reports_dropped_total", &[])
            .await?;
        (dropped >= 1.0).then_some(())
    })
    .await;
    // Then the agent appears on that port and reports start arriving (reconnect with backoff).
    let identity = Identity::self_signed(&["localhost"]).unwrap();
    let endpoint = server_endpoint(dead, server_config(&identity, None).unwrap());
    if let Ok(endpoint) = endpoint {
        let conn = tokio::time::timeout(patience(), endpoint.accept())
            .await
            .expect("sidecar never reconnected")
            .unwrap()
            .await
            .unwrap();
        let mut s = conn.accept_uni().await.unwrap();
        let env = sair_wire::frame::read(&mut s, MAX_FRAME_BYTES)
            .await
            .unwrap()
            .unwrap();
        let Message::StageReport(r) = env.message;
        assert_eq!(r.stage, "s");
    }
    sc.stop().await;
}

/// A 413 is the client's error, not an admission decision: the StageReport counts no
/// rejection for it, and Prometheus counts it as `client_error` with reason `oversized`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_not_an_admission_rejection() {
    let identity = Identity::self_signed(&["localhost"]).unwrap();
    let (addr, mut rx, _ep) = receiver(&identity);
    let up = upstream("m", Duration::ZERO).await;
    let sc = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &up.url(),
        "--max-body-bytes",
        "10",
        "--agent",
        &addr.to_string(),
        "--agent-insecure-skip-verify",
        "--report-interval-seconds",
        "0.1",
    ])
    .await;
    let (status, _, _) = post(&sc.url(), &"z".repeat(100)).await.unwrap();
    assert_eq!(status, 413);
    let r = report_with_traffic(&mut rx).await;
    tracing::info!(?r, "report with the 413");
    assert_eq!(
        (r.arrivals, r.rejections, r.errors),
        (1, 0, 0),
        "a 413 is no rejection: {r:?}"
    );
    assert_eq!(
        r.completions, 1,
        "any outcome but a rejection completes: {r:?}"
    );
    assert_eq!(up.hits(), 0, "the model server never saw it");
    let text = sc.metrics_text().await;
    let count = |with: &[&str]| find_sample(&text, "sair_stage_requests_total", with);
    assert_eq!(count(&["outcome=\"rejected\""]), Some(0.0));
    assert_eq!(count(&["outcome=\"client_error\""]), Some(1.0));
    assert_eq!(
        find_sample(
            &text,
            "sair_stage_failures_total",
            &["source=\"client\"", "reason=\"oversized\""]
        ),
        Some(1.0)
    );
    sc.stop().await;
}

/// What one stage's reports add up to over several windows.
#[derive(Debug, Default)]
struct Summed {
    completions: u64,
    queue_wait: sair_wire::LatencyHistogram,
    service: sair_wire::LatencyHistogram,
    e2e: sair_wire::LatencyHistogram,
}

/// Through a two-stage chain, each stage's reports carry histograms with the window's counts
/// (merged over windows, as the coordinator merges them), and only the entry stage's carry
/// end-to-end samples, one per pipeline request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_histograms_match_the_windows_and_e2e_is_the_entrys() {
    let identity = Identity::self_signed(&["localhost"]).unwrap();
    let (addr, mut rx, _ep) = receiver(&identity);
    let (ua, ub) = (
        upstream("a", Duration::from_millis(2)).await,
        upstream("b", Duration::from_millis(5)).await,
    );
    let agent = addr.to_string();
    let report_flags = [
        "--agent",
        agent.as_str(),
        "--agent-insecure-skip-verify",
        "--report-interval-seconds",
        "0.1",
    ];
    let sb = sidecar(
        &[
            &["--stage", "b", "--upstream", &ub.url()][..],
            &report_flags,
        ]
        .concat(),
    )
    .await;
    let next = sb.addr.to_string();
    let sa = sidecar(
        &[
            &["--stage", "a", "--upstream", &ua.url(), "--next", &next][..],
            &report_flags,
        ]
        .concat(),
    )
    .await;
    const N: u64 = 12;
    for _ in 0..N {
        assert_eq!(post(&sa.url(), "x").await.unwrap().0, 200);
    }
    let mut stages: std::collections::BTreeMap<String, Summed> = Default::default();
    let deadline = tokio::time::Instant::now() + patience();
    // Every sample of a request is queued before its completion is, so once a stage's reports
    // count N completions they hold all N requests' samples.
    while !["a", "b"]
        .iter()
        .all(|s| stages.get(*s).is_some_and(|x| x.completions >= N))
    {
        let r = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the reports never counted every request")
            .expect("receiver closed");
        r.validate().unwrap();
        let s = stages.entry(r.stage.clone()).or_default();
        s.completions += r.completions;
        s.queue_wait.merge(&r.queue_wait_hist);
        s.service.merge(&r.service_hist);
        s.e2e.merge(&r.e2e_hist);
    }
    tracing::info!(?stages, "summed reports");
    for (name, s) in &stages {
        assert_eq!(s.completions, N, "{name}");
        assert_eq!(
            s.queue_wait.count(),
            N,
            "{name}: one queue wait per request"
        );
        assert_eq!(s.service.count(), N, "{name}: one service time per request");
    }
    let (a, b) = (&stages["a"], &stages["b"]);
    assert_eq!(a.e2e.count(), N, "the entry sees every pipeline request");
    assert!(
        b.e2e.is_empty(),
        "a later stage records no e2e: {:?}",
        b.e2e
    );
    // End to end covers both model servers, and is what Prometheus observed.
    assert!(a.e2e.quantile(0.5) >= 0.007 * (1.0 - 0.025), "{:?}", a.e2e);
    assert!(b.service.quantile(0.5) >= 0.005 * (1.0 - 0.025));
    let prom = sa
        .sample("sair_pipeline_request_seconds_count", &[])
        .await
        .unwrap_or(0.0);
    assert_eq!(prom, N as f64);
    let prom_sum = sa
        .sample("sair_pipeline_request_seconds_sum", &[])
        .await
        .unwrap_or(0.0);
    assert!(
        (prom_sum - a.e2e.sum_seconds()).abs() < 1e-6,
        "{prom_sum} vs {:?}",
        a.e2e
    );
    for s in [sa, sb] {
        s.stop().await;
    }
}
