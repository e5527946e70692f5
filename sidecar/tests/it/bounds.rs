//! Memory and time bounded under attack: the buffer budget (503), the body read timeout
//! (408) and the connection limit, each with a normal request answered during the attack.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Reads what the server sends until it closes or `patience` passes.
async fn read_answer(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(patience(), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Bodies held at the admission limit take the budget; the next body that does not fit is
/// answered 503 `buffer_full` with a body naming the flag, and a small request still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_beyond_the_buffer_budget_get_503_and_are_counted() {
    let _serial = EXCLUSIVE.lock().await;
    // Answers "ok" after 1.5 s: a small answer, so only the request bodies fill the budget.
    let slow = sair_tests::scripted::serve(sair_tests::scripted::Behaviour::Delay(
        Duration::from_millis(1500),
    ));
    let sc = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &format!("http://{slow}"),
        "--max-concurrency",
        "1",
        "--queue-capacity",
        "10",
        "--max-body-bytes",
        "1000",
        "--max-buffered-bytes",
        "2100",
    ])
    .await;
    let big = "x".repeat(1000);
    // Two big bodies in the sidecar: one at the model server, one queued (2000 of 2100).
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (url, big) = (sc.url(), big.clone());
            tokio::spawn(async move { post(&url, &big).await.unwrap().0 })
        })
        .collect();
    eventually("two bodies held", || async {
        let inflight = sc.sample("sair_stage_inflight", &[]).await?;
        let queued = sc.sample("sair_stage_queue_depth", &[]).await?;
        (inflight == 1.0 && queued == 1.0).then_some(())
    })
    .await;
    let (status, h, body) = post(&sc.url(), &big).await.unwrap();
    let body = String::from_utf8_lossy(&body).into_owned();
    tracing::info!(%status, body, "over the budget");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("--max-buffered-bytes"), "{body}");
    assert!(h.contains_key("retry-after"));
    // A small body still fits.
    let small = tokio::spawn({
        let url = sc.url();
        async move { post(&url, "tiny").await.unwrap().0 }
    });
    for t in held {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(small.await.unwrap(), 200);
    assert_eq!(
        sc.sample(
            "sair_stage_failures_total",
            &["source=\"admission\"", "reason=\"buffer_full\""]
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        sc.sample("sair_stage_requests_total", &["outcome=\"rejected\""])
            .await,
        Some(1.0)
    );
    sc.stop().await;
}

/// A body trickled a byte at a time, and one that stalls, are both cut at the body read
/// timeout with 408, counted `client_error`/`timeout`; a normal request is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_at_the_body_read_timeout_with_408() {
    let _serial = EXCLUSIVE.lock().await;
    let up = upstream("m", Duration::ZERO).await;
    let sc = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &up.url(),
        "--body-read-timeout",
        "400ms",
    ])
    .await;
    let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
    let began = Instant::now();
    let trickle = tokio::spawn({
        let addr = sc.addr;
        async move {
            let s = TcpStream::connect(addr).await.unwrap();
            let (mut rx, mut tx) = s.into_split();
            tx.write_all(head).await.unwrap();
            // One byte every 50 ms: never idle for long, never done in time.
            let writer = tokio::spawn(async move {
                for _ in 0..40 {
                    if tx.write_all(b"x").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            let mut out = Vec::new();
            let _ = tokio::time::timeout(patience(), rx.read_to_end(&mut out)).await;
            writer.abort();
            String::from_utf8_lossy(&out).into_owned()
        }
    });
    let mut stalled = TcpStream::connect(sc.addr).await.unwrap();
    stalled.write_all(head).await.unwrap();
    stalled.write_all(b"only five").await.unwrap();
    // Served while both slow bodies are being read.
    assert_eq!(post(&sc.url(), "x").await.unwrap().0, 200);
    let answer = read_answer(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("--body-read-timeout"), "{answer:?}");
    let answer = trickle.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "trickled: {answer:?}");
    let took = began.elapsed();
    tracing::info!(?took, "both slow bodies cut");
    assert!(took < Duration::from_millis(400) + patience());
    assert_eq!(
        sc.sample(
            "sair_stage_failures_total",
            &["source=\"client\"", "reason=\"timeout\""]
        )
        .await,
        Some(2.0)
    );
    assert_eq!(
        sc.sample("sair_stage_requests_total", &["outcome=\"client_error\""])
            .await,
        Some(2.0)
    );
    sc.stop().await;
}

/// At `--max-connections` a new connection waits (it is not refused) and is served once a
/// slow client's connection has been cut by the head read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_new_connections_wait_then_are_served() {
    let _serial = EXCLUSIVE.lock().await;
    let up = upstream("m", Duration::ZERO).await;
    let sc = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &up.url(),
        "--max-connections",
        "2",
        "--header-read-timeout",
        "500ms",
    ])
    .await;
    // Two slowloris connections: half a head each, then nothing.
    let mut lorises = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(sc.addr).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        lorises.push(s);
    }
    eventually("two connections open", || async {
        let n = sc.sample("sair_sidecar_connections", &[]).await?;
        (n == 2.0).then_some(())
    })
    .await;
    let began = Instant::now();
    let (status, _, _) = post(&sc.url(), "x").await.unwrap();
    let waited = began.elapsed();
    tracing::info!(?waited, "served after the slow connections were cut");
    assert_eq!(status, 200);
    assert!(
        sc.sample("sair_sidecar_connection_limit_waits_total", &[])
            .await
            .unwrap()
            >= 1.0
    );
    for mut s in lorises {
        let answer = read_answer(&mut s).await;
        tracing::info!(answer, "slowloris connection");
    }
    sc.stop().await;
}
