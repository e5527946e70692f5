//! The real `sair-node-agent` binary against a temporary shm dir, the GPU emulator
//! (`libcuda.so.1` → `libsair_emu_cuda.so`, `libnvidia-ml.so.1` → `libsair_emu_nvml.so`) and
//! real launcher processes (`sair-emu-launcher` under `LD_PRELOAD=libsair_intercept.so`).
//!
//! Needs `cargo build -p sair-emu-cuda -p sair-emu-nvml -p sair-intercept -p sair-emu-tools`
//! first (CI builds the workspace before testing). Every test has its own emulated GPU (state
//! file) and shm dir.

#![allow(clippy::unwrap_used)]

use sair_shm::{Segment, segment_path};
use sair_tests::{Proc, assert_eventually, binary};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The agent under test; `SAIR_TEST_AGENT_BIN` runs these tests against another build (e.g.
/// the previous commit's, to see a regression test fail there).
fn agent_bin() -> PathBuf {
    std::env::var_os("SAIR_TEST_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sair-node-agent")))
}

struct World {
    root: PathBuf,
}

struct Agent {
    proc: Proc,
    metrics: String,
    reports: String,
}

impl World {
    fn new(tag: &str) -> World {
        let root = std::env::temp_dir().join(format!(
            "sair-agent-it-{tag}-{}-{}",
            std::process::id(),
            sair_shm::clock::monotonic_ns()
        ));
        for d in ["shm", "tls"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        sair_tests::emulator::driver_dir(&root.join("lib")).unwrap();
        World { root }
    }

    fn shm(&self) -> PathBuf {
        self.root.join("shm")
    }

    fn emu_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "SAIR_EMU_STATE",
                self.root.join("emu.state").display().to_string(),
            ),
            ("SAIR_EMU_NS_PER_BLOCK", "1000".into()),
            ("SAIR_EMU_GPUS", "1".into()),
            (
                "LD_LIBRARY_PATH",
                self.root.join("lib").display().to_string(),
            ),
        ]
    }

    fn agent(&self, name: &str, extra: &[&str]) -> Agent {
        let mut args: Vec<String> = [
            "run",
            "--shm-dir",
            &self.shm().display().to_string(),
            "--metrics-listen",
            "127.0.0.1:0",
            "--report-listen",
            "127.0.0.1:0",
            "--tls-dir",
            &self.root.join("tls").display().to_string(),
            "--control-period-ms",
            "100",
            "--node-name",
            "it-node",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !extra.contains(&"--nvml-lib") {
            args.push("--nvml-lib".into());
            args.push(
                self.root
                    .join("lib/libnvidia-ml.so.1")
                    .display()
                    .to_string(),
            );
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut env = self.emu_env();
        env.push(("RUST_LOG", "info".into()));
        let proc = Proc::spawn(&self.root, name, &agent_bin(), &args, &env);
        let find = || {
            proc.output()
                .lines()
                .find_map(|l| sair_tests::Bound::parse(l).ok())
        };
        assert_eventually!(
            find().is_some(),
            "agent never printed its addresses: {}",
            proc.output()
        );
        let bound = find().unwrap();
        assert_eq!(bound.binary, "sair-node-agent");
        Agent {
            metrics: bound.get("admin").unwrap().to_string(),
            reports: bound.get("report").unwrap().to_string(),
            proc,
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        let mut full = vec![
            args[0].to_owned(),
            "--shm-dir".into(),
            self.shm().display().to_string(),
        ];
        full.extend(args[1..].iter().map(|s| s.to_string()));
        Command::new(agent_bin()).args(&full).output().unwrap()
    }

    fn set_rate(&self, segment: &str, rate: &str, extra: &[&str]) -> Output {
        let rate = format!("--rate={rate}");
        let mut a = vec!["set-rate", "--segment", segment, &rate];
        a.extend_from_slice(extra);
        self.cli(&a)
    }

    /// A launcher of 1 ms kernels charging `segment`, for `ms` milliseconds, sampling its
    /// device busy time every 100 ms; it waits for the device after every second launch.
    fn launcher(&self, segment: &str, ms: u64) -> Proc {
        self.launcher_syncing(segment, ms, 2)
    }

    /// [`Self::launcher`] waiting for the device after every `sync_every` launches only.
    fn launcher_syncing(&self, segment: &str, ms: u64, sync_every: u64) -> Proc {
        let args: Vec<String> = [
            "--launches",
            "100000000",
            "--duration-ms",
            &ms.to_string(),
            "--grid",
            "1000",
            "--sync-every",
            &sync_every.to_string(),
            "--sample-ms",
            "100",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut env = self.emu_env();
        env.push((
            "LD_PRELOAD",
            binary("libsair_intercept.so").display().to_string(),
        ));
        env.push(("SAIR_SHM_DIR", self.shm().display().to_string()));
        env.push(("SAIR_SEGMENT", segment.into()));
        Proc::spawn(
            &self.root,
            &format!("launcher-{segment}"),
            &binary("sair-emu-launcher"),
            &args,
            &env,
        )
    }

    fn segment(&self, name: &str) -> Segment {
        Segment::open(&segment_path(&self.shm(), name).unwrap()).unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

fn metrics(agent: &Agent) -> String {
    let r = sair_tests::http::request(&agent.metrics, "GET", "/metrics", b"").unwrap();
    assert_eq!(r.status, 200);
    String::from_utf8(r.body).unwrap()
}

/// The value of the first sample line of `name` whose labels contain every `labels` item.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits for a launcher to exit and returns its JSON report.
fn finish(mut p: Proc, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            let out = p.output();
            assert!(status.success(), "launcher failed: {out}");
            let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap();
            return serde_json::from_str(line).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "launcher did not finish: {}",
            p.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Share of the device a launcher had between `from` and the end of its run, from its
/// (time, busy) samples — the emulator's own accounting, not the agent's measurement.
fn share_since(report: &Value, from: Duration) -> f64 {
    let s: Vec<(f64, f64)> = report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    let from_ns = from.as_nanos() as f64;
    let first = s.iter().find(|(t, _)| *t >= from_ns).unwrap();
    let last = s.last().unwrap();
    (last.1 - first.1) / (last.0 - first.0)
}

#[test]
fn closed_loop_holds_a_pair_of_shares_on_one_gpu() {
    let w = World::new("pair");
    // Created before the agent knows anything: the first rates come from a default guess.
    assert!(w.set_rate("a", "0.3", &[]).status.success());
    assert!(w.set_rate("b", "0.7", &[]).status.success());
    let agent = w.agent("agent", &[]);
    // Each launcher must always want more than its share, or a share below target proves
    // nothing about the loop: the controller rightly does not raise the rate of a process that
    // launches less (docs/node-agent.md). Waiting for the device after every second 1 ms kernel,
    // a launcher that a loaded CPU wakes a few ms late leaves the device idle each time (b fell
    // to 0.25-0.6 with two CPU hogs, unthrottled: demand, not control); 16 kernels queued ahead
    // hide such delays, as an inference server's queued kernels do. The shares are averaged
    // over 6 s so that one longer descheduling cannot decide the outcome.
    let la = w.launcher_syncing("a", 9000, 16);
    let lb = w.launcher_syncing("b", 9000, 16);
    let ra = finish(la, Duration::from_secs(60));
    let rb = finish(lb, Duration::from_secs(60));
    let (sa, sb) = (
        share_since(&ra, Duration::from_secs(3)),
        share_since(&rb, Duration::from_secs(3)),
    );
    tracing::info!(sa, sb, "achieved shares in the last 6 s");
    assert!((sa - 0.3).abs() <= 0.07, "a (0.3) achieved {sa:.3}");
    assert!((sb - 0.7).abs() <= 0.07, "b (0.7) achieved {sb:.3}");
    let text = metrics(&agent);
    for seg in ["a", "b"] {
        let label = format!("segment=\"{seg}\"");
        assert!(
            sample(
                &text,
                "sair_gpu_share_target",
                &[&label, "node=\"it-node\""]
            )
            .is_some(),
            "{text}"
        );
        assert!(sample(&text, "sair_gpu_launches_total", &[&label]).unwrap() > 100.0);
        assert!(sample(&text, "sair_gpu_throttled_seconds_total", &[&label]).is_some());
    }
}

#[test]
fn status_shows_target_and_measured_share() {
    let w = World::new("status");
    assert!(w.set_rate("s", "0.4", &[]).status.success());
    let _agent = w.agent("agent", &[]);
    let l = w.launcher("s", 4000);
    let status = || -> Value {
        let out = w.cli(&["status", "--json", "--sample-ms", "100"]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eventually!(
        {
            let last = status();
            last[0]["measured"]
                .as_f64()
                .is_some_and(|m| (m - 0.4).abs() < 0.1)
                && last[0]["launches_per_s"].as_f64().is_some_and(|v| v > 0.0)
        },
        "status never showed the measured share near 0.4: {}",
        status()
    );
    let last = status();
    assert_eq!(last[0]["segment"], "s");
    assert_eq!(last[0]["target"].as_f64(), Some(0.4));
    let table = String::from_utf8(w.cli(&["status"]).stdout).unwrap();
    assert!(
        table.contains("MEASURED") && table.contains("0.400"),
        "{table}"
    );
    finish(l, Duration::from_secs(60));
}

#[test]
fn set_rate_reaches_a_running_process_within_100ms() {
    let w = World::new("fast");
    // 1 ms kernels at 1 %: one launch per 100 ms once the burst is spent.
    assert!(w.set_rate("f", "0.01", &[]).status.success());
    let seg = w.segment("f");
    let l = w.launcher("f", 30_000);
    // Best of three, so that one unlucky descheduling of the launcher on a loaded machine is
    // not mistaken for the mechanism's latency.
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let throttled = seg.counters().throttled_launches;
        assert_eventually!(
            seg.counters().throttled_launches >= throttled + 3,
            "launcher never throttled: {:?}",
            seg.counters()
        );
        let before = seg.counters().launches;
        let out = w.set_rate("f", "1", &["--mode", "off"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let written = Instant::now();
        // At the old rate 5 more launches take ≥ 400 ms; unlimited they take ~5 ms.
        let mut took = None;
        while written.elapsed() < Duration::from_secs(5) {
            if seg.counters().launches >= before + 5 {
                took = Some(written.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let took = took.expect("the change never reached the process");
        tracing::info!(?took, "set-rate to effect");
        best = best.min(took);
        assert!(w.set_rate("f", "0.01", &[]).status.success());
    }
    assert!(
        best <= Duration::from_millis(100),
        "best of 3 took {best:?}"
    );
    drop(l);
}

#[test]
fn bad_rate_and_over_commit_are_refused_and_change_nothing() {
    let w = World::new("check_commitment");
    assert!(w.set_rate("a", "0.6", &["--gpu", "0"]).status.success());
    let path = segment_path(&w.shm(), "a").unwrap();
    let before = std::fs::read(&path).unwrap();
    for bad in ["0", "-0.5", "1.5", "nan"] {
        let out = w.set_rate("a", bad, &[]);
        assert_eq!(out.status.code(), Some(1), "rate {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("outside (0, 1]"), "{err}");
    }
    let out = w.set_rate("b", "0.5", &["--gpu", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GPU 0")
            && err.contains("1.100")
            && err.contains("a=0.6")
            && err.contains("b=0.5"),
        "{err}"
    );
    assert!(!segment_path(&w.shm(), "b").unwrap().exists(), "b created");
    assert_eq!(std::fs::read(&path).unwrap(), before, "a changed");
    // Another GPU, or mode off, is fine.
    assert!(w.set_rate("b", "0.5", &["--gpu", "1"]).status.success());
    assert!(
        w.set_rate("c", "1", &["--gpu", "0", "--mode", "off"])
            .status
            .success()
    );
    // Bad configuration exits 64.
    let out = w.cli(&[
        "set-rate",
        "--segment",
        "x",
        "--rate",
        "0.5",
        "--mode",
        "bogus",
    ]);
    assert_eq!(out.status.code(), Some(64));
    let out = w.cli(&["set-rate", "--segment", "../x", "--rate", "0.5"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn corrupt_and_truncated_segments_are_recreated_and_reported() {
    let w = World::new("corrupt");
    assert!(w.set_rate("m", "0.3", &[]).status.success());
    assert!(w.set_rate("t", "0.2", &[]).status.success());
    // Damaged before the agent ever saw it: recreated unlimited (mode off).
    std::fs::write(segment_path(&w.shm(), "g").unwrap(), b"garbage").unwrap();
    let agent = w.agent("agent", &[]);
    assert_eventually!(
        Segment::open(&segment_path(&w.shm(), "g").unwrap()).is_ok(),
        "g never recreated"
    );
    assert_eq!(w.segment("g").params().mode, sair_shm::Mode::Off);
    assert_eventually!(
        sample(
            &metrics(&agent),
            "sair_gpu_share_target",
            &["segment=\"t\""]
        )
        .is_some(),
        "agent never adopted t"
    );
    // A process attached to m before it is damaged.
    let launcher = w.launcher("m", 10_000);
    let pid = launcher.child.id();
    assert_eventually!(
        w.segment("m").attached_pids().contains(&pid),
        "launcher never attached"
    );
    // Magic overwritten in place, without truncating: a file truncated under a mapping faults
    // every process that maps it (SIGBUS), the launcher included.
    let m = segment_path(&w.shm(), "m").unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&m).unwrap();
        f.write_all_at(b"CORRUPT!", 0).unwrap();
    }
    // Truncated copy put in place with a rename (an in-place truncation under a mapping is a
    // different hazard, see docs/node-agent.md).
    let t = segment_path(&w.shm(), "t").unwrap();
    let tmp = w.shm().join(".t.tmp");
    std::fs::write(&tmp, &std::fs::read(&t).unwrap()[..100]).unwrap();
    std::fs::rename(&tmp, &t).unwrap();
    assert_eventually!(
        Segment::open(&m).is_ok() && Segment::open(&t).is_ok(),
        "segments never recreated: {}",
        agent.proc.output()
    );
    // The targets the agent knew survive.
    assert_eq!(w.segment("m").params().target_share, 0.3);
    // The process on the damaged file was told to re-open and now charges the new one.
    assert_eventually!(
        {
            let seg = w.segment("m");
            seg.attached_pids().contains(&pid) && seg.counters().launches > 0
        },
        "launcher never moved to the recreated segment"
    );
    drop(launcher);
    assert_eq!(w.segment("t").params().target_share, 0.2);
    let text = metrics(&agent);
    assert!(
        sample(&text, "sair_agent_segments_recreated_total", &[]).unwrap() >= 3.0,
        "{text}"
    );
    assert!(
        agent.proc.output().contains("recreated"),
        "not reported in the log"
    );
}

#[test]
fn restart_under_load_keeps_rates() {
    let w = World::new("restart");
    assert!(w.set_rate("r", "0.4", &[]).status.success());
    let mut agent = w.agent("agent1", &[]);
    let l = w.launcher("r", 8000);
    let seg = w.segment("r");
    // Let the loop calibrate, then kill the agent hard.
    assert_eventually!(
        segments_state(&w).is_some_and(|s| s["segments"]["r"]["ns_per_token"].is_number()),
        "never calibrated"
    );
    std::thread::sleep(Duration::from_millis(1500));
    agent.proc.child.kill().unwrap();
    agent.proc.child.wait().unwrap();
    let rate_before = seg.params().refill_per_s;
    let _agent2 = w.agent("agent2", &[]);
    // Over the next second the rate the process runs at stays where it was.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(1) {
        let now = seg.params().refill_per_s as f64;
        let rel = (now / rate_before as f64 - 1.0).abs();
        assert!(
            rel < 0.15,
            "rate moved from {rate_before} to {now} after restart"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = finish(l, Duration::from_secs(60));
    let share = share_since(&r, Duration::from_secs(3));
    assert!(
        (share - 0.4).abs() <= 0.07,
        "share {share:.3} across the restart"
    );
}

fn segments_state(w: &World) -> Option<Value> {
    let bytes = std::fs::read(w.shm().join(".sair-agent-state.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[test]
fn idle_segments_are_collected_and_removal_works() {
    let w = World::new("gc");
    assert!(w.set_rate("idle", "0.2", &[]).status.success());
    assert!(w.set_rate("gone", "0.2", &[]).status.success());
    let out = w.cli(&["remove", "--segment", "gone"]);
    assert!(out.status.success());
    assert!(!segment_path(&w.shm(), "gone").unwrap().exists());
    assert_eq!(
        w.cli(&["remove", "--segment", "gone"]).status.code(),
        Some(1)
    );
    let agent = w.agent("agent", &["--gc-idle-seconds", "1"]);
    assert_eventually!(
        !segment_path(&w.shm(), "idle").unwrap().exists(),
        "idle segment never collected"
    );
    assert!(sample(&metrics(&agent), "sair_agent_segments_collected_total", &[]).unwrap() >= 1.0);
}

#[test]
fn healthz_sigterm_and_bad_flags() {
    let w = World::new("flags");
    let mut agent = w.agent("agent", &[]);
    let r = sair_tests::http::request(&agent.metrics, "GET", "/healthz", b"").unwrap();
    assert_eq!(r.status, 200);
    // SIGTERM: a clean, prompt exit.
    let status = agent.proc.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        agent.proc.output()
    );
    let out = w.cli(&["run", "--control-period-ms", "0"]);
    assert_eq!(out.status.code(), Some(64));
    let out = w.cli(&["run", "--metrics-listen", "not-an-address"]);
    assert_eq!(out.status.code(), Some(64));
    let bad = w.root.join("bad.toml");
    std::fs::write(&bad, "no_such_setting = 1\n").unwrap();
    let out = w.cli(&["run", "--config", &bad.display().to_string()]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no_such_setting"), "{err}");
}

#[test]
fn readyz_help_and_the_config_file() {
    let w = World::new("readyz");
    // Settings from a TOML file, one overridden by a variable: the agent comes up on them.
    let file = w.root.join("agent.toml");
    std::fs::write(
        &file,
        "gc_idle = \"1h\"\nshare_headroom = 0.1\nnode_name = \"from-file\"\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let agent = w.agent("agent", &["--config", &file]);
    assert_eventually!(
        sair_tests::http::request(&agent.metrics, "GET", "/readyz", b"")
            .is_ok_and(|r| r.status == 200),
        "/readyz never ready"
    );
    // `World::agent` passes --node-name it-node: the flag beats the file.
    let text = metrics(&agent);
    assert!(text.contains("node=\"it-node\""), "{text}");
    assert!(!text.contains("from-file"), "{text}");

    let out = Command::new(agent_bin())
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("SAIR_CONTROL_PERIOD"), "{help}");
    assert!(
        !help.contains("--control-period-ms"),
        "legacy names are hidden: {help}"
    );
    let out = Command::new(agent_bin())
        .args(["run", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = Command::new(agent_bin())
        .args(["run", "--config", &file])
        .env("SAIR_GC_IDLE", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SAIR_GC_IDLE"), "{err}");
}

mod quic {
    use super::*;
    use quinn::rustls::pki_types::CertificateDer;
    use quinn::rustls::pki_types::pem::PemObject;
    use sair_wire::transport::{Trust, client_config, client_endpoint};
    use sair_wire::{Envelope, MAX_FRAME_BYTES, Message, StageReport};

    fn report(replica: &str) -> StageReport {
        StageReport {
            pipeline: "pipe".into(),
            stage: "infer".into(),
            replica: replica.into(),
            window_seconds: 1.0,
            arrivals: 42,
            completions: 40,
            busy_fraction: 0.5,
            ..StageReport::default()
        }
    }

    #[test]
    fn stage_reports_arrive_and_bad_frames_do_not_kill_the_agent() {
        let w = World::new("quic");
        let agent = w.agent("agent", &[]);
        let cert = CertificateDer::from_pem_file(w.root.join("tls/agent-cert.pem")).unwrap();
        let addr: std::net::SocketAddr = agent.reports.parse().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let cfg = client_config(&Trust::Roots(vec![cert]), None).unwrap();
            let ep = client_endpoint(addr, cfg).unwrap();
            let conn = ep.connect(addr, "localhost").unwrap().await.unwrap();
            // Garbage on one stream, a report failing validation, an oversized length prefix.
            let mut s = conn.open_uni().await.unwrap();
            s.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
            s.finish().unwrap();
            let mut bad = report("r-bad");
            bad.busy_fraction = f64::NAN;
            let mut s = conn.open_uni().await.unwrap();
            sair_wire::frame::write(
                &mut s,
                &Envelope::new(Message::StageReport(bad)),
                MAX_FRAME_BYTES,
            )
            .await
            .unwrap();
            s.finish().unwrap();
            let mut s = conn.open_uni().await.unwrap();
            s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
            s.finish().unwrap();
            // Two good reports on one stream, one on a bidirectional stream.
            let mut s = conn.open_uni().await.unwrap();
            for r in ["r1", "r2"] {
                sair_wire::frame::write(
                    &mut s,
                    &Envelope::new(Message::StageReport(report(r))),
                    MAX_FRAME_BYTES,
                )
                .await
                .unwrap();
            }
            s.finish().unwrap();
            let (mut s, _r) = conn.open_bi().await.unwrap();
            sair_wire::frame::write(
                &mut s,
                &Envelope::new(Message::StageReport(report("r3"))),
                MAX_FRAME_BYTES,
            )
            .await
            .unwrap();
            s.finish().unwrap();
            // Keep the connection until the agent has read everything.
            let deadline = Instant::now() + sair_tests::patience();
            loop {
                let text = metrics(&agent);
                let got = sample(&text, "sair_agent_reports_received_total", &[]).unwrap_or(0.0);
                let bad = sample(&text, "sair_agent_reports_invalid_total", &[]).unwrap_or(0.0);
                if got >= 3.0 && bad >= 3.0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "received {got}, invalid {bad}: {text}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            conn.close(0u32.into(), b"done");
            ep.wait_idle().await;
        });
        let text = metrics(&agent);
        assert_eq!(
            sample(
                &text,
                "sair_stage_report_arrivals",
                &[
                    "pipeline=\"pipe\"",
                    "stage=\"infer\"",
                    "replica=\"r2\"",
                    "node=\"it-node\""
                ]
            ),
            Some(42.0),
            "{text}"
        );
        assert!(
            sample(
                &text,
                "sair_stage_report_busy_fraction",
                &["replica=\"r3\""]
            )
            .is_some()
        );
        assert!(
            sample(&text, "sair_stage_report_arrivals", &["replica=\"r-bad\""]).is_none(),
            "invalid report stored"
        );
        // Still alive and serving.
        let r = sair_tests::http::request(&agent.metrics, "GET", "/healthz", b"").unwrap();
        assert_eq!(r.status, 200);
    }
}

/// Share over [from, to] seconds of a launcher's run.
fn share_between(report: &Value, from: f64, to: f64) -> f64 {
    let s: Vec<(f64, f64)> = report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap() / 1e9, p[1].as_f64().unwrap()))
        .collect();
    let i = s.iter().position(|(t, _)| *t >= from).unwrap();
    let j = s.iter().rposition(|(t, _)| *t <= to).unwrap();
    (s[j].1 - s[i].1) / ((s[j].0 - s[i].0) * 1e9)
}

#[test]
fn share_mode_uses_idle_time_and_yields_to_a_guarantee() {
    let w = World::new("sharemode");
    assert!(
        w.set_rate("a", "0.3", &["--mode", "share"])
            .status
            .success()
    );
    assert!(w.set_rate("b", "0.5", &[]).status.success());
    let _agent = w.agent("agent", &[]);
    // Queued ahead, so that a loaded CPU's late wake-ups do not make the launchers ask for less
    // than their share (see the pair test).
    let la = w.launcher_syncing("a", 9000, 16);
    std::thread::sleep(Duration::from_millis(4500));
    let lb = w.launcher_syncing("b", 4500, 16);
    let ra = finish(la, Duration::from_secs(60));
    let rb = finish(lb, Duration::from_secs(60));
    // Alone, a uses far more than its 0.3 (up to 1 − headroom).
    let alone = share_between(&ra, 2.0, 4.0);
    assert!(alone > 0.7, "a alone: {alone:.3}");
    // With b active, a gives b its 0.5 back.
    let b_share = share_between(&rb, 2.0, 4.0);
    assert!(b_share > 0.43, "b (cap 0.5) got {b_share:.3}");
    let a_late = share_between(&ra, 7.0, 8.5);
    assert!(a_late < 0.55, "a with b active: {a_late:.3}");
    assert!(a_late > 0.25, "a below its guarantee: {a_late:.3}");
}

#[path = "agent/integrity.rs"]
mod integrity;
