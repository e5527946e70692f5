//! Device memory entry points (`cuMemAlloc_v2`, `cuMemFree_v2`, `cuMemGetInfo_v2`, copies and
//! memset) and `cuStreamQuery`.

use super::*;

/// `CUdeviceptr`.
pub type CUdeviceptr = u64;

#[unsafe(no_mangle)]
pub extern "C" fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, bytes: usize) -> CUresult {
    guard(|| {
        if dptr.is_null() {
            return CUDA_ERROR_INVALID_VALUE;
        }
        put(dptr, try_cu!(try_cu!(driver()).mem_alloc(bytes)))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemFree_v2(dptr: CUdeviceptr) -> CUresult {
    guard(|| try_cu!(driver()).mem_free(dptr))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
    guard(|| {
        let (f, t) = try_cu!(try_cu!(driver()).mem_info());
        let r = put(free, f as usize);
        if r != CUDA_SUCCESS {
            return r;
        }
        put(total, t as usize)
    })
}

fn htod(dst: CUdeviceptr, src: *const c_void, bytes: usize) -> CUresult {
    if src.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let d = try_cu!(driver());
    try_cu!(d.with_device_range(dst, bytes, |to| {
        // SAFETY: `to` addresses `bytes` bytes inside a live allocation (checked under the
        // registry lock); `src` is the caller's readable host buffer of `bytes` bytes per the
        // API contract; host and emulated device memory are distinct buffers.
        unsafe { std::ptr::copy_nonoverlapping(src.cast::<u8>(), to, bytes) }
    }));
    CUDA_SUCCESS
}

fn dtoh(dst: *mut c_void, src: CUdeviceptr, bytes: usize) -> CUresult {
    if dst.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let d = try_cu!(driver());
    try_cu!(d.with_device_range(src, bytes, |from| {
        // SAFETY: `from` addresses `bytes` bytes inside a live allocation (checked under the
        // registry lock); `dst` is the caller's writable host buffer of `bytes` bytes.
        unsafe { std::ptr::copy_nonoverlapping(from.cast_const(), dst.cast::<u8>(), bytes) }
    }));
    CUDA_SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemcpyHtoD_v2(dst: CUdeviceptr, src: *const c_void, bytes: usize) -> CUresult {
    guard(|| htod(dst, src, bytes))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, bytes: usize) -> CUresult {
    guard(|| dtoh(dst, src, bytes))
}

/// Asynchronous copies complete before returning (the emulated device has no copy engine).
#[unsafe(no_mangle)]
pub extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    bytes: usize,
    _s: CUstream,
) -> CUresult {
    guard(|| htod(dst, src, bytes))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemcpyDtoHAsync_v2(
    dst: *mut c_void,
    src: CUdeviceptr,
    bytes: usize,
    _s: CUstream,
) -> CUresult {
    guard(|| dtoh(dst, src, bytes))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemsetD8_v2(dst: CUdeviceptr, value: u8, n: usize) -> CUresult {
    guard(|| {
        let d = try_cu!(driver());
        try_cu!(d.with_device_range(dst, n, |to| {
            // SAFETY: `to` addresses `n` bytes inside a live allocation (checked under the lock).
            unsafe { std::ptr::write_bytes(to, value, n) }
        }));
        CUDA_SUCCESS
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamQuery(s: CUstream) -> CUresult {
    guard(|| try_cu!(driver()).stream_query(s, false))
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamQuery_ptsz(s: CUstream) -> CUresult {
    guard(|| try_cu!(driver()).stream_query(s, true))
}
