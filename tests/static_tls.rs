//! Initial-exec TLS of the libraries minld loads (DF_STATIC_TLS, TPOFF64
//! against their own block): the block is placed in glibc's surplus static
//! TLS (glibc reserves it for a small object minld writes into a memfd and
//! opens with glibc's dlopen), initialised in every thread, those that
//! existed before the load and those created after; the library's dynamic
//! accesses (`__tls_get_addr`, TLS descriptors) and `Library::get` reach
//! the same block. When the surplus is exhausted the load fails with the
//! sizes. Real libraries: libGLdispatch (OpenGL's dispatch) and libgomp
//! (OpenMP), compared with glibc's own dlopen of them.
//!
//! Static TLS is the process's, so each case runs in a process of its own.

mod common;

use std::ffi::{c_int, c_uint, c_void, CStr};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use minld::{Error, Library, Loader};

use common::libs::{lib, open};
use common::process::{fd_count, in_fresh_process, maps_text};

const THREADS: usize = 4;

/// The thread pointer (%fs:0 holds its own address on x86-64).
fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: reads the TCB's self pointer; no other effect.
    unsafe { std::arch::asm!("mov {}, fs:0", out(reg) tp) };
    tp
}

/// The functions of libtls_ie.so (and libtls_ie_desc.so).
#[derive(Clone, Copy)]
struct Ie {
    check_initial: extern "C" fn() -> c_int,
    scribble: extern "C" fn(c_int),
    check_scribbled: extern "C" fn(c_int) -> c_int,
    addr: extern "C" fn() -> *mut c_int,
    gd_addr: extern "C" fn() -> *mut c_int,
    local_addr: extern "C" fn() -> *mut c_int,
    /// `Library::get` of the two exported variables, for the calling
    /// thread (minld's `dlsym`).
    get: fn(&Library) -> (usize, usize),
}

impl Ie {
    fn new(l: &Library) -> Ie {
        fn get<T: Copy>(l: &Library, name: &str) -> T {
            // SAFETY: the types below are those of test-libs/tls_ie*.c.
            *unsafe { l.get::<T>(name) }.unwrap_or_else(|e| panic!("{name}: {e}"))
        }
        Ie {
            check_initial: get(l, "tls_ie_check_initial"),
            scribble: get(l, "tls_ie_scribble"),
            check_scribbled: get(l, "tls_ie_check_scribbled"),
            addr: get(l, "tls_ie_addr"),
            gd_addr: get(l, "tls_ie_gd_addr"),
            local_addr: get(l, "tls_ie_local_addr"),
            get: |l| {
                let var = get::<*mut c_int>(l, "tls_ie_var") as usize;
                (var, get::<*mut c_int>(l, "tls_ie_gd_var") as usize)
            },
        }
    }

    /// In the calling thread: the block starts at its initial values,
    /// lies in static TLS (below the thread pointer), is the one the
    /// dynamic accesses and `Library::get` reach; then it is written and
    /// read back. Returns the initial-exec variable's address.
    fn exercise(&self, l: &Library, seed: c_int, who: &str) -> usize {
        assert_eq!((self.check_initial)(), 0, "{who}: not at initial values");
        let ie = (self.addr)() as usize;
        let tp = thread_pointer();
        assert!(
            ie < tp && tp - ie < 1 << 16,
            "{who}: tls_ie_var at {ie:#x}, not in static TLS below {tp:#x}"
        );
        let (gd, local) = ((self.gd_addr)(), (self.local_addr)());
        // SAFETY: this thread's copies of two ints of the library.
        let (gd_val, local_val) = unsafe { (*gd, *local) };
        assert_eq!((gd_val, local_val), (5, 9), "{who}: dynamic accesses");
        let (got_ie, got_gd) = (self.get)(l);
        assert_eq!(got_ie, ie, "{who}: Library::get(tls_ie_var)");
        assert_eq!(got_gd, gd as usize, "{who}: Library::get(tls_ie_gd_var)");
        for p in [gd as usize, local as usize] {
            assert!(
                p.abs_diff(ie) < 0x100,
                "{who}: {p:#x} not in tls_ie_var's block ({ie:#x})"
            );
        }
        (self.scribble)(seed);
        assert_eq!((self.check_scribbled)(seed), 0, "{who}: read back");
        ie
    }
}

/// Threads started before the load, and after it, each find the block
/// initialised and have their own copy; the main thread's stays initial.
fn threads_before_and_after(name: &str) {
    let loaded = Arc::new(Barrier::new(THREADS + 1));
    let slot: Arc<Mutex<Option<Arc<Library>>>> = Arc::new(Mutex::new(None));
    let before: Vec<_> = (0..THREADS)
        .map(|i| {
            let (loaded, slot) = (loaded.clone(), slot.clone());
            thread::spawn(move || {
                loaded.wait();
                let l = slot.lock().unwrap().clone().unwrap();
                Ie::new(&l).exercise(&l, i as c_int + 1, &format!("thread {i} (before)"))
            })
        })
        .collect();
    let l = Arc::new(open(name));
    *slot.lock().unwrap() = Some(l.clone());
    loaded.wait();
    let ie = Ie::new(&l);
    let after: Vec<_> = (0..THREADS)
        .map(|i| {
            let l = l.clone();
            let seed = 100 + i as c_int;
            thread::spawn(move || Ie::new(&l).exercise(&l, seed, &format!("thread {i} (after)")))
        })
        .collect();
    let mut seen: Vec<usize> = before
        .into_iter()
        .chain(after)
        .map(|h| h.join().expect("worker"))
        .collect();
    assert_eq!(
        (ie.check_initial)(),
        0,
        "{name}: main thread's copy was written"
    );
    seen.push(ie.exercise(&l, 7, "main thread"));
    let n = seen.len();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), n, "{name}: threads share a block: {seen:x?}");
}

#[test]
fn initial_exec_block_in_threads_before_and_after_the_load() {
    if !in_fresh_process("initial_exec_block_in_threads_before_and_after_the_load") {
        return;
    }
    threads_before_and_after("libtls_ie.so");
}

#[test]
fn initial_exec_block_with_tls_descriptors() {
    if !in_fresh_process("initial_exec_block_with_tls_descriptors") {
        return;
    }
    threads_before_and_after("libtls_ie_desc.so");
}

/// With lazy binding the block is placed the same way (TLS relocations are
/// never lazy), and `Loader::link`, which runs none of the library's code,
/// places it too: `Library::get` of its variables gives this thread's
/// static block, at the initial values glibc copied in.
#[test]
fn initial_exec_with_lazy_binding_and_link_only() {
    if !in_fresh_process("initial_exec_with_lazy_binding_and_link_only") {
        return;
    }
    // SAFETY: a test-lib.
    let lazy =
        Arc::new(unsafe { Loader::new().bind_now(false).open(lib("libtls_ie.so")) }.unwrap());
    let l2 = lazy.clone();
    thread::spawn(move || Ie::new(&l2).exercise(&l2, 3, "lazy, thread"))
        .join()
        .unwrap();
    Ie::new(&lazy).exercise(&lazy, 4, "lazy, main thread");
    let linked = Loader::new().link(lib("libtls_ie_desc.so")).unwrap();
    // SAFETY: only addresses and the ints behind them are read.
    let (var, gd) = unsafe {
        (
            *linked.get::<*mut c_int>("tls_ie_var").unwrap(),
            *linked.get::<*mut c_int>("tls_ie_gd_var").unwrap(),
        )
    };
    let tp = thread_pointer();
    assert!(
        (var as usize) < tp && tp - (var as usize) < 1 << 16,
        "static TLS"
    );
    // SAFETY: this thread's copies, initialised by glibc.
    assert_eq!(unsafe { (*var, *gd) }, (3, 5));
}

/// Loading and unloading 300 times: glibc takes the block back each time
/// (it is the last one handed out), so the surplus never runs out; each
/// load starts from initial values; the stub's memfd is closed and
/// unmapped with the library.
#[test]
fn reload_gives_the_static_block_back() {
    if !in_fresh_process("reload_gives_the_static_block_back") {
        return;
    }
    let fds = fd_count();
    let mut offsets = std::collections::HashSet::new();
    for round in 0..300 {
        let l = open("libtls_ie.so");
        let ie = Ie::new(&l);
        let at = ie.exercise(&l, round, &format!("round {round}"));
        offsets.insert(thread_pointer() - at);
        let l = Arc::new(l);
        let l2 = l.clone();
        thread::spawn(move || Ie::new(&l2).exercise(&l2, -round, "worker"))
            .join()
            .expect("worker");
        drop(l);
    }
    assert_eq!(fd_count(), fds, "descriptors left open");
    assert!(
        !maps_text().contains("minld-static-tls"),
        "a stub is still mapped"
    );
    assert!(offsets.len() <= 2, "the block moved around: {offsets:x?}");
}

#[test]
fn an_exhausted_surplus_is_an_error_with_the_sizes() {
    if !in_fresh_process("an_exhausted_surplus_is_an_error_with_the_sizes") {
        return;
    }
    let path = lib("libtls_ie_huge.so");
    let fds = fd_count();
    // SAFETY: a test-lib; its load fails before any of its code runs.
    let e = match unsafe { Loader::new().open(&path) } {
        Ok(_) => panic!("a 1 MiB initial-exec block fitted in static TLS"),
        Err(e) => e,
    };
    let msg = e.to_string();
    match &e {
        Error::Relocation {
            path,
            fault: minld::RelocFault::StaticTlsFull { size, align, glibc },
            ..
        } => {
            assert!(path.ends_with("libtls_ie_huge.so"), "{msg}");
            assert_eq!((*size, *align), (1 << 20, 64), "{msg}");
            assert!(glibc.contains("static TLS"), "{msg}");
        }
        other => panic!("expected StaticTlsFull, got {other:?}: {msg}"),
    }
    assert!(
        msg.contains("cannot allocate memory in static TLS block"),
        "{msg}"
    );
    assert!(msg.contains("1048576") && msg.contains("64"), "{msg}");
    assert!(!common::libs::mapped("libtls_ie_huge.so"), "left mapped");
    assert_eq!(fd_count(), fds, "descriptors left open");
    // glibc refuses it the same way.
    let c = std::ffi::CString::new(path).unwrap();
    // SAFETY: glibc's dlopen of the test-lib (expected to fail).
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW) };
    assert!(h.is_null(), "glibc loaded it");
    // SAFETY: dlerror after a failed dlopen is a C string.
    let why = unsafe { CStr::from_ptr(libc::dlerror()) }.to_string_lossy();
    assert!(
        why.contains("cannot allocate memory in static TLS block"),
        "{why}"
    );
    // A small block still fits afterwards.
    let l = open("libtls_ie.so");
    Ie::new(&l).exercise(&l, 1, "after the failure");
}

/// A load that fails after a library's block was reserved (its dependent
/// has an undefined symbol) gives everything back: the stub is closed, its
/// memfd too, and glibc reuses the room (200 failures do not exhaust the
/// surplus).
#[test]
fn a_failed_load_gives_the_static_block_back() {
    if !in_fresh_process("a_failed_load_gives_the_static_block_back") {
        return;
    }
    let fds = fd_count();
    for _ in 0..200 {
        // SAFETY: a test-lib; the load fails before any code runs.
        match unsafe { Loader::new().open(lib("libtls_ie_user.so")) } {
            Err(Error::UndefinedSymbol { name, .. }) => assert_eq!(name, "minld_tls_ie_missing"),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("libtls_ie_user.so loaded"),
        }
    }
    assert_eq!(fd_count(), fds, "descriptors left open");
    assert!(
        !maps_text().contains("minld-static-tls"),
        "a stub is still mapped"
    );
    assert!(!common::libs::mapped("libtls_ie.so"));
    let l = open("libtls_ie.so");
    Ie::new(&l).exercise(&l, 1, "after 200 failed loads");
}

/// After fork the child has the parent's static block, with what the
/// parent's thread wrote; a thread the child starts gets initial values.
#[test]
fn a_forked_child_keeps_the_static_block() {
    if !in_fresh_process("a_forked_child_keeps_the_static_block") {
        return;
    }
    let l = Arc::new(open("libtls_ie.so"));
    let ie = Ie::new(&l);
    (ie.scribble)(42);
    // SAFETY: the child calls into the loaded library and starts one
    // thread, then leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let kept = (ie.check_scribbled)(42);
        let l2 = l.clone();
        let fresh = thread::spawn(move || (Ie::new(&l2).check_initial)())
            .join()
            .unwrap_or(-1);
        // SAFETY: ends the child without running the parent's handlers.
        unsafe { libc::_exit(if kept == 0 && fresh == 0 { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status:#x}"
    );
}

/// `int *f(void)` of `l`.
fn addr_fn(l: &Library, name: &str) -> extern "C" fn() -> *mut c_int {
    // SAFETY: the functions named here are `int *f(void)`.
    *unsafe { l.get::<extern "C" fn() -> *mut c_int>(name) }.unwrap()
}

/// Initial-exec access to another library's block: loading
/// libtls_ie_foreign.so places its dependency libtls_owner.so's block in
/// static TLS; the owner's own general-dynamic code (minld's module id)
/// and the initial-exec code reach the same variable in every thread.
#[test]
fn initial_exec_into_a_dependencys_block() {
    if !in_fresh_process("initial_exec_into_a_dependencys_block") {
        return;
    }
    let l = Arc::new(open("libtls_ie_foreign.so"));
    let check = move |l: &Library| {
        let ie = addr_fn(l, "tls_ie_foreign_addr")();
        let owner = addr_fn(l, "tls_owner_addr")();
        assert_eq!(ie, owner, "the same variable");
        let tp = thread_pointer();
        assert!(
            (ie as usize) < tp && tp - (ie as usize) < 1 << 16,
            "in static TLS"
        );
        // SAFETY: this thread's tls_shared_counter.
        unsafe {
            assert_eq!(*ie, 5, "initial value");
            *ie += 1;
        }
        ie as usize
    };
    let here = check(&l);
    let l2 = l.clone();
    let there = thread::spawn(move || check(&l2)).join().unwrap();
    assert_ne!(here, there);
}

/// The same after the owner's block was allocated dynamically in a thread
/// (its code ran first): the block cannot move, and the load fails saying
/// so, as glibc's does ("cannot allocate memory in static TLS block").
#[test]
fn initial_exec_into_a_block_already_in_use_is_refused() {
    if !in_fresh_process("initial_exec_into_a_block_already_in_use_is_refused") {
        return;
    }
    let owner = open("libtls_owner.so");
    // SAFETY: this thread's tls_shared_counter (allocated now, by minld).
    assert_eq!(unsafe { *addr_fn(&owner, "tls_owner_addr")() }, 5);
    // SAFETY: a test-lib; the load fails before any of its code runs.
    let e = match unsafe { Loader::new().open(lib("libtls_ie_foreign.so")) } {
        Ok(_) => panic!("loaded with the owner's block in use"),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(
        matches!(&e, Error::Relocation { fault: minld::RelocFault::StaticTls { .. }, path, .. }
            if path.ends_with("libtls_ie_foreign.so")),
        "{e:?}"
    );
    assert!(
        msg.contains("libtls_owner.so") && msg.contains("already allocated"),
        "{msg}"
    );
    assert!(
        !maps_text().contains("minld-static-tls"),
        "a stub is still mapped"
    );
}

/// glibc's copy of a system library, by `dlopen`, and the address it was
/// loaded at.
fn glibc_open(path: &str) -> (*mut c_void, usize) {
    let c = std::ffi::CString::new(path).unwrap();
    // SAFETY: glibc's dlopen of a system library.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "glibc's dlopen of {path}");
    let mut map: *const usize = std::ptr::null();
    // SAFETY: RTLD_DI_LINKMAP writes a link_map pointer; l_addr is its
    // first member.
    let base = unsafe {
        assert_eq!(
            libc::dlinfo(h, libc::RTLD_DI_LINKMAP, (&raw mut map).cast()),
            0
        );
        *map
    };
    (h, base)
}

/// The address of `name` in glibc's copy `h`.
fn glibc_sym(h: *mut c_void, name: &CStr) -> *mut c_void {
    // SAFETY: dlsym on a live handle.
    let p = unsafe { libc::dlsym(h, name.as_ptr()) };
    assert!(!p.is_null(), "{name:?}");
    p
}

const GLDISPATCH: &str = "/usr/lib/x86_64-linux-gnu/libGLdispatch.so.0";

/// libGLdispatch's `_glapi_get_current()` reads its initial-exec
/// `_glapi_tls_Current`, whose image holds a pointer (a RELATIVE
/// relocation in .tdata) to its no-op dispatch table: in every thread,
/// before and after the load, minld's copy gives the same offset from its
/// base as glibc's copy does from its own.
#[test]
fn libgldispatch_current_dispatch_in_every_thread() {
    if !in_fresh_process("libgldispatch_current_dispatch_in_every_thread") {
        return;
    }
    if !std::path::Path::new(GLDISPATCH).exists() {
        eprintln!("skipped: {GLDISPATCH} not installed (Debian package libglvnd0)");
        return;
    }
    let (h, glibc_base) = glibc_open(GLDISPATCH);
    // SAFETY: `void *_glapi_get_current(void)`.
    let glibc_get: extern "C" fn() -> usize =
        unsafe { std::mem::transmute(glibc_sym(h, c"_glapi_get_current")) };
    let expected = glibc_get().wrapping_sub(glibc_base);
    assert!(expected != 0 && glibc_get() != 0);
    let loaded = Arc::new(Barrier::new(2));
    let slot: Arc<Mutex<Option<Arc<Library>>>> = Arc::new(Mutex::new(None));
    let current = |l: &Library| {
        // SAFETY: `void *_glapi_get_current(void)`.
        let f = unsafe { l.get::<extern "C" fn() -> usize>("_glapi_get_current") }.unwrap();
        f().wrapping_sub(l.base())
    };
    let before = {
        let (loaded, slot) = (loaded.clone(), slot.clone());
        thread::spawn(move || {
            loaded.wait();
            let l = slot.lock().unwrap().clone().unwrap();
            current(&l)
        })
    };
    // SAFETY: a system library whose constructor only sets up its state.
    let l = Arc::new(unsafe { Loader::new().open(GLDISPATCH) }.expect("libGLdispatch"));
    *slot.lock().unwrap() = Some(l.clone());
    loaded.wait();
    let l2 = l.clone();
    let after = thread::spawn(move || current(&l2));
    assert_eq!(current(&l), expected, "main thread");
    assert_eq!(
        before.join().unwrap(),
        expected,
        "thread started before the load"
    );
    assert_eq!(
        after.join().unwrap(),
        expected,
        "thread started after the load"
    );
    // SAFETY: `int __glDispatchGetABIVersion(void)`, in both copies.
    let (ours, theirs) = unsafe {
        let f = *l
            .get::<extern "C" fn() -> c_int>("__glDispatchGetABIVersion")
            .unwrap();
        let g: extern "C" fn() -> c_int =
            std::mem::transmute(glibc_sym(h, c"__glDispatchGetABIVersion"));
        (f(), g())
    };
    assert_eq!(ours, theirs);
}

const GOMP: &str = "/usr/lib/x86_64-linux-gnu/libgomp.so.1";

/// What an OpenMP parallel region's threads record.
struct Region {
    /// `omp_get_thread_num` of the copy under test.
    thread_num: extern "C" fn() -> c_int,
    /// `omp_get_num_threads` of that copy.
    num_threads: extern "C" fn() -> c_int,
    /// (thread number, team size) from each thread of the team.
    seen: Mutex<Vec<(c_int, c_int)>>,
}

/// The body of the parallel region: each thread of the team records its
/// number and the team's size (both read from libgomp's initial-exec
/// thread state).
extern "C" fn record(data: *mut c_void) {
    // SAFETY: `data` is the `Region` GOMP_parallel was given, alive until
    // it returns.
    let r = unsafe { &*(data as *const Region) };
    let entry = ((r.thread_num)(), (r.num_threads)());
    r.seen.lock().unwrap().push(entry);
}

/// `omp_get_max_threads()`, and a parallel region of 4 threads, run with
/// `get` (the functions of one copy of libgomp): what the team recorded,
/// sorted.
fn parallel(get: impl Fn(&CStr) -> *mut c_void) -> (c_int, Vec<(c_int, c_int)>) {
    // SAFETY: libgomp's `int omp_get_max_threads(void)`, `int
    // omp_get_thread_num(void)`, `int omp_get_num_threads(void)` and `void
    // GOMP_parallel(void (*)(void *), void *, unsigned, unsigned)`.
    unsafe {
        let max: extern "C" fn() -> c_int = std::mem::transmute(get(c"omp_get_max_threads"));
        type Int = extern "C" fn() -> c_int;
        let region = Region {
            thread_num: std::mem::transmute::<*mut c_void, Int>(get(c"omp_get_thread_num")),
            num_threads: std::mem::transmute::<*mut c_void, Int>(get(c"omp_get_num_threads")),
            seen: Mutex::new(Vec::new()),
        };
        let run: extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint) =
            std::mem::transmute(get(c"GOMP_parallel"));
        run(record, &region as *const Region as *mut c_void, 4, 0);
        let mut seen = region.seen.into_inner().unwrap();
        seen.sort_unstable();
        (max(), seen)
    }
}

/// libgomp (OpenMP): `omp_get_max_threads()` and a parallel region whose
/// threads each find their number in libgomp's initial-exec TLS give what
/// glibc's copy gives, from the main thread and from a thread started
/// before the load.
#[test]
fn libgomp_parallel_region_as_under_glibc() {
    if !in_fresh_process("libgomp_parallel_region_as_under_glibc") {
        return;
    }
    if !std::path::Path::new(GOMP).exists() {
        eprintln!("skipped: {GOMP} not installed (Debian package libgomp1)");
        return;
    }
    let (h, _) = glibc_open(GOMP);
    let theirs = parallel(|n| glibc_sym(h, n));
    let team: Vec<(c_int, c_int)> = (0..4).map(|i| (i, 4)).collect();
    assert_eq!(theirs.1, team, "glibc's libgomp");
    let go = Arc::new(Barrier::new(2));
    let slot: Arc<Mutex<Option<Arc<Library>>>> = Arc::new(Mutex::new(None));
    let by_name = |l: &Library, n: &CStr| {
        // SAFETY: only the address is taken.
        *unsafe { l.get::<*mut c_void>(n.to_str().unwrap()) }.unwrap()
    };
    let before = {
        let (go, slot) = (go.clone(), slot.clone());
        thread::spawn(move || {
            go.wait();
            let l = slot.lock().unwrap().clone().unwrap();
            parallel(|n| by_name(&l, n))
        })
    };
    // SAFETY: a system library; its constructor reads the OpenMP
    // environment.
    let l = Arc::new(unsafe { Loader::new().open(GOMP) }.expect("libgomp"));
    *slot.lock().unwrap() = Some(l.clone());
    assert_eq!(parallel(|n| by_name(&l, n)), theirs, "main thread");
    go.wait();
    assert_eq!(
        before.join().unwrap(),
        theirs,
        "thread started before the load"
    );
    // libgomp's idle team threads wait inside its code: like glibc's copy,
    // it stays loaded until the process exits.
    std::mem::forget(l);
}
