//! The CUDA driver ABI as SAIR speaks it, and the emulated GPU's shared time line.
//!
//! - [`driver`]: the slice of `cuda.h` used by the interceptor (`sair-intercept`), the emulator
//!   (`sair-emu-cuda`), the test launcher (`sair-emu-tools`) and `sair-stage`'s GPU work
//!   (`sair-loadgen`): result codes, opaque handles, the structs passed by pointer, flag values
//!   and the function-pointer types of the entry points they call or hook.
//! - [`timeline`]: the emulator's device time lines in a shared-memory file, written by
//!   `libsair_emu_cuda.so` and read by `libsair_emu_nvml.so` and the test launcher.
//!
//! A plain library: it exports no C symbol (so linking it into the `cdylib`s cannot make one of
//! them export the other's hooks), calls no driver, holds no policy and logs nothing.
//!
//! Where unsafe lives: only in [`timeline`] (`mmap` of the state file and the cast of the mapping
//! to `&TimelineLayout`, `kill(pid, 0)`, `getuid`, `clock_gettime`); each item allows it and
//! each block carries a `// SAFETY:` comment. [`driver`] is declarations only.

pub mod driver;
pub mod timeline;
