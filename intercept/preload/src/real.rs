//! Finding the real driver functions: `libcuda.so.1` opened with `RTLD_NOLOAD` first (use the
//! copy the application loaded), then `RTLD_NOW`; symbols looked up with the real `dlsym`
//! (found with `dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34")`, falling back to `GLIBC_2.2.5`), and
//! rejected if they resolve to one of our own hooks — we never call ourselves.
//!
//! Resolution happens once per symbol and is cached in an atomic slot; the launch path only
//! loads the slot.

use std::ffi::{c_char, c_void};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Acquire, Release};

/// Signature of `dlsym`.
pub type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;

static REAL_DLSYM: AtomicUsize = AtomicUsize::new(0);
/// Slot value for "the driver has no such symbol" (never a function address).
const MISSING: usize = 1;
static LIBCUDA: AtomicUsize = AtomicUsize::new(0);

/// The real `dlsym` of libc.
#[allow(unsafe_code)]
pub fn real_dlsym() -> Option<DlsymFn> {
    let mut a = REAL_DLSYM.load(Acquire);
    if a == 0 {
        for version in [c"GLIBC_2.34", c"GLIBC_2.2.5"] {
            // SAFETY: RTLD_NEXT with NUL-terminated name and version strings is a valid dlvsym
            // call; it returns null or the address of libc's `dlsym`.
            let p = unsafe { libc::dlvsym(libc::RTLD_NEXT, c"dlsym".as_ptr(), version.as_ptr()) };
            if !p.is_null() && p as usize != crate::hooks::own_dlsym_addr() {
                a = p as usize;
                break;
            }
        }
        if a == 0 {
            return None;
        }
        REAL_DLSYM.store(a, Release);
    }
    // SAFETY: `a` is the non-null address of libc's dlsym, whose signature is DlsymFn.
    Some(unsafe { std::mem::transmute::<usize, DlsymFn>(a) })
}

#[allow(unsafe_code)]
fn libcuda() -> Option<*mut c_void> {
    let h = LIBCUDA.load(Acquire);
    if h != 0 {
        return Some(h as *mut c_void);
    }
    let name = c"libcuda.so.1";
    // SAFETY: dlopen with a NUL-terminated name and valid flags; returns null or a handle.
    let mut p = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    if p.is_null() {
        // SAFETY: as above.
        p = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW) };
    }
    if p.is_null() {
        return None;
    }
    LIBCUDA.store(p as usize, Release);
    Some(p)
}

/// Address of `name` (NUL-terminated) in the real driver, never one of our hooks.
#[allow(unsafe_code)]
pub fn driver_symbol(name: &'static str) -> Option<usize> {
    let dlsym = real_dlsym()?;
    let h = libcuda()?;
    // SAFETY: `h` is a live dlopen handle and `name` is NUL-terminated (built by the hook
    // table with `concat!(.., "\0")`).
    let p = unsafe { dlsym(h, name.as_ptr().cast()) } as usize;
    (p != 0 && !crate::hooks::is_ours(p)).then_some(p)
}

/// The real function cached in `slot`, resolving it from the driver on first use. `F` must be
/// the function-pointer type of the symbol `name`.
#[allow(unsafe_code)]
#[inline]
pub fn cuda<F: Copy>(slot: &AtomicUsize, name: &'static str) -> Option<F> {
    const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<usize>()) };
    let mut a = slot.load(Acquire);
    if a == MISSING {
        return None;
    }
    if a == 0 {
        match driver_symbol(name) {
            Some(found) => a = found,
            None => {
                // Remember that this driver lacks the symbol (only once libcuda itself loaded).
                if LIBCUDA.load(Acquire) != 0 {
                    slot.store(MISSING, Release);
                }
                return None;
            }
        }
        slot.store(a, Release);
    }
    // SAFETY: `a` is a non-null address the driver exports under `name`, and the hook table
    // pairs every name with its C signature `F` (a function pointer, same size as usize).
    Some(unsafe { std::mem::transmute_copy::<usize, F>(&a) })
}

/// The real `dlsym`, as a slot resolver for the hook table.
#[allow(unsafe_code)]
#[inline]
pub fn libc_dlsym<F: Copy>(slot: &AtomicUsize, _name: &'static str) -> Option<F> {
    const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<usize>()) };
    let mut a = slot.load(Acquire);
    if a == 0 {
        a = real_dlsym()? as usize;
        slot.store(a, Release);
    }
    // SAFETY: `a` is libc's dlsym and the table declares `dlsym` with its C signature `F`.
    Some(unsafe { std::mem::transmute_copy::<usize, F>(&a) })
}
