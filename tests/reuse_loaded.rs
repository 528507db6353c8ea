//! `Loader::reuse_loaded`: a library glibc already has is returned as
//! glibc's copy, as glibc's dlopen returns it, and kept loaded by the
//! handle; without it (the default) minld maps its own copy. What minld
//! keeps of glibc's list of objects between loads is never used once glibc
//! has loaded or unloaded something (the last cases). Each case runs in a
//! process of its own (glibc's loaded objects are the process's).

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

// Which file each of glibc's objects is, by path, is asked once and kept
// while glibc loads and unloads nothing (dl_iterate_phdr's counters): the
// cases below change glibc's objects, or a file, between two opens and
// check that what was kept is never returned for another file.

/// A private copy of libbasic.so at `dir/libbasic.so` (a file of its own:
/// its own inode).
fn private_basic(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("libbasic.so");
    std::fs::copy(common::libs::test_lib("libbasic.so"), &path).unwrap();
    path
}

/// A directory of its own under the system's temporary directory.
fn temp_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("minld-reuse-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// glibc's dlopen of `path` and its `basic_add`.
fn glibc_open(path: &std::path::Path) -> (*mut libc::c_void, usize) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: NUL-terminated names; libbasic has no constructor.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW) };
    assert!(!h.is_null(), "glibc's dlopen of {}", path.display());
    // SAFETY: a handle glibc gave, a NUL-terminated name.
    let f = unsafe { libc::dlsym(h, c"basic_add".as_ptr()) };
    assert!(!f.is_null());
    (h, f as usize)
}

/// minld's open of `path` with `reuse_loaded`, and its `basic_add`.
fn minld_open(path: &std::path::Path) -> (Library, usize) {
    // SAFETY: a copy of the test library libbasic.so.
    let l = unsafe { Loader::new().reuse_loaded(true).open(path) }.unwrap();
    // SAFETY: only the address is taken.
    let f = *unsafe { l.get::<*mut libc::c_void>("basic_add") }.unwrap() as usize;
    (l, f)
}

/// Whether glibc still has `path` loaded.
fn glibc_has(path: &std::path::Path) -> bool {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: RTLD_NOLOAD loads nothing; the reference taken is given back.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
    if h.is_null() {
        return false;
    }
    // SAFETY: the handle just taken.
    unsafe { libc::dlclose(h) };
    true
}

#[test]
fn reuse_loaded_does_not_return_a_copy_glibc_has_unloaded() {
    if !in_fresh_process("reuse_loaded_does_not_return_a_copy_glibc_has_unloaded") {
        return;
    }
    let dir = temp_dir("unloaded");
    let path = private_basic(&dir);
    let (h, theirs) = glibc_open(&path);
    let (l, ours) = minld_open(&path);
    assert_eq!(ours, theirs, "the first open is glibc's copy");
    drop(l);
    // SAFETY: the handle glibc gave.
    assert_eq!(unsafe { libc::dlclose(h) }, 0);
    assert!(!glibc_has(&path), "glibc unloaded it");
    // What was kept about glibc's objects now names an object glibc no
    // longer has: the open maps minld's own copy.
    let (l, ours) = minld_open(&path);
    assert!(
        l.segments().iter().any(|s| s.prot.exec()),
        "minld's own copy"
    );
    // SAFETY: basic_add is `int (int, int)`, in minld's copy, alive with `l`.
    let add: extern "C" fn(i32, i32) -> i32 = unsafe { std::mem::transmute(ours) };
    assert_eq!(add(2, 3), 5);
    drop(l);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reuse_loaded_does_not_return_glibcs_copy_of_a_file_replaced_since() {
    if !in_fresh_process("reuse_loaded_does_not_return_glibcs_copy_of_a_file_replaced_since") {
        return;
    }
    let dir = temp_dir("replaced");
    let path = private_basic(&dir);
    let (_h, theirs) = glibc_open(&path);
    let (first, ours) = minld_open(&path);
    assert_eq!(ours, theirs, "the first open is glibc's copy");
    // Another file (another inode) takes the name; glibc loads and unloads
    // nothing, and still has the first file.
    let next = dir.join("next.so");
    std::fs::copy(common::libs::test_lib("libbasic.so"), &next).unwrap();
    std::fs::rename(&next, &path).unwrap();
    assert!(glibc_has(&path));
    let (second, ours) = minld_open(&path);
    assert_ne!(ours, theirs, "glibc's copy is of the file replaced");
    assert!(
        second.segments().iter().any(|s| s.prot.exec()),
        "minld's own copy of the new file"
    );
    drop((first, second));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reuse_loaded_finds_what_glibc_loaded_after_an_earlier_open() {
    if !in_fresh_process("reuse_loaded_finds_what_glibc_loaded_after_an_earlier_open") {
        return;
    }
    let dir = temp_dir("later");
    let path = private_basic(&dir);
    // An open that reads glibc's objects before it has the library.
    let (z, _) = minld_libz(Loader::new().reuse_loaded(true));
    let (_h, theirs) = glibc_open(&path);
    let (l, ours) = minld_open(&path);
    assert_eq!(ours, theirs, "glibc's copy, loaded after the first open");
    drop((z, l));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_dependency_glibc_loaded_after_an_earlier_load_is_glibcs() {
    if !in_fresh_process("a_dependency_glibc_loaded_after_an_earlier_load_is_glibcs") {
        return;
    }
    let relocs = common::libs::test_lib("librelocs.so");
    let basic = common::libs::test_lib("libbasic.so");
    // A load that reads glibc's list of objects while glibc does not have
    // libbasic.so: librelocs.so's DT_NEEDED gets minld's own copy.
    // SAFETY: the test libraries; only addresses are taken.
    let first = unsafe { Loader::new().open(&relocs) }.unwrap();
    // SAFETY: as above.
    let ours = *unsafe { first.get::<*mut libc::c_void>("basic_add") }.unwrap() as usize;
    drop(first);
    // glibc loads it; the next load's dependency is glibc's copy (what
    // was kept of glibc's list is read again: glibc's list has changed).
    let (_h, theirs) = glibc_open(&basic);
    assert_ne!(ours, theirs);
    // SAFETY: as above.
    let second = unsafe { Loader::new().open(&relocs) }.unwrap();
    // SAFETY: as above.
    let now = *unsafe { second.get::<*mut libc::c_void>("basic_add") }.unwrap() as usize;
    assert_eq!(now, theirs, "librelocs.so binds glibc's libbasic.so");
}
