//! SIGTERM to the real binary under load: no accepted request is lost, exit status 0.

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_every_accepted_request() {
    let _exclusive = EXCLUSIVE.lock().await;
    let up = upstream("m", Duration::from_millis(300)).await;
    let (port, mport) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sair-sidecar"))
        .args([
            "--stage",
            "s",
            "--pipeline",
            "test",
            "--max-concurrency",
            "2",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{mport}")])
        .args(["--upstream", &up.url(), "--drain-timeout-seconds", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let metrics = format!("http://127.0.0.1:{mport}/metrics");
    eventually("sidecar listening", || {
        let url = url.clone();
        async move { post(&url, "warm").await.ok().map(|_| ()) }
    })
    .await;
    const N: usize = 12;
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { post(&url, "x").await })
        })
        .collect();
    // Every request accepted: two in flight, ten queued.
    eventually("all requests admitted or queued", || {
        let metrics = metrics.clone();
        async move {
            let text = String::from_utf8(get(&metrics).await.ok()?.2.to_vec()).ok()?;
            let inflight = find_sample(&text, "sair_stage_inflight", &[])?;
            let depth = find_sample(&text, "sair_stage_queue_depth", &[])?;
            (inflight + depth == N as f64).then_some(())
        }
    })
    .await;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, _, body) = t
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("request {i} lost: {e}"));
        assert_eq!(status, 200, "request {i}");
        assert_eq!(&body[..], b"x|m");
    }
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "exit status after drain");
    // And it no longer accepts.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
}

#[test]
fn bad_configuration_exits_64() {
    let out = Command::new(env!("CARGO_BIN_EXE_sair-sidecar"))
        .args(["--upstream", "not a url"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = Command::new(env!("CARGO_BIN_EXE_sair-sidecar"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--max-concurrency",
        "--queue-timeout-seconds",
        "--next",
        "--agent-ca",
        "SAIR_DRAIN_TIMEOUT_SECONDS",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
