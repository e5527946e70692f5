//! Symbol lookups as a program makes them: libc's own `dlsym` (unwrapped, global scope = what
//! direct linking binds) and the program's `dlsym(handle, name)` call (wrapped when the
//! interceptor is preloaded).

use std::ffi::{CStr, c_char, c_void};

pub type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;

/// Symbol lookups: libc's own dlsym (unwrapped) and the program's `dlsym` call.
pub struct Syms {
    libc_dlsym: DlsymFn,
    lib: *mut c_void,
}

#[allow(unsafe_code)]
impl Syms {
    pub fn new() -> Result<Syms, String> {
        // SAFETY: dlopen with a NUL-terminated name; RTLD_NOLOAD only returns a loaded libc.
        let libc_h =
            unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
        let mut real = std::ptr::null_mut();
        for v in [c"GLIBC_2.34", c"GLIBC_2.2.5"] {
            // SAFETY: valid handle (or null = default scope) and NUL-terminated strings.
            real = unsafe { libc::dlvsym(libc_h, c"dlsym".as_ptr(), v.as_ptr()) };
            if !real.is_null() {
                break;
            }
        }
        if real.is_null() {
            return Err("libc's dlsym not found".into());
        }
        // SAFETY: `real` is libc's dlsym.
        let libc_dlsym = unsafe { std::mem::transmute::<*mut c_void, DlsymFn>(real) };
        // SAFETY: NUL-terminated name, valid flags.
        let lib =
            unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if lib.is_null() {
            return Err("dlopen(libcuda.so.1) failed: is LD_LIBRARY_PATH set?".into());
        }
        Ok(Syms { libc_dlsym, lib })
    }

    /// Global-scope lookup, as direct linking binds (LD_PRELOAD first).
    pub fn global(&self, name: &CStr) -> Result<*mut c_void, String> {
        // SAFETY: libc's dlsym with RTLD_DEFAULT and a NUL-terminated name.
        let p = unsafe { (self.libc_dlsym)(libc::RTLD_DEFAULT, name.as_ptr()) };
        nonnull(p, name)
    }

    /// The program's own `dlsym(handle, name)` (wrapped when the interceptor is preloaded).
    pub fn dlsym(&self, name: &CStr) -> Result<*mut c_void, String> {
        // SAFETY: live handle and NUL-terminated name.
        let p = unsafe { libc::dlsym(self.lib, name.as_ptr()) };
        if p.is_null() {
            // SAFETY: dlerror returns null or a NUL-terminated message valid until the next call.
            let err = unsafe { libc::dlerror() };
            let why = if err.is_null() {
                "no dlerror".into()
            } else {
                // SAFETY: non-null, NUL-terminated (see above).
                unsafe { CStr::from_ptr(err) }
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(format!("dlsym({name:?}) returned null: {why}"));
        }
        Ok(p)
    }
}

pub fn nonnull(p: *mut c_void, name: &CStr) -> Result<*mut c_void, String> {
    if p.is_null() {
        Err(format!("symbol {name:?} not found"))
    } else {
        Ok(p)
    }
}
