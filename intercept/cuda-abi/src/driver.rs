//! The slice of the CUDA driver ABI (`cuda.h`) that SAIR speaks: result codes, opaque handles,
//! the structs passed by pointer, flag values and the C signatures of the entry points. Plain
//! data and constants: nothing here calls anything.

use std::ffi::c_void;

/// `CUresult`.
pub type CUresult = i32;
/// `CUdevice` (an ordinal).
pub type CUdevice = i32;
/// Opaque `CUcontext`.
pub type CUcontext = *mut c_void;
/// Opaque `CUmodule`.
pub type CUmodule = *mut c_void;
/// Opaque `CUfunction`.
pub type CUfunction = *mut c_void;
/// Opaque `CUstream`.
pub type CUstream = *mut c_void;
/// Opaque `CUgraph`.
pub type CUgraph = *mut c_void;
/// Opaque `CUgraphNode`.
pub type CUgraphNode = *mut c_void;
/// Opaque `CUgraphExec`.
pub type CUgraphExec = *mut c_void;
/// Opaque `CUevent`.
pub type CUevent = *mut c_void;
/// Opaque `CUkernel`.
pub type CUkernel = *mut c_void;

pub const CUDA_SUCCESS: CUresult = 0;
pub const CUDA_ERROR_INVALID_VALUE: CUresult = 1;
pub const CUDA_ERROR_OUT_OF_MEMORY: CUresult = 2;
pub const CUDA_ERROR_NOT_INITIALIZED: CUresult = 3;
pub const CUDA_ERROR_DEINITIALIZED: CUresult = 4;
pub const CUDA_ERROR_NO_DEVICE: CUresult = 100;
pub const CUDA_ERROR_INVALID_DEVICE: CUresult = 101;
pub const CUDA_ERROR_INVALID_IMAGE: CUresult = 200;
pub const CUDA_ERROR_INVALID_CONTEXT: CUresult = 201;
pub const CUDA_ERROR_OPERATING_SYSTEM: CUresult = 304;
pub const CUDA_ERROR_INVALID_HANDLE: CUresult = 400;
pub const CUDA_ERROR_ILLEGAL_STATE: CUresult = 401;
pub const CUDA_ERROR_NOT_FOUND: CUresult = 500;
pub const CUDA_ERROR_NOT_READY: CUresult = 600;
pub const CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: CUresult = 701;
pub const CUDA_ERROR_NOT_SUPPORTED: CUresult = 801;
pub const CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED: CUresult = 900;
pub const CUDA_ERROR_STREAM_CAPTURE_INVALIDATED: CUresult = 901;
pub const CUDA_ERROR_UNKNOWN: CUresult = 999;

/// `cuGetProcAddress` flags.
pub const CU_GET_PROC_ADDRESS_DEFAULT: u64 = 0;
pub const CU_GET_PROC_ADDRESS_LEGACY_STREAM: u64 = 1;
pub const CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM: u64 = 2;

/// `CUdriverProcAddressQueryResult`.
pub const CU_GET_PROC_ADDRESS_SUCCESS: i32 = 0;
pub const CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND: i32 = 1;
pub const CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT: i32 = 2;

/// Special stream handles.
pub const CU_STREAM_LEGACY: usize = 0x1;
pub const CU_STREAM_PER_THREAD: usize = 0x2;

/// `CUgraphNodeType` values used here.
pub const CU_GRAPH_NODE_TYPE_KERNEL: i32 = 0;

/// `CUdevice_attribute` values the emulator answers.
pub const CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: i32 = 1;
pub const CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: i32 = 5;
pub const CU_DEVICE_ATTRIBUTE_WARP_SIZE: i32 = 10;
pub const CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: i32 = 16;
pub const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: i32 = 75;
pub const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: i32 = 76;

/// `CUlaunchAttribute` (opaque here: 8-byte id + 64-byte value union).
#[repr(C)]
#[derive(Debug)]
pub struct CUlaunchAttribute {
    pub id: i32,
    pub pad: [u8; 4],
    pub value: [u8; 64],
}

/// `CUlaunchConfig` (CUDA ≥ 11.8).
#[repr(C)]
#[derive(Debug)]
pub struct CUlaunchConfig {
    pub grid_dim_x: u32,
    pub grid_dim_y: u32,
    pub grid_dim_z: u32,
    pub block_dim_x: u32,
    pub block_dim_y: u32,
    pub block_dim_z: u32,
    pub shared_mem_bytes: u32,
    pub h_stream: CUstream,
    pub attrs: *mut CUlaunchAttribute,
    pub num_attrs: u32,
}

/// `CUDA_KERNEL_NODE_PARAMS_v2` (CUDA ≥ 12.0); v1 is its prefix without `kern`/`ctx`.
#[repr(C)]
#[derive(Debug)]
pub struct CudaKernelNodeParams {
    pub func: CUfunction,
    pub grid_dim_x: u32,
    pub grid_dim_y: u32,
    pub grid_dim_z: u32,
    pub block_dim_x: u32,
    pub block_dim_y: u32,
    pub block_dim_z: u32,
    pub shared_mem_bytes: u32,
    pub kernel_params: *mut *mut c_void,
    pub extra: *mut *mut c_void,
    pub kern: CUkernel,
    pub ctx: CUcontext,
}

// The structs above are read from and written to C callers: pin their layout to cuda.h's
// (x86-64 / aarch64 Linux).
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<CUlaunchAttribute>() == 72);
    assert!(offset_of!(CUlaunchAttribute, value) == 8);
    assert!(size_of::<CUlaunchConfig>() == 56);
    assert!(offset_of!(CUlaunchConfig, shared_mem_bytes) == 24);
    assert!(offset_of!(CUlaunchConfig, h_stream) == 32);
    assert!(offset_of!(CUlaunchConfig, attrs) == 40);
    assert!(offset_of!(CUlaunchConfig, num_attrs) == 48);
    assert!(size_of::<CudaKernelNodeParams>() == 72);
    assert!(offset_of!(CudaKernelNodeParams, grid_dim_x) == 8);
    assert!(offset_of!(CudaKernelNodeParams, shared_mem_bytes) == 32);
    assert!(offset_of!(CudaKernelNodeParams, kernel_params) == 40);
    assert!(offset_of!(CudaKernelNodeParams, extra) == 48);
    assert!(offset_of!(CudaKernelNodeParams, kern) == 56);
    assert!(offset_of!(CudaKernelNodeParams, ctx) == 64);
};

/// The shape of a launch: what both the device model and the cost model need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchShape {
    pub grid: [u32; 3],
    pub block: [u32; 3],
}

impl LaunchShape {
    /// Blocks in the grid.
    #[inline]
    pub fn blocks(&self) -> u64 {
        self.grid.iter().map(|&d| u64::from(d)).product()
    }

    /// Threads per block.
    #[inline]
    pub fn threads(&self) -> u64 {
        self.block.iter().map(|&d| u64::from(d)).product()
    }
}

/// `cuLaunchKernel`.
pub type FnLaunchKernel = unsafe extern "C" fn(
    CUfunction,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    CUstream,
    *mut *mut c_void,
    *mut *mut c_void,
) -> CUresult;
/// `cuLaunchKernelEx`.
pub type FnLaunchKernelEx = unsafe extern "C" fn(
    *const CUlaunchConfig,
    CUfunction,
    *mut *mut c_void,
    *mut *mut c_void,
) -> CUresult;
/// `cuLaunchCooperativeKernel`.
pub type FnLaunchCooperativeKernel = unsafe extern "C" fn(
    CUfunction,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    CUstream,
    *mut *mut c_void,
) -> CUresult;
/// `cuGraphLaunch`.
pub type FnGraphLaunch = unsafe extern "C" fn(CUgraphExec, CUstream) -> CUresult;
/// `cuGetProcAddress` (CUDA 11.3+).
pub type FnGetProcAddress =
    unsafe extern "C" fn(*const std::ffi::c_char, *mut *mut c_void, i32, u64) -> CUresult;
/// `cuGetProcAddress_v2` (CUDA 12.0+).
pub type FnGetProcAddressV2 =
    unsafe extern "C" fn(*const std::ffi::c_char, *mut *mut c_void, i32, u64, *mut i32) -> CUresult;
/// `cuGraphInstantiateWithFlags`.
pub type FnGraphInstantiateWithFlags =
    unsafe extern "C" fn(*mut CUgraphExec, CUgraph, u64) -> CUresult;
/// `cuGraphInstantiate_v2` (CUDA 11).
pub type FnGraphInstantiateV2 = unsafe extern "C" fn(
    *mut CUgraphExec,
    CUgraph,
    *mut CUgraphNode,
    *mut std::ffi::c_char,
    usize,
) -> CUresult;
/// `cuGraphInstantiateWithParams` (CUDA 12); the params struct is passed through untouched.
pub type FnGraphInstantiateWithParams =
    unsafe extern "C" fn(*mut CUgraphExec, CUgraph, *mut c_void) -> CUresult;
/// `cuGraphGetNodes`.
pub type FnGraphGetNodes = unsafe extern "C" fn(CUgraph, *mut CUgraphNode, *mut usize) -> CUresult;
/// `cuGraphNodeGetType`.
pub type FnGraphNodeGetType = unsafe extern "C" fn(CUgraphNode, *mut i32) -> CUresult;
/// `cuGraphKernelNodeGetParams_v2`.
pub type FnGraphKernelNodeGetParams =
    unsafe extern "C" fn(CUgraphNode, *mut CudaKernelNodeParams) -> CUresult;
/// `cuGraphExecDestroy`.
pub type FnGraphExecDestroy = unsafe extern "C" fn(CUgraphExec) -> CUresult;

// Set-up entry points, as programs call them (`sair-stage`'s GPU work, the test launcher).

/// `cuInit`.
pub type FnInit = unsafe extern "C" fn(u32) -> CUresult;
/// `cuDeviceGet`.
pub type FnDeviceGet = unsafe extern "C" fn(*mut CUdevice, i32) -> CUresult;
/// `cuDevicePrimaryCtxRetain`.
pub type FnDevicePrimaryCtxRetain = unsafe extern "C" fn(*mut CUcontext, CUdevice) -> CUresult;
/// `cuCtxCreate_v2`.
pub type FnCtxCreate = unsafe extern "C" fn(*mut CUcontext, u32, CUdevice) -> CUresult;
/// `cuCtxSetCurrent`.
pub type FnCtxSetCurrent = unsafe extern "C" fn(CUcontext) -> CUresult;
/// `cuCtxSynchronize`.
pub type FnCtxSynchronize = unsafe extern "C" fn() -> CUresult;
/// `cuModuleLoadData` (the image: PTX text, NUL-terminated, or a cubin/fatbin).
pub type FnModuleLoadData = unsafe extern "C" fn(*mut CUmodule, *const c_void) -> CUresult;
/// `cuModuleGetFunction`.
pub type FnModuleGetFunction =
    unsafe extern "C" fn(*mut CUfunction, CUmodule, *const std::ffi::c_char) -> CUresult;
/// `cuStreamCreate`.
pub type FnStreamCreate = unsafe extern "C" fn(*mut CUstream, u32) -> CUresult;
/// `cuStreamDestroy_v2`.
pub type FnStreamDestroy = unsafe extern "C" fn(CUstream) -> CUresult;
/// `cuStreamSynchronize`.
pub type FnStreamSynchronize = unsafe extern "C" fn(CUstream) -> CUresult;
