//! `libsair_intercept.so`: the `LD_PRELOAD` interposer that throttles CUDA kernel launches with
//! the shared-memory token bucket of [`sair_shm`].
//!
//! It exports the launch functions of the driver API (`cuLaunchKernel`, `cuLaunchKernelEx`,
//! `cuLaunchCooperativeKernel`, their `_ptsz` variants, `cuGraphLaunch(_ptsz)`), the graph
//! instantiate/destroy functions it needs to cost graphs, and wrappers of `dlsym` and
//! `cuGetProcAddress(_v2)` that hand out those hooks, so launches reached through any lookup path
//! are charged. All of it comes from one table in `hooks`.
//!
//! The launch path (`hooks::charge` → [`limits::grant`]) makes no system call (the clock is the
//! vDSO), takes no lock, allocates nothing, reads no environment and logs nothing; a throttled
//! launch spins briefly, then sleeps in steps of at most 200 µs. Anything wrong with the segment
//! makes launches pass through, with the reason recorded once (`attach`). The crate must not
//! contain policy: rates come from the agent, through the segment.
//!
//! Where unsafe lives: `hooks` (the `#[unsafe(no_mangle)]` exports, calls of the real
//! functions, reading `CUlaunchConfig` and out-parameters), `real` (`dlopen`/`dlvsym`/`dlsym`
//! and turning addresses into function pointers), `attach` (dereferencing the leaked segment
//! pointer, `pthread_atfork`), `graphs` (calls of the real graph query functions) and `capture`
//! (calling the real `cuStreamIsCapturing`).

mod attach;
mod capture;
mod graphs;
#[allow(unsafe_code)]
mod hooks;
pub mod limits;
mod real;
