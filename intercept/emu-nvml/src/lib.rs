//! TEST FIXTURE: NVML answers computed from the emulated GPU time line, as a stand-in
//! `libnvidia-ml.so.1` (`libsair_emu_nvml.so`; tests put a `libnvidia-ml.so.1` symlink to it on
//! `LD_LIBRARY_PATH`). Works with the `nvml-wrapper` crate.
//!
//! Device count, names and UUIDs come from `SAIR_EMU_GPUS`; utilisation and per-process
//! utilisation are measured on the time line written by `libsair_emu_cuda.so` (the
//! `SAIR_EMU_STATE` file), so they are what the emulated device actually did, not canned numbers.
//! Environment is read at `nvmlInit`.
//!
//! Where unsafe lives: `exports` (the `#[unsafe(no_mangle)]` C ABI, out-parameter writes,
//! output buffers). [`model`] is safe; the time line it reads (and its mmap) is
//! [`sair_cuda_abi::timeline`].

#[allow(unsafe_code)]
mod exports;
pub mod model;
