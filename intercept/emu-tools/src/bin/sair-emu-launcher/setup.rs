//! Driver setup (init, context, module, function, stream) and the launch function of each path.

use super::{Args, LaunchPath};
use crate::syms::{Syms, nonnull};
use sair_cuda_abi::driver::*;
use std::ffi::{CStr, c_void};

#[derive(Clone, Copy)]
pub enum Launcher {
    Plain(FnLaunchKernel),
    Ex(FnLaunchKernelEx),
    Coop(FnLaunchCooperativeKernel),
    Graph(FnGraphLaunch, usize),
}

#[derive(Clone, Copy)]
pub struct Setup {
    ctx: usize,
    func: usize,
    stream: usize,
    launcher: Launcher,
    ctx_sync: FnCtxSynchronize,
    set_current: FnCtxSetCurrent,
    pub ptds_matches: Option<bool>,
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
pub fn setup(s: &Syms, a: &Args) -> Result<Setup, String> {
    let init: FnInit = transmute_fn(s.dlsym(c"cuInit")?);
    let dev_get: FnDeviceGet = transmute_fn(s.dlsym(c"cuDeviceGet")?);
    let ctx_create: FnCtxCreate = transmute_fn(s.dlsym(c"cuCtxCreate_v2")?);
    let load: FnModuleLoadData = transmute_fn(s.dlsym(c"cuModuleLoadData")?);
    let get_fn: FnModuleGetFunction = transmute_fn(s.dlsym(c"cuModuleGetFunction")?);
    let stream_create: FnStreamCreate = transmute_fn(s.dlsym(c"cuStreamCreate")?);
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
    pub fn launch(&self, grid: u32, block: u32, ptds_default: bool) -> CUresult {
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
    pub fn sync(&self) -> CUresult {
        // SAFETY: no arguments; the context is current on this thread.
        unsafe { (self.ctx_sync)() }
    }

    #[allow(unsafe_code)]
    pub fn make_current(&self) -> CUresult {
        // SAFETY: a context handle created by this process.
        unsafe { (self.set_current)(self.ctx as CUcontext) }
    }
}
