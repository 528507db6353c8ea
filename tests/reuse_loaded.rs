//! `Loader::reuse_loaded`: a library glibc already has is returned as
//! glibc's copy, as glibc's dlopen returns it, and kept loaded by the
//! handle; without it (the default) minld maps its own copy. Each case
//! runs in a process of its own (glibc's loaded objects are the process's).

mod common;

use common::process::in_fresh_process;
use minld::{Library, Loader};

/// glibc's dlopen of libz, and its `zlibVersion`.
fn glibc_libz() -> (*mut libc::c_void, usize) {
    // SAFETY: NUL-terminated names; libz's constructors are trusted.
    let h = unsafe { libc::dlopen(c"libz.so.1".as_ptr(), libc::RTLD_NOW) };
    assert!(!h.is_null(), "glibc's dlopen of libz.so.1");
    // SAFETY: a handle glibc gave, a NUL-terminated name.
    let f = unsafe { libc::dlsym(h, c"zlibVersion".as_ptr()) };
    assert!(!f.is_null());
    (h, f as usize)
}

/// minld's open of libz with `loader`, and its `zlibVersion`.
fn minld_libz(loader: Loader) -> (Library, usize) {
    // SAFETY: the system's libz.
    let l = unsafe { loader.open("libz.so.1") }.unwrap();
    // SAFETY: only the address is taken.
    let f = unsafe { l.get::<*mut libc::c_void>("zlibVersion") }.unwrap();
    let f = *f as usize;
    (l, f)
}

#[test]
fn by_default_minld_maps_its_own_copy() {
    if !in_fresh_process("by_default_minld_maps_its_own_copy") {
        return;
    }
    let (_h, theirs) = glibc_libz();
    let (_l, ours) = minld_libz(Loader::new());
    assert_ne!(ours, theirs);
}

#[test]
fn reuse_loaded_returns_glibcs_copy_and_keeps_it_loaded() {
    if !in_fresh_process("reuse_loaded_returns_glibcs_copy_and_keeps_it_loaded") {
        return;
    }
    let (h, theirs) = glibc_libz();
    let (l, ours) = minld_libz(Loader::new().reuse_loaded(true));
    assert_eq!(ours, theirs);
    // glibc's own handle closed: the copy stays, held by minld's.
    // SAFETY: the handle glibc gave.
    assert_eq!(unsafe { libc::dlclose(h) }, 0);
    // SAFETY: zlibVersion is `const char *(void)`.
    let v = unsafe { l.get::<extern "C" fn() -> *const libc::c_char>("zlibVersion") }.unwrap();
    // SAFETY: zlib returns its NUL-terminated version string.
    let version = unsafe { std::ffi::CStr::from_ptr(v()) };
    assert!(version.to_bytes().starts_with(b"1."), "{version:?}");
}

#[test]
fn reuse_loaded_maps_what_glibc_does_not_have() {
    if !in_fresh_process("reuse_loaded_maps_what_glibc_does_not_have") {
        return;
    }
    let (l, _) = minld_libz(Loader::new().reuse_loaded(true));
    assert!(
        l.segments().iter().any(|s| s.prot.exec()),
        "minld's own mapping"
    );
}
