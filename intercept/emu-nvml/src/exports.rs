//! The exported NVML C ABI. Raw pointers are checked and converted here; the arithmetic lives in
//! [`crate::model`]. Every export runs inside `catch_unwind` (`NVML_ERROR_UNKNOWN` on panic).

use crate::model::Model;
use sair_cuda_abi::timeline::{TimelineLayout, default_state_path, now_ns, open_timeline};
use std::ffi::{c_char, c_uint};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

type NvmlReturn = c_uint;
/// `nvmlDevice_t`: an opaque pointer; ours encode `index + 1`.
type NvmlDevice = *mut std::ffi::c_void;

const NVML_SUCCESS: NvmlReturn = 0;
const NVML_ERROR_UNINITIALIZED: NvmlReturn = 1;
const NVML_ERROR_INVALID_ARGUMENT: NvmlReturn = 2;
const NVML_ERROR_NOT_FOUND: NvmlReturn = 6;
const NVML_ERROR_INSUFFICIENT_SIZE: NvmlReturn = 7;
const NVML_ERROR_UNKNOWN: NvmlReturn = 999;

/// `nvmlUtilization_t`.
#[repr(C)]
#[derive(Debug)]
pub struct NvmlUtilization {
    gpu: c_uint,
    memory: c_uint,
}

/// `nvmlMemory_t`.
#[repr(C)]
#[derive(Debug)]
pub struct NvmlMemory {
    total: u64,
    free: u64,
    used: u64,
}

/// `nvmlMemory_v2_t`.
#[repr(C)]
#[derive(Debug)]
pub struct NvmlMemoryV2 {
    version: c_uint,
    total: u64,
    reserved: u64,
    free: u64,
    used: u64,
}

/// `nvmlProcessUtilizationSample_t`.
#[repr(C)]
#[derive(Debug)]
pub struct NvmlProcessUtilizationSample {
    pid: c_uint,
    time_stamp: u64,
    sm_util: c_uint,
    mem_util: c_uint,
    enc_util: c_uint,
    dec_util: c_uint,
}

const MEMORY_BYTES: u64 = 80 << 30;

struct State {
    gpus: u32,
    timeline: &'static TimelineLayout,
    model: Model,
    inits: u32,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn guard(f: impl FnOnce() -> NvmlReturn) -> NvmlReturn {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(NVML_ERROR_UNKNOWN)
}

fn with_state(f: impl FnOnce(&mut State) -> NvmlReturn) -> NvmlReturn {
    let mut g = STATE.lock().unwrap_or_else(|p| p.into_inner());
    match g.as_mut() {
        Some(s) => f(s),
        None => NVML_ERROR_UNINITIALIZED,
    }
}

fn put<T>(p: *mut T, v: T) -> NvmlReturn {
    if p.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: non-null; the NVML contract makes the caller pass a valid writable pointer.
    unsafe { p.write(v) };
    NVML_SUCCESS
}

fn put_str(buf: *mut c_char, len: c_uint, s: &str) -> NvmlReturn {
    if buf.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    if (len as usize) < s.len() + 1 {
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    // SAFETY: the caller's buffer holds `len` >= s.len() + 1 bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr().cast::<c_char>(), buf, s.len());
        buf.add(s.len()).write(0);
    }
    NVML_SUCCESS
}

fn device_index(s: &State, d: NvmlDevice) -> Option<u32> {
    let i = (d as usize).checked_sub(1)?;
    u32::try_from(i).ok().filter(|&i| i < s.gpus)
}

fn realtime_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> NvmlReturn {
    guard(|| {
        let mut g = STATE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = g.as_mut() {
            s.inits += 1;
            return NVML_SUCCESS;
        }
        let gpus = std::env::var("SAIR_EMU_GPUS")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(1)
            .clamp(1, sair_cuda_abi::timeline::MAX_DEVICES as u32);
        let path = std::env::var_os("SAIR_EMU_STATE")
            .map(Into::into)
            .unwrap_or_else(default_state_path);
        match open_timeline(&path) {
            Ok(timeline) => {
                *g = Some(State {
                    gpus,
                    timeline,
                    model: Model::default(),
                    inits: 1,
                });
                NVML_SUCCESS
            }
            Err(e) => {
                eprintln!("sair-emu-nvml: {e}");
                NVML_ERROR_UNKNOWN
            }
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit() -> NvmlReturn {
    nvmlInit_v2()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> NvmlReturn {
    nvmlInit_v2()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> NvmlReturn {
    guard(|| {
        let mut g = STATE.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_mut() {
            None => NVML_ERROR_UNINITIALIZED,
            Some(s) => {
                s.inits -= 1;
                if s.inits == 0 {
                    *g = None;
                }
                NVML_SUCCESS
            }
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(r: NvmlReturn) -> *const c_char {
    catch_unwind(|| error_string(r)).unwrap_or(c"Unknown Error".as_ptr())
}

fn error_string(r: NvmlReturn) -> *const c_char {
    let s: &'static std::ffi::CStr = match r {
        NVML_SUCCESS => c"Success",
        NVML_ERROR_UNINITIALIZED => c"Uninitialized",
        NVML_ERROR_INVALID_ARGUMENT => c"Invalid Argument",
        NVML_ERROR_NOT_FOUND => c"Not Found",
        NVML_ERROR_INSUFFICIENT_SIZE => c"Insufficient Size",
        _ => c"Unknown Error",
    };
    s.as_ptr()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlSystemGetDriverVersion(buf: *mut c_char, len: c_uint) -> NvmlReturn {
    guard(|| with_state(|_| put_str(buf, len, "550.00.sair-emu")))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlSystemGetNVMLVersion(buf: *mut c_char, len: c_uint) -> NvmlReturn {
    guard(|| with_state(|_| put_str(buf, len, "12.550.00")))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetCount_v2(n: *mut c_uint) -> NvmlReturn {
    guard(|| with_state(|s| put(n, s.gpus)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetHandleByIndex_v2(i: c_uint, d: *mut NvmlDevice) -> NvmlReturn {
    guard(|| {
        with_state(|s| {
            if i >= s.gpus {
                return NVML_ERROR_INVALID_ARGUMENT;
            }
            put(d, (i as usize + 1) as NvmlDevice)
        })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetIndex(d: NvmlDevice, i: *mut c_uint) -> NvmlReturn {
    guard(|| {
        with_state(|s| match device_index(s, d) {
            Some(idx) => put(i, idx),
            None => NVML_ERROR_INVALID_ARGUMENT,
        })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetName(d: NvmlDevice, buf: *mut c_char, len: c_uint) -> NvmlReturn {
    guard(|| {
        with_state(|s| match device_index(s, d) {
            Some(i) => put_str(buf, len, &format!("SAIR Emulated GPU {i}")),
            None => NVML_ERROR_INVALID_ARGUMENT,
        })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetUUID(d: NvmlDevice, buf: *mut c_char, len: c_uint) -> NvmlReturn {
    guard(|| {
        with_state(|s| match device_index(s, d) {
            Some(i) => put_str(buf, len, &format!("GPU-5a1e0000-0000-4000-8000-{i:012x}")),
            None => NVML_ERROR_INVALID_ARGUMENT,
        })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetUtilizationRates(
    d: NvmlDevice,
    u: *mut NvmlUtilization,
) -> NvmlReturn {
    guard(|| {
        with_state(|s| {
            let Some(i) = device_index(s, d) else {
                return NVML_ERROR_INVALID_ARGUMENT;
            };
            let gpu = s.model.device_util(s.timeline, s.gpus, i, now_ns());
            put(u, NvmlUtilization { gpu, memory: 0 })
        })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetMemoryInfo(d: NvmlDevice, m: *mut NvmlMemory) -> NvmlReturn {
    guard(|| {
        with_state(|s| match device_index(s, d) {
            Some(_) => put(
                m,
                NvmlMemory {
                    total: MEMORY_BYTES,
                    free: MEMORY_BYTES,
                    used: 0,
                },
            ),
            None => NVML_ERROR_INVALID_ARGUMENT,
        })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetMemoryInfo_v2(d: NvmlDevice, m: *mut NvmlMemoryV2) -> NvmlReturn {
    guard(|| {
        with_state(|s| {
            if device_index(s, d).is_none() || m.is_null() {
                return NVML_ERROR_INVALID_ARGUMENT;
            }
            // SAFETY: non-null; the caller set `version` in the struct it passed.
            let version = unsafe { (*m).version };
            put(
                m,
                NvmlMemoryV2 {
                    version,
                    total: MEMORY_BYTES,
                    reserved: 0,
                    free: MEMORY_BYTES,
                    used: 0,
                },
            )
        })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetProcessUtilization(
    d: NvmlDevice,
    samples: *mut NvmlProcessUtilizationSample,
    count: *mut c_uint,
    last_seen_us: u64,
) -> NvmlReturn {
    guard(|| {
        with_state(|s| {
            let Some(i) = device_index(s, d) else {
                return NVML_ERROR_INVALID_ARGUMENT;
            };
            if count.is_null() {
                return NVML_ERROR_INVALID_ARGUMENT;
            }
            let now = now_ns();
            let real_now_us = realtime_us();
            // Map the caller's wall-clock µs onto the monotonic clock of the time line.
            let age_ns = real_now_us
                .saturating_sub(last_seen_us)
                .saturating_mul(1_000);
            let t0 = if last_seen_us == 0 {
                0
            } else {
                now.saturating_sub(age_ns)
            };
            // SAFETY: `count` is non-null and points to the capacity of `samples`.
            let cap = unsafe { count.read() } as usize;
            if samples.is_null() {
                let n = s.model.process_util(s.timeline, s.gpus, i, t0, now).len();
                put(count, n as c_uint);
                return if n == 0 {
                    NVML_ERROR_NOT_FOUND
                } else {
                    NVML_ERROR_INSUFFICIENT_SIZE
                };
            }
            let list = s.model.process_util(s.timeline, s.gpus, i, t0, now);
            if list.len() > cap {
                put(count, list.len() as c_uint);
                return NVML_ERROR_INSUFFICIENT_SIZE;
            }
            for (k, p) in list.iter().enumerate() {
                // SAFETY: k < list.len() <= cap, the number of elements the caller provided.
                unsafe {
                    samples.add(k).write(NvmlProcessUtilizationSample {
                        pid: p.pid,
                        time_stamp: real_now_us,
                        sm_util: p.sm_util,
                        mem_util: 0,
                        enc_util: 0,
                        dec_util: 0,
                    })
                };
            }
            put(count, list.len() as c_uint)
        })
    })
}
