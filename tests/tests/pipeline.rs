//! End to end, every component as a real process on loopback:
//!
//! ```text
//! client ─► sair-sidecar(pre) ─► sair-stage (CPU)
//!               └─ --next ─► sair-sidecar(infer) ─► sair-stage (GPU kernels through
//!                                                    libsair_intercept.so on the emulator)
//!  both sidecars ── StageReports over QUIC (TLS, agent's self-signed cert) ──► sair-node-agent
//! ```
//!
//! It checks what a user of the whole system sees: the pipeline answers with the last stage's
//! body and both stages' Server-Timing entries, the node agent receives reports from both
//! stages, `sair-node-agent set-rate` on the GPU stage's segment slows that stage (and only
//! that stage) without restarting anything, and `sair-loadgen` reads the per-stage breakdown.

// In a test, a failed unwrap is a failed test that names the operation.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use sair_tests::http::{Response, request};
use sair_tests::{
    Agent, Sidecar, Stage, agent, assert_eventually, binary, scratch, sidecar, stage,
};

struct Pipeline {
    root: PathBuf,
    entry: std::net::SocketAddr,
    agent: Agent,
    _procs: (Stage, Stage, Sidecar, Sidecar),
}

fn healthy(addr: std::net::SocketAddr, path: &str) -> bool {
    request(addr, "GET", path, b"").is_ok_and(|r| r.status == 200)
}

/// `sair-node-agent set-rate` on the GPU stage's segment, as an operator would run it.
fn set_infer_rate(shm_dir: &Path, rate: &str, mode: &str) {
    let set = std::process::Command::new(binary("sair-node-agent"))
        .args(["set-rate", "--shm-dir"])
        .arg(shm_dir)
        .args(["--segment", "infer", "--rate", rate, "--mode", mode])
        .output()
        .unwrap();
    assert!(
        set.status.success(),
        "set-rate: {}",
        String::from_utf8_lossy(&set.stderr)
    );
}

fn start() -> Pipeline {
    let root = scratch("e2e");
    let libs = sair_tests::emulator::driver_dir(&root.join("lib")).unwrap();
    let shm_dir = root.join("shm");
    let emu_env = |name: &str| -> Vec<(&'static str, String)> {
        vec![
            (
                "SAIR_EMU_STATE",
                root.join("emu.state").display().to_string(),
            ),
            ("LD_LIBRARY_PATH", libs.display().to_string()),
            ("SAIR_SHM_DIR", shm_dir.display().to_string()),
            ("SAIR_SEGMENT", name.to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
    };

    // The GPU stage's segment exists before its model server starts, unlimited.
    set_infer_rate(&shm_dir, "1", "off");

    let mut agent = agent()
        .shm_dir(&shm_dir)
        .tls_dir(root.join("tls"))
        .nvml_lib(libs.join("libnvidia-ml.so.1"))
        .args(["--control-period-ms", "100", "--node-name", "e2e"]);
    for (k, v) in emu_env("agent") {
        agent = agent.env(k, v);
    }
    let agent = agent.run();
    assert_eventually!(
        agent.cert().exists() && healthy(agent.admin(), "/healthz"),
        "node agent ready ({})",
        agent.output()
    );

    let pre_stage = stage().name("stage-pre").cpu_ms(1.0).echo().run();
    // 4 kernels of 1000 blocks at the emulator's 1 µs per block: 4 ms of device time a request.
    let mut infer_stage = stage()
        .name("stage-infer")
        .cpu_ms(0.0)
        .args([
            "--gpu-kernels",
            "4",
            "--kernel-blocks",
            "1000",
            "--response-size",
            "5",
        ])
        .env("LD_PRELOAD", binary("libsair_intercept.so"));
    for (k, v) in emu_env("infer") {
        infer_stage = infer_stage.env(k, v);
    }
    let infer_stage = infer_stage.run();

    let infer_sidecar = sidecar()
        .name("sidecar-infer")
        .upstream(&infer_stage)
        .pipeline("e2e")
        .stage("infer")
        .max_concurrency(2)
        .agent(&agent)
        .run();
    let pre_sidecar = sidecar()
        .name("sidecar-pre")
        .upstream(&pre_stage)
        .next(&infer_sidecar, "infer")
        .pipeline("e2e")
        .stage("pre")
        .max_concurrency(2)
        .agent(&agent)
        .run();
    let entry = pre_sidecar.listen();
    assert_eventually!(
        healthy(pre_stage.addr(), "/healthz") && healthy(infer_stage.addr(), "/healthz"),
        "stages ready"
    );
    assert_eventually!(
        request(entry, "POST", "/", b"warm").is_ok_and(|r| r.status == 200),
        "pipeline answers"
    );
    Pipeline {
        root,
        entry,
        agent,
        _procs: (pre_stage, infer_stage, pre_sidecar, infer_sidecar),
    }
}

/// `<stage>-<kind>;dur=<ms>` from every Server-Timing header of a response.
fn timing(resp: &Response, name: &str) -> Option<f64> {
    resp.header_all("server-timing")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|entry| {
            let (n, rest) = entry.split_once(';')?;
            (n.trim() == name).then_some(())?;
            rest.split(';')
                .find_map(|p| p.trim().strip_prefix("dur="))
                .and_then(|d| d.parse().ok())
        })
}

fn median_infer_service(p: &Pipeline, n: usize) -> f64 {
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let r = request(p.entry, "POST", "/", b"x").unwrap();
            assert_eq!(r.status, 200, "body: {}", String::from_utf8_lossy(&r.body));
            timing(&r, "infer-service").expect("infer-service entry")
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[n / 2]
}

#[test]
fn whole_pipeline_measures_reports_and_throttles() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let p = start();
    tracing::info!(root = %p.root.display(), "pipeline up");

    // The caller sees the last stage's body and both stages' breakdown.
    let r = request(p.entry, "POST", "/", b"hello").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 5, "the GPU stage's 5-byte body comes back");
    for name in ["pre-queue", "pre-service", "infer-queue", "infer-service"] {
        assert!(
            timing(&r, name).is_some(),
            "{name} missing from {:?}",
            r.header_all("server-timing")
        );
    }

    // Both sidecars report to the agent over QUIC; the agent exports the latest report.
    assert_eventually!(
        {
            let m = request(p.agent.admin(), "GET", "/metrics", b"")
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .unwrap_or_default();
            m.lines().any(|l| {
                l.starts_with("sair_stage_report_completions") && l.contains("stage=\"pre\"")
            }) && m.lines().any(|l| {
                l.starts_with("sair_stage_report_completions") && l.contains("stage=\"infer\"")
            })
        },
        "agent exports StageReports from both stages"
    );

    // Unthrottled, the GPU stage's service time is its 4 ms of kernels plus overhead.
    let before = median_infer_service(&p, 15);
    tracing::info!(before, "infer-service median, unlimited (ms)");

    // Cap the GPU stage at 10 % of the GPU through the running daemon: no restart.
    set_infer_rate(p.agent.shm_dir(), "0.1", "cap");
    let deadline = std::time::Instant::now() + sair_tests::patience();
    let after = loop {
        let m = median_infer_service(&p, 7);
        if m > 3.0 * before {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "infer-service median {m} ms should exceed 3 × {before} ms at ρ = 0.1"
        );
    };
    tracing::info!(
        before,
        after,
        "infer-service median before/after ρ = 0.1 (ms)"
    );
    let r = request(p.entry, "POST", "/", b"x").unwrap();
    let pre = timing(&r, "pre-service").unwrap();
    assert!(
        pre < after,
        "the CPU stage ({pre} ms) is not throttled by the GPU stage's cap"
    );

    // sair-loadgen sees the same per-stage breakdown, open loop, bounded in time.
    let lg = sair_tests::loadgen()
        .args([
            "--target",
            &format!("http://{}/", p.entry),
            "--duration",
            "2s",
            "--rate",
            "10",
            "--method",
            "POST",
            "--body-size",
            "8",
        ])
        .run();
    assert_eq!(lg.code, Some(0), "sair-loadgen: {}", lg.stderr);
    let report = lg.report.expect("sair-loadgen wrote its report");
    assert!(report["completed"].as_u64().unwrap_or(0) > 0, "{report}");
    for stage in ["pre", "infer"] {
        assert!(
            report["stages"][stage]["service_p99_ms"].is_number(),
            "stage {stage} in {report}"
        );
    }
    let _ = std::fs::remove_dir_all(&p.root);
}
