//! The exported C ABI of the stand-in `libcuda.so.1`. Each function converts raw pointers and
//! calls [`crate::driver`]; each runs inside [`guard`] (`catch_unwind`), so a bug answers
//! `CUDA_ERROR_UNKNOWN` instead of unwinding into C.
//!
//! Unsafe here: `#[unsafe(no_mangle)]` on every export, [`put`] (writing an out-parameter the
//! caller passed, after a null check), [`cstr`] (reading a caller's C string) and reading the
//! structs passed by pointer (`CUlaunchConfig`, kernel node params).

use crate::driver::{KernelNode, driver, init};
use sair_cuda_abi::driver::*;
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

mod events;
mod launch;
mod memory;
mod procaddr;

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

#[cfg(test)]
mod tests;
