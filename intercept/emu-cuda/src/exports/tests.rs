//! The C ABI as a program sees it: result codes, lookups, the device model. One test function,
//! because the driver is initialised once per process and the first checks need it uninitialised.

use super::events::*;
use super::launch::*;
use super::memory::*;
use super::procaddr::*;
use super::*;
use crate::driver::{Config, init_with};
use std::ptr::null_mut;

fn config() -> Config {
    Config {
        gpus: 2,
        ns_per_block: 10_000,
        state_path: std::env::temp_dir()
            .join(format!("sair-emu-cuda-unit-{}.state", std::process::id())),
    }
}

fn lookup_fn(name: &CStr, version: i32, flags: u64) -> (CUresult, *mut c_void, i32) {
    let mut p = null_mut();
    let mut status = -1;
    let r = cuGetProcAddress_v2(name.as_ptr(), &mut p, version, flags, &mut status);
    (r, p, status)
}

#[test]
fn driver_api_behaves_like_the_real_one() {
    // Before cuInit.
    let mut n = 0;
    assert_eq!(cuDeviceGetCount(&mut n), CUDA_ERROR_NOT_INITIALIZED);
    let mut v = 0;
    assert_eq!(
        cuDriverGetVersion(&mut v),
        CUDA_SUCCESS,
        "allowed before cuInit"
    );
    let (r, p, _) = lookup_fn(c"cuInit", 12040, 0);
    assert_eq!(
        (r, p),
        (CUDA_SUCCESS, cuInit as *mut c_void),
        "allowed before cuInit"
    );

    assert_eq!(init_with(1, config), CUDA_ERROR_INVALID_VALUE);
    assert_eq!(init_with(0, config), CUDA_SUCCESS);
    assert_eq!(cuDeviceGetCount(&mut n), CUDA_SUCCESS);
    assert_eq!(n, 2);
    let mut dev = -1;
    assert_eq!(cuDeviceGet(&mut dev, 2), CUDA_ERROR_INVALID_DEVICE);
    assert_eq!(cuDeviceGet(&mut dev, 1), CUDA_SUCCESS);
    let mut name = [0 as c_char; 64];
    assert_eq!(cuDeviceGetName(name.as_mut_ptr(), 64, 1), CUDA_SUCCESS);
    // SAFETY: the call above wrote a NUL-terminated string into `name`.
    let text = unsafe { CStr::from_ptr(name.as_ptr()) };
    assert_eq!(text, c"SAIR Emulated GPU 1");
    let mut attr = 0;
    assert_eq!(
        cuDeviceGetAttribute(&mut attr, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 0),
        0
    );
    assert_eq!(attr, 1024);
    assert_eq!(
        cuDeviceGetAttribute(&mut attr, 9999, 0),
        CUDA_ERROR_INVALID_VALUE
    );

    // No current context yet.
    let mut module = null_mut();
    assert_eq!(
        cuModuleLoadData(&mut module, c"x".as_ptr().cast()),
        CUDA_ERROR_INVALID_CONTEXT
    );
    assert_eq!(cuCtxSynchronize(), CUDA_ERROR_INVALID_CONTEXT);
    let mut ctx = null_mut();
    assert_eq!(cuDevicePrimaryCtxRetain(&mut ctx, 0), CUDA_SUCCESS);
    assert_eq!(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
    let mut cur = null_mut();
    assert_eq!(cuCtxGetCurrent(&mut cur), CUDA_SUCCESS);
    assert_eq!(cur, ctx);
    assert_eq!(
        cuModuleLoadData(&mut module, std::ptr::null()),
        CUDA_ERROR_INVALID_VALUE
    );
    assert_eq!(
        cuModuleLoadData(&mut module, c"any bytes".as_ptr().cast()),
        CUDA_SUCCESS
    );
    let mut func = null_mut();
    assert_eq!(
        cuModuleGetFunction(&mut func, module, c"k".as_ptr()),
        CUDA_SUCCESS
    );
    assert_eq!(
        cuModuleGetFunction(&mut func, 0x42 as CUmodule, c"k".as_ptr()),
        CUDA_ERROR_INVALID_HANDLE
    );
    assert_eq!(
        cuModuleGetFunction(&mut func, module, c"k".as_ptr()),
        CUDA_SUCCESS
    );

    // Launch validation.
    let np = null_mut();
    assert_eq!(
        cuLaunchKernel(0x42 as CUfunction, 1, 1, 1, 1, 1, 1, 0, null_mut(), np, np),
        CUDA_ERROR_INVALID_HANDLE
    );
    assert_eq!(
        cuLaunchKernel(func, 0, 1, 1, 1, 1, 1, 0, null_mut(), np, np),
        CUDA_ERROR_INVALID_VALUE
    );
    assert_eq!(
        cuLaunchKernel(func, 1, 1, 1, 2048, 1, 1, 0, null_mut(), np, np),
        CUDA_ERROR_INVALID_VALUE
    );
    assert_eq!(
        cuLaunchKernel(func, 1, 1, 1, 1, 1, 1, 0, 0x77 as CUstream, np, np),
        CUDA_ERROR_INVALID_HANDLE
    );

    // The device model: 100 blocks × 10 µs = 1 ms per kernel, serialized.
    let tl = crate::driver::driver().unwrap().timeline;
    let busy0 = tl.devices[0]
        .busy_ns
        .load(std::sync::atomic::Ordering::Relaxed);
    let t = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(
            cuLaunchKernel(func, 100, 1, 1, 32, 1, 1, 0, null_mut(), np, np),
            CUDA_SUCCESS
        );
    }
    assert!(
        t.elapsed() < std::time::Duration::from_millis(4),
        "launches are asynchronous"
    );
    assert_eq!(cuCtxSynchronize(), CUDA_SUCCESS);
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(5),
        "synchronize waits for the device"
    );
    let busy1 = tl.devices[0]
        .busy_ns
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(busy1 - busy0, 5_000_000);

    // Graph by stream capture: launches are recorded, not run, until cuGraphLaunch.
    let mut s = null_mut();
    assert_eq!(cuStreamCreate(&mut s, 0), CUDA_SUCCESS);
    assert_eq!(
        cuStreamBeginCapture_v2(null_mut(), 0),
        CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
    );
    assert_eq!(cuStreamBeginCapture_v2(s, 0), CUDA_SUCCESS);
    let mut capturing = -1;
    assert_eq!(cuStreamIsCapturing(s, &mut capturing), CUDA_SUCCESS);
    assert_eq!(capturing, 1);
    assert_eq!(
        cuLaunchKernel(func, 10, 1, 1, 32, 1, 1, 0, s, np, np),
        CUDA_SUCCESS
    );
    assert_eq!(
        cuLaunchKernel(func, 20, 1, 1, 32, 1, 1, 0, s, np, np),
        CUDA_SUCCESS
    );
    assert_eq!(
        cuStreamSynchronize(s),
        CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
    );
    let mut g = null_mut();
    assert_eq!(cuStreamEndCapture(s, &mut g), CUDA_SUCCESS);
    assert_eq!(cuStreamEndCapture(s, &mut g), CUDA_ERROR_ILLEGAL_STATE);
    assert_eq!(cuStreamIsCapturing(s, &mut capturing), CUDA_SUCCESS);
    assert_eq!(capturing, 0);
    assert_eq!(
        tl.devices[0]
            .busy_ns
            .load(std::sync::atomic::Ordering::Relaxed),
        busy1
    );
    let mut count = 0usize;
    assert_eq!(cuGraphGetNodes(g, null_mut(), &mut count), CUDA_SUCCESS);
    assert_eq!(count, 2);
    let mut nodes = [null_mut(); 2];
    assert_eq!(
        cuGraphGetNodes(g, nodes.as_mut_ptr(), &mut count),
        CUDA_SUCCESS
    );
    let mut ty = -1;
    assert_eq!(cuGraphNodeGetType(nodes[1], &mut ty), CUDA_SUCCESS);
    assert_eq!(ty, CU_GRAPH_NODE_TYPE_KERNEL);
    let mut exec = null_mut();
    assert_eq!(cuGraphInstantiateWithFlags(&mut exec, g, 0), CUDA_SUCCESS);
    assert_eq!(cuGraphLaunch(exec, s), CUDA_SUCCESS);
    assert_eq!(cuStreamSynchronize(s), CUDA_SUCCESS);
    let busy2 = tl.devices[0]
        .busy_ns
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(busy2 - busy1, 300_000, "30 blocks × 10 µs");
    assert_eq!(
        cuGraphLaunch(0x99 as CUgraphExec, s),
        CUDA_ERROR_INVALID_VALUE
    );

    // cuGetProcAddress: versions, PTDS flag, unknown symbols.
    let (r, p, st) = lookup_fn(
        c"cuLaunchKernel",
        12040,
        CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
    );
    assert_eq!(
        (r, p, st),
        (CUDA_SUCCESS, cuLaunchKernel_ptsz as *mut c_void, 0)
    );
    let (_, p, _) = lookup_fn(c"cuLaunchKernel", 12040, 0);
    assert_eq!(p, cuLaunchKernel as *mut c_void);
    let (_, p, _) = lookup_fn(c"cuCtxCreate", 12040, 0);
    assert_eq!(p, cuCtxCreate_v2 as *mut c_void);
    let (_, p, _) = lookup_fn(c"cuGraphInstantiate", 11080, 0);
    assert_eq!(p, cuGraphInstantiate_v2 as *mut c_void);
    let (_, p, _) = lookup_fn(c"cuGraphInstantiate", 12040, 0);
    assert_eq!(p, cuGraphInstantiateWithFlags as *mut c_void);
    let (_, p, _) = lookup_fn(c"cuGetProcAddress", 12040, 0);
    assert_eq!(p, cuGetProcAddress_v2 as *mut c_void);
    let (r, p, st) = lookup_fn(c"cuNoSuchThing", 12040, 0);
    assert_eq!(
        (r, p, st),
        (
            CUDA_ERROR_NOT_FOUND,
            null_mut(),
            CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND
        )
    );
    let (r, _, st) = lookup_fn(c"cuLaunchKernelEx", 11000, 0);
    assert_eq!(
        (r, st),
        (
            CUDA_ERROR_NOT_FOUND,
            CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
        )
    );

    // Device memory: real bytes, checked ranges.
    let mut dptr = 0u64;
    assert_eq!(cuMemAlloc_v2(&mut dptr, 0), CUDA_ERROR_INVALID_VALUE);
    assert_eq!(cuMemAlloc_v2(&mut dptr, 64), CUDA_SUCCESS);
    let (mut free, mut total) = (0usize, 0usize);
    assert_eq!(cuMemGetInfo_v2(&mut free, &mut total), CUDA_SUCCESS);
    assert_eq!(total - free, 64);
    let src: Vec<u8> = (0..64).collect();
    assert_eq!(cuMemcpyHtoD_v2(dptr, src.as_ptr().cast(), 64), CUDA_SUCCESS);
    assert_eq!(cuMemsetD8_v2(dptr + 60, 0xff, 4), CUDA_SUCCESS);
    let mut back = vec![0u8; 64];
    assert_eq!(
        cuMemcpyDtoH_v2(back.as_mut_ptr().cast(), dptr, 64),
        CUDA_SUCCESS
    );
    assert_eq!(&back[..60], &src[..60]);
    assert_eq!(&back[60..], &[0xff; 4]);
    assert_eq!(
        cuMemcpyDtoH_v2(back.as_mut_ptr().cast(), dptr + 1, 64),
        CUDA_ERROR_INVALID_VALUE,
        "range past the allocation"
    );
    assert_eq!(cuMemFree_v2(dptr + 1), CUDA_ERROR_INVALID_VALUE);
    assert_eq!(cuMemFree_v2(dptr), CUDA_SUCCESS);
    assert_eq!(cuMemFree_v2(dptr), CUDA_ERROR_INVALID_VALUE);

    // cuStreamQuery: not ready while a kernel runs, ready after.
    assert_eq!(
        cuLaunchKernel(func, 1000, 1, 1, 32, 1, 1, 0, s, np, np),
        CUDA_SUCCESS
    );
    assert_eq!(cuStreamQuery(s), CUDA_ERROR_NOT_READY);
    assert_eq!(cuStreamSynchronize(s), CUDA_SUCCESS);
    assert_eq!(cuStreamQuery(s), CUDA_SUCCESS);

    // Events time the device: 2 kernels of 1000 blocks × 10 µs = 20 ms between the records.
    let (mut e0, mut e1) = (null_mut(), null_mut());
    assert_eq!(cuEventCreate(&mut e0, 0), CUDA_SUCCESS);
    assert_eq!(cuEventCreate(&mut e1, 0), CUDA_SUCCESS);
    assert_eq!(cuEventRecord(e0, s), CUDA_SUCCESS);
    for _ in 0..2 {
        assert_eq!(
            cuLaunchKernel(func, 1000, 1, 1, 32, 1, 1, 0, s, np, np),
            CUDA_SUCCESS
        );
    }
    assert_eq!(cuEventRecord(e1, s), CUDA_SUCCESS);
    assert_eq!(cuEventQuery(e1), CUDA_ERROR_NOT_READY);
    let mut ms = 0f32;
    assert_eq!(cuEventElapsedTime(&mut ms, e0, e1), CUDA_ERROR_NOT_READY);
    assert_eq!(cuEventSynchronize(e1), CUDA_SUCCESS);
    assert_eq!(cuEventQuery(e1), CUDA_SUCCESS);
    assert_eq!(cuEventElapsedTime(&mut ms, e0, e1), CUDA_SUCCESS);
    assert!((19.9..=20.1).contains(&ms), "elapsed {ms} ms");
    // A second stream that waits on e1 completes no earlier than e1.
    let mut s2 = null_mut();
    assert_eq!(cuStreamCreate(&mut s2, 0), CUDA_SUCCESS);
    assert_eq!(cuStreamWaitEvent(s2, e1, 0), CUDA_SUCCESS);
    assert_eq!(cuStreamQuery(s2), CUDA_SUCCESS, "e1 already completed");
    assert_eq!(
        cuStreamWaitEvent(s2, 0x55 as CUevent, 0),
        CUDA_ERROR_INVALID_HANDLE
    );
    assert_eq!(cuEventDestroy_v2(e0), CUDA_SUCCESS);
    assert_eq!(cuEventDestroy_v2(e0), CUDA_ERROR_INVALID_HANDLE);

    let mut text = std::ptr::null();
    assert_eq!(
        cuGetErrorName(CUDA_ERROR_INVALID_CONTEXT, &mut text),
        CUDA_SUCCESS
    );
    // SAFETY: a static NUL-terminated string from the table.
    let name = unsafe { CStr::from_ptr(text) };
    assert_eq!(name, c"CUDA_ERROR_INVALID_CONTEXT");
    assert_eq!(cuGetErrorName(12345, &mut text), CUDA_ERROR_INVALID_VALUE);

    let _ = std::fs::remove_file(config().state_path);
}
