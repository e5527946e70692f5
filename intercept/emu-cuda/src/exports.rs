//! The exported C ABI of the stand-in `libcuda.so.1`. Each function converts raw pointers and
//! calls [`crate::driver`]; each runs inside [`guard`] (`catch_unwind`), so a bug answers
//! `CUDA_ERROR_UNKNOWN` instead of unwinding into C.
//!
//! Unsafe here: `#[unsafe(no_mangle)]` on every export, [`put`] (writing an out-parameter the
//! caller passed, after a null check), [`cstr`] (reading a caller's C string) and reading the
//! structs passed by pointer (`CUlaunchConfig`, kernel node params).

use crate::abi::*;
use crate::driver::{KernelNode, driver, init};
use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

fn guard(f: impl FnOnce() -> CUresult) -> CUresult {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(CUDA_ERROR_UNKNOWN)
}

/// Writes an out-parameter; `CUDA_ERROR_INVALID_VALUE` if it is null.
fn put<T>(p: *mut T, v: T) -> CUresult {
    if p.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    // SAFETY: non-null, and the CUDA API contract makes the caller pass a valid, aligned,
    // writable pointer for this out-parameter.
    unsafe { p.write(v) };
    CUDA_SUCCESS
}

fn cstr<'a>(p: *const c_char) -> Option<&'a CStr> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null; the API contract makes it a NUL-terminated string valid for the call.
    Some(unsafe { CStr::from_ptr(p) })
}

fn hp(v: usize) -> *mut c_void {
    v as *mut c_void
}

fn shape(gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32) -> LaunchShape {
    LaunchShape {
        grid: [gx, gy, gz],
        block: [bx, by, bz],
    }
}

macro_rules! try_cu {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return code,
        }
    };
}

/// Driver version reported: CUDA 12.4.
pub const DRIVER_VERSION: i32 = 12040;

#[unsafe(no_mangle)]
pub extern "C" fn cuInit(flags: u32) -> CUresult {
    guard(|| init(flags))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDriverGetVersion(v: *mut i32) -> CUresult {
    guard(|| put(v, DRIVER_VERSION))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDeviceGetCount(n: *mut i32) -> CUresult {
    guard(|| put(n, try_cu!(driver()).cfg.gpus as i32))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDeviceGet(dev: *mut CUdevice, ordinal: i32) -> CUresult {
    guard(|| {
        let d = try_cu!(driver());
        try_cu!(d.check_device(ordinal));
        put(dev, ordinal)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDeviceGetName(name: *mut c_char, len: i32, dev: CUdevice) -> CUresult {
    guard(|| {
        let d = try_cu!(driver());
        let i = try_cu!(d.check_device(dev));
        let Ok(len) = usize::try_from(len) else {
            return CUDA_ERROR_INVALID_VALUE;
        };
        if name.is_null() || len == 0 {
            return CUDA_ERROR_INVALID_VALUE;
        }
        let text = format!("SAIR Emulated GPU {i}");
        let n = text.len().min(len - 1);
        // SAFETY: the caller gives a writable buffer of `len` bytes; we write n + 1 <= len.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), name, n);
            name.add(n).write(0);
        }
        CUDA_SUCCESS
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDeviceGetAttribute(v: *mut i32, attr: i32, dev: CUdevice) -> CUresult {
    guard(|| {
        let d = try_cu!(driver());
        try_cu!(d.check_device(dev));
        let value = match attr {
            CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK => 1024,
            CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X => i32::MAX,
            CU_DEVICE_ATTRIBUTE_WARP_SIZE => 32,
            CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT => 108,
            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR => 8,
            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR => 0,
            _ => return CUDA_ERROR_INVALID_VALUE,
        };
        put(v, value)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) -> CUresult {
    guard(|| {
        try_cu!(try_cu!(driver()).check_device(dev));
        put(bytes, 80 << 30)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDevicePrimaryCtxRetain(pctx: *mut CUcontext, dev: CUdevice) -> CUresult {
    guard(|| put(pctx, hp(try_cu!(try_cu!(driver()).primary_retain(dev)))))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) -> CUresult {
    guard(|| try_cu!(driver()).primary_release(dev))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDevicePrimaryCtxRelease(dev: CUdevice) -> CUresult {
    cuDevicePrimaryCtxRelease_v2(dev)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxCreate_v2(pctx: *mut CUcontext, _flags: u32, dev: CUdevice) -> CUresult {
    guard(|| {
        if pctx.is_null() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        put(pctx, hp(try_cu!(try_cu!(driver()).ctx_create(dev))))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxDestroy_v2(ctx: CUcontext) -> CUresult {
    guard(|| try_cu!(driver()).ctx_destroy(ctx))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxSetCurrent(ctx: CUcontext) -> CUresult {
    guard(|| try_cu!(driver()).set_current(ctx))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxGetCurrent(pctx: *mut CUcontext) -> CUresult {
    guard(|| put(pctx, hp(try_cu!(driver()).current())))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxPushCurrent_v2(ctx: CUcontext) -> CUresult {
    guard(|| try_cu!(driver()).push_current(ctx))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxPopCurrent_v2(pctx: *mut CUcontext) -> CUresult {
    guard(|| {
        let c = try_cu!(try_cu!(driver()).pop_current());
        if pctx.is_null() {
            CUDA_SUCCESS
        } else {
            put(pctx, hp(c))
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxGetDevice(dev: *mut CUdevice) -> CUresult {
    guard(|| put(dev, try_cu!(try_cu!(driver()).current_device()) as i32))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxSynchronize() -> CUresult {
    guard(|| try_cu!(driver()).ctx_synchronize())
}

#[unsafe(no_mangle)]
pub extern "C" fn cuModuleLoadData(module: *mut CUmodule, image: *const c_void) -> CUresult {
    guard(|| {
        put(
            module,
            hp(try_cu!(try_cu!(driver()).module_load(image.is_null()))),
        )
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuModuleGetFunction(
    f: *mut CUfunction,
    module: CUmodule,
    name: *const c_char,
) -> CUresult {
    guard(|| {
        let d = try_cu!(driver());
        if cstr(name).is_none() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        put(f, hp(try_cu!(d.module_get_function(module))))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuModuleUnload(module: CUmodule) -> CUresult {
    guard(|| try_cu!(driver()).module_unload(module))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamCreate(s: *mut CUstream, _flags: u32) -> CUresult {
    guard(|| put(s, hp(try_cu!(try_cu!(driver()).stream_create()))))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamDestroy_v2(s: CUstream) -> CUresult {
    guard(|| try_cu!(driver()).stream_destroy(s))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamSynchronize(s: CUstream) -> CUresult {
    guard(|| try_cu!(driver()).stream_synchronize(s, false))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamSynchronize_ptsz(s: CUstream) -> CUresult {
    guard(|| try_cu!(driver()).stream_synchronize(s, true))
}

#[allow(clippy::too_many_arguments)]
fn launch_args(
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    s: CUstream,
    ptds: bool,
) -> CUresult {
    guard(|| try_cu!(driver()).launch(f as usize, shape(gx, gy, gz, bx, by, bz), s, ptds))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuLaunchKernel(
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    _shared: u32,
    s: CUstream,
    _params: *mut *mut c_void,
    _extra: *mut *mut c_void,
) -> CUresult {
    launch_args(f, gx, gy, gz, bx, by, bz, s, false)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuLaunchKernel_ptsz(
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    _shared: u32,
    s: CUstream,
    _params: *mut *mut c_void,
    _extra: *mut *mut c_void,
) -> CUresult {
    launch_args(f, gx, gy, gz, bx, by, bz, s, true)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuLaunchCooperativeKernel(
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    _shared: u32,
    s: CUstream,
    _params: *mut *mut c_void,
) -> CUresult {
    launch_args(f, gx, gy, gz, bx, by, bz, s, false)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuLaunchCooperativeKernel_ptsz(
    f: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    _shared: u32,
    s: CUstream,
    _params: *mut *mut c_void,
) -> CUresult {
    launch_args(f, gx, gy, gz, bx, by, bz, s, true)
}

fn launch_ex(config: *const CUlaunchConfig, f: CUfunction, ptds: bool) -> CUresult {
    if config.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    // SAFETY: non-null; the API contract makes `config` point to a valid CUlaunchConfig.
    let c = unsafe { &*config };
    launch_args(
        f,
        c.grid_dim_x,
        c.grid_dim_y,
        c.grid_dim_z,
        c.block_dim_x,
        c.block_dim_y,
        c.block_dim_z,
        c.h_stream,
        ptds,
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn cuLaunchKernelEx(
    config: *const CUlaunchConfig,
    f: CUfunction,
    _params: *mut *mut c_void,
    _extra: *mut *mut c_void,
) -> CUresult {
    guard(|| launch_ex(config, f, false))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuLaunchKernelEx_ptsz(
    config: *const CUlaunchConfig,
    f: CUfunction,
    _params: *mut *mut c_void,
    _extra: *mut *mut c_void,
) -> CUresult {
    guard(|| launch_ex(config, f, true))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamBeginCapture_v2(s: CUstream, _mode: i32) -> CUresult {
    guard(|| try_cu!(driver()).begin_capture(s))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamBeginCapture(s: CUstream) -> CUresult {
    cuStreamBeginCapture_v2(s, 0)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamEndCapture(s: CUstream, graph: *mut CUgraph) -> CUresult {
    guard(|| {
        if graph.is_null() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        put(graph, hp(try_cu!(try_cu!(driver()).end_capture(s))))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphCreate(graph: *mut CUgraph, _flags: u32) -> CUresult {
    guard(|| put(graph, hp(try_cu!(driver()).graph_create())))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphDestroy(graph: CUgraph) -> CUresult {
    guard(|| try_cu!(driver()).graph_destroy(graph))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphAddKernelNode_v2(
    node: *mut CUgraphNode,
    graph: CUgraph,
    _deps: *const CUgraphNode,
    _ndeps: usize,
    params: *const CudaKernelNodeParams,
) -> CUresult {
    guard(|| {
        let d = try_cu!(driver());
        if params.is_null() || node.is_null() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        // SAFETY: non-null; the API contract makes it a valid CUDA_KERNEL_NODE_PARAMS_v2.
        let p = unsafe { &*params };
        let k = KernelNode {
            func: p.func as usize,
            shape: shape(
                p.grid_dim_x,
                p.grid_dim_y,
                p.grid_dim_z,
                p.block_dim_x,
                p.block_dim_y,
                p.block_dim_z,
            ),
        };
        put(node, hp(try_cu!(d.graph_add_kernel_node(graph, k))))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphGetNodes(
    graph: CUgraph,
    nodes: *mut CUgraphNode,
    num: *mut usize,
) -> CUresult {
    guard(|| {
        let list = try_cu!(try_cu!(driver()).graph_nodes(graph));
        if num.is_null() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        if nodes.is_null() {
            return put(num, list.len());
        }
        // SAFETY: non-null; the caller passed the capacity of `nodes` in `*num`.
        let cap = unsafe { num.read() };
        for (i, n) in list.iter().take(cap).enumerate() {
            // SAFETY: i < cap, the number of writable elements the caller declared.
            unsafe { nodes.add(i).write(hp(*n)) };
        }
        put(num, list.len().min(cap))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphNodeGetType(node: CUgraphNode, ty: *mut i32) -> CUresult {
    guard(|| {
        try_cu!(try_cu!(driver()).kernel_node(node));
        put(ty, CU_GRAPH_NODE_TYPE_KERNEL)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphKernelNodeGetParams_v2(
    node: CUgraphNode,
    params: *mut CudaKernelNodeParams,
) -> CUresult {
    guard(|| {
        let k = try_cu!(try_cu!(driver()).kernel_node(node));
        put(
            params,
            CudaKernelNodeParams {
                func: hp(k.func),
                grid_dim_x: k.shape.grid[0],
                grid_dim_y: k.shape.grid[1],
                grid_dim_z: k.shape.grid[2],
                block_dim_x: k.shape.block[0],
                block_dim_y: k.shape.block[1],
                block_dim_z: k.shape.block[2],
                shared_mem_bytes: 0,
                kernel_params: std::ptr::null_mut(),
                extra: std::ptr::null_mut(),
                kern: std::ptr::null_mut(),
                ctx: std::ptr::null_mut(),
            },
        )
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphInstantiateWithFlags(
    exec: *mut CUgraphExec,
    graph: CUgraph,
    _flags: u64,
) -> CUresult {
    guard(|| {
        if exec.is_null() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        put(exec, hp(try_cu!(try_cu!(driver()).instantiate(graph))))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphInstantiate_v2(
    exec: *mut CUgraphExec,
    graph: CUgraph,
    _err_node: *mut CUgraphNode,
    _log: *mut c_char,
    _log_len: usize,
) -> CUresult {
    cuGraphInstantiateWithFlags(exec, graph, 0)
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphExecDestroy(exec: CUgraphExec) -> CUresult {
    guard(|| try_cu!(driver()).exec_destroy(exec))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphLaunch(exec: CUgraphExec, s: CUstream) -> CUresult {
    guard(|| try_cu!(driver()).graph_launch(exec, s, false))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGraphLaunch_ptsz(exec: CUgraphExec, s: CUstream) -> CUresult {
    guard(|| try_cu!(driver()).graph_launch(exec, s, true))
}

fn error_text(code: CUresult) -> Option<(&'static CStr, &'static CStr)> {
    Some(match code {
        CUDA_SUCCESS => (c"CUDA_SUCCESS", c"no error"),
        CUDA_ERROR_INVALID_VALUE => (c"CUDA_ERROR_INVALID_VALUE", c"invalid argument"),
        CUDA_ERROR_OUT_OF_MEMORY => (c"CUDA_ERROR_OUT_OF_MEMORY", c"out of memory"),
        CUDA_ERROR_NOT_INITIALIZED => (c"CUDA_ERROR_NOT_INITIALIZED", c"initialization error"),
        CUDA_ERROR_DEINITIALIZED => (c"CUDA_ERROR_DEINITIALIZED", c"driver shutting down"),
        CUDA_ERROR_NO_DEVICE => (
            c"CUDA_ERROR_NO_DEVICE",
            c"no CUDA-capable device is detected",
        ),
        CUDA_ERROR_INVALID_DEVICE => (c"CUDA_ERROR_INVALID_DEVICE", c"invalid device ordinal"),
        CUDA_ERROR_INVALID_IMAGE => (
            c"CUDA_ERROR_INVALID_IMAGE",
            c"device kernel image is invalid",
        ),
        CUDA_ERROR_INVALID_CONTEXT => (c"CUDA_ERROR_INVALID_CONTEXT", c"invalid device context"),
        CUDA_ERROR_OPERATING_SYSTEM => (
            c"CUDA_ERROR_OPERATING_SYSTEM",
            c"OS call failed or operation not supported on this OS",
        ),
        CUDA_ERROR_INVALID_HANDLE => (c"CUDA_ERROR_INVALID_HANDLE", c"invalid resource handle"),
        CUDA_ERROR_ILLEGAL_STATE => (
            c"CUDA_ERROR_ILLEGAL_STATE",
            c"the operation cannot be performed in the present state",
        ),
        CUDA_ERROR_NOT_FOUND => (c"CUDA_ERROR_NOT_FOUND", c"named symbol not found"),
        CUDA_ERROR_NOT_READY => (c"CUDA_ERROR_NOT_READY", c"device not ready"),
        CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES => (
            c"CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
            c"too many resources requested for launch",
        ),
        CUDA_ERROR_NOT_SUPPORTED => (c"CUDA_ERROR_NOT_SUPPORTED", c"operation not supported"),
        CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED => (
            c"CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
            c"operation not permitted when stream is capturing",
        ),
        CUDA_ERROR_STREAM_CAPTURE_INVALIDATED => (
            c"CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
            c"operation failed due to a previous error during capture",
        ),
        CUDA_ERROR_UNKNOWN => (c"CUDA_ERROR_UNKNOWN", c"unknown error"),
        _ => return None,
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGetErrorName(code: CUresult, out: *mut *const c_char) -> CUresult {
    guard(|| match error_text(code) {
        Some((name, _)) => put(out, name.as_ptr()),
        None => {
            put(out, std::ptr::null());
            CUDA_ERROR_INVALID_VALUE
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGetErrorString(code: CUresult, out: *mut *const c_char) -> CUresult {
    guard(|| match error_text(code) {
        Some((_, text)) => put(out, text.as_ptr()),
        None => {
            put(out, std::ptr::null());
            CUDA_ERROR_INVALID_VALUE
        }
    })
}

/// One `cuGetProcAddress` table entry: base name, first CUDA version that maps the base name
/// to this function, whether it is the per-thread-default-stream variant, and the function.
struct Proc {
    name: &'static str,
    since: i32,
    ptds: bool,
    addr: *mut c_void,
}

macro_rules! procs {
    ($( $name:literal $since:literal $ptds:literal => $f:ident ),* $(,)?) => {
        fn proc_table() -> Vec<Proc> {
            vec![$( Proc { name: $name, since: $since, ptds: $ptds, addr: $f as *mut c_void } ),*]
        }
    };
}

procs! {
    "cuInit" 2000 false => cuInit,
    "cuDriverGetVersion" 2020 false => cuDriverGetVersion,
    "cuDeviceGet" 2000 false => cuDeviceGet,
    "cuDeviceGetCount" 2000 false => cuDeviceGetCount,
    "cuDeviceGetName" 2000 false => cuDeviceGetName,
    "cuDeviceGetAttribute" 2000 false => cuDeviceGetAttribute,
    "cuDeviceTotalMem" 3020 false => cuDeviceTotalMem_v2,
    "cuDevicePrimaryCtxRetain" 7000 false => cuDevicePrimaryCtxRetain,
    "cuDevicePrimaryCtxRelease" 7000 false => cuDevicePrimaryCtxRelease,
    "cuDevicePrimaryCtxRelease" 11000 false => cuDevicePrimaryCtxRelease_v2,
    "cuCtxCreate" 3020 false => cuCtxCreate_v2,
    "cuCtxDestroy" 4000 false => cuCtxDestroy_v2,
    "cuCtxSetCurrent" 4000 false => cuCtxSetCurrent,
    "cuCtxGetCurrent" 4000 false => cuCtxGetCurrent,
    "cuCtxPushCurrent" 4000 false => cuCtxPushCurrent_v2,
    "cuCtxPopCurrent" 4000 false => cuCtxPopCurrent_v2,
    "cuCtxGetDevice" 2000 false => cuCtxGetDevice,
    "cuCtxSynchronize" 2000 false => cuCtxSynchronize,
    "cuModuleLoadData" 2000 false => cuModuleLoadData,
    "cuModuleGetFunction" 2000 false => cuModuleGetFunction,
    "cuModuleUnload" 2000 false => cuModuleUnload,
    "cuStreamCreate" 2000 false => cuStreamCreate,
    "cuStreamDestroy" 4000 false => cuStreamDestroy_v2,
    "cuStreamSynchronize" 2000 false => cuStreamSynchronize,
    "cuStreamSynchronize" 7000 true => cuStreamSynchronize_ptsz,
    "cuLaunchKernel" 4000 false => cuLaunchKernel,
    "cuLaunchKernel" 7000 true => cuLaunchKernel_ptsz,
    "cuLaunchKernelEx" 11060 false => cuLaunchKernelEx,
    "cuLaunchKernelEx" 11060 true => cuLaunchKernelEx_ptsz,
    "cuLaunchCooperativeKernel" 9000 false => cuLaunchCooperativeKernel,
    "cuLaunchCooperativeKernel" 9000 true => cuLaunchCooperativeKernel_ptsz,
    "cuStreamBeginCapture" 10000 false => cuStreamBeginCapture,
    "cuStreamBeginCapture" 10010 false => cuStreamBeginCapture_v2,
    "cuStreamEndCapture" 10000 false => cuStreamEndCapture,
    "cuGraphCreate" 10000 false => cuGraphCreate,
    "cuGraphDestroy" 10000 false => cuGraphDestroy,
    "cuGraphAddKernelNode" 12000 false => cuGraphAddKernelNode_v2,
    "cuGraphGetNodes" 10000 false => cuGraphGetNodes,
    "cuGraphNodeGetType" 10000 false => cuGraphNodeGetType,
    "cuGraphKernelNodeGetParams" 12000 false => cuGraphKernelNodeGetParams_v2,
    "cuGraphInstantiate" 11000 false => cuGraphInstantiate_v2,
    "cuGraphInstantiate" 12000 false => cuGraphInstantiateWithFlags,
    "cuGraphInstantiateWithFlags" 11040 false => cuGraphInstantiateWithFlags,
    "cuGraphExecDestroy" 10000 false => cuGraphExecDestroy,
    "cuGraphLaunch" 10000 false => cuGraphLaunch,
    "cuGraphLaunch" 10000 true => cuGraphLaunch_ptsz,
    "cuGetErrorName" 6000 false => cuGetErrorName,
    "cuGetErrorString" 6000 false => cuGetErrorString,
    "cuGetProcAddress" 11030 false => cuGetProcAddress,
    "cuGetProcAddress" 12000 false => cuGetProcAddress_v2,
}

/// Finds `name` for `version` and `flags`: the newest entry not newer than `version`, taking the
/// `_ptsz` variant when `flags` asks for the per-thread default stream and one exists.
fn lookup(name: &CStr, version: i32, flags: u64) -> Result<*mut c_void, i32> {
    let name = name
        .to_str()
        .map_err(|_| CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND)?;
    let table = proc_table();
    let named: Vec<&Proc> = table.iter().filter(|p| p.name == name).collect();
    if named.is_empty() {
        return Err(CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    }
    let want_ptds = flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM != 0;
    let pick = |ptds: bool| {
        named
            .iter()
            .filter(|p| p.ptds == ptds && p.since <= version)
            .max_by_key(|p| p.since)
            .map(|p| p.addr)
    };
    let found = if want_ptds {
        pick(true).or_else(|| pick(false))
    } else {
        pick(false)
    };
    found.ok_or(CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT)
}

fn get_proc(
    sym: *const c_char,
    pfn: *mut *mut c_void,
    version: i32,
    flags: u64,
    status: *mut i32,
) -> CUresult {
    let Some(name) = cstr(sym) else {
        return CUDA_ERROR_INVALID_VALUE;
    };
    if pfn.is_null() || flags > 2 {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let (addr, st, code) = match lookup(name, version, flags) {
        Ok(a) => (a, CU_GET_PROC_ADDRESS_SUCCESS, CUDA_SUCCESS),
        Err(st) => (std::ptr::null_mut(), st, CUDA_ERROR_NOT_FOUND),
    };
    put(pfn, addr);
    if !status.is_null() {
        put(status, st);
    }
    code
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGetProcAddress(
    sym: *const c_char,
    pfn: *mut *mut c_void,
    version: i32,
    flags: u64,
) -> CUresult {
    guard(|| get_proc(sym, pfn, version, flags, std::ptr::null_mut()))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuGetProcAddress_v2(
    sym: *const c_char,
    pfn: *mut *mut c_void,
    version: i32,
    flags: u64,
    status: *mut i32,
) -> CUresult {
    guard(|| get_proc(sym, pfn, version, flags, status))
}

#[cfg(test)]
mod tests;
