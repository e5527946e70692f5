//! Bad input and failing peers: no panic, no leaked slot, the process keeps serving.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_failing_requests_leave_no_slot_in_flight() {
    let _exclusive = EXCLUSIVE.lock().await;
    let dead = closed_port().await;
    let sc = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &format!("http://{dead}"),
        "--max-concurrency",
        "4",
        "--queue-capacity",
        "10000",
        "--connect-retry-for",
        "0",
    ])
    .await;
    const TOTAL: usize = 10_000;
    const WORKERS: usize = 20;
    let url = sc.url();
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let c = client();
                for _ in 0..TOTAL / WORKERS {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "load loop ran out of time"
                    );
                    let (status, _, body) = post_with(&c, &url, "x").await.unwrap();
                    assert_eq!(status, 502);
                    assert!(body.starts_with(b"{\"error\""));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let sc_ref = &sc;
    eventually("in-flight gauge back at 0", || async move {
        let inflight = sc_ref.sample("sair_stage_inflight", &[]).await?;
        let depth = sc_ref.sample("sair_stage_queue_depth", &[]).await?;
        (inflight == 0.0 && depth == 0.0).then_some(())
    })
    .await;
    assert_eq!(
        sc.sample("sair_stage_requests_total", &["outcome=\"upstream_error\""])
            .await,
        Some(TOTAL as f64)
    );
    sc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_leave_release_their_slots_and_count_as_canceled() {
    let up = upstream("m", Duration::from_millis(500)).await;
    let sc = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &up.url(),
        "--max-concurrency",
        "1",
    ])
    .await;
    let url = sc.url();
    // One request in flight and four queued, then every client hangs up.
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { post(&url, "x").await })
        })
        .collect();
    let sc_ref = &sc;
    eventually("one in flight, four queued", || async move {
        let inflight = sc_ref.sample("sair_stage_inflight", &[]).await?;
        let depth = sc_ref.sample("sair_stage_queue_depth", &[]).await?;
        (inflight == 1.0 && depth == 4.0).then_some(())
    })
    .await;
    for t in &tasks {
        t.abort();
    }
    eventually(
        "slots released and requests counted canceled",
        || async move {
            let inflight = sc_ref.sample("sair_stage_inflight", &[]).await?;
            let depth = sc_ref.sample("sair_stage_queue_depth", &[]).await?;
            let canceled = sc_ref
                .sample("sair_stage_requests_total", &["outcome=\"canceled\""])
                .await?;
            (inflight == 0.0 && depth == 0.0 && canceled == 5.0).then_some(())
        },
    )
    .await;
    // The slot really is free: a new request is served at once.
    let (status, h, _) = post(&url, "y").await.unwrap();
    assert_eq!(status, 200);
    assert!(timing_of(&h, "s").0 < 100.0);
    sc.stop().await;
}

async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    // The server closes the connection after a parse error; read to the end.
    tokio::time::timeout(patience(), s.read_to_end(&mut out))
        .await
        .expect("connection was not closed")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_gets_400_and_the_process_is_unaffected() {
    let up = upstream("m", Duration::ZERO).await;
    let sc = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &up.url(),
        "--max-header-bytes",
        "8192",
        "--header-read-timeout-seconds",
        "0.3",
        "--max-body-bytes",
        "1000",
    ])
    .await;
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n",
        b"\x00\x01\x02\x03 nonsense \r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    ] {
        let answer = raw_exchange(sc.addr, garbage).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{garbage:?} → {answer:?}"
        );
    }
    // Oversized head: refused (431) rather than buffered.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let answer = raw_exchange(sc.addr, big.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 431") || answer.starts_with("HTTP/1.1 400"),
        "{answer:?}"
    );
    // A slow client that never finishes its head is cut off.
    let mut slow = tokio::net::TcpStream::connect(sc.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(patience(), slow.read_to_end(&mut buf))
        .await
        .expect("slow client was not disconnected")
        .ok();
    // An oversized body: 413.
    let (status, _, _) = post(&sc.url(), &"z".repeat(5000)).await.unwrap();
    assert_eq!(status, 413);
    // And the sidecar still serves.
    let (status, _, body) = post(&sc.url(), "ok").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"ok|m");
    sc.stop().await;
}

/// A model server that keeps nothing alive: it answers one request per connection (advertising
/// keep-alive) and closes the connection soon after. The sidecar must notice the closed idle
/// connection when it next takes it and send the request on a new one: no 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_idle_connections_fails_no_request() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                // Idle close, as a model server with a short keep-alive timeout does.
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
        }
    });
    let sc = sidecar(&["--stage", "s", "--upstream", &format!("http://{up}")]).await;
    for i in 0..5 {
        let (status, _, body) = get(&sc.url()).await.unwrap();
        assert_eq!(
            status,
            200,
            "request {i}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(&body[..], b"ok");
        // Let the model server close the connection the sidecar keeps idle.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 5);
    sc.stop().await;
}

/// Refused, timed out and oversized upstream answers are told apart by type and counted
/// under their own reason, each a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_are_counted_by_reason() {
    async fn failures(sc: &Sidecar, reason: &str) -> Option<f64> {
        let with = format!("reason=\"{reason}\"");
        sc.sample("sair_stage_failures_total", &["source=\"upstream\"", &with])
            .await
    }

    let dead = closed_port().await;
    let sc = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &format!("http://{dead}"),
        "--connect-retry-for",
        "0",
    ])
    .await;
    assert_eq!(post(&sc.url(), "x").await.unwrap().0, 502);
    assert_eq!(failures(&sc, "refused").await, Some(1.0));
    assert_eq!(failures(&sc, "timeout").await, Some(0.0));
    sc.stop().await;

    let slow = upstream("m", Duration::from_secs(5)).await;
    let sc = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &slow.url(),
        "--upstream-timeout-seconds",
        "0.2",
    ])
    .await;
    let (status, _, body) = post(&sc.url(), "x").await.unwrap();
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
    assert_eq!(failures(&sc, "timeout").await, Some(1.0));
    assert_eq!(failures(&sc, "refused").await, Some(0.0));
    sc.stop().await;

    // The answer is the request body plus "|m": over a 10-byte limit for a 10-byte body.
    let echo = upstream("m", Duration::ZERO).await;
    let sc = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &echo.url(),
        "--max-body-bytes",
        "10",
    ])
    .await;
    assert_eq!(post(&sc.url(), "0123456789").await.unwrap().0, 502);
    assert_eq!(failures(&sc, "oversized").await, Some(1.0));
    sc.stop().await;
}

/// A malformed chunked body (a chunk size line that is not hex) is the client's error: 400,
/// counted `client_error` with reason `malformed`, never `canceled` (that is a client that
/// hung up mid-body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunk_is_a_client_error_not_canceled() {
    let up = upstream("m", Duration::ZERO).await;
    let sc = sidecar(&["--stage", "s", "--upstream", &up.url()]).await;
    let answer = raw_exchange(
        sc.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    tracing::info!(answer, "malformed chunk");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    counted_once_as_client_error(&sc, "malformed").await;
    let canceled = sc
        .sample("sair_stage_requests_total", &["outcome=\"canceled\""])
        .await;
    assert_eq!(canceled, Some(0.0));
    assert_eq!(
        up.hits(),
        0,
        "a malformed body never reaches the model server"
    );
    sc.stop().await;
}

/// Waits until `sc` has counted one request `client_error` and one failure client / `reason`.
async fn counted_once_as_client_error(sc: &Sidecar, reason: &str) {
    let reason = format!("reason=\"{reason}\"");
    eventually(&format!("one client error, {reason}"), || async {
        let client = sc
            .sample("sair_stage_requests_total", &["outcome=\"client_error\""])
            .await?;
        let failures = sc
            .sample("sair_stage_failures_total", &["source=\"client\"", &reason])
            .await?;
        (client == 1.0 && failures == 1.0).then_some(())
    })
    .await;
}

/// A GET head with `Host`, `Connection: close` and `fields` more fields of `field_len` bytes.
fn head_of(fields: usize, field_len: usize) -> String {
    let mut h = String::from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..fields {
        h.push_str(&format!("x-f{i}: {}\r\n", "a".repeat(field_len)));
    }
    h.push_str("\r\n");
    h
}

/// `--max-header-bytes` is honoured as given (no silent raise), and the header-count limit
/// (`--max-headers`, default 100, hyper's) answers 431 and can be raised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_limits_are_honoured_and_configurable() {
    let up = upstream("m", Duration::ZERO).await;
    // A 10 KB head: over an 8 KiB limit, within the 64 KiB default.
    let ten_kb = head_of(10, 1000);
    let small = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &up.url(),
        "--max-header-bytes",
        "8192",
    ])
    .await;
    let answer = raw_exchange(small.addr, ten_kb.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    small.stop().await;
    let default = sidecar(&["--stage", "s", "--upstream", &up.url()]).await;
    let answer = raw_exchange(default.addr, ten_kb.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    // 150 short fields: over the default count of 100.
    let many = head_of(150, 1);
    let answer = raw_exchange(default.addr, many.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    default.stop().await;
    let raised = sidecar(&[
        "--stage",
        "s",
        "--upstream",
        &up.url(),
        "--max-headers",
        "200",
    ])
    .await;
    let answer = raw_exchange(raised.addr, many.as_bytes()).await;
    // Accepted from the client, but over the model server's limit (`--upstream-max-headers`,
    // still 100) once forwarded: the sidecar answers 431 itself.
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert!(answer.contains("--upstream-max-headers"), "{answer:?}");
    raised.stop().await;
    let both = sidecar_in_front_of(
        &up,
        &["--max-headers", "200", "--upstream-max-headers", "200"],
    )
    .await;
    let answer = raw_exchange(both.addr, many.as_bytes()).await;
    // The sidecar lets it through to the model server: Server-Timing has a service time.
    // (This stand-in is hyper with its own 100-field limit, so it answers 431 itself.)
    assert!(answer.contains("s-service;dur="), "{answer:?}");
    both.stop().await;
}

/// The pipeline context headers never push a request over the model server's header-field
/// limit (`--upstream-max-headers`, default 100 like the hyper stand-in): a head that is 100
/// fields once forwarded (`Connection` dropped, `x-sair-request-id` and `x-sair-start`
/// added) reaches it; one more field and the sidecar answers 431 itself, naming the flag,
/// counted as the client's error, and the model server never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_headers_never_push_a_request_over_the_upstream_limit() {
    let up = upstream("m", Duration::ZERO).await;
    let sc = sidecar_in_front_of(&up, &[]).await;
    // Host + 97 + the two context fields = 100 forwarded.
    let answer = raw_exchange(sc.addr, head_of(97, 1).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        answer.contains("|m"),
        "the model server answered: {answer:?}"
    );
    assert_eq!(up.hits(), 1);
    // 100 fields from the client (within --max-headers), 101 once forwarded.
    let answer = raw_exchange(sc.addr, head_of(98, 1).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert!(answer.contains("--upstream-max-headers"), "{answer:?}");
    assert!(
        answer.contains("x-sair-request-id"),
        "context kept: {answer:?}"
    );
    assert_eq!(up.hits(), 1, "the model server never saw the 431");
    counted_once_as_client_error(&sc, "too_many_headers").await;
    let rejected = sc
        .sample("sair_stage_requests_total", &["outcome=\"rejected\""])
        .await;
    assert_eq!(rejected, Some(0.0), "not an admission rejection");
    sc.stop().await;
    // Raised for a model server that takes more, the same head goes through to it.
    let up = upstream("m", Duration::ZERO).await;
    let sc = sidecar_in_front_of(&up, &["--upstream-max-headers", "101"]).await;
    let answer = raw_exchange(sc.addr, head_of(98, 1).as_bytes()).await;
    // It reached the model server (a service time), whose own limit of 100 answers 431.
    assert!(answer.contains("s-service;dur="), "{answer:?}");
    assert!(!answer.contains("--upstream-max-headers"), "{answer:?}");
    sc.stop().await;
}
