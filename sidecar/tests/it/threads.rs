//! `--runtime per-core`: connections spread over several serving threads still share one
//! admission queue, one set of metrics and one drain.

use std::time::{Duration, Instant};

use crate::support::*;

/// Separate connections (one client each), so the acceptor spreads them over the threads.
fn posts(url: &str, n: usize) -> Vec<tokio::task::JoinHandle<Result<Answer, String>>> {
    (0..n)
        .map(|i| {
            let url = url.to_owned();
            tokio::spawn(async move { post(&url, &format!("r{i}")).await })
        })
        .collect()
}

/// Awaits requests made by [`posts`]: each answered 200 with its own body, echoed by model
/// server `m`.
async fn expect_echoes(tasks: Vec<tokio::task::JoinHandle<Result<Answer, String>>>) {
    expect_answers(tasks, |i| format!("r{i}|m")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_threads_share_one_admission_queue() {
    let up = upstream("m", Duration::from_millis(100)).await;
    let sc = sidecar_in_front_of(
        &up,
        &[
            "--runtime",
            "per-core",
            "--worker-threads",
            "4",
            "--max-concurrency",
            "1",
        ],
    )
    .await;
    const N: usize = 8;
    let began = Instant::now();
    expect_echoes(posts(&sc.url(), N)).await;
    let took = began.elapsed();
    tracing::info!(?took, "8 requests through one slot on 4 threads");
    // One slot for the whole process: the 100 ms exchanges ran one after another, whichever
    // thread their connections were given to.
    assert!(
        took >= Duration::from_millis(100 * N as u64),
        "{N} requests through --max-concurrency 1 took only {took:?}"
    );
    assert_eq!(up.hits(), N as u64);
    assert_eq!(
        sc.sample("sair_stage_requests_total", &["outcome=\"ok\""])
            .await,
        Some(N as f64)
    );
    // Every connection closed again on whichever thread served it.
    eventually("connection gauge back to 0", || async {
        (sc.sample("sair_sidecar_connections", &[]).await? == 0.0).then_some(())
    })
    .await;
    sc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_covers_requests_on_every_serving_thread() {
    let up = upstream("m", Duration::from_millis(300)).await;
    let sc = sidecar_in_front_of(
        &up,
        &[
            "--runtime",
            "per-core",
            "--worker-threads",
            "3",
            "--max-concurrency",
            "2",
        ],
    )
    .await;
    const N: usize = 9;
    let tasks = posts(&sc.url(), N);
    eventually("all requests admitted or queued", || async {
        let text = sc.metrics_text().await;
        let inflight = find_sample(&text, "sair_stage_inflight", &[])?;
        let depth = find_sample(&text, "sair_stage_queue_depth", &[])?;
        (inflight + depth == N as f64).then_some(())
    })
    .await;
    let addr = sc.addr;
    // Drains while the requests are still queued or in flight on three threads.
    let stopped = tokio::spawn(sc.stop());
    expect_echoes(tasks).await;
    stopped.await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_stealing_runtime_still_serves() {
    let up = upstream("m", Duration::ZERO).await;
    let sc = sidecar_in_front_of(
        &up,
        &["--runtime", "work-stealing", "--worker-threads", "4"],
    )
    .await;
    expect_echoes(posts(&sc.url(), 4)).await;
    sc.stop().await;
}

/// Waits for the sidecar to close `conn` without an answer.
async fn closed_without_answer(conn: &mut tokio::net::TcpStream, what: &str) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(patience(), conn.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{what} stays open past the head timeout"))
        .unwrap_or(0);
    assert_eq!(n, 0, "{what} closed without an answer");
}

/// A connection that never sends a byte is closed at `--header-read-timeout`, before hyper
/// (or any buffer of it) is involved; one that sends its head late is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_at_the_head_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = upstream("m", Duration::ZERO).await;
    let sc = sidecar_in_front_of(&up, &["--header-read-timeout", "1s"]).await;
    let mut silent = tokio::net::TcpStream::connect(sc.addr).await.unwrap();
    let mut late = tokio::net::TcpStream::connect(sc.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    late.write_all(b"GET / HTTP/1.1\r\nhost: s\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    late.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let began = Instant::now();
    closed_without_answer(&mut silent, "a silent connection").await;
    tracing::info!(closed_after = ?began.elapsed(), "silent connection closed");
    sc.stop().await;
}

/// A first byte that comes late does not restart the clock: the whole first head is due
/// `--header-read-timeout` after the connection was taken up (here 2 s), not that long after
/// its first byte (which gave 1.5 s + 2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_first_byte_does_not_restart_the_head_timeout() {
    use tokio::io::AsyncWriteExt;
    let up = upstream("m", Duration::ZERO).await;
    let sc = sidecar_in_front_of(&up, &["--header-read-timeout", "2s"]).await;
    let began = Instant::now();
    let mut slow = tokio::net::TcpStream::connect(sc.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    slow.write_all(b"G").await.unwrap();
    closed_without_answer(&mut slow, "a slow head").await;
    let closed_after = began.elapsed();
    tracing::info!(?closed_after, "slow head closed");
    // The old clock cut it at 3.5 s at the earliest; the margin above 2 s is for a loaded
    // machine.
    assert!(
        closed_after < Duration::from_millis(3400),
        "a head begun 1.5 s in was cut only after {closed_after:?} (limit 2 s)"
    );
    sc.stop().await;
}
