//! A request that reached no process is held, not lost: with no next-stage endpoint yet, or
//! a next stage or model server that is not listening yet, the sidecar retries the connect
//! (`--connect-retry-for`) and answers 200 once the peer is there; with the retry off it
//! answers 502 at once, as before.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::support::*;

/// How long the peer stays away after the request is sent.
const LATE: Duration = Duration::from_secs(1);

/// An endpoints file with nothing in it yet; removed on drop.
struct EndpointsFile(std::path::PathBuf);

impl Drop for EndpointsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn empty_endpoints_file(tag: &str) -> (EndpointsFile, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "sair-sidecar-retry-{tag}-{}.txt",
        std::process::id()
    ));
    std::fs::write(&path, "# no replica ready yet\n").unwrap();
    (EndpointsFile(path.clone()), path)
}

/// Starts the echo model server `name` on `addr` after [`LATE`].
fn listen_late(addr: SocketAddr, name: &'static str) -> tokio::task::JoinHandle<Upstream> {
    tokio::spawn(async move {
        tokio::time::sleep(LATE).await;
        let listener = TcpListener::bind(addr).await.unwrap();
        tracing::info!(%addr, name, "late peer listening");
        upstream_on(listener, name, Duration::ZERO)
    })
}

async fn retries(sc: &Sidecar, target: &str) -> Option<f64> {
    let with = format!("target=\"{target}\"");
    sc.sample("sair_stage_connect_retries_total", &[&with])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_stage_endpoint_that_appears_late_gets_the_request() {
    let ua = upstream("a", Duration::ZERO).await;
    let ub = upstream("b", Duration::ZERO).await;
    let (_file, path) = empty_endpoints_file("late");
    let next = format!("file:{}", path.display());
    let sa = sidecar(&[
        "--stage",
        "a",
        "--upstream",
        &ua.url(),
        "--next",
        &next,
        "--discovery-interval",
        "100ms",
    ])
    .await;
    let (write_path, b) = (path.clone(), ub.addr);
    let writer = tokio::spawn(async move {
        tokio::time::sleep(LATE).await;
        std::fs::write(&write_path, format!("{b}\n")).unwrap();
        tracing::info!(%b, "endpoint written");
    });
    let began = Instant::now();
    let (status, _, body) = post(&sa.url(), "x").await.unwrap();
    tracing::info!(?status, took = ?began.elapsed(), "answered");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..], b"x|a|b");
    assert!(began.elapsed() >= LATE - Duration::from_millis(100));
    assert!(retries(&sa, "downstream").await.unwrap() >= 1.0);
    assert_eq!(retries(&sa, "upstream").await, Some(0.0));
    writer.await.unwrap();
    sa.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_retry_off_no_endpoint_is_an_immediate_502() {
    let ua = upstream("a", Duration::ZERO).await;
    let (_file, path) = empty_endpoints_file("off");
    let next = format!("file:{}", path.display());
    let sa = sidecar(&[
        "--stage",
        "a",
        "--upstream",
        &ua.url(),
        "--next",
        &next,
        "--connect-retry-for",
        "0",
    ])
    .await;
    let began = Instant::now();
    let (status, _, body) = post(&sa.url(), "x").await.unwrap();
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
    // Immediate: nothing waits. (A bound well under the default 10 s window, loose enough
    // for a loaded 2-core machine.)
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "took {:?}",
        began.elapsed()
    );
    assert_eq!(
        sa.sample(
            "sair_stage_failures_total",
            &["source=\"downstream\"", "reason=\"no_endpoint\""]
        )
        .await,
        Some(1.0)
    );
    assert_eq!(retries(&sa, "downstream").await, Some(0.0));
    sa.stop().await;
}

/// A next-stage replica that refuses the connect (restarting) is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_stage_that_listens_late_gets_the_request() {
    let ua = upstream("a", Duration::ZERO).await;
    let b = closed_port().await;
    let sa = sidecar(&[
        "--stage",
        "a",
        "--upstream",
        &ua.url(),
        "--next",
        &b.to_string(),
    ])
    .await;
    let late = listen_late(b, "b");
    let (status, _, body) = post(&sa.url(), "x").await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..], b"x|a|b");
    assert!(retries(&sa, "downstream").await.unwrap() >= 1.0);
    let _ub = late.await.unwrap();
    sa.stop().await;
}

/// The model server restarting behind its sidecar: the connect is retried until it listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_server_that_listens_late_gets_the_request() {
    let m = closed_port().await;
    let sc = sidecar(&["--stage", "s", "--upstream", &format!("http://{m}")]).await;
    let late = listen_late(m, "m");
    let began = Instant::now();
    let (status, _, body) = post(&sc.url(), "x").await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..], b"x|m");
    assert!(began.elapsed() >= LATE - Duration::from_millis(100));
    assert!(retries(&sc, "upstream").await.unwrap() >= 1.0);
    let _um = late.await.unwrap();
    sc.stop().await;

    // Off: refused at once, as before.
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
    assert_eq!(retries(&sc, "upstream").await, Some(0.0));
    sc.stop().await;
}
