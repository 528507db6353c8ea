//! A TLS image holding an R_X86_64_IRELATIVE (test-libs/tls_ifunc.c):
//! every thread's block must start from the resolved image, as under
//! glibc, whether the block is minld's (general-dynamic,
//! libtls_ifunc.so) or placed in glibc's static TLS (initial-exec,
//! libtls_ifunc_ie.so), the library opened or prepared and run.
//!
//! Static TLS is the process's, so each case runs in a process of its own.

mod common;

use std::ffi::{c_int, c_void, CString};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use minld::{Library, Loader};

use common::libs::lib;
use common::process::in_fresh_process;

/// The functions of test-libs/tls_ifunc.c.
#[derive(Clone, Copy)]
struct Fns {
    value: extern "C" fn() -> *mut c_void,
    expected: extern "C" fn() -> *mut c_void,
    call: extern "C" fn() -> c_int,
    addr: extern "C" fn() -> *mut c_void,
}

impl Fns {
    /// From a lookup of each function's address by name.
    fn new(get: impl Fn(&str) -> usize) -> Fns {
        let f = |name: &str| {
            let at = get(name);
            assert_ne!(at, 0, "{name} not found");
            at
        };
        // SAFETY: the signatures are those of test-libs/tls_ifunc.c.
        unsafe {
            Fns {
                value: std::mem::transmute::<usize, extern "C" fn() -> *mut c_void>(f(
                    "tls_ifunc_value",
                )),
                expected: std::mem::transmute::<usize, extern "C" fn() -> *mut c_void>(f(
                    "tls_ifunc_expected",
                )),
                call: std::mem::transmute::<usize, extern "C" fn() -> c_int>(f("tls_ifunc_call")),
                addr: std::mem::transmute::<usize, extern "C" fn() -> *mut c_void>(f(
                    "tls_ifunc_addr",
                )),
            }
        }
    }

    /// In the calling thread: the variable holds the ifunc's resolved
    /// address and calling through it works. Returns the variable's
    /// address.
    fn check(self, who: &str) -> usize {
        let (value, expected) = ((self.value)() as usize, (self.expected)() as usize);
        assert_eq!(
            value, expected,
            "{who}: tls_ifunc_fn starts as {value:#x}, not the ifunc's {expected:#x}"
        );
        assert_eq!((self.call)(), 7, "{who}: calling through tls_ifunc_fn");
        (self.addr)() as usize
    }

    /// [`Fns::check`] in a thread started before the library was found
    /// (given the functions afterwards), in the calling thread and in a
    /// thread started after; each has its own variable.
    fn everywhere(get: impl Fn(&str) -> usize, who: &str) {
        let go = Arc::new(Barrier::new(2));
        let slot: Arc<Mutex<Option<Fns>>> = Arc::new(Mutex::new(None));
        let before = {
            let (go, slot) = (go.clone(), slot.clone());
            let who = format!("{who}, thread started before the load");
            thread::spawn(move || {
                go.wait();
                let f = slot.lock().unwrap().unwrap();
                f.check(&who)
            })
        };
        let f = Fns::new(get);
        *slot.lock().unwrap() = Some(f);
        go.wait();
        let here = f.check(&format!("{who}, main thread"));
        let who_after = format!("{who}, thread started after the load");
        let after = thread::spawn(move || f.check(&who_after)).join().unwrap();
        let before = before.join().unwrap();
        assert!(here != after && here != before && before != after);
    }
}

/// glibc's dlopen of `name`, checked in every thread.
fn glibc(name: &str) {
    let path = CString::new(lib(name)).unwrap();
    // SAFETY: glibc's dlopen of a test-lib (no constructors; its resolver
    // only returns an address).
    let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "glibc's dlopen of {name}");
    Fns::everywhere(
        |f| {
            let f = CString::new(f).unwrap();
            // SAFETY: dlsym on the live handle.
            unsafe { libc::dlsym(h, f.as_ptr()) as usize }
        },
        &format!("glibc, {name}"),
    );
}

/// minld's library, checked in every thread.
fn minld(l: &Library, who: &str) {
    Fns::everywhere(
        // SAFETY: only the address is taken.
        |f| *unsafe { l.get::<usize>(f) }.unwrap_or_else(|e| panic!("{f}: {e}")),
        who,
    );
}

/// minld's `Loader::prepare` of `name`, then `Prepared::run`.
fn prepared(name: &str) -> Library {
    let p = Loader::new()
        .prepare(lib(name))
        .unwrap_or_else(|e| panic!("prepare {name}: {e}"));
    // SAFETY: test-lib code (a resolver returning an address).
    unsafe { p.run() }.unwrap_or_else(|e| panic!("run {name}: {e}"))
}

/// General-dynamic: minld's own blocks start from the resolved image.
#[test]
fn an_ifunc_in_a_dynamic_tls_image_is_resolved_in_every_thread() {
    if !in_fresh_process("an_ifunc_in_a_dynamic_tls_image_is_resolved_in_every_thread") {
        return;
    }
    glibc("libtls_ifunc.so");
    // SAFETY: test-lib code.
    let l = unsafe { Library::open(lib("libtls_ifunc.so")) }.expect("open libtls_ifunc.so");
    minld(&l, "minld, libtls_ifunc.so");
}

/// Initial-exec: the block in glibc's static TLS starts from the resolved
/// image in every thread.
#[test]
fn an_ifunc_in_a_static_tls_image_is_resolved_in_every_thread() {
    if !in_fresh_process("an_ifunc_in_a_static_tls_image_is_resolved_in_every_thread") {
        return;
    }
    glibc("libtls_ifunc_ie.so");
    // SAFETY: test-lib code.
    let l = unsafe { Library::open(lib("libtls_ifunc_ie.so")) }.expect("open libtls_ifunc_ie.so");
    minld(&l, "minld, libtls_ifunc_ie.so");
}

/// The same, the library prepared first (its resolver runs only in
/// `Prepared::run`).
#[test]
fn an_ifunc_in_a_prepared_static_tls_image_is_resolved_in_every_thread() {
    if !in_fresh_process("an_ifunc_in_a_prepared_static_tls_image_is_resolved_in_every_thread") {
        return;
    }
    glibc("libtls_ifunc_ie.so");
    minld(
        &prepared("libtls_ifunc_ie.so"),
        "minld prepared, libtls_ifunc_ie.so",
    );
    minld(
        &prepared("libtls_ifunc.so"),
        "minld prepared, libtls_ifunc.so",
    );
}

/// libtls_ifunc_owner.so's `tls_ifunc_fn` as its dependency
/// libtls_ifunc_reader.so reads it (initial-exec), in every thread: the
/// resolver's choice, and the owner's own variable. `get` finds a
/// function of either library.
fn read_everywhere(get: impl Fn(&str) -> usize, who: &str) {
    let f = |name: &str| {
        let at = get(name);
        assert_ne!(at, 0, "{name} not found");
        // SAFETY: the functions of test-libs/tls_ifunc*.c take nothing
        // and return a pointer.
        unsafe { std::mem::transmute::<usize, extern "C" fn() -> *mut c_void>(at) }
    };
    let (read, read_addr) = (f("tls_ifunc_read"), f("tls_ifunc_read_addr"));
    let (expected, addr) = (f("tls_ifunc_expected"), f("tls_ifunc_addr"));
    let check = move |who: &str| {
        let (v, e) = (read() as usize, expected() as usize);
        assert_eq!(
            v, e,
            "{who}: the reader sees {v:#x}, not the ifunc's {e:#x}"
        );
        let (mine, theirs) = (read_addr() as usize, addr() as usize);
        assert_eq!(mine, theirs, "{who}: two different tls_ifunc_fn");
        mine
    };
    let here = check(&format!("{who}, main thread"));
    let who_after = format!("{who}, thread started after the load");
    let after = thread::spawn(move || check(&who_after)).join().unwrap();
    assert_ne!(here, after);
}

/// glibc's dlopen of libtls_ifunc_owner.so, checked by
/// [`read_everywhere`] (the handle stays open).
fn glibc_owner() {
    let path = CString::new(lib("libtls_ifunc_owner.so")).unwrap();
    // SAFETY: glibc's dlopen of a test-lib (no constructors).
    let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "glibc's dlopen of libtls_ifunc_owner.so");
    read_everywhere(
        |f| {
            let f = CString::new(f).unwrap();
            // SAFETY: dlsym on the live handle (it searches the
            // dependencies too).
            unsafe { libc::dlsym(h, f.as_ptr()) as usize }
        },
        "glibc",
    );
}

/// The address of function `f` in minld's `owner` (the functions of
/// libtls_ifunc_reader.so are found in the owner's dependencies, as
/// `Library::get` searches them).
fn owner_fn(owner: &Library, f: &str) -> usize {
    // SAFETY: only the address is taken.
    *unsafe { owner.get::<usize>(f) }.unwrap_or_else(|e| panic!("{f}: {e}"))
}

// The pair's cases below each run glibc's and minld's loads in processes
// of their own: after glibc's dlopen, minld binds the owner's DT_NEEDED
// libtls_ifunc_reader.so to glibc's copy (a loaded soname, as glibc does),
// which reads glibc's block, not minld's.

/// glibc's dlopen of the pair: the reference.
#[test]
fn glibc_resolves_an_ifunc_in_a_static_tls_image_read_by_a_dependency() {
    if !in_fresh_process("glibc_resolves_an_ifunc_in_a_static_tls_image_read_by_a_dependency") {
        return;
    }
    glibc_owner();
}

/// The owner's image holds an IRELATIVE and its dependency reads it
/// initial-exec before the owner is relocated: every thread starts from
/// the resolved image, as under glibc.
#[test]
fn an_ifunc_in_a_static_tls_image_read_by_a_dependency() {
    if !in_fresh_process("an_ifunc_in_a_static_tls_image_read_by_a_dependency") {
        return;
    }
    // SAFETY: test-lib code.
    let owner = unsafe { Library::open(lib("libtls_ifunc_owner.so")) }.expect("open");
    read_everywhere(|f| owner_fn(&owner, f), "minld");
}

/// The same, the owner prepared first: its resolver runs only in
/// `Prepared::run`, and the block is placed only then.
#[test]
fn an_ifunc_in_a_prepared_static_tls_image_read_by_a_dependency() {
    if !in_fresh_process("an_ifunc_in_a_prepared_static_tls_image_read_by_a_dependency") {
        return;
    }
    let owner = prepared("libtls_ifunc_owner.so");
    read_everywhere(|f| owner_fn(&owner, f), "minld prepared");
}
