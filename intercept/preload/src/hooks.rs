//! The hook table. One `hooks!` list generates, for every intercepted symbol, the exported
//! `extern "C"` function, the atomic slot caching the real function, and the lookup entry used by
//! the `dlsym` and `cuGetProcAddress` wrappers — so the three can never drift apart.
//!
//! Each hook converts its raw arguments into a [`LaunchShape`]/units figure, asks the safe
//! [`crate::limits`] for a verdict (waiting there when throttled), then calls the real function
//! with its arguments untouched. Every hook runs inside `catch_unwind`.

use crate::limits::{self, Verdict};
use crate::{attach, capture, graphs, real};
use sair_cuda_abi::driver::*;
use sair_shm::clock::monotonic_ns;
use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::AtomicUsize;

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Hook {
    /// Symbol name, NUL-terminated.
    pub name: &'static str,
    /// Address of our exported hook.
    pub ours: usize,
    /// Slot caching the real function.
    pub slot: &'static AtomicUsize,
    /// Resolved from the CUDA driver (false: from libc, i.e. `dlsym`).
    pub from_driver: bool,
}

impl Hook {
    /// The name without its NUL.
    pub fn bare_name(&self) -> &'static str {
        self.name.trim_end_matches('\0')
    }
}

fn guard<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Charges a launch of `units` (blocks × threads) against this process's segment.
#[inline]
pub fn charge(units: u64) -> Verdict {
    match attach::segment() {
        Ok(seg) => limits::grant(seg, units, &monotonic_ns, &limits::pause),
        Err(reason) => Verdict::Bypass(reason),
    }
}

/// Charges a launch on `stream` unless stream capture is recording it.
#[inline]
fn charge_on(stream: CUstream, ptds: bool, units: u64) -> Verdict {
    if capture::recording(stream, ptds) {
        return Verdict::Recorded;
    }
    charge(units)
}

#[inline]
fn work(g: [u32; 3], b: [u32; 3]) -> u64 {
    let s = LaunchShape { grid: g, block: b };
    s.blocks().saturating_mul(s.threads())
}

#[inline]
fn config_stream(config: *const CUlaunchConfig) -> CUstream {
    if config.is_null() {
        return std::ptr::null_mut();
    }
    #[allow(unsafe_code)]
    // SAFETY: non-null; the API contract makes `config` a valid CUlaunchConfig for the call.
    unsafe {
        (*config).h_stream
    }
}

#[inline]
fn config_work(config: *const CUlaunchConfig) -> u64 {
    if config.is_null() {
        return 0;
    }
    #[allow(unsafe_code)]
    // SAFETY: non-null; the driver API contract makes `config` a valid CUlaunchConfig for the
    // duration of the call, and we only read it.
    let c = unsafe { &*config };
    work(
        [c.grid_dim_x, c.grid_dim_y, c.grid_dim_z],
        [c.block_dim_x, c.block_dim_y, c.block_dim_z],
    )
}

macro_rules! is_driver {
    (cuda) => {
        true
    };
    (libc_dlsym) => {
        false
    };
}

macro_rules! hooks {
    ($(
        $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) -> $ret:ty
            [$resolver:ident, $fallback:expr] |$real:ident| $body:block
    )*) => {
        /// Real-function slots, one per hook.
        #[allow(non_upper_case_globals)]
        pub mod slot {
            use std::sync::atomic::AtomicUsize;
            $( pub static $name: AtomicUsize = AtomicUsize::new(0); )*
        }

        $(
            #[allow(unsafe_code, non_snake_case, clippy::too_many_arguments)]
            #[unsafe(no_mangle)]
            pub extern "C" fn $name($($arg: $ty),*) -> $ret {
                guard($fallback, || {
                    let Some($real) = real::$resolver::<unsafe extern "C" fn($($ty),*) -> $ret>(
                        &slot::$name,
                        concat!(stringify!($name), "\0"),
                    ) else {
                        return $fallback;
                    };
                    $body
                })
            }
        )*

        /// Number of hooks.
        pub const HOOK_COUNT: usize = [$(stringify!($name)),*].len();

        /// The lookup table.
        pub fn table() -> [Hook; HOOK_COUNT] {
            [$(Hook {
                name: concat!(stringify!($name), "\0"),
                ours: $name as *const () as usize,
                slot: &slot::$name,
                from_driver: is_driver!($resolver),
            }),*]
        }
    };
}

const NOT_INIT: CUresult = CUDA_ERROR_NOT_INITIALIZED;

hooks! {
    cuLaunchKernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32,
                   shm: u32, s: CUstream, p: *mut *mut c_void, e: *mut *mut c_void) -> CUresult
        [cuda, NOT_INIT] |real| {
            charge_on(s, false, work([gx, gy, gz], [bx, by, bz]));
            // SAFETY: the real cuLaunchKernel, called with the caller's arguments unchanged.
            unsafe { real(f, gx, gy, gz, bx, by, bz, shm, s, p, e) }
        }
    cuLaunchKernel_ptsz(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32,
                        shm: u32, s: CUstream, p: *mut *mut c_void, e: *mut *mut c_void) -> CUresult
        [cuda, NOT_INIT] |real| {
            charge_on(s, true, work([gx, gy, gz], [bx, by, bz]));
            // SAFETY: the real cuLaunchKernel_ptsz, called with the caller's arguments unchanged.
            unsafe { real(f, gx, gy, gz, bx, by, bz, shm, s, p, e) }
        }
    cuLaunchKernelEx(c: *const CUlaunchConfig, f: CUfunction, p: *mut *mut c_void,
                     e: *mut *mut c_void) -> CUresult
        [cuda, NOT_INIT] |real| {
            charge_on(config_stream(c), false, config_work(c));
            // SAFETY: the real cuLaunchKernelEx, called with the caller's arguments unchanged.
            unsafe { real(c, f, p, e) }
        }
    cuLaunchKernelEx_ptsz(c: *const CUlaunchConfig, f: CUfunction, p: *mut *mut c_void,
                          e: *mut *mut c_void) -> CUresult
        [cuda, NOT_INIT] |real| {
            charge_on(config_stream(c), true, config_work(c));
            // SAFETY: the real cuLaunchKernelEx_ptsz, called with the caller's arguments unchanged.
            unsafe { real(c, f, p, e) }
        }
    cuLaunchCooperativeKernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32,
                              bz: u32, shm: u32, s: CUstream, p: *mut *mut c_void) -> CUresult
        [cuda, NOT_INIT] |real| {
            charge_on(s, false, work([gx, gy, gz], [bx, by, bz]));
            // SAFETY: the real cuLaunchCooperativeKernel with the caller's arguments unchanged.
            unsafe { real(f, gx, gy, gz, bx, by, bz, shm, s, p) }
        }
    cuLaunchCooperativeKernel_ptsz(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32,
                                   bz: u32, shm: u32, s: CUstream, p: *mut *mut c_void) -> CUresult
        [cuda, NOT_INIT] |real| {
            charge_on(s, true, work([gx, gy, gz], [bx, by, bz]));
            // SAFETY: the real cuLaunchCooperativeKernel_ptsz with the caller's arguments unchanged.
            unsafe { real(f, gx, gy, gz, bx, by, bz, shm, s, p) }
        }
    cuGraphLaunch(g: CUgraphExec, s: CUstream) -> CUresult
        [cuda, NOT_INIT] |real| {
            charge_on(s, false, graphs::units(g as usize));
            // SAFETY: the real cuGraphLaunch with the caller's arguments unchanged.
            unsafe { real(g, s) }
        }
    cuGraphLaunch_ptsz(g: CUgraphExec, s: CUstream) -> CUresult
        [cuda, NOT_INIT] |real| {
            charge_on(s, true, graphs::units(g as usize));
            // SAFETY: the real cuGraphLaunch_ptsz with the caller's arguments unchanged.
            unsafe { real(g, s) }
        }
    cuGraphInstantiateWithFlags(x: *mut CUgraphExec, g: CUgraph, fl: u64) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real function with the caller's arguments unchanged.
            let r = unsafe { real(x, g, fl) };
            record_exec(r, x, g)
        }
    cuGraphInstantiate_v2(x: *mut CUgraphExec, g: CUgraph, n: *mut CUgraphNode,
                          l: *mut c_char, len: usize) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real function with the caller's arguments unchanged.
            let r = unsafe { real(x, g, n, l, len) };
            record_exec(r, x, g)
        }
    cuGraphInstantiate(x: *mut CUgraphExec, g: CUgraph, n: *mut CUgraphNode,
                       l: *mut c_char, len: usize) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real function with the caller's arguments unchanged.
            let r = unsafe { real(x, g, n, l, len) };
            record_exec(r, x, g)
        }
    cuGraphInstantiateWithParams(x: *mut CUgraphExec, g: CUgraph, p: *mut c_void) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real function with the caller's arguments unchanged.
            let r = unsafe { real(x, g, p) };
            record_exec(r, x, g)
        }
    cuGraphInstantiateWithParams_ptsz(x: *mut CUgraphExec, g: CUgraph, p: *mut c_void) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real function with the caller's arguments unchanged.
            let r = unsafe { real(x, g, p) };
            record_exec(r, x, g)
        }
    cuGraphExecDestroy(x: CUgraphExec) -> CUresult
        [cuda, NOT_INIT] |real| {
            graphs::remove(x as usize);
            // SAFETY: the real function with the caller's arguments unchanged.
            unsafe { real(x) }
        }
    cuStreamBeginCapture(s: CUstream, m: i32) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real function with the caller's arguments (CUDA 10.0 form takes only
            // the stream; the extra register argument is ignored by the callee).
            capture::began(unsafe { real(s, m) })
        }
    cuStreamBeginCapture_v2(s: CUstream, m: i32) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real function with the caller's arguments unchanged.
            capture::began(unsafe { real(s, m) })
        }
    cuStreamBeginCapture_ptsz(s: CUstream, m: i32) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: as for cuStreamBeginCapture.
            capture::began(unsafe { real(s, m) })
        }
    cuStreamBeginCapture_v2_ptsz(s: CUstream, m: i32) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real function with the caller's arguments unchanged.
            capture::began(unsafe { real(s, m) })
        }
    cuStreamBeginCaptureToGraph(s: CUstream, g: CUgraph, d: *const CUgraphNode,
                                dd: *const c_void, n: usize, m: i32) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real function with the caller's arguments unchanged.
            capture::began(unsafe { real(s, g, d, dd, n, m) })
        }
    cuStreamBeginCaptureToGraph_ptsz(s: CUstream, g: CUgraph, d: *const CUgraphNode,
                                     dd: *const c_void, n: usize, m: i32) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real function with the caller's arguments unchanged.
            capture::began(unsafe { real(s, g, d, dd, n, m) })
        }
    cuStreamEndCapture(s: CUstream, g: *mut CUgraph) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real function with the caller's arguments unchanged.
            capture::ended(unsafe { real(s, g) })
        }
    cuStreamEndCapture_ptsz(s: CUstream, g: *mut CUgraph) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real function with the caller's arguments unchanged.
            capture::ended(unsafe { real(s, g) })
        }
    cuGetProcAddress(sym: *const c_char, pfn: *mut *mut c_void, ver: i32, fl: u64) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real cuGetProcAddress with the caller's arguments unchanged.
            let r = unsafe { real(sym, pfn, ver, fl) };
            wrap_proc(r, sym, pfn, ver, fl)
        }
    cuGetProcAddress_v2(sym: *const c_char, pfn: *mut *mut c_void, ver: i32, fl: u64,
                        st: *mut i32) -> CUresult
        [cuda, NOT_INIT] |real| {
            // SAFETY: the real cuGetProcAddress_v2 with the caller's arguments unchanged.
            let r = unsafe { real(sym, pfn, ver, fl, st) };
            wrap_proc(r, sym, pfn, ver, fl)
        }
    dlsym(h: *mut c_void, sym: *const c_char) -> *mut c_void
        [libc_dlsym, std::ptr::null_mut()] |real| {
            // SAFETY: libc's dlsym with the caller's arguments unchanged.
            let p = unsafe { real(h, sym) };
            if p.is_null() { p } else { wrap_symbol(sym, p) }
        }
}

/// Address of our exported `dlsym`.
pub fn own_dlsym_addr() -> usize {
    dlsym as *const () as usize
}

/// Whether `addr` is one of our hooks.
pub fn is_ours(addr: usize) -> bool {
    table().iter().any(|h| h.ours == addr)
}

#[allow(unsafe_code)]
fn cname<'a>(sym: *const c_char) -> Option<&'a [u8]> {
    if sym.is_null() {
        return None;
    }
    // SAFETY: non-null; dlsym/cuGetProcAddress callers pass a NUL-terminated symbol name.
    Some(unsafe { std::ffi::CStr::from_ptr(sym) }.to_bytes())
}

/// `dlsym` result for `sym`: our hook if we hook that name, else the real address.
fn wrap_symbol(sym: *const c_char, p: *mut c_void) -> *mut c_void {
    let Some(name) = cname(sym) else { return p };
    if !name.starts_with(b"cu") && name != b"dlsym" {
        return p;
    }
    match table().iter().find(|h| h.bare_name().as_bytes() == name) {
        Some(h) => h.ours as *mut c_void,
        None => p,
    }
}

#[allow(unsafe_code)]
fn record_exec(r: CUresult, x: *mut CUgraphExec, g: CUgraph) -> CUresult {
    if r == CUDA_SUCCESS && !x.is_null() {
        // SAFETY: non-null, and the real instantiate just wrote the new exec handle there.
        let exec = unsafe { x.read() } as usize;
        if let Some(units) = graphs::graph_units(g) {
            graphs::insert(exec, units);
        }
    }
    r
}

/// After a successful real `cuGetProcAddress(_v2)`: replace a returned driver function by our
/// hook for it. Matching is by address against the real functions of the table (so the driver's
/// own choice of version and `_ptsz` variant is kept); if the driver returned an address that is
/// not an exported symbol, launch functions are matched by name and flags instead.
#[allow(unsafe_code)]
fn wrap_proc(
    r: CUresult,
    sym: *const c_char,
    pfn: *mut *mut c_void,
    ver: i32,
    fl: u64,
) -> CUresult {
    if r != CUDA_SUCCESS || pfn.is_null() {
        return r;
    }
    // SAFETY: non-null, and the real call succeeded, so it wrote a function pointer there.
    let got = unsafe { pfn.read() } as usize;
    if got == 0 {
        return r;
    }
    let table = table();
    let by_addr = table
        .iter()
        .filter(|h| h.from_driver)
        .find(|h| real::cuda::<usize>(h.slot, h.name) == Some(got));
    let hook = by_addr.or_else(|| {
        let want = fallback_hook_name(cname(sym)?, ver, fl)?;
        let h = table.iter().find(|h| h.bare_name() == want)?;
        // Only if our hook can reach a real function to forward to.
        real::cuda::<usize>(h.slot, h.name).map(|_| h)
    });
    if let Some(h) = hook {
        // SAFETY: `pfn` is non-null and writable (the real call just wrote it).
        unsafe { pfn.write(h.ours as *mut c_void) };
    }
    r
}

/// The hook for a `cuGetProcAddress(name, version, flags)` request whose returned address is not
/// an exported driver symbol. Only functions whose signature is fixed by (name, version, flags)
/// are mapped; anything else is left to the driver.
pub fn fallback_hook_name(name: &[u8], ver: i32, fl: u64) -> Option<&'static str> {
    let ptds = fl & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM != 0;
    Some(match name {
        b"cuLaunchKernel" if ptds => "cuLaunchKernel_ptsz",
        b"cuLaunchKernel" => "cuLaunchKernel",
        b"cuLaunchKernelEx" if ptds => "cuLaunchKernelEx_ptsz",
        b"cuLaunchKernelEx" => "cuLaunchKernelEx",
        b"cuLaunchCooperativeKernel" if ptds => "cuLaunchCooperativeKernel_ptsz",
        b"cuLaunchCooperativeKernel" => "cuLaunchCooperativeKernel",
        b"cuGraphLaunch" if ptds => "cuGraphLaunch_ptsz",
        b"cuGraphLaunch" => "cuGraphLaunch",
        // cudaTypedefs.h: PFN_cuGraphInstantiate_v12000 has the WithFlags signature,
        // _v11000 the _v2 one, _v10000 the original.
        b"cuGraphInstantiate" if ver >= 12000 => "cuGraphInstantiateWithFlags",
        b"cuGraphInstantiate" if ver >= 11000 => "cuGraphInstantiate_v2",
        b"cuGraphInstantiate" => "cuGraphInstantiate",
        b"cuGraphInstantiateWithFlags" => "cuGraphInstantiateWithFlags",
        b"cuGraphInstantiateWithParams" if ptds => "cuGraphInstantiateWithParams_ptsz",
        b"cuGraphInstantiateWithParams" => "cuGraphInstantiateWithParams",
        b"cuGraphExecDestroy" => "cuGraphExecDestroy",
        b"cuStreamBeginCapture" if ptds && ver >= 10010 => "cuStreamBeginCapture_v2_ptsz",
        b"cuStreamBeginCapture" if ptds => "cuStreamBeginCapture_ptsz",
        b"cuStreamBeginCapture" if ver >= 10010 => "cuStreamBeginCapture_v2",
        b"cuStreamBeginCapture" => "cuStreamBeginCapture",
        b"cuStreamBeginCaptureToGraph" if ptds => "cuStreamBeginCaptureToGraph_ptsz",
        b"cuStreamBeginCaptureToGraph" => "cuStreamBeginCaptureToGraph",
        b"cuStreamEndCapture" if ptds => "cuStreamEndCapture_ptsz",
        b"cuStreamEndCapture" => "cuStreamEndCapture",
        b"cuGetProcAddress" if ver >= 12000 => "cuGetProcAddress_v2",
        b"cuGetProcAddress" => "cuGetProcAddress",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
