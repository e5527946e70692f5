//! TEST FIXTURE: an emulated, serialized GPU exposed as a stand-in `libcuda.so.1`
//! (`libsair_emu_cuda.so`; tests put a `libcuda.so.1` symlink to it on `LD_LIBRARY_PATH`).
//!
//! Programs written against the CUDA driver API run on it unchanged: `cuInit` → `cuDeviceGet` →
//! `cuCtxCreate_v2` or the primary context → `cuModuleLoadData` (any bytes) →
//! `cuModuleGetFunction` → `cuLaunchKernel`(`Ex`, `Cooperative`, `_ptsz`) → synchronize, stream
//! capture into graphs, explicit graphs, `cuGraphLaunch`, `cuGetProcAddress(_v2)`, with `CUresult`
//! codes as the real driver returns them. Kernels run one at a time on a device time line kept in
//! a shared-memory file ([`sair_cuda_abi::timeline`]), so several processes contend for one
//! emulated GPU: a launch reserves `[start, end)` after the previous kernel with a CAS on the
//! device's `busy_until`, duration = grid blocks × `SAIR_EMU_NS_PER_BLOCK`; synchronize sleeps,
//! then spins, until the last end. Environment (`SAIR_EMU_GPUS`, `SAIR_EMU_NS_PER_BLOCK`, `SAIR_EMU_STATE`)
//! is read once, at `cuInit`.
//!
//! It does no real computation and must never be installed where a real driver is expected.
//!
//! The ABI types and the time line come from `sair-cuda-abi`.
//!
//! Where unsafe lives: `exports` (the `#[unsafe(no_mangle)]` C ABI: out-parameter writes,
//! C strings, structs read by pointer) and [`driver`] (`pthread_atfork`); the time line's
//! mmap is in `sair-cuda-abi`.

pub mod driver;
#[allow(unsafe_code)]
mod exports;
