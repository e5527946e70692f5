//! The emulated driver's state: configuration read at `cuInit`, handles, contexts, streams,
//! modules, graphs, and the launch model. Safe code; raw pointers stay in `crate::exports`.
//!
//! Handles are opaque integers cast to pointers (callers never dereference CUDA handles); every
//! handle is looked up in a registry, so a wrong or destroyed one is `CUDA_ERROR_INVALID_HANDLE`
//! as with the real driver rather than undefined behaviour.

use sair_cuda_abi::driver::*;
use sair_cuda_abi::timeline::{
    MAX_DEVICES, ProcSlot, TimelineLayout, default_state_path, now_ns, open_timeline,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Emulator configuration, read from the environment once, at `cuInit`.
#[derive(Debug, Clone)]
pub struct Config {
    /// `SAIR_EMU_GPUS` (default 1, at most 16).
    pub gpus: u32,
    /// `SAIR_EMU_NS_PER_BLOCK` (default 1000).
    pub ns_per_block: u64,
    /// `SAIR_EMU_STATE`.
    pub state_path: std::path::PathBuf,
}

impl Config {
    fn from_env() -> Config {
        let num = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(d)
        };
        Config {
            gpus: num("SAIR_EMU_GPUS", 1).clamp(1, MAX_DEVICES as u64) as u32,
            ns_per_block: num("SAIR_EMU_NS_PER_BLOCK", 1000),
            state_path: std::env::var_os("SAIR_EMU_STATE")
                .map(Into::into)
                .unwrap_or_else(default_state_path),
        }
    }
}

/// A recorded kernel launch (graph node or captured launch).
#[derive(Debug, Clone, Copy)]
pub struct KernelNode {
    pub func: usize,
    pub shape: LaunchShape,
}

mod events;
mod graph;
mod memory;

#[derive(Debug)]
struct Ctx {
    device: u32,
    last_end: u64,
}

#[derive(Debug)]
struct Stream {
    ctx: usize,
    last_end: u64,
    capturing: Option<usize>,
}

#[derive(Debug, Default)]
struct Objects {
    ctxs: HashMap<usize, Ctx>,
    primary: HashMap<u32, (usize, u32)>,
    streams: HashMap<usize, Stream>,
    modules: HashMap<usize, u32>,
    functions: HashMap<usize, usize>,
    graphs: HashMap<usize, Vec<usize>>,
    nodes: HashMap<usize, (usize, KernelNode)>,
    execs: HashMap<usize, Vec<KernelNode>>,
    /// Emulated device memory: base address → host-backed bytes.
    memory: HashMap<u64, Box<[u8]>>,
    /// Events: handle → recorded device time (None until recorded).
    events: HashMap<usize, Option<u64>>,
}

/// The initialised driver.
#[derive(Debug)]
pub struct Driver {
    pub cfg: Config,
    pub timeline: &'static TimelineLayout,
    objects: Mutex<Objects>,
}

static DRIVER: OnceLock<Result<Driver, CUresult>> = OnceLock::new();
static NEXT_HANDLE: AtomicUsize = AtomicUsize::new(0x5a1_0000);
/// Pid cached for slot lookups; reset by the fork child handler.
static PID: AtomicU32 = AtomicU32::new(0);
static SLOTS: [AtomicUsize; MAX_DEVICES] = [const { AtomicUsize::new(usize::MAX) }; MAX_DEVICES];

thread_local! {
    static CTX_STACK: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// Per-thread default stream end, per context (`_ptsz` launches).
    static PTDS_END: RefCell<HashMap<usize, u64>> = RefCell::new(HashMap::new());
}

fn new_handle() -> usize {
    NEXT_HANDLE.fetch_add(16, Relaxed)
}

/// `cuInit`: reads the configuration and maps the timeline (once per process).
pub fn init(flags: u32) -> CUresult {
    init_with(flags, Config::from_env)
}

/// `cuInit` with the configuration from `config` instead of the environment (tests).
pub fn init_with(flags: u32, config: impl FnOnce() -> Config) -> CUresult {
    if flags != 0 {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let d = DRIVER.get_or_init(|| {
        let cfg = config();
        let timeline = open_timeline(&cfg.state_path).map_err(|e| {
            eprintln!("sair-emu-cuda: {e}");
            CUDA_ERROR_OPERATING_SYSTEM
        })?;
        register_fork_handler();
        Ok(Driver {
            cfg,
            timeline,
            objects: Mutex::new(Objects::default()),
        })
    });
    match d {
        Ok(_) => CUDA_SUCCESS,
        Err(e) => *e,
    }
}

#[allow(unsafe_code)]
fn register_fork_handler() {
    extern "C" fn child() {
        PID.store(0, Relaxed);
        for s in &SLOTS {
            s.store(usize::MAX, Relaxed);
        }
    }
    // SAFETY: `child` is an extern "C" fn that only stores to atomics (async-signal-safe).
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}

/// The driver, or `CUDA_ERROR_NOT_INITIALIZED`.
pub fn driver() -> Result<&'static Driver, CUresult> {
    match DRIVER.get() {
        Some(Ok(d)) => Ok(d),
        Some(Err(e)) => Err(*e),
        None => Err(CUDA_ERROR_NOT_INITIALIZED),
    }
}

fn h(p: *mut std::ffi::c_void) -> usize {
    p as usize
}

impl Driver {
    fn objs(&self) -> MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn check_device(&self, dev: CUdevice) -> Result<u32, CUresult> {
        u32::try_from(dev)
            .ok()
            .filter(|&d| d < self.cfg.gpus)
            .ok_or(CUDA_ERROR_INVALID_DEVICE)
    }

    pub fn ctx_create(&self, dev: CUdevice) -> Result<usize, CUresult> {
        let device = self.check_device(dev)?;
        let c = new_handle();
        self.objs().ctxs.insert(
            c,
            Ctx {
                device,
                last_end: 0,
            },
        );
        CTX_STACK.with(|s| s.borrow_mut().push(c));
        Ok(c)
    }

    pub fn ctx_destroy(&self, c: *mut std::ffi::c_void) -> CUresult {
        let c = h(c);
        let mut o = self.objs();
        let Some(ctx) = o.ctxs.remove(&c) else {
            return CUDA_ERROR_INVALID_HANDLE;
        };
        wait_until(ctx.last_end);
        o.streams.retain(|_, s| s.ctx != c);
        CTX_STACK.with(|s| s.borrow_mut().retain(|&x| x != c));
        CUDA_SUCCESS
    }

    pub fn primary_retain(&self, dev: CUdevice) -> Result<usize, CUresult> {
        let device = self.check_device(dev)?;
        let mut o = self.objs();
        if let Some((c, n)) = o.primary.get_mut(&device) {
            *n += 1;
            return Ok(*c);
        }
        let c = new_handle();
        o.ctxs.insert(
            c,
            Ctx {
                device,
                last_end: 0,
            },
        );
        o.primary.insert(device, (c, 1));
        Ok(c)
    }

    pub fn primary_release(&self, dev: CUdevice) -> CUresult {
        let Ok(device) = self.check_device(dev) else {
            return CUDA_ERROR_INVALID_DEVICE;
        };
        let mut o = self.objs();
        match o.primary.get_mut(&device) {
            Some((_, n)) if *n > 0 => {
                *n -= 1;
                CUDA_SUCCESS
            }
            _ => CUDA_ERROR_INVALID_CONTEXT,
        }
    }

    pub fn set_current(&self, c: *mut std::ffi::c_void) -> CUresult {
        let c = h(c);
        if c != 0 && !self.objs().ctxs.contains_key(&c) {
            return CUDA_ERROR_INVALID_CONTEXT;
        }
        CTX_STACK.with(|s| {
            let mut s = s.borrow_mut();
            if c == 0 {
                s.pop();
            } else if let Some(top) = s.last_mut() {
                *top = c;
            } else {
                s.push(c);
            }
        });
        CUDA_SUCCESS
    }

    pub fn push_current(&self, c: *mut std::ffi::c_void) -> CUresult {
        let c = h(c);
        if !self.objs().ctxs.contains_key(&c) {
            return CUDA_ERROR_INVALID_CONTEXT;
        }
        CTX_STACK.with(|s| s.borrow_mut().push(c));
        CUDA_SUCCESS
    }

    pub fn pop_current(&self) -> Result<usize, CUresult> {
        CTX_STACK
            .with(|s| s.borrow_mut().pop())
            .ok_or(CUDA_ERROR_INVALID_CONTEXT)
    }

    /// The current context handle (0 when none).
    pub fn current(&self) -> usize {
        CTX_STACK.with(|s| s.borrow().last().copied().unwrap_or(0))
    }

    fn current_ctx(&self, o: &Objects) -> Result<usize, CUresult> {
        let c = self.current();
        if c != 0 && o.ctxs.contains_key(&c) {
            Ok(c)
        } else {
            Err(CUDA_ERROR_INVALID_CONTEXT)
        }
    }

    pub fn current_device(&self) -> Result<u32, CUresult> {
        let o = self.objs();
        let c = self.current_ctx(&o)?;
        Ok(o.ctxs[&c].device)
    }

    pub fn ctx_synchronize(&self) -> CUresult {
        let end = {
            let o = self.objs();
            match self.current_ctx(&o) {
                Ok(c) => o.ctxs[&c].last_end,
                Err(e) => return e,
            }
        };
        wait_until(end);
        CUDA_SUCCESS
    }

    pub fn module_load(&self, image_is_null: bool) -> Result<usize, CUresult> {
        if image_is_null {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let mut o = self.objs();
        self.current_ctx(&o)?;
        let m = new_handle();
        o.modules.insert(m, 0);
        Ok(m)
    }

    pub fn module_get_function(&self, m: *mut std::ffi::c_void) -> Result<usize, CUresult> {
        let m = h(m);
        let mut o = self.objs();
        if !o.modules.contains_key(&m) {
            return Err(CUDA_ERROR_INVALID_HANDLE);
        }
        let f = new_handle();
        o.functions.insert(f, m);
        Ok(f)
    }

    pub fn module_unload(&self, m: *mut std::ffi::c_void) -> CUresult {
        let m = h(m);
        let mut o = self.objs();
        if o.modules.remove(&m).is_none() {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        o.functions.retain(|_, owner| *owner != m);
        CUDA_SUCCESS
    }

    pub fn stream_create(&self) -> Result<usize, CUresult> {
        let mut o = self.objs();
        let ctx = self.current_ctx(&o)?;
        let s = new_handle();
        o.streams.insert(
            s,
            Stream {
                ctx,
                last_end: 0,
                capturing: None,
            },
        );
        Ok(s)
    }

    pub fn stream_destroy(&self, s: *mut std::ffi::c_void) -> CUresult {
        match self.objs().streams.remove(&h(s)) {
            Some(_) => CUDA_SUCCESS,
            None => CUDA_ERROR_INVALID_HANDLE,
        }
    }

    /// End of the last kernel queued on stream `s` (or the default streams).
    fn stream_end(&self, s: *mut std::ffi::c_void, ptds: bool) -> Result<u64, CUresult> {
        let s = h(s);
        let o = self.objs();
        let ctx = self.current_ctx(&o)?;
        Ok(if s == CU_STREAM_PER_THREAD || (s == 0 && ptds) {
            PTDS_END.with(|m| m.borrow().get(&ctx).copied().unwrap_or(0))
        } else if s == 0 || s == CU_STREAM_LEGACY {
            // The legacy default stream synchronises with all blocking streams.
            o.ctxs[&ctx].last_end
        } else {
            match o.streams.get(&s) {
                Some(st) if st.capturing.is_some() => {
                    return Err(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
                }
                Some(st) => st.last_end,
                None => return Err(CUDA_ERROR_INVALID_HANDLE),
            }
        })
    }

    pub fn stream_synchronize(&self, s: *mut std::ffi::c_void, ptds: bool) -> CUresult {
        match self.stream_end(s, ptds) {
            Ok(end) => {
                wait_until(end);
                CUDA_SUCCESS
            }
            Err(e) => e,
        }
    }

    /// `cuStreamQuery`: `CUDA_ERROR_NOT_READY` while work is queued.
    pub fn stream_query(&self, s: *mut std::ffi::c_void, ptds: bool) -> CUresult {
        match self.stream_end(s, ptds) {
            Ok(end) if now_ns() >= end => CUDA_SUCCESS,
            Ok(_) => CUDA_ERROR_NOT_READY,
            Err(e) => e,
        }
    }

    /// A kernel launch: validates, then either records it (stream capture) or reserves its
    /// interval on the device time line.
    pub fn launch(
        &self,
        f: usize,
        shape: LaunchShape,
        s: *mut std::ffi::c_void,
        ptds: bool,
    ) -> CUresult {
        if let Err(e) = check_shape(&shape) {
            return e;
        }
        let s = h(s);
        let mut o = self.objs();
        let ctx = match self.current_ctx(&o) {
            Ok(c) => c,
            Err(e) => return e,
        };
        if !o.functions.contains_key(&f) {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        let named = s != 0 && s != CU_STREAM_LEGACY && s != CU_STREAM_PER_THREAD;
        if named {
            match o.streams.get(&s) {
                None => return CUDA_ERROR_INVALID_HANDLE,
                Some(st) => {
                    if let Some(g) = st.capturing {
                        let n = new_handle();
                        let node = KernelNode { func: f, shape };
                        o.nodes.insert(n, (g, node));
                        if let Some(list) = o.graphs.get_mut(&g) {
                            list.push(n);
                        }
                        return CUDA_SUCCESS;
                    }
                }
            }
        }
        let device = o.ctxs[&ctx].device;
        let dur = shape.blocks().saturating_mul(self.cfg.ns_per_block);
        let (_, end) = self.timeline.reserve(device as usize, now_ns(), dur);
        if let Some(slot) = self.slot(device) {
            self.timeline.account(slot, dur, end);
        }
        if let Some(c) = o.ctxs.get_mut(&ctx) {
            c.last_end = c.last_end.max(end);
        }
        if named {
            if let Some(st) = o.streams.get_mut(&s) {
                st.last_end = st.last_end.max(end);
            }
        } else if s == CU_STREAM_PER_THREAD || (s == 0 && ptds) {
            PTDS_END.with(|m| {
                let mut m = m.borrow_mut();
                let e = m.entry(ctx).or_insert(0);
                *e = (*e).max(end);
            });
        }
        CUDA_SUCCESS
    }

    fn slot(&self, device: u32) -> Option<&'static ProcSlot> {
        let d = device as usize;
        let cached = SLOTS[d].load(Relaxed);
        if cached != usize::MAX {
            return self.timeline.procs.get(cached);
        }
        let mut pid = PID.load(Relaxed);
        if pid == 0 {
            pid = std::process::id();
            PID.store(pid, Relaxed);
        }
        let slot = self.timeline.slot(pid, device)?;
        let idx = self
            .timeline
            .procs
            .iter()
            .position(|s| std::ptr::eq(s, slot))?;
        SLOTS[d].store(idx, Relaxed);
        Some(slot)
    }
}

fn check_shape(shape: &LaunchShape) -> Result<(), CUresult> {
    if shape.grid.contains(&0) || shape.block.contains(&0) {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    if shape.threads() > 1024 {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    Ok(())
}

/// Waits until CLOCK_MONOTONIC reaches `end`: sleeps while far, spins the last 50 µs.
pub fn wait_until(end: u64) {
    loop {
        let now = now_ns();
        if now >= end {
            return;
        }
        let left = end - now;
        if left > 60_000 {
            std::thread::sleep(std::time::Duration::from_nanos(left - 50_000));
        } else {
            std::hint::spin_loop();
        }
    }
}
