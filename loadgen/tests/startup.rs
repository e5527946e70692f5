//! `sair-stage --startup`: model loading. Nothing listens until it has elapsed, so a readiness
//! probe (the SAIR local actuator's) sees a replica take seconds to start, as a real one does.

use std::net::{SocketAddr, TcpStream};
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

#[test]
fn nothing_listens_until_the_startup_delay_has_elapsed() {
    let port = sair_tests::free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    let _child = Killed(
        Command::new(env!("CARGO_BIN_EXE_sair-stage"))
            .args([
                "--startup",
                "1500ms",
                "--cpu-ms",
                "0",
                "--listen",
                &addr.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sair-stage"),
    );
    let deadline = started + sair_tests::patience();
    let mut refused_while_loading = 0;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        refused_while_loading += 1;
        assert!(Instant::now() < deadline, "sair-stage never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready_after = started.elapsed();
    tracing::info!(?ready_after, refused_while_loading, "listening");
    assert!(
        ready_after >= Duration::from_millis(1500),
        "listened after {ready_after:?}"
    );
    assert!(refused_while_loading > 0);
    let r = sair_tests::http::request(addr, "GET", "/healthz", b"").expect("healthz");
    assert_eq!(r.status, 200);
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
