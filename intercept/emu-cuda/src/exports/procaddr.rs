//! Error names and strings, and `cuGetProcAddress(_v2)` with its version-aware table.

use super::events::*;
use super::launch::*;
use super::memory::*;
use super::*;

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
    "cuStreamIsCapturing" 10000 false => cuStreamIsCapturing,
    "cuStreamIsCapturing" 10000 true => cuStreamIsCapturing_ptsz,
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
    "cuMemAlloc" 3020 false => cuMemAlloc_v2,
    "cuMemFree" 3020 false => cuMemFree_v2,
    "cuMemGetInfo" 3020 false => cuMemGetInfo_v2,
    "cuMemcpyHtoD" 3020 false => cuMemcpyHtoD_v2,
    "cuMemcpyDtoH" 3020 false => cuMemcpyDtoH_v2,
    "cuMemcpyHtoDAsync" 3020 false => cuMemcpyHtoDAsync_v2,
    "cuMemcpyDtoHAsync" 3020 false => cuMemcpyDtoHAsync_v2,
    "cuMemsetD8" 3020 false => cuMemsetD8_v2,
    "cuStreamQuery" 2000 false => cuStreamQuery,
    "cuStreamQuery" 7000 true => cuStreamQuery_ptsz,
    "cuEventCreate" 2000 false => cuEventCreate,
    "cuEventDestroy" 4000 false => cuEventDestroy_v2,
    "cuEventRecord" 2000 false => cuEventRecord,
    "cuEventRecord" 7000 true => cuEventRecord_ptsz,
    "cuEventSynchronize" 2000 false => cuEventSynchronize,
    "cuEventQuery" 2000 false => cuEventQuery,
    "cuEventElapsedTime" 2000 false => cuEventElapsedTime,
    "cuStreamWaitEvent" 3020 false => cuStreamWaitEvent,
    "cuStreamWaitEvent" 7000 true => cuStreamWaitEvent_ptsz,
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
