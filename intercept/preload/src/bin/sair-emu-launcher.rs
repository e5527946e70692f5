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

#[path = "../../../emu-cuda/src/abi.rs"]
mod abi;
#[allow(unsafe_code)]
#[path = "../../../emu-cuda/src/timeline.rs"]
mod timeline;

use abi::*;
use clap::{Parser, ValueEnum};
use std::ffi::{CStr, c_char, c_void};
use std::process::ExitCode;
use std::time::{Duration, Instant};

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

type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;

/// Symbol lookups: libc's own dlsym (unwrapped) and the program's `dlsym` call.
struct Syms {
    libc_dlsym: DlsymFn,
    lib: *mut c_void,
}

#[allow(unsafe_code)]
impl Syms {
    fn new() -> Result<Syms, String> {
        // SAFETY: dlopen with a NUL-terminated name; RTLD_NOLOAD only returns a loaded libc.
        let libc_h =
            unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
        let mut real = std::ptr::null_mut();
        for v in [c"GLIBC_2.34", c"GLIBC_2.2.5"] {
            // SAFETY: valid handle (or null = default scope) and NUL-terminated strings.
            real = unsafe { libc::dlvsym(libc_h, c"dlsym".as_ptr(), v.as_ptr()) };
            if !real.is_null() {
                break;
            }
        }
        if real.is_null() {
            return Err("libc's dlsym not found".into());
        }
        // SAFETY: `real` is libc's dlsym.
        let libc_dlsym = unsafe { std::mem::transmute::<*mut c_void, DlsymFn>(real) };
        // SAFETY: NUL-terminated name, valid flags.
        let lib =
            unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if lib.is_null() {
            return Err("dlopen(libcuda.so.1) failed: is LD_LIBRARY_PATH set?".into());
        }
        Ok(Syms { libc_dlsym, lib })
    }

    /// Global-scope lookup, as direct linking binds (LD_PRELOAD first).
    fn global(&self, name: &CStr) -> Result<*mut c_void, String> {
        // SAFETY: libc's dlsym with RTLD_DEFAULT and a NUL-terminated name.
        let p = unsafe { (self.libc_dlsym)(libc::RTLD_DEFAULT, name.as_ptr()) };
        nonnull(p, name)
    }

    /// The program's own `dlsym(handle, name)` (wrapped when the interceptor is preloaded).
    fn dlsym(&self, name: &CStr) -> Result<*mut c_void, String> {
        // SAFETY: live handle and NUL-terminated name.
        let p = unsafe { libc::dlsym(self.lib, name.as_ptr()) };
        nonnull(p, name)
    }
}

fn nonnull(p: *mut c_void, name: &CStr) -> Result<*mut c_void, String> {
    if p.is_null() {
        Err(format!("symbol {name:?} not found"))
    } else {
        Ok(p)
    }
}

macro_rules! cu {
    ($e:expr, $what:literal) => {{
        let r: CUresult = $e;
        if r != CUDA_SUCCESS {
            return Err(format!("{} failed: CUresult {}", $what, r));
        }
    }};
}

/// What one "launch" of the chosen path calls.
#[derive(Clone, Copy)]
enum Launcher {
    Plain(FnLaunchKernel),
    Ex(FnLaunchKernelEx),
    Coop(FnLaunchCooperativeKernel),
    Graph(FnGraphLaunch, usize),
}

#[derive(Clone, Copy)]
struct Setup {
    ctx: usize,
    func: usize,
    stream: usize,
    launcher: Launcher,
    ctx_sync: unsafe extern "C" fn() -> CUresult,
    set_current: unsafe extern "C" fn(CUcontext) -> CUresult,
    ptds_matches: Option<bool>,
}

// SAFETY: handles are opaque integers and function pointers, valid in every thread.
#[allow(unsafe_code)]
unsafe impl Send for Setup {}

#[allow(unsafe_code)]
fn transmute_fn<F: Copy>(p: *mut c_void) -> F {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: every caller pairs `p` (a non-null driver symbol) with that symbol's C signature.
    unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) }
}

#[allow(unsafe_code)]
fn get_proc(s: &Syms, via: &str, name: &CStr, flags: u64) -> Result<*mut c_void, String> {
    let mut pfn = std::ptr::null_mut();
    match via {
        "v1" | "direct" | "chain" => {
            let mut gpa: FnGetProcAddress = transmute_fn(if via == "direct" {
                s.global(c"cuGetProcAddress")?
            } else {
                s.dlsym(c"cuGetProcAddress")?
            });
            if via == "chain" {
                // Ask cuGetProcAddress for cuGetProcAddress itself, then use what it returned.
                let mut p2 = std::ptr::null_mut();
                // SAFETY: valid name, out-pointer, version and flags.
                let r = unsafe { gpa(c"cuGetProcAddress".as_ptr(), &mut p2, 11030, 0) };
                cu!(r, "cuGetProcAddress(cuGetProcAddress)");
                gpa = transmute_fn(p2);
            }
            // SAFETY: valid name, out-pointer, version and flags.
            let r = unsafe { gpa(name.as_ptr(), &mut pfn, 12040, flags) };
            cu!(r, "cuGetProcAddress");
        }
        _ => {
            let gpa: FnGetProcAddressV2 = transmute_fn(s.dlsym(c"cuGetProcAddress_v2")?);
            let mut status = -1;
            // SAFETY: valid name, out-pointers, version and flags.
            let r = unsafe { gpa(name.as_ptr(), &mut pfn, 12040, flags, &mut status) };
            cu!(r, "cuGetProcAddress_v2");
            if status != CU_GET_PROC_ADDRESS_SUCCESS {
                return Err(format!("cuGetProcAddress_v2 status {status}"));
            }
        }
    }
    nonnull(pfn, name)
}

#[allow(unsafe_code)]
fn setup(s: &Syms, a: &Args) -> Result<Setup, String> {
    let init: unsafe extern "C" fn(u32) -> CUresult = transmute_fn(s.dlsym(c"cuInit")?);
    let dev_get: unsafe extern "C" fn(*mut CUdevice, i32) -> CUresult =
        transmute_fn(s.dlsym(c"cuDeviceGet")?);
    let ctx_create: unsafe extern "C" fn(*mut CUcontext, u32, CUdevice) -> CUresult =
        transmute_fn(s.dlsym(c"cuCtxCreate_v2")?);
    let load: unsafe extern "C" fn(*mut CUmodule, *const c_void) -> CUresult =
        transmute_fn(s.dlsym(c"cuModuleLoadData")?);
    let get_fn: unsafe extern "C" fn(*mut CUfunction, CUmodule, *const c_char) -> CUresult =
        transmute_fn(s.dlsym(c"cuModuleGetFunction")?);
    let stream_create: unsafe extern "C" fn(*mut CUstream, u32) -> CUresult =
        transmute_fn(s.dlsym(c"cuStreamCreate")?);
    let (mut dev, mut ctx, mut module, mut func, mut stream) = (
        0,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    // SAFETY: all calls below are emulator/driver functions with valid out-pointers and inputs.
    unsafe {
        cu!(init(0), "cuInit");
        cu!(dev_get(&mut dev, 0), "cuDeviceGet");
        cu!(ctx_create(&mut ctx, 0, dev), "cuCtxCreate_v2");
        cu!(
            load(&mut module, c"fake cubin".as_ptr().cast()),
            "cuModuleLoadData"
        );
        cu!(
            get_fn(&mut func, module, c"kernel".as_ptr()),
            "cuModuleGetFunction"
        );
        cu!(stream_create(&mut stream, 0), "cuStreamCreate");
    }
    let mut ptds_matches = None;
    let launcher = match a.path {
        LaunchPath::Direct => Launcher::Plain(transmute_fn(s.global(c"cuLaunchKernel")?)),
        LaunchPath::Ptsz => Launcher::Plain(transmute_fn(s.global(c"cuLaunchKernel_ptsz")?)),
        LaunchPath::Ex => Launcher::Ex(transmute_fn(s.global(c"cuLaunchKernelEx")?)),
        LaunchPath::ExPtsz => Launcher::Ex(transmute_fn(s.global(c"cuLaunchKernelEx_ptsz")?)),
        LaunchPath::Coop => Launcher::Coop(transmute_fn(s.global(c"cuLaunchCooperativeKernel")?)),
        LaunchPath::CoopPtsz => {
            Launcher::Coop(transmute_fn(s.global(c"cuLaunchCooperativeKernel_ptsz")?))
        }
        LaunchPath::Dlsym => Launcher::Plain(transmute_fn(s.dlsym(c"cuLaunchKernel")?)),
        LaunchPath::Procaddr
        | LaunchPath::ProcaddrPtsz
        | LaunchPath::ProcaddrV2
        | LaunchPath::ProcaddrV2Ptsz
        | LaunchPath::ProcaddrDirect
        | LaunchPath::ProcaddrChain => {
            let (via, ptds) = match a.path {
                LaunchPath::Procaddr => ("v1", false),
                LaunchPath::ProcaddrPtsz => ("v1", true),
                LaunchPath::ProcaddrV2 => ("v2", false),
                LaunchPath::ProcaddrV2Ptsz => ("v2", true),
                LaunchPath::ProcaddrDirect => ("direct", false),
                _ => ("chain", false),
            };
            let flags = if ptds {
                CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
            } else {
                0
            };
            let p = get_proc(s, via, c"cuLaunchKernel", flags)?;
            let expect = if ptds {
                c"cuLaunchKernel_ptsz"
            } else {
                c"cuLaunchKernel"
            };
            ptds_matches = Some(p == s.global(expect)?);
            Launcher::Plain(transmute_fn(p))
        }
        LaunchPath::Graph | LaunchPath::GraphCapture => {
            let exec = build_graph(s, a, func, stream)?;
            let launch = get_proc(s, "v2", c"cuGraphLaunch", 0)?;
            Launcher::Graph(transmute_fn(launch), exec)
        }
    };
    Ok(Setup {
        ctx: ctx as usize,
        func: func as usize,
        stream: stream as usize,
        launcher,
        ctx_sync: transmute_fn(s.dlsym(c"cuCtxSynchronize")?),
        set_current: transmute_fn(s.dlsym(c"cuCtxSetCurrent")?),
        ptds_matches,
    })
}

#[allow(unsafe_code)]
fn build_graph(s: &Syms, a: &Args, func: CUfunction, stream: CUstream) -> Result<usize, String> {
    let mut graph = std::ptr::null_mut();
    if a.path == LaunchPath::Graph {
        let create: unsafe extern "C" fn(*mut CUgraph, u32) -> CUresult =
            transmute_fn(s.dlsym(c"cuGraphCreate")?);
        let add: unsafe extern "C" fn(
            *mut CUgraphNode,
            CUgraph,
            *const CUgraphNode,
            usize,
            *const CudaKernelNodeParams,
        ) -> CUresult = transmute_fn(get_proc(s, "v2", c"cuGraphAddKernelNode", 0)?);
        // SAFETY: valid out-pointer.
        cu!(unsafe { create(&mut graph, 0) }, "cuGraphCreate");
        for _ in 0..a.graph_nodes {
            let p = CudaKernelNodeParams {
                func,
                grid_dim_x: a.grid,
                grid_dim_y: 1,
                grid_dim_z: 1,
                block_dim_x: a.block,
                block_dim_y: 1,
                block_dim_z: 1,
                shared_mem_bytes: 0,
                kernel_params: std::ptr::null_mut(),
                extra: std::ptr::null_mut(),
                kern: std::ptr::null_mut(),
                ctx: std::ptr::null_mut(),
            };
            let mut node = std::ptr::null_mut();
            // SAFETY: valid out-pointer, graph handle and params.
            let r = unsafe { add(&mut node, graph, std::ptr::null(), 0, &p) };
            cu!(r, "cuGraphAddKernelNode_v2");
        }
    } else {
        let begin: unsafe extern "C" fn(CUstream, i32) -> CUresult =
            transmute_fn(s.dlsym(c"cuStreamBeginCapture_v2")?);
        let end: unsafe extern "C" fn(CUstream, *mut CUgraph) -> CUresult =
            transmute_fn(s.dlsym(c"cuStreamEndCapture")?);
        let launch: FnLaunchKernel = transmute_fn(s.dlsym(c"cuLaunchKernel")?);
        // SAFETY: valid stream and arguments; launches during capture are recorded, not run.
        unsafe {
            cu!(begin(stream, 0), "cuStreamBeginCapture_v2");
            for _ in 0..a.graph_nodes {
                cu!(
                    launch(
                        func,
                        a.grid,
                        1,
                        1,
                        a.block,
                        1,
                        1,
                        0,
                        stream,
                        std::ptr::null_mut(),
                        std::ptr::null_mut()
                    ),
                    "captured cuLaunchKernel"
                );
            }
            cu!(end(stream, &mut graph), "cuStreamEndCapture");
        }
    }
    let inst: FnGraphInstantiateWithFlags =
        transmute_fn(get_proc(s, "v2", c"cuGraphInstantiate", 0)?);
    let mut exec = std::ptr::null_mut();
    // SAFETY: valid out-pointer and graph.
    cu!(unsafe { inst(&mut exec, graph, 0) }, "cuGraphInstantiate");
    Ok(exec as usize)
}

impl Setup {
    #[allow(unsafe_code)]
    fn launch(&self, grid: u32, block: u32, ptds_default: bool) -> CUresult {
        let f = self.func as CUfunction;
        // Per-thread variants run on the per-thread default stream, the others on our stream.
        let s = if ptds_default {
            std::ptr::null_mut()
        } else {
            self.stream as CUstream
        };
        let null = std::ptr::null_mut();
        // SAFETY: driver functions called with valid handles and shapes.
        unsafe {
            match self.launcher {
                Launcher::Plain(l) => l(f, grid, 1, 1, block, 1, 1, 0, s, null, null),
                Launcher::Coop(l) => l(f, grid, 1, 1, block, 1, 1, 0, s, null),
                Launcher::Ex(l) => {
                    let c = CUlaunchConfig {
                        grid_dim_x: grid,
                        grid_dim_y: 1,
                        grid_dim_z: 1,
                        block_dim_x: block,
                        block_dim_y: 1,
                        block_dim_z: 1,
                        shared_mem_bytes: 0,
                        h_stream: s,
                        attrs: std::ptr::null_mut(),
                        num_attrs: 0,
                    };
                    l(&c, f, null, null)
                }
                Launcher::Graph(l, exec) => l(exec as CUgraphExec, s),
            }
        }
    }

    #[allow(unsafe_code)]
    fn sync(&self) -> CUresult {
        // SAFETY: no arguments; the context is current on this thread.
        unsafe { (self.ctx_sync)() }
    }

    #[allow(unsafe_code)]
    fn make_current(&self) -> CUresult {
        // SAFETY: a context handle created by this process.
        unsafe { (self.set_current)(self.ctx as CUcontext) }
    }
}

struct Outcome {
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
) -> Result<Outcome, String> {
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
    Ok(Outcome {
        launches: done,
        batch_ns,
        samples,
    })
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
    let mut out = launch_loop(&st, a, a.launches, deadline)?;
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
