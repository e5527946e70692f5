//! The `nvml-wrapper` crate (what the node agent uses) against `libsair_emu_nvml.so`, with busy
//! time written on the emulated time line.

use nvml_wrapper::Nvml;
use sair_cuda_abi::timeline;
use std::ffi::OsStr;
use std::path::PathBuf;

fn emu_lib() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test executable lives in <target>/<profile>/deps");
    let lib = dir.join("libsair_emu_nvml.so");
    assert!(
        lib.exists(),
        "{} missing: cargo build -p sair-emu-nvml",
        lib.display()
    );
    lib
}

#[test]
#[allow(unsafe_code)] // std::env::set_var: the emulator reads its settings from the environment.
fn nvml_wrapper_reads_the_emulated_timeline() {
    let state = std::env::temp_dir().join(format!("sair-nvml-it-{}.state", std::process::id()));
    let _ = std::fs::remove_file(&state);
    // The emulator reads SAIR_EMU_STATE/SAIR_EMU_GPUS at nvmlInit; this test process owns its env.
    // SAFETY: single-threaded at this point of the test binary (one test in this file).
    unsafe {
        #[allow(clippy::disallowed_methods)]
        std::env::set_var("SAIR_EMU_STATE", &state);
        #[allow(clippy::disallowed_methods)]
        std::env::set_var("SAIR_EMU_GPUS", "2");
    }
    let tl = timeline::open_timeline(&state).unwrap();
    let lib = emu_lib();
    let nvml = Nvml::builder().lib_path(OsStr::new(&lib)).init().unwrap();
    assert_eq!(nvml.device_count().unwrap(), 2);
    assert!(nvml.sys_driver_version().unwrap().contains("sair-emu"));
    let dev = nvml.device_by_index(1).unwrap();
    assert_eq!(dev.name().unwrap(), "SAIR Emulated GPU 1");
    assert!(dev.uuid().unwrap().starts_with("GPU-"));
    assert_eq!(dev.memory_info().unwrap().total, 80 << 30);
    assert!(nvml.device_by_index(2).is_err());

    // Baseline: a first query records a snapshot.
    let pid = std::process::id();
    let slot = tl.slot(pid, 1).unwrap();
    let _ = dev.process_utilization_stats(None);
    let before_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    // This process runs 100 kernels of 1 ms, one every 2 ms, on emulated GPU 1: reserved up front
    // on the time line, so the pattern does not depend on how this thread is scheduled.
    let start = timeline::now_ns();
    for k in 0..100u64 {
        let (_, end) = tl.reserve(1, start + 2_000_000 * k, 1_000_000);
        tl.account(slot, 1_000_000, end);
    }
    while timeline::now_ns() < start + 200_000_000 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
    };
    let q0 = now_us();
    let samples = dev.process_utilization_stats(before_us).unwrap();
    let q1 = now_us();
    let mine = samples
        .iter()
        .find(|s| s.pid == pid)
        .expect("a sample for this pid");
    // 100 ms busy in a window of (q - before_us) µs, whatever the machine's load made it.
    let lo = (100_000.0 * 100.0 / (q1 - before_us) as f64).floor() as u32;
    let hi = (100_000.0 * 100.0 / (q0 - before_us) as f64).ceil() as u32;
    assert!(
        (lo.saturating_sub(2)..=hi + 2).contains(&mine.sm_util) && hi <= 51,
        "100 ms busy in the window: expected {lo}..={hi}%, got {}%",
        mine.sm_util
    );
    let util = dev.utilization_rates().unwrap();
    assert!(util.gpu > 0 && util.gpu <= 100, "device util {}", util.gpu);
    // GPU 0 saw nothing.
    let dev0 = nvml.device_by_index(0).unwrap();
    assert_eq!(dev0.utilization_rates().unwrap().gpu, 0);
    drop(nvml);
    let _ = std::fs::remove_file(&state);
}
