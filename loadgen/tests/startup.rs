//! `sair-stage --startup`: model loading. Nothing listens until it has elapsed, so a readiness
//! probe (the SAIR local actuator's) sees a replica take seconds to start, as a real one does.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child when the test ends, passing or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A probe counts as "listening" only when `/healthz` answers 200: a bare connect can succeed
/// against another process that took the port after `free_port` let it go, or against itself
/// (a loopback TCP self-connect), and a CI run once failed that way after 0.4 ms.
fn healthy(addr: SocketAddr) -> bool {
    sair_tests::http::request(addr, "GET", "/healthz", b"").is_ok_and(|r| r.status == 200)
}

enum Attempt {
    Passed,
    PortTaken,
}

#[test]
fn nothing_listens_until_the_startup_delay_has_elapsed() {
    for _ in 0..3 {
        if let Attempt::Passed = startup_attempt() {
            return;
        }
    }
    panic!("three free ports in a row were taken before sair-stage bound them");
}

fn startup_attempt() -> Attempt {
    let port = sair_tests::free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_sair-stage"))
            .args([
                "--startup",
                "1500ms",
                "--cpu-ms",
                "0",
                "--listen",
                &addr.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sair-stage"),
    );
    // The child's own word on when it bound: its `bound` line, timed as it arrives.
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, bound) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(r#""event":"bound""#) {
                let _ = tx.send(Instant::now());
                return;
            }
        }
    });
    let deadline = started + sair_tests::patience();
    let mut refused_while_loading = 0;
    let bound_at = loop {
        if let Ok(at) = bound.try_recv() {
            break at;
        }
        assert!(
            !healthy(addr),
            "/healthz answered 200 after {:?}, before the bound line",
            started.elapsed()
        );
        refused_while_loading += 1;
        if let Some(status) = child.0.try_wait().expect("wait") {
            // 69: another process took the port between `free_port` and the bind.
            assert_eq!(status.code(), Some(69), "sair-stage exited while loading");
            return Attempt::PortTaken;
        }
        assert!(Instant::now() < deadline, "sair-stage never bound");
        std::thread::sleep(Duration::from_millis(50));
    };
    let ready_after = bound_at - started;
    tracing::info!(?ready_after, refused_while_loading, "listening");
    assert!(
        ready_after >= Duration::from_millis(1500),
        "bound after {ready_after:?}"
    );
    assert!(refused_while_loading > 0);
    assert!(healthy(addr), "/healthz did not answer 200 once bound");
    Attempt::Passed
}

#[test]
fn a_startup_out_of_range_exits_64_naming_the_flag() {
    for bad in ["2h", "-1s", "soon"] {
        let out = Command::new(env!("CARGO_BIN_EXE_sair-stage"))
            .args([&format!("--startup={bad}"), "--listen", "127.0.0.1:0"])
            .output()
            .expect("run sair-stage");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "--startup {bad}: {stderr}");
        assert!(stderr.contains("startup"), "--startup {bad}: {stderr}");
    }
}

#[test]
fn sigterm_while_loading_exits_0_at_once() {
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_sair-stage"))
            .args(["--startup", "30s", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sair-stage"),
    );
    // Let it reach its signal handler.
    std::thread::sleep(Duration::from_millis(500));
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "still loading after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}
