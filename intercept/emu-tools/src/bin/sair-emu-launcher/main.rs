//! `sair-emu-launcher` — TEST FIXTURE: a driver-API program that launches kernels through one
//! chosen path (direct symbol, `_ptsz`, `Ex`, cooperative, `dlsym`, `cuGetProcAddress(_v2)` with
//! or without the per-thread-default-stream flag, explicit or captured graphs). Run against the
//! emulator (`libcuda.so.1` → `libsair_emu_cuda.so`), with or without
//! `LD_PRELOAD=libsair_intercept.so`, it prints one JSON object: launches, wall time, the device
//! time its kernels took on the emulated time line, and (with `--bench-batch`) per-launch cost.
//!
//! "Direct" means what a program linked against libcuda gets: the symbol from the global scope
//! (looked up with libc's own `dlsym`, bypassing any wrapper), where an `LD_PRELOAD`ed library
//! comes first. "dlsym" means the program's own `dlsym(handle, name)` call.
//!
//! Part of `sair-emu-tools`, the fixture crate: it must never ship with the interceptor. Where
//! unsafe lives: `syms` (`dlopen`/`dlvsym`/`dlsym`/`dlerror`), `setup` (turning symbol addresses
//! into function pointers and calling the driver) and `run` (`fork`, `_exit`, `waitpid`); each
//! item allows it and each block carries a `// SAFETY:` comment.

macro_rules! cu {
    ($e:expr, $what:literal) => {{
        let r: CUresult = $e;
        if r != CUDA_SUCCESS {
            return Err(format!("{} failed: CUresult {}", $what, r));
        }
    }};
}

/// What one "launch" of the chosen path calls.
mod setup;
mod syms;

use clap::{Parser, ValueEnum};
use sair_cuda_abi::driver::*;
use sair_cuda_abi::timeline;
use setup::{Setup, setup};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use syms::Syms;

/// How launches reach the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LaunchPath {
    Direct,
    Ptsz,
    Ex,
    ExPtsz,
    Coop,
    CoopPtsz,
    Dlsym,
    Procaddr,
    ProcaddrPtsz,
    ProcaddrV2,
    ProcaddrV2Ptsz,
    ProcaddrDirect,
    ProcaddrChain,
    Graph,
    GraphCapture,
}

/// Launch kernels on the (emulated) driver through one path and report.
#[derive(Debug, Clone, Parser)]
struct Args {
    /// Launch path.
    #[arg(long, env = "SAIR_LAUNCH_PATH", value_enum, default_value = "direct")]
    path: LaunchPath,
    /// Stop after this many launches (graph paths: graph launches).
    #[arg(long, env = "SAIR_LAUNCHES", default_value_t = 1000)]
    launches: u64,
    /// Stop after this long, in milliseconds (0 = no time limit).
    #[arg(long, env = "SAIR_DURATION_MS", default_value_t = 0)]
    duration_ms: u64,
    /// Grid blocks (x) per kernel.
    #[arg(long, env = "SAIR_GRID", default_value_t = 100)]
    grid: u32,
    /// Threads (x) per block.
    #[arg(long, env = "SAIR_BLOCK", default_value_t = 128)]
    block: u32,
    /// Kernel nodes per graph (graph paths).
    #[arg(long, env = "SAIR_GRAPH_NODES", default_value_t = 2)]
    graph_nodes: u32,
    /// cuCtxSynchronize after every N launches (0 = only at the end).
    #[arg(long, env = "SAIR_SYNC_EVERY", default_value_t = 1)]
    sync_every: u64,
    /// Threads launching in parallel, spawned before cuInit.
    #[arg(long, env = "SAIR_THREADS", default_value_t = 1)]
    threads: u32,
    /// Fork a child after setup that makes this many launches itself (0 = no fork).
    #[arg(long, env = "SAIR_FORK_LAUNCHES", default_value_t = 0)]
    fork_launches: u64,
    /// Time launches in batches of this size and report per-launch ns (median, p99).
    #[arg(long, env = "SAIR_BENCH_BATCH", default_value_t = 0)]
    bench_batch: u64,
    /// Record (time, device busy ns of this process) every this many ms (0 = never).
    #[arg(long, env = "SAIR_SAMPLE_MS", default_value_t = 0)]
    sample_ms: u64,
}

/// What one launch loop did.
struct LoopTally {
    launches: u64,
    batch_ns: Vec<f64>,
    /// (ns since start, device busy ns of this process).
    samples: Vec<(u64, u64)>,
}

fn launch_loop(
    st: &Setup,
    a: &Args,
    launches: u64,
    deadline: Option<Instant>,
) -> Result<LoopTally, String> {
    let ptds = matches!(
        a.path,
        LaunchPath::Ptsz
            | LaunchPath::ExPtsz
            | LaunchPath::CoopPtsz
            | LaunchPath::ProcaddrPtsz
            | LaunchPath::ProcaddrV2Ptsz
    );
    let mut done = 0;
    let mut batch_ns = Vec::new();
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut next_sample = Duration::ZERO;
    while done < launches && deadline.is_none_or(|d| Instant::now() < d) {
        if a.sample_ms > 0 && start.elapsed() >= next_sample {
            samples.push((start.elapsed().as_nanos() as u64, device_busy_ns().0));
            next_sample += Duration::from_millis(a.sample_ms);
        }
        if a.bench_batch > 0 {
            let n = a.bench_batch.min(launches - done);
            let t = Instant::now();
            for _ in 0..n {
                cu!(st.launch(a.grid, a.block, ptds), "launch");
            }
            batch_ns.push(t.elapsed().as_nanos() as f64 / n as f64);
            done += n;
            cu!(st.sync(), "cuCtxSynchronize");
            continue;
        }
        cu!(st.launch(a.grid, a.block, ptds), "launch");
        done += 1;
        if a.sync_every > 0 && done % a.sync_every == 0 {
            cu!(st.sync(), "cuCtxSynchronize");
        }
    }
    cu!(st.sync(), "cuCtxSynchronize");
    Ok(LoopTally {
        launches: done,
        batch_ns,
        samples,
    })
}

/// The calling thread's time spent waiting on a run queue, from `/proc/thread-self/schedstat`
/// (second field, ns); `None` where the kernel does not provide it.
fn runqueue_wait_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn device_busy_ns() -> (u64, u64) {
    static TIMELINE: std::sync::OnceLock<Option<&'static timeline::TimelineLayout>> =
        std::sync::OnceLock::new();
    let t = TIMELINE.get_or_init(|| {
        let path = std::env::var_os("SAIR_EMU_STATE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(timeline::default_state_path);
        timeline::open_timeline(&path).ok()
    });
    let Some(t) = t else {
        return (0, 0);
    };
    let pid = std::process::id();
    t.procs
        .iter()
        .filter(|s| s.pid.load(std::sync::atomic::Ordering::Acquire) == pid)
        .fold((0, 0), |(b, k), s| {
            (
                b + s.busy_ns.load(std::sync::atomic::Ordering::Acquire),
                k + s.kernels.load(std::sync::atomic::Ordering::Acquire),
            )
        })
}

#[allow(unsafe_code)]
fn run(a: &Args) -> Result<serde_json::Value, String> {
    // Threads exist before cuInit (and before the interceptor sees any call).
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(a.threads as usize));
    let (tx, rx) = std::sync::mpsc::channel::<Setup>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 1..a.threads {
        let barrier = barrier.clone();
        let rx = rx.clone();
        let args = a.clone();
        workers.push(std::thread::spawn(move || -> Result<u64, String> {
            barrier.wait();
            let st = rx
                .lock()
                .map_err(|_| "poisoned")?
                .recv()
                .map_err(|e| e.to_string())?;
            cu!(st.make_current(), "cuCtxSetCurrent");
            let deadline = (args.duration_ms > 0)
                .then(|| Instant::now() + Duration::from_millis(args.duration_ms));
            Ok(launch_loop(&st, &args, args.launches, deadline)?.launches)
        }));
    }
    let s = Syms::new()?;
    let st = setup(&s, a)?;
    for _ in 1..a.threads {
        tx.send(st).map_err(|e| e.to_string())?;
    }
    // Fork while the worker threads wait at the barrier: they hold no lock the child needs.
    let mut child_status = None;
    if a.fork_launches > 0 {
        // SAFETY: fork; the child only launches through the driver and exits with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = match launch_loop(&st, a, a.fork_launches, None) {
                Ok(o) if o.launches == a.fork_launches => 0,
                _ => 3,
            };
            // SAFETY: leave the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        child_status = Some(serde_json::json!({"pid": pid, "exit": libc::WEXITSTATUS(status)}));
    }
    barrier.wait();
    let start = Instant::now();
    let deadline = (a.duration_ms > 0).then(|| start + Duration::from_millis(a.duration_ms));
    let waited_before = runqueue_wait_ns();
    let mut out = launch_loop(&st, a, a.launches, deadline)?;
    // Time this thread was runnable but not running: on a loaded host the device idles while
    // the launcher waits for a CPU, and tests must tell that from a throttling error.
    let runqueue_wait_ns = runqueue_wait_ns()
        .zip(waited_before)
        .map(|(after, before)| after.saturating_sub(before));
    for w in workers {
        out.launches += w.join().map_err(|_| "worker panicked")??;
    }
    let wall_ns = start.elapsed().as_nanos() as u64;
    let (busy_ns, kernels) = device_busy_ns();
    let mut sorted = out.batch_ns.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "path": format!("{:?}", a.path),
        "pid": std::process::id(),
        "launches": out.launches,
        "kernels": kernels,
        "wall_ns": wall_ns,
        "busy_ns": busy_ns,
        "share": busy_ns as f64 / wall_ns.max(1) as f64,
        "runqueue_wait_ns": runqueue_wait_ns,
        "ptds_matches": st.ptds_matches,
        "fork_child": child_status,
        "per_launch_ns_median": percentile(&sorted, 0.5),
        "per_launch_ns_p99": percentile(&sorted, 0.99),
        "batches": sorted.len(),
        "samples": out.samples,
    }))
}

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sair-emu-launcher: {e}");
            ExitCode::from(1)
        }
    }
}
