//! Initial-exec TLS into another library's block whose image is not yet
//! relocated when the reference is: libtls_ie_ptrowner.so defines
//! `__thread void *tls_ie_ptr = &tls_ie_target` (an R_X86_64_64 inside its
//! TLS image) and needs libtls_ie_reader.so, which reads `tls_ie_ptr` with
//! initial-exec access. The reader is relocated first (dependencies
//! first), yet every thread's block must start from the definer's
//! relocated image, as under glibc.
//!
//! Static TLS is the process's, so each case runs in a process of its own.

mod common;

use std::ffi::{c_void, CString};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use common::libs::{lib, open};
use common::process::in_fresh_process;

/// The four functions of the pair, as addresses: the target's address,
/// `tls_ie_ptr`'s address from the definer, and the reader's view of both.
#[derive(Clone, Copy)]
struct Pair {
    target: extern "C" fn() -> *mut c_void,
    owner_slot: extern "C" fn() -> *mut c_void,
    read: extern "C" fn() -> *mut c_void,
    reader_slot: extern "C" fn() -> *mut c_void,
}

impl Pair {
    /// From a lookup of each function's address by name.
    fn new(get: impl Fn(&str) -> usize) -> Pair {
        let f = |name: &str| {
            let at = get(name);
            assert_ne!(at, 0, "{name}");
            // SAFETY: the functions of test-libs/tls_ie_{reader,ptrowner}.c
            // take nothing and return a pointer.
            unsafe { std::mem::transmute::<usize, extern "C" fn() -> *mut c_void>(at) }
        };
        Pair {
            target: f("tls_ie_target_addr"),
            owner_slot: f("tls_ie_ptr_addr"),
            read: f("tls_ie_read_ptr"),
            reader_slot: f("tls_ie_read_ptr_addr"),
        }
    }

    /// In the calling thread: what the reader reads is the target's
    /// address (the relocated initial value), and both libraries reach the
    /// same `tls_ie_ptr`. Returns that variable's address.
    fn check(self, who: &str) -> usize {
        let target = (self.target)() as usize;
        let read = (self.read)() as usize;
        assert_eq!(
            read, target,
            "{who}: tls_ie_ptr is {read:#x}, not &tls_ie_target {target:#x}"
        );
        let (mine, theirs) = ((self.reader_slot)() as usize, (self.owner_slot)() as usize);
        assert_eq!(mine, theirs, "{who}: two different tls_ie_ptr");
        mine
    }

    /// [`Pair::check`] in a thread started before the pair was found
    /// (`ready` gives it the pair), in the calling thread, and in a thread
    /// started after; each thread has its own variable.
    fn everywhere(get: impl Fn(&str) -> usize, who: &str) {
        let go = Arc::new(Barrier::new(2));
        let slot: Arc<Mutex<Option<Pair>>> = Arc::new(Mutex::new(None));
        let before = {
            let (go, slot) = (go.clone(), slot.clone());
            let who = format!("{who}, thread started before the load");
            thread::spawn(move || {
                go.wait();
                let p = slot.lock().unwrap().unwrap();
                p.check(&who)
            })
        };
        let p = Pair::new(get);
        *slot.lock().unwrap() = Some(p);
        go.wait();
        let here = p.check(&format!("{who}, main thread"));
        let who_after = format!("{who}, thread started after the load");
        let after = thread::spawn(move || p.check(&who_after)).join().unwrap();
        let before = before.join().unwrap();
        assert!(here != after && here != before && before != after);
    }
}

/// glibc's dlopen of the pair: the reference.
#[test]
fn glibc_gives_the_relocated_initial_value_in_every_thread() {
    if !in_fresh_process("glibc_gives_the_relocated_initial_value_in_every_thread") {
        return;
    }
    let path = CString::new(lib("libtls_ie_ptrowner.so")).unwrap();
    Pair::everywhere(
        |name| {
            // SAFETY: glibc's dlopen of a test-lib (no constructors), and
            // dlsym on the live handle.
            unsafe {
                let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
                assert!(!h.is_null(), "glibc's dlopen");
                let name = CString::new(name).unwrap();
                libc::dlsym(h, name.as_ptr()) as usize
            }
        },
        "glibc",
    );
}

/// minld's load of the pair gives what glibc's gives.
#[test]
fn minld_gives_the_relocated_initial_value_in_every_thread() {
    if !in_fresh_process("minld_gives_the_relocated_initial_value_in_every_thread") {
        return;
    }
    let owner = open("libtls_ie_ptrowner.so");
    let reader = open("libtls_ie_reader.so");
    Pair::everywhere(
        |name| {
            let l = if name.starts_with("tls_ie_read") {
                &reader
            } else {
                &owner
            };
            // SAFETY: only the address is taken.
            *unsafe { l.get::<usize>(name) }.unwrap_or_else(|e| panic!("{name}: {e}"))
        },
        "minld",
    );
}

/// The deferred-init path: `Loader::prepare` relocates the pair (the
/// reader's initial-exec reference held back until the definer is
/// relocated) and `Prepared::run` finishes it; every thread starts from
/// the relocated image, as with glibc's (the test above; not in this
/// process: after glibc's dlopen, the owner's DT_NEEDED would be bound to
/// glibc's copy of the reader, a loaded soname).
#[test]
fn prepared_gives_the_relocated_initial_value_in_every_thread() {
    if !in_fresh_process("prepared_gives_the_relocated_initial_value_in_every_thread") {
        return;
    }
    let prepared = minld::Loader::new()
        .prepare(lib("libtls_ie_ptrowner.so"))
        .unwrap_or_else(|e| panic!("prepare: {e}"));
    // SAFETY: test-lib code (no constructors, no ifuncs).
    let owner = unsafe { prepared.run() }.unwrap_or_else(|e| panic!("run: {e}"));
    Pair::everywhere(
        // SAFETY: only the address is taken (the reader's functions are
        // found in the owner's dependency).
        |name| *unsafe { owner.get::<usize>(name) }.unwrap_or_else(|e| panic!("{name}: {e}")),
        "minld prepared",
    );
}
