//! GPU work for `sair-stage` through the real CUDA driver API, loaded at run time from
//! `libcuda.so.1` (a real driver, or the SAIR GPU emulator put first on `LD_LIBRARY_PATH`).
//!
//! This is the only module of the crate with `unsafe` code (the crate denies it elsewhere, see
//! docs/loadgen.md): C calls through function pointers from `dlsym`, out-parameters and the
//! kernel parameter array; each item allows it and each block carries a `// SAFETY:` comment.
//! Handles are kept as integers; the driver owns what they point to. The types and signatures
//! are those of `sair-cuda-abi`, the ABI the interceptor and the emulator speak too.
//!
//! Per request: make the primary context current on the calling thread, create a stream,
//! launch `kernels` kernels of `blocks` × `threads_per_block`, synchronize, destroy the stream.
//! Going through `cuLaunchKernel` and `cuStreamSynchronize` is what lets the SAIR interceptor
//! (LD_PRELOAD) throttle this server exactly as it would a real model server.

use libloading::Library;
use sair_cuda_abi::driver::{
    CUDA_SUCCESS, CUcontext, CUdevice, CUfunction, CUmodule, CUresult, CUstream, FnCtxSetCurrent,
    FnDeviceGet, FnDevicePrimaryCtxRetain, FnInit, FnLaunchKernel, FnModuleGetFunction,
    FnModuleLoadData, FnStreamCreate, FnStreamDestroy, FnStreamSynchronize,
};
use std::ffi::c_void;

/// A busy-loop kernel: each thread adds to a register `iters` times and stores nothing.
/// sm_50 PTX, loadable by any driver of the last decade (JIT-compiled on load).
const PTX: &[u8] = b".version 6.0
.target sm_50
.address_size 64

.visible .entry sair_spin(
    .param .u32 sair_spin_param_0
)
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;

    ld.param.u32 %r1, [sair_spin_param_0];
    mov.u32 %r2, 0;
    mov.u32 %r3, 0;
$L_loop:
    setp.ge.u32 %p1, %r2, %r1;
    @%p1 bra $L_done;
    add.u32 %r3, %r3, %r2;
    add.u32 %r2, %r2, 1;
    bra $L_loop;
$L_done:
    ret;
}
\0";

const KERNEL_NAME: &[u8] = b"sair_spin\0";

/// Why GPU work failed.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// `libcuda.so.1` could not be loaded.
    #[error(
        "cannot load libcuda.so.1 ({0}); install the NVIDIA driver or put the SAIR GPU emulator on LD_LIBRARY_PATH as libcuda.so.1"
    )]
    Load(#[source] libloading::Error),
    /// A driver entry point is missing.
    #[error("libcuda.so.1 has no {name}: {source}")]
    Symbol {
        /// Symbol name.
        name: &'static str,
        /// The loader's error.
        source: libloading::Error,
    },
    /// A driver call failed.
    #[error("{call} failed with CUresult {code}")]
    Call {
        /// The call.
        call: &'static str,
        /// The CUresult.
        code: i32,
    },
}

#[derive(Debug, Clone, Copy)]
struct Fns {
    ctx_set_current: FnCtxSetCurrent,
    stream_create: FnStreamCreate,
    stream_destroy: FnStreamDestroy,
    launch: FnLaunchKernel,
    stream_sync: FnStreamSynchronize,
}

/// GPU work of one shape, on device 0's primary context.
#[derive(Debug)]
pub struct Gpu {
    // Keeps the function pointers in `fns` valid; never unloaded while `Gpu` lives.
    _lib: Library,
    fns: Fns,
    /// CUcontext, as an integer (the driver owns it; it is thread-safe to use from any thread).
    ctx: usize,
    /// CUfunction.
    func: usize,
    kernels: u32,
    blocks: u32,
    threads: u32,
    iters: u32,
}

fn check(call: &'static str, code: CUresult) -> Result<(), GpuError> {
    if code == CUDA_SUCCESS {
        Ok(())
    } else {
        Err(GpuError::Call { call, code })
    }
}

/// Looks up `name` and copies the function pointer out.
///
/// # Safety
/// `T` must be the exact C signature of the symbol `name` in the CUDA driver API.
#[allow(unsafe_code)]
unsafe fn sym<T: Copy>(lib: &Library, name: &'static str) -> Result<T, GpuError> {
    let mut c = name.as_bytes().to_vec();
    c.push(0);
    // SAFETY: the caller guarantees T matches the symbol's C type; the copy stays valid while
    // `lib` is loaded, and `Gpu` keeps `lib` alive as long as it holds the pointers.
    unsafe { lib.get::<T>(&c) }
        .map(|s| *s)
        .map_err(|source| GpuError::Symbol { name, source })
}

impl Gpu {
    /// Loads `libcuda.so.1`, initialises the driver, retains device 0's primary context and
    /// loads the kernel. `kernels` launches of `blocks` × `threads` per [`Gpu::run`].
    #[allow(unsafe_code)]
    pub fn open(kernels: u32, blocks: u32, threads: u32, iters: u32) -> Result<Gpu, GpuError> {
        // SAFETY: loading the CUDA driver runs its initialisers, which have no preconditions.
        let lib = unsafe { Library::new("libcuda.so.1") }.map_err(GpuError::Load)?;
        // SAFETY: each type below is the `sair_cuda_abi::driver` signature of the symbol it is
        // looked up by, which is the driver API's documented one (cuda.h).
        let (init, device_get, retain, module_load, get_function, fns) = unsafe {
            (
                sym::<FnInit>(&lib, "cuInit")?,
                sym::<FnDeviceGet>(&lib, "cuDeviceGet")?,
                sym::<FnDevicePrimaryCtxRetain>(&lib, "cuDevicePrimaryCtxRetain")?,
                sym::<FnModuleLoadData>(&lib, "cuModuleLoadData")?,
                sym::<FnModuleGetFunction>(&lib, "cuModuleGetFunction")?,
                Fns {
                    ctx_set_current: sym(&lib, "cuCtxSetCurrent")?,
                    stream_create: sym(&lib, "cuStreamCreate")?,
                    stream_destroy: sym(&lib, "cuStreamDestroy_v2")?,
                    launch: sym(&lib, "cuLaunchKernel")?,
                    stream_sync: sym(&lib, "cuStreamSynchronize")?,
                },
            )
        };
        let mut dev: CUdevice = 0;
        let mut ctx: CUcontext = std::ptr::null_mut();
        let mut module: CUmodule = std::ptr::null_mut();
        let mut func: CUfunction = std::ptr::null_mut();
        // SAFETY: each call gets valid pointers to live locals for its out-parameters, the PTX
        // image is NUL-terminated as cuModuleLoadData requires, and the kernel name is a C
        // string. Handles are only passed back to the driver that returned them.
        unsafe {
            check("cuInit", init(0))?;
            check("cuDeviceGet", device_get(&mut dev, 0))?;
            check("cuDevicePrimaryCtxRetain", retain(&mut ctx, dev))?;
            check("cuCtxSetCurrent", (fns.ctx_set_current)(ctx))?;
            check(
                "cuModuleLoadData",
                module_load(&mut module, PTX.as_ptr().cast()),
            )?;
            check(
                "cuModuleGetFunction",
                get_function(&mut func, module, KERNEL_NAME.as_ptr().cast()),
            )?;
        }
        Ok(Gpu {
            _lib: lib,
            fns,
            ctx: ctx as usize,
            func: func as usize,
            kernels,
            blocks: blocks.max(1),
            threads: threads.max(1),
            iters,
        })
    }

    /// Launches the configured kernels on a new stream of the calling thread and waits for them.
    #[allow(unsafe_code)]
    pub fn run(&self) -> Result<(), GpuError> {
        let mut stream: CUstream = std::ptr::null_mut();
        let mut iters: u32 = self.iters;
        let mut params: [*mut c_void; 1] = [(&raw mut iters).cast()];
        // SAFETY: `ctx` and `func` came from this driver in `open` and are never released;
        // `stream` is a live local for the out-parameter; `params` holds one pointer to a live
        // u32, matching the kernel's single `.u32` parameter; `extra` is null as allowed.
        unsafe {
            check(
                "cuCtxSetCurrent",
                (self.fns.ctx_set_current)(self.ctx as CUcontext),
            )?;
            check("cuStreamCreate", (self.fns.stream_create)(&mut stream, 0))?;
            let mut result = Ok(());
            for _ in 0..self.kernels {
                let code = (self.fns.launch)(
                    self.func as CUfunction,
                    self.blocks,
                    1,
                    1,
                    self.threads,
                    1,
                    1,
                    0,
                    stream,
                    params.as_mut_ptr(),
                    std::ptr::null_mut(),
                );
                result = check("cuLaunchKernel", code);
                if result.is_err() {
                    break;
                }
            }
            let synced = check("cuStreamSynchronize", (self.fns.stream_sync)(stream));
            let destroyed = check("cuStreamDestroy_v2", (self.fns.stream_destroy)(stream));
            result.and(synced).and(destroyed)
        }
    }
}
