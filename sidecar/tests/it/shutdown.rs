//! SIGTERM to the real binary under load: no accepted request is lost, exit status 0. The
//! binary is started by the workspace harness on port 0 and found through its bound line.

use std::process::Command;
use std::time::Duration;

use sair_tests::sidecar::{ADMIN, LISTEN};
use sair_tests::{Launch, Running};

use crate::support::*;

/// This crate's `sair-sidecar` on `127.0.0.1:0` for both listeners; the harness reads the
/// addresses from the bound line.
async fn spawn_sidecar(args: &[&str]) -> Running {
    let launch = Launch::program(env!("CARGO_BIN_EXE_sair-sidecar"))
        .name("sidecar")
        .role(LISTEN)
        .role(ADMIN)
        .args(args);
    tokio::task::spawn_blocking(move || launch.run())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_every_accepted_request() {
    let _exclusive = EXCLUSIVE.lock().await;
    let up = upstream("m", Duration::from_millis(300)).await;
    let mut child = spawn_sidecar(&[
        "--stage",
        "s",
        "--pipeline",
        "test",
        "--max-concurrency",
        "2",
        "--upstream",
        &up.url(),
        "--drain-timeout-seconds",
        "30",
    ])
    .await;
    let addr = child.addr(LISTEN.name);
    let url = format!("http://{addr}");
    let metrics = format!("http://{}/metrics", child.addr(ADMIN.name));
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
    // SIGTERM, then wait for the exit on a blocking thread while the requests finish.
    let exited = tokio::task::spawn_blocking(move || {
        let status = child.terminate(patience());
        (status, child)
    });
    expect_answers(tasks, |_| "x|m".to_owned()).await;
    let (status, child) = exited.await.unwrap();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit status after drain; output:\n{}",
        child.output()
    );
    // And it no longer accepts.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn bad_configuration_exits_64() {
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sair-sidecar"));
        cmd.args(args);
        sair_tests::run_bounded(cmd, patience())
    };
    let out = run(&["--upstream", "not a url"]);
    assert_eq!(out.code, Some(64));
    let out = run(&["--help"]);
    assert_eq!(out.code, Some(0));
    let help = &out.stdout;
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
