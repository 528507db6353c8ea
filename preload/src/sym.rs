//! `dlsym` and `dlvsym`: minld's handles looked up by minld, the default
//! scope by glibc then minld's global scope, anything else by glibc.

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::Ordering;

use crate::{error, open, real::real};

/// `RTLD_DEFAULT`.
const RTLD_DEFAULT: usize = 0;
/// `RTLD_NEXT`.
const RTLD_NEXT: usize = usize::MAX;

/// For the `RTLD_NEXT` stubs: glibc's `dlsym` when the caller is not one
/// of minld's objects (glibc knows what comes next after its own), 0 when
/// it is (minld answers).
pub(crate) extern "C" fn next_dlsym(caller: usize) -> usize {
    crate::guard(real().dlsym as usize, || {
        if minld::object_at(caller).is_some() {
            0
        } else if crate::real::is_own(caller) {
            real().dlsym as usize
        } else {
            open::glibc_whole(real().dlsym as usize)
        }
    })
}

/// [`next_dlsym`] for `dlvsym`.
pub(crate) extern "C" fn next_dlvsym(caller: usize) -> usize {
    crate::guard(real().dlvsym as usize, || {
        if minld::object_at(caller).is_some() {
            0
        } else if crate::real::is_own(caller) {
            real().dlvsym as usize
        } else {
            open::glibc_whole(real().dlvsym as usize)
        }
    })
}

/// A symbol name as Rust text, or the error glibc would give, naming
/// `whose` (the library searched, or the caller for the default scope).
fn name_of<'a>(name: *const c_char, whose: impl FnOnce() -> String) -> Option<&'a str> {
    if name.is_null() {
        error::set(format!(
            "{}: undefined symbol: (null): the symbol name is a null pointer",
            whose()
        ));
        return None;
    }
    // SAFETY: a non-null name is a C string, as dlsym requires.
    let c = unsafe { CStr::from_ptr(name) };
    match c.to_str() {
        Ok(s) => Some(s),
        Err(_) => {
            error::set(format!(
                "{}: undefined symbol: {} (minld looks up UTF-8 names only: this one has bytes {:02x?})",
                whose(),
                c.to_string_lossy(),
                c.to_bytes()
            ));
            None
        }
    }
}

/// `dlsym` (see `entry::dlsym`), `caller` its return address.
pub(crate) extern "C" fn dlsym_from(
    handle: *mut c_void,
    name: *const c_char,
    caller: usize,
) -> *mut c_void {
    crate::guard(std::ptr::null_mut(), || {
        if crate::real::is_own(caller) {
            // SAFETY: glibc's dlsym, for minld's or std's own lookups.
            return unsafe { (real().dlsym)(handle, name) };
        }
        error::begin();
        lookup(handle, name, None, caller)
    })
}

/// `dlvsym` (see `entry::dlvsym`), `caller` its return address.
pub(crate) extern "C" fn dlvsym_from(
    handle: *mut c_void,
    name: *const c_char,
    version: *const c_char,
    caller: usize,
) -> *mut c_void {
    crate::guard(std::ptr::null_mut(), || {
        if crate::real::is_own(caller) {
            // SAFETY: glibc's dlvsym, for minld's own lookups.
            return unsafe { (real().dlvsym)(handle, name, version) };
        }
        error::begin();
        if version.is_null() {
            error::set("dlvsym: the version is a null pointer".into());
            return std::ptr::null_mut();
        }
        // SAFETY: a non-null version is a C string, as dlvsym requires.
        let v = unsafe { CStr::from_ptr(version) };
        lookup(handle, name, Some(v), caller)
    })
}

/// glibc's `dlsym` or `dlvsym` on `handle`, its message ours on failure
/// when `keep_error`.
fn glibc_sym(
    handle: *mut c_void,
    name: *const c_char,
    version: Option<&CStr>,
    keep_error: bool,
) -> *mut c_void {
    // SAFETY: glibc's functions with the caller's arguments.
    let p = unsafe {
        match version {
            Some(v) => (real().dlvsym)(handle, name, v.as_ptr()),
            None => (real().dlsym)(handle, name),
        }
    };
    if p.is_null() {
        if keep_error {
            error::take_glibc();
        } else {
            // SAFETY: clears glibc's message of this thread.
            unsafe { (real().dlerror)() };
        }
    }
    p
}

/// The lookup of `dlsym`/`dlvsym` from a caller other than this library.
fn lookup(
    handle: *mut c_void,
    name: *const c_char,
    version: Option<&CStr>,
    caller: usize,
) -> *mut c_void {
    let h = handle as usize;
    if let Some(lib) = open::library(handle) {
        let lib = match lib {
            Ok(lib) => lib,
            Err(path) => {
                let what = if version.is_some() { "dlvsym" } else { "dlsym" };
                error::set(open::not_open(what, handle, &path));
                return std::ptr::null_mut();
            }
        };
        let Some(n) = name_of(name, || lib.path().display().to_string()) else {
            return std::ptr::null_mut();
        };
        return in_library(&lib, n, version);
    }
    let default = h == RTLD_DEFAULT || h == open::MAIN.load(Ordering::Relaxed);
    if !default && h != RTLD_NEXT {
        return glibc_sym(handle, name, version, true);
    }
    // The default scope (RTLD_NEXT from one of minld's objects too: what
    // follows it is glibc's global scope, then minld's other global
    // objects): glibc's part first.
    let glibc_handle = if h == RTLD_NEXT {
        std::ptr::null_mut()
    } else {
        handle
    };
    // (glibc's message for a miss would name this library, glibc's
    // caller: the message below names the program's.)
    let p = glibc_sym(glibc_handle, name, version, false);
    if !p.is_null() {
        return p;
    }
    let Some(n) = name_of(name, || object_name(caller)) else {
        return std::ptr::null_mut();
    };
    let own = minld::object_at(caller).map(|o| o.map_start());
    if let Some(v) = version {
        // glibc said no: the libraries opened RTLD_GLOBAL through the
        // preload, for that version.
        let v = v.to_string_lossy();
        for lib in open::global_libraries() {
            // SAFETY: only the address is taken, as an untyped pointer.
            if let Ok(p) = unsafe { lib.get_versioned::<*mut c_void>(n, &v) } {
                let p = *p;
                if h != RTLD_NEXT || minld::object_at(p as usize).map(|o| o.map_start()) != own {
                    return p;
                }
            }
        }
        error::set(format!(
            "{}: undefined symbol: {n}, version {v}",
            object_name(caller)
        ));
        return std::ptr::null_mut();
    }
    match minld::Library::find_default(n) {
        Some(p) if h != RTLD_NEXT || minld::object_at(p as usize).map(|o| o.map_start()) != own => {
            p
        }
        _ => {
            error::set(format!("{}: undefined symbol: {n}", object_name(caller)));
            std::ptr::null_mut()
        }
    }
}

/// The name glibc gives the object containing `addr` in its messages:
/// its path, or for the program the name it was started by (`argv[0]`).
fn object_name(addr: usize) -> String {
    if let Some(o) = minld::object_at(addr) {
        return o.path().display().to_string();
    }
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: glibc's dladdr with a valid Dl_info to fill.
    let found = unsafe { (real().dladdr)(addr as *const c_void, &mut info) } != 0;
    if found && !info.dli_fname.is_null() {
        // SAFETY: glibc's NUL-terminated name of the object.
        let name = unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy();
        if !name.is_empty() {
            return name.into_owned();
        }
    }
    std::env::args_os().next().map_or_else(
        || "<main program>".into(),
        |a| a.to_string_lossy().into_owned(),
    )
}

/// A lookup in one of minld's libraries, with glibc's message on a miss.
fn in_library(lib: &minld::Library, name: &str, version: Option<&CStr>) -> *mut c_void {
    // SAFETY: the address is returned as an untyped pointer, which is all
    // dlsym promises.
    let found = unsafe {
        match version {
            Some(v) => lib
                .get_versioned::<*mut c_void>(name, &v.to_string_lossy())
                .map(|s| *s),
            None => lib.get::<*mut c_void>(name).map(|s| *s),
        }
    };
    match found {
        Ok(p) => p,
        Err(_) => {
            let path = lib.path();
            error::set(match version {
                Some(v) => format!(
                    "{}: undefined symbol: {name}, version {}",
                    path.display(),
                    v.to_string_lossy()
                ),
                None => format!("{}: undefined symbol: {name}", path.display()),
            });
            std::ptr::null_mut()
        }
    }
}
