//! `sair-stage` end to end: CPU cost, worker slots, echo, health, and GPU work through the
//! SAIR GPU emulator standing in for `libcuda.so.1`.

use sair_tests::http::{Response, request};
use sair_tests::{LaunchError, Stage, StageBuilder, run_bounded, scratch};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// `sair-stage` from this package's build.
fn stage() -> StageBuilder {
    sair_tests::stage().program(env!("CARGO_BIN_EXE_sair-stage"))
}

/// `sair-loadgen` from this package's build.
fn loadgen(args: &[&str]) -> sair_tests::LoadgenRun {
    sair_tests::loadgen()
        .program(env!("CARGO_BIN_EXE_sair-loadgen"))
        .args(args)
        .run()
}

/// One request with `Connection: close`; a failure to connect fails the test.
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Response {
    request(addr, method, path, body).unwrap_or_else(|e| panic!("{method} {path} to {addr}: {e}"))
}

/// A stage with these arguments.
fn spawn(args: &[&str]) -> Stage {
    stage().args(args).run()
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn median(v: Vec<f64>) -> f64 {
    quantile(v, 0.5)
}

/// Tests that measure CPU-bound service times run one at a time, so they do not slow each
/// other down on a small CI machine.
static CPU_BOUND: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cpu_bound() -> std::sync::MutexGuard<'static, ()> {
    CPU_BOUND.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn service_time_matches_cpu_ms_at_low_load() {
    let _serial = cpu_bound();
    let stage = spawn(&["--cpu-ms", "20", "--concurrency", "1"]);
    // Sequential requests: no queueing, one worker busy at a time.
    let (service, cpu): (Vec<f64>, Vec<f64>) = (0..15)
        .map(|_| {
            let r = http(stage.addr(), "GET", "/infer", b"");
            assert_eq!(r.status, 200);
            (
                r.header_f64("x-sair-stage-service-ms"),
                r.header_f64("x-sair-stage-cpu-ms"),
            )
        })
        .unzip();
    eprintln!("service ms {service:?}\ncpu ms {cpu:?}");
    // The CPU consumed is the requested 20 ms whatever else runs on the machine.
    let c = median(cpu);
    assert!(
        (c - 20.0).abs() <= 2.0,
        "median CPU {c} ms, expected 20 ± 10%"
    );
    // Wall-clock service time is never below it; it equals it only when the worker thread
    // has a core to itself, which a shared CI machine cannot promise (at load average 5 on
    // 2 cores it is about twice as long), so only a loose upper bound is checked on the
    // fastest request. docs/benchmarks.md has the wall-clock figures on a quiet machine.
    assert!(service.iter().all(|&s| s >= 19.0), "{service:?}");
    let fastest = quantile(service, 0.0);
    assert!(fastest < 100.0, "fastest service {fastest} ms");
}

#[test]
fn the_loadgen_sees_the_stage_cost_in_server_timing() {
    let _serial = cpu_bound();
    let stage = stage()
        .cpu_ms(5.0)
        .concurrency(2)
        .server_timing("stage")
        .run();
    let run = loadgen(&["--target", &stage.url(), "--duration", "2s", "--rate", "20"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let r = run.report.unwrap();
    let p50 = r["stages"]["stage"]["service_p50_ms"].as_f64().unwrap();
    // Wall-clock service parsed from Server-Timing: at least the 5 ms of CPU and not wildly
    // more at this low load (the tight check is the test above).
    assert!(
        (4.9..25.0).contains(&p50),
        "service p50 {p50} ms, expected about 5"
    );
    assert!(r["stages"]["stage"]["count"].as_u64().unwrap() > 20);
}

#[test]
fn worker_slots_queue_excess_requests() {
    let _serial = cpu_bound();
    let stage = spawn(&["--cpu-ms", "200", "--concurrency", "1"]);
    let addr = stage.addr();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || http(addr, "GET", "/", b"")))
        .collect();
    let resps: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wall = t0.elapsed();
    let queued: Vec<f64> = resps
        .iter()
        .map(|r| r.header_f64("x-sair-stage-queue-ms"))
        .collect();
    eprintln!("queue ms {queued:?}, wall {wall:?}");
    // One slot: the three requests run one after another (≥ 600 ms of CPU in total) and the
    // last one waited for the two before it.
    assert!(wall >= Duration::from_millis(590), "{wall:?}");
    assert!(
        queued.iter().cloned().fold(0.0, f64::max) >= 350.0,
        "{queued:?}"
    );
}

#[test]
fn echo_response_size_and_health() {
    let stage = spawn(&["--cpu-ms", "0", "--response-size", "1000"]);
    let r = http(stage.addr(), "POST", "/x", b"hello");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1000);
    let h = http(stage.addr(), "GET", "/healthz", b"");
    assert_eq!((h.status, h.body.as_slice()), (200, b"ok\n".as_slice()));
    drop(stage);
    let echo = spawn(&["--cpu-ms", "0", "--echo"]);
    let r = http(echo.addr(), "POST", "/x", b"hello");
    assert_eq!(r.body, b"hello");
}

#[test]
fn bad_flags_exit_64_naming_the_flag() {
    let out = run_bounded(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sair-stage"));
            c.args(["--listen", "127.0.0.1:0", "--cpu-ms", "-3"]);
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(out.stderr.contains("--cpu-ms"), "{}", out.stderr);
    let help = run_bounded(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sair-stage"));
            c.arg("--help");
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("SYNTHETIC model server"));
    // clap's own parse errors are usage errors too (64, not clap's default 2).
    let unknown = run_bounded(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sair-stage"));
            c.args(["--listen", "127.0.0.1:0", "--no-such-flag"]);
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(unknown.code, Some(64), "{}", unknown.stderr);
}

#[test]
fn gpu_work_goes_through_libcuda_on_the_emulator() {
    let emu = sair_tests::binary("libsair_emu_cuda.so");
    let dir = scratch("gpu");
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::os::unix::fs::symlink(&emu, lib.join("libcuda.so.1")).unwrap();
    let state = dir.join("emu.state");
    // 4 kernels × 500 blocks × 2 µs per block = 4 ms of emulated GPU time per request.
    let stage = stage()
        .cpu_ms(0.0)
        .concurrency(1)
        .args(["--gpu-kernels", "4", "--kernel-blocks", "500"])
        .env("LD_LIBRARY_PATH", &lib)
        .env("SAIR_EMU_STATE", &state)
        .env("SAIR_EMU_NS_PER_BLOCK", "2000")
        .run();
    let gpu: Vec<f64> = (0..5)
        .map(|_| {
            let r = http(stage.addr(), "GET", "/infer", b"");
            assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
            r.header_f64("x-sair-stage-gpu-ms")
        })
        .collect();
    eprintln!("gpu ms {gpu:?}");
    // cuStreamSynchronize returns only when the emulated device time line has passed the
    // last kernel's end, so each request takes at least the 4 ms the emulator charges.
    assert!(gpu.iter().all(|&g| g >= 3.9), "{gpu:?}");
    assert!(median(gpu) < 100.0);
    // The emulator kept its device time line in the state file: the launches reached it.
    assert!(state.exists(), "emulator state file not created");
    drop(stage);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_libcuda_without_the_driver_api_is_a_clear_start_up_error() {
    // The NVML emulator is a real shared library that lacks cuInit: standing in for a broken
    // or wrong libcuda.so.1, it must stop sair-stage at start-up, not at the first request.
    let nvml = sair_tests::binary("libsair_emu_nvml.so");
    let dir = scratch("nocuda");
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::os::unix::fs::symlink(&nvml, lib.join("libcuda.so.1")).unwrap();
    let err = stage()
        .cpu_ms(0.0)
        .args(["--gpu-kernels", "1"])
        .env("LD_LIBRARY_PATH", &lib)
        .try_run()
        .expect_err("sair-stage must not start without the driver API");
    let LaunchError::Exited { status, output, .. } = &err else {
        panic!("expected an exit at start-up, got {err}");
    };
    assert_eq!(status.and_then(|s| s.code()), Some(69), "{output}");
    assert!(output.contains("libcuda.so.1 has no cuInit"), "{output}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sigterm_stops_the_stage_with_exit_0() {
    let mut stage = spawn(&["--cpu-ms", "0"]);
    assert_eq!(http(stage.addr(), "GET", "/healthz", b"").status, 200);
    let status = stage
        .terminate(Duration::from_secs(10))
        .expect("sair-stage exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", stage.output());
}
