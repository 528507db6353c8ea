//! C++ through minld: exceptions thrown and caught in loaded code (within a
//! library, between two, across a callback the host hands over, inside
//! libstdc++), static constructors and destructors, `thread_local`
//! destructors outliving the `Library`, a private libstdc++, and real C++
//! libraries used for real (libz3, libstdc++ itself).
//!
//! This test process has no libstdc++ of its own (a Rust program links
//! libgcc_s, libm and libc): minld maps libstdc++.so.6 for the C++
//! test-libs, with the process's libgcc_s. Tests that need another setting
//! (glibc's own libstdc++ loaded, or private libstdc++/libgcc_s copies
//! before minld has loaded a shared one) run their body in a fresh process
//! of this test binary (`in_fresh_process`).
//!
//! No C++ exception ever unwinds into Rust frames: each is caught in the
//! library that calls the thrower.

mod common;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use minld::{Library, Loader};

use common::libs::{lib, mapped, open};
use common::process::{in_fresh_process, serial};

/// The path of the `/proc/self/maps` mapping that contains `addr`.
fn mapping_of(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    maps.lines().find_map(|line| {
        let (range, rest) = line.split_once(' ')?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        (lo <= addr && addr < hi).then(|| rest.split_whitespace().nth(4).unwrap_or("").to_string())
    })
}

/// Polls `done` for up to five seconds.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    done()
}

/// `T` from `l`, panicking with the error.
///
/// # Safety
/// `T` must be the symbol's real type.
unsafe fn sym<T: Copy>(l: &Library, name: &str) -> T {
    // SAFETY: the caller's promise.
    *unsafe { l.get::<T>(name) }.unwrap_or_else(|e| panic!("{name}: {e}"))
}

// Result codes of test-libs/cxx_exc.h.
const CAUGHT_NOTHING: c_int = 0;
const CAUGHT_MINLD: c_int = 1000;
const CAUGHT_RUNTIME: c_int = 2000;
const CAUGHT_ELLIPSIS: c_int = 3000;
const CAUGHT_BASE_RUNTIME: c_int = 4000;
const CAUGHT_BASE_MINLD: c_int = 5000;
const RETHROWN: c_int = 10000;

type Thrower = extern "C" fn(c_int);
type Catch = extern "C" fn(Thrower, c_int) -> c_int;

// ---- exceptions ----

#[test]
fn exception_inside_one_library() {
    let _serial = serial();
    let b = open("libcxx_basic.so");
    // SAFETY: int f(void) / int f(int), from cxx_basic.cpp.
    unsafe {
        assert_eq!(
            sym::<extern "C" fn() -> c_int>(&b, "cxx_basic_static_init")(),
            42
        );
        assert_eq!(
            sym::<extern "C" fn(c_int) -> c_int>(&b, "cxx_basic_virtual")(5),
            15
        );
        assert_eq!(
            sym::<extern "C" fn() -> c_int>(&b, "cxx_basic_throw_catch")(),
            7,
            "throw std::runtime_error and catch it in the same library"
        );
    }
    let t = open("libcxx_thrower.so");
    // SAFETY: signatures from cxx_thrower.cpp.
    unsafe {
        let own = sym::<extern "C" fn(c_int) -> c_int>(&t, "cxx_thrower_own_catch");
        for code in [0, 41, -3] {
            assert_eq!(own(code), code + 1);
        }
        let what = sym::<extern "C" fn(c_int) -> *const c_char>(&t, "cxx_thrower_what");
        assert_eq!(CStr::from_ptr(what(9)).to_str().unwrap(), "minld error 9");
    }
}

#[test]
fn exception_from_a_dependency_caught_by_type() {
    let _serial = serial();
    let c = open("libcxx_catcher.so");
    assert!(
        c.dependencies()
            .iter()
            .any(|d| d.ends_with("libcxx_thrower.so")),
        "{:?}",
        c.dependencies()
    );
    // SAFETY: int cxx_catch_direct(int kind, int code).
    let direct = unsafe { sym::<extern "C" fn(c_int, c_int) -> c_int>(&c, "cxx_catch_direct") };
    assert_eq!(direct(0, 5), CAUGHT_MINLD + 5, "MinldError by its type");
    assert_eq!(direct(1, 6), CAUGHT_RUNTIME + 6, "std::runtime_error");
    assert_eq!(
        direct(2, 7),
        CAUGHT_ELLIPSIS + 7,
        "an int through catch (...)"
    );
    assert_eq!(direct(3, 8), CAUGHT_NOTHING, "no exception");
    // Again: the second throw of each type takes the cached paths.
    assert_eq!(direct(0, 50), CAUGHT_MINLD + 50);
    assert_eq!(direct(1, 60), CAUGHT_RUNTIME + 60);
}

/// The thrower's functions, from its own handle.
struct Throwers {
    minld: Thrower,
    runtime: Thrower,
    int: Thrower,
    nothing: Thrower,
}

fn throwers(t: &Library) -> Throwers {
    // SAFETY: void f(int) each, from cxx_thrower.cpp.
    unsafe {
        Throwers {
            minld: sym(t, "cxx_throw_minld"),
            runtime: sym(t, "cxx_throw_runtime"),
            int: sym(t, "cxx_throw_int"),
            nothing: sym(t, "cxx_throw_nothing"),
        }
    }
}

#[test]
fn exception_crosses_a_callback_between_two_libraries() {
    let _serial = serial();
    let c = open("libcxx_catcher.so");
    let t = open("libcxx_thrower.so");
    let th = throwers(&t);
    // SAFETY: the same function, found through the catcher's dependency.
    let via_catcher = unsafe { sym::<Thrower>(&c, "cxx_throw_minld") };
    assert_eq!(
        via_catcher as usize, th.minld as usize,
        "one libcxx_thrower.so for both handles"
    );
    // SAFETY: int cxx_catch_callback(void (*)(int), int).
    let callback = unsafe { sym::<Catch>(&c, "cxx_catch_callback") };
    assert_eq!(callback(th.minld, 1), CAUGHT_MINLD + 1);
    assert_eq!(callback(th.runtime, 2), CAUGHT_RUNTIME + 2);
    assert_eq!(callback(th.int, 3), CAUGHT_ELLIPSIS + 3);
    assert_eq!(callback(th.nothing, 4), CAUGHT_NOTHING);
}

#[test]
fn catch_all_rethrow_exception_ptr_and_base_class() {
    let _serial = serial();
    let c = open("libcxx_catcher.so");
    let t = open("libcxx_thrower.so");
    let th = throwers(&t);
    // SAFETY: int f(void (*)(int), int) each, from cxx_catcher.cpp.
    let (rethrow, later, base) = unsafe {
        (
            sym::<Catch>(&c, "cxx_catch_rethrow"),
            sym::<Catch>(&c, "cxx_catch_later"),
            sym::<Catch>(&c, "cxx_catch_base"),
        )
    };
    // catch (...) { throw; } then caught by type outside.
    assert_eq!(rethrow(th.minld, 1), RETHROWN + CAUGHT_MINLD + 1);
    assert_eq!(rethrow(th.runtime, 2), RETHROWN + CAUGHT_RUNTIME + 2);
    assert_eq!(rethrow(th.int, 3), RETHROWN + CAUGHT_ELLIPSIS + 3);
    assert_eq!(rethrow(th.nothing, 4), CAUGHT_NOTHING);
    // std::current_exception() kept, std::rethrow_exception() later.
    assert_eq!(later(th.minld, 5), CAUGHT_MINLD + 5);
    assert_eq!(later(th.runtime, 6), CAUGHT_RUNTIME + 6);
    assert_eq!(later(th.int, 7), CAUGHT_ELLIPSIS + 7);
    assert_eq!(later(th.nothing, 8), CAUGHT_NOTHING);
    // catch (const std::exception &) and dynamic_cast across libraries.
    assert_eq!(base(th.minld, 9), CAUGHT_BASE_MINLD + 9);
    assert_eq!(base(th.runtime, 10), CAUGHT_BASE_RUNTIME + 10);
    assert_eq!(base(th.int, 11), CAUGHT_ELLIPSIS);
    assert_eq!(base(th.nothing, 12), CAUGHT_NOTHING);
}

#[test]
fn exceptions_in_many_threads_at_once() {
    let _serial = serial();
    let c = open("libcxx_catcher.so");
    let t = open("libcxx_thrower.so");
    let minld = throwers(&t).minld;
    // SAFETY: int cxx_catch_many(void (*)(int), int, int).
    let many =
        unsafe { sym::<extern "C" fn(Thrower, c_int, c_int) -> c_int>(&c, "cxx_catch_many") };
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                many(minld, i, 500)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 500, "every throw caught as MinldError");
    }
}

// ---- static constructors and destructors ----

static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

extern "C" fn record_event(event: *const c_char) {
    // SAFETY: the library passes NUL-terminated string literals.
    let event = unsafe { CStr::from_ptr(event) }
        .to_string_lossy()
        .into_owned();
    EVENTS.lock().unwrap().push(event);
}

#[test]
fn static_constructors_and_destructors_in_order() {
    let _serial = serial();
    for load in 0..2 {
        EVENTS.lock().unwrap().clear();
        let g = open("libcxx_globals.so");
        // SAFETY: signatures from cxx_globals.cpp.
        unsafe {
            sym::<extern "C" fn(extern "C" fn(*const c_char))>(&g, "cxx_globals_set_hook")(
                record_event,
            );
            let live = sym::<extern "C" fn() -> c_int>(&g, "cxx_globals_live");
            assert_eq!(live(), 4, "load {load}: four namespace-scope objects");
            assert_eq!(
                sym::<extern "C" fn() -> c_int>(&g, "cxx_globals_touch_lazy")(),
                1
            );
            assert_eq!(live(), 5);
            assert_eq!(
                sym::<extern "C" fn() -> c_int>(&g, "cxx_globals_sum")(),
                380
            );
            let greeting = sym::<extern "C" fn() -> *const c_char>(&g, "cxx_globals_greeting")();
            assert_eq!(CStr::from_ptr(greeting).to_str().unwrap(), "hello minld");
        }
        assert_eq!(
            *EVENTS.lock().unwrap(),
            [
                "ctor:early",
                "ctor:first",
                "ctor:second",
                "ctor:third",
                "ctor:lazy"
            ],
            "load {load}: init_priority first, then definition order"
        );
        drop(g);
        assert!(!mapped("libcxx_globals.so"), "load {load}: unmapped");
        assert_eq!(
            *EVENTS.lock().unwrap(),
            [
                "ctor:early",
                "ctor:first",
                "ctor:second",
                "ctor:third",
                "ctor:lazy",
                "dtor:lazy",
                "dtor:third",
                "dtor:second",
                "dtor:first",
                "dtor:early"
            ],
            "load {load}: destructors at unload, in reverse order of construction (as glibc)"
        );
    }
}

// ---- thread_local destructors ----

static TLS_DTOR_IDS: Mutex<Vec<c_int>> = Mutex::new(Vec::new());

extern "C" fn record_dtor(id: c_int) {
    TLS_DTOR_IDS.lock().unwrap().push(id);
}

/// Four threads use the library's `thread_local` object (a fifth does not);
/// each object's destructor must run once, at its thread's exit, and the
/// library be unmapped after the last one. With `drop_while_alive`, the
/// Library is dropped while the threads are still alive: it must stay mapped
/// until they exit.
fn thread_local_dtors(loader: &Loader, drop_while_alive: bool) {
    const THREADS: usize = 4;
    TLS_DTOR_IDS.lock().unwrap().clear();
    let name = "libcxx_tls_dtor.so";
    // SAFETY: a test-lib.
    let l = unsafe { loader.open(lib(name)) }.unwrap_or_else(|e| panic!("{name}: {e}"));
    // SAFETY: signatures from cxx_tls_dtor.cpp.
    let (set_hook, touch, constructed, destroyed) = unsafe {
        (
            sym::<extern "C" fn(extern "C" fn(c_int))>(&l, "cxx_tls_set_hook"),
            sym::<extern "C" fn() -> c_int>(&l, "cxx_tls_touch"),
            sym::<extern "C" fn() -> c_int>(&l, "cxx_tls_constructed"),
            sym::<extern "C" fn() -> c_int>(&l, "cxx_tls_destroyed"),
        )
    };
    set_hook(record_dtor);
    let touched = Arc::new(Barrier::new(THREADS + 2));
    let release = Arc::new(Barrier::new(THREADS + 2));
    let mut handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (touched, release) = (Arc::clone(&touched), Arc::clone(&release));
            thread::spawn(move || {
                let id = std::panic::catch_unwind(|| {
                    let id = touch();
                    assert_eq!(touch(), id, "one object per thread");
                    id
                });
                // Waits even after a panic, so no thread is left waiting.
                touched.wait();
                release.wait();
                id.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        })
        .collect();
    // A thread that never uses the object has no destructor to run.
    {
        let (touched, release) = (Arc::clone(&touched), Arc::clone(&release));
        handles.push(thread::spawn(move || {
            touched.wait();
            release.wait();
            0
        }));
    }
    touched.wait();
    // Checked once the threads are released, so a failure leaves none
    // waiting.
    let alive = (constructed(), destroyed());
    let l = if drop_while_alive {
        drop(l);
        None
    } else {
        Some(l)
    };
    let stayed_mapped = mapped(name);
    let ran_early = TLS_DTOR_IDS.lock().unwrap().clone();
    release.wait();
    let ids: Vec<c_int> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        alive,
        (THREADS as c_int, 0),
        "(constructed, destroyed) while the threads are alive"
    );
    assert!(
        stayed_mapped,
        "{THREADS} thread_local destructors pending: the library must stay mapped"
    );
    assert_eq!(ran_early, [], "no destructor before its thread exits");
    if let Some(l) = l {
        assert_eq!(
            destroyed(),
            THREADS as c_int,
            "every thread's destructor ran"
        );
        drop(l);
    }
    let mut ids: Vec<c_int> = ids.into_iter().filter(|&id| id != 0).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=THREADS as c_int).collect::<Vec<_>>());
    let mut ran = TLS_DTOR_IDS.lock().unwrap().clone();
    ran.sort_unstable();
    assert_eq!(
        ran, ids,
        "the destructor ran once for each thread that used the object"
    );
    assert!(
        eventually(|| !mapped(name)),
        "unmapped once the last destructor has run and the Library is gone"
    );
}

#[test]
fn thread_local_destructors_run_at_thread_exit() {
    let _serial = serial();
    thread_local_dtors(&Loader::new(), false);
}

#[test]
fn thread_local_destructors_keep_the_library_until_they_ran() {
    let _serial = serial();
    for _ in 0..3 {
        thread_local_dtors(&Loader::new(), true);
    }
}

// ---- a private libstdc++ ----

/// Exceptions thrown inside libstdc++ and caught in libcxx_private.so.
fn private_lib_works(p: &Library) {
    // SAFETY: signatures from cxx_private.cpp.
    unsafe {
        let at = sym::<extern "C" fn(u32) -> c_int>(p, "cxx_private_at");
        assert_eq!(at(1), 20);
        assert_eq!(at(3), -1, "std::out_of_range from vector::at");
        let stoi = sym::<extern "C" fn(*const c_char) -> c_int>(p, "cxx_private_stoi");
        assert_eq!(stoi(c"123".as_ptr()), 123);
        assert_eq!(
            stoi(c"abc".as_ptr()),
            -1,
            "std::invalid_argument from std::stoi"
        );
        assert_eq!(
            stoi(c"99999999999999".as_ptr()),
            -2,
            "std::out_of_range from std::stoi"
        );
    }
}

/// `std::terminate` as libcxx_private.so bound it, checked against
/// `Library::get` through the same handle.
fn private_terminate(p: &Library) -> usize {
    // SAFETY: void *cxx_private_terminate_addr(void); the address only.
    let (bound, looked_up) = unsafe {
        (
            sym::<extern "C" fn() -> *mut c_void>(p, "cxx_private_terminate_addr")() as usize,
            sym::<*const c_void>(p, "_ZSt9terminatev") as usize,
        )
    };
    assert_eq!(bound, looked_up, "GLOB_DAT and Library::get agree");
    bound
}

fn libstdcxx_dep(p: &Library) -> PathBuf {
    p.dependencies()
        .into_iter()
        .find(|d| d.file_name().is_some_and(|f| f == "libstdc++.so.6"))
        .unwrap_or_else(|| panic!("no libstdc++.so.6 in {:?}", p.dependencies()))
}

/// In a fresh process (no libstdc++ yet, neither glibc's nor minld's),
/// reuse_host(false)
/// maps libstdc++.so.6 and libgcc_s.so.1 for libcxx_private.so, and the
/// exceptions libstdc++ throws go through that second unwinder.
#[test]
fn private_libstdcxx_and_libgcc_s() {
    if !in_fresh_process("private_libstdcxx_and_libgcc_s") {
        return;
    }
    let _serial = serial();
    // SAFETY: a test-lib and the system's libstdc++ / libgcc_s.
    let p = unsafe {
        Loader::new()
            .reuse_host(false)
            .open(lib("libcxx_private.so"))
    }
    .unwrap_or_else(|e| panic!("libcxx_private.so: {e}"));
    libstdcxx_dep(&p);
    assert!(
        p.dependencies()
            .iter()
            .any(|d| d.ends_with("libgcc_s.so.1")),
        "{:?}",
        p.dependencies()
    );
    private_lib_works(&p);
    let terminate = private_terminate(&p);
    let in_file = mapping_of(terminate).unwrap_or_default();
    assert!(
        in_file.contains("libstdc++.so.6"),
        "std::terminate at {terminate:#x} lies in {in_file:?}"
    );
    // The process has libgcc_s.so.1 (Rust's unwinder): the library's is a
    // second copy, so its exceptions went through a private unwinder.
    // SAFETY: the address only.
    let unwinder = unsafe { sym::<*const c_void>(&p, "_Unwind_RaiseException") } as usize;
    // SAFETY: dlsym in the process's global scope.
    let host = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_Unwind_RaiseException".as_ptr()) };
    assert!(!host.is_null(), "the test process links libgcc_s");
    assert_ne!(unwinder, host as usize, "a private libgcc_s.so.1");
    let in_file = mapping_of(unwinder).unwrap_or_default();
    assert!(in_file.contains("libgcc_s.so.1"), "{in_file:?}");
    // And in other threads.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let p = p.clone();
            thread::spawn(move || private_lib_works(&p))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// glibc loads the host's libstdc++ (as a C++ program, or a Rust one with a
/// C++ dependency, has it); returns its handle.
fn host_libstdcxx() -> *mut c_void {
    // SAFETY: loading the system's libstdc++ with glibc; never closed.
    let h = unsafe { libc::dlopen(c"libstdc++.so.6".as_ptr(), libc::RTLD_NOW) };
    assert!(!h.is_null(), "glibc could not load libstdc++.so.6");
    h
}

/// With glibc's libstdc++ in the process: reuse_host(false) gives
/// libcxx_private.so a second libstdc++ whose exceptions work; the default
/// gives it glibc's; libstdc++ opened by name is minld's own mapping.
#[test]
fn private_copy_beside_the_hosts_libstdcxx() {
    if !in_fresh_process("private_copy_beside_the_hosts_libstdcxx") {
        return;
    }
    let _serial = serial();
    let host = host_libstdcxx();
    // SAFETY: dlsym in glibc's libstdc++; the address only.
    let host_terminate = unsafe { libc::dlsym(host, c"_ZSt9terminatev".as_ptr()) } as usize;
    assert_ne!(host_terminate, 0);

    // reuse_host(false): a second libstdc++, its own exceptions.
    // SAFETY: a test-lib and the system's libstdc++.
    let p = unsafe {
        Loader::new()
            .reuse_host(false)
            .open(lib("libcxx_private.so"))
    }
    .unwrap_or_else(|e| panic!("libcxx_private.so, private: {e}"));
    libstdcxx_dep(&p);
    private_lib_works(&p);
    let private = private_terminate(&p);
    assert_ne!(private, host_terminate, "a private libstdc++.so.6");
    drop(p);
    assert!(!mapped("libcxx_private.so"));

    // The default: the host's libstdc++ serves the library.
    let p = open("libcxx_private.so");
    let dep = libstdcxx_dep(&p);
    private_lib_works(&p);
    assert_eq!(
        private_terminate(&p),
        host_terminate,
        "the host's libstdc++.so.6 ({}) is reused",
        dep.display()
    );
    drop(p);

    // Opening libstdc++ by name always gives minld's own mapping.
    // SAFETY: the system's libstdc++.
    let own = unsafe { Library::open("libstdc++.so.6") }.unwrap();
    // SAFETY: the address only.
    let own_terminate = unsafe { sym::<*const c_void>(&own, "_ZSt9terminatev") } as usize;
    assert_ne!(own_terminate, host_terminate);
    let in_file = mapping_of(own_terminate).unwrap_or_default();
    assert!(in_file.contains("libstdc++.so.6"), "{in_file:?}");
    drop(own);
}

/// With the host's libstdc++, `__cxa_thread_atexit` is the host's, which
/// hands the destructor straight to glibc's `__cxa_thread_atexit_impl`; the
/// library must still stay mapped until the destructors have run.
#[test]
fn thread_local_destructors_with_the_hosts_libstdcxx() {
    if !in_fresh_process("thread_local_destructors_with_the_hosts_libstdcxx") {
        return;
    }
    let _serial = serial();
    host_libstdcxx();
    thread_local_dtors(&Loader::new(), false);
    thread_local_dtors(&Loader::new(), true);
}

// ---- real C++ libraries ----

static Z3_ERRORS: Mutex<Vec<c_int>> = Mutex::new(Vec::new());

extern "C" fn z3_error(_ctx: *mut c_void, code: c_int) {
    Z3_ERRORS.lock().unwrap().push(code);
}

#[test]
fn libz3_solves_through_its_c_api() {
    let _serial = serial();
    // SAFETY: the system's libz3 and its C API.
    let z3 = unsafe { Library::open("libz3.so.4") }.unwrap_or_else(|e| panic!("libz3: {e}"));
    assert!(
        z3.dependencies()
            .iter()
            .any(|d| d.ends_with("libstdc++.so.6")),
        "{:?}",
        z3.dependencies()
    );
    type Ptr = *mut c_void;
    // SAFETY: the declarations of z3_api.h (Z3_config, Z3_context are
    // pointers; Z3_error_code an enum; Z3_string a const char *).
    let (mk_config, mk_context, del_config, del_context, set_handler, eval, error_code) = unsafe {
        (
            sym::<extern "C" fn() -> Ptr>(&z3, "Z3_mk_config"),
            sym::<extern "C" fn(Ptr) -> Ptr>(&z3, "Z3_mk_context"),
            sym::<extern "C" fn(Ptr)>(&z3, "Z3_del_config"),
            sym::<extern "C" fn(Ptr)>(&z3, "Z3_del_context"),
            sym::<extern "C" fn(Ptr, extern "C" fn(Ptr, c_int))>(&z3, "Z3_set_error_handler"),
            sym::<extern "C" fn(Ptr, *const c_char) -> *const c_char>(
                &z3,
                "Z3_eval_smtlib2_string",
            ),
            sym::<extern "C" fn(Ptr) -> c_int>(&z3, "Z3_get_error_code"),
        )
    };
    let cfg = mk_config();
    assert!(!cfg.is_null());
    let ctx = mk_context(cfg);
    assert!(!ctx.is_null());
    del_config(cfg);
    // z3's default handler prints the error and exits the process.
    set_handler(ctx, z3_error);
    let run = |smt: &str| -> String {
        let smt = CString::new(smt).unwrap();
        let out = eval(ctx, smt.as_ptr());
        assert!(!out.is_null());
        // SAFETY: z3 returns a NUL-terminated string owned by the context,
        // valid until the next call.
        unsafe { CStr::from_ptr(out) }
            .to_string_lossy()
            .into_owned()
    };
    assert_eq!(
        run("(declare-const x Int) (assert (> x 2)) (check-sat)").trim(),
        "sat"
    );
    assert!(Z3_ERRORS.lock().unwrap().is_empty());

    // A parse error: z3 throws inside and catches it, then reports.
    let err = run("(assert (and true");
    assert!(err.trim_start().starts_with("(error"), "{err}");
    const Z3_PARSER_ERROR: c_int = 4;
    assert_eq!(*Z3_ERRORS.lock().unwrap(), [Z3_PARSER_ERROR], "{err}");
    assert_eq!(error_code(ctx), Z3_PARSER_ERROR);
    let err = run("(check-sat (");
    assert!(err.contains("error"), "{err}");

    // Still usable afterwards.
    assert_eq!(
        run("(declare-const y Bool) (assert (and y (not y))) (check-sat)").trim(),
        "unsat"
    );
    del_context(ctx);
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// `std::chrono::system_clock::now()` (a time_point is one i64 of
/// nanoseconds, returned in a register) and `__cxa_demangle`, from a
/// libstdc++ opened by name.
fn use_libstdcxx(s: &Library) {
    // SAFETY: std::chrono::_V2::system_clock::now() returns a
    // time_point<system_clock, nanoseconds>: a trivially copyable i64.
    let now = unsafe { sym::<extern "C" fn() -> i64>(s, "_ZNSt6chrono3_V212system_clock3nowEv") };
    let (before, theirs, after) = (now_nanos(), now(), now_nanos());
    let slack = 2_000_000_000;
    assert!(
        before - slack <= theirs && theirs <= after + slack,
        "system_clock::now() = {theirs}, SystemTime between {before} and {after}"
    );
    type Demangle =
        extern "C" fn(*const c_char, *mut c_char, *mut usize, *mut c_int) -> *mut c_char;
    // SAFETY: char *__cxa_demangle(const char *, char *, size_t *, int *).
    let demangle = unsafe { sym::<Demangle>(s, "__cxa_demangle") };
    let mut status = 1;
    let out = demangle(
        c"_ZNSt6chrono3_V212system_clock3nowEv".as_ptr(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        &mut status,
    );
    assert_eq!(status, 0);
    assert!(!out.is_null());
    // SAFETY: a malloc'd NUL-terminated string, ours to free.
    let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_string();
    // SAFETY: as above.
    unsafe { libc::free(out.cast()) };
    assert_eq!(text, "std::chrono::_V2::system_clock::now()");
    let out = demangle(
        c"_Z!not-a-name".as_ptr(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        &mut status,
    );
    assert!(out.is_null());
    assert_eq!(status, -2, "invalid mangled name");
}

fn host_unwind_resume() -> usize {
    // SAFETY: dlsym in the process's global scope; the address only.
    let host = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_Unwind_Resume".as_ptr()) } as usize;
    assert_ne!(host, 0, "the test process has libgcc_s.so.1");
    host
}

/// libstdc++ used from the calling thread and from four others (its own
/// TLS: the eh globals).
fn use_libstdcxx_in_threads(s: &Library) {
    use_libstdcxx(s);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            thread::spawn(move || use_libstdcxx(&s))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// libstdc++.so.6 opened by name (minld's mapping) with the host's
/// libgcc_s.so.1 and libm.so.6. In a fresh process, where no libstdc++ with
/// private dependencies was loaded before.
#[test]
fn libstdcxx_itself_with_the_hosts_dependencies() {
    if !in_fresh_process("libstdcxx_itself_with_the_hosts_dependencies") {
        return;
    }
    let _serial = serial();
    // SAFETY: the system's libstdc++ (and its libm, libgcc_s).
    let s = unsafe { Library::open("libstdc++.so.6") }.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        s.dependencies()
            .iter()
            .any(|d| d.ends_with("libgcc_s.so.1")),
        "{:?}",
        s.dependencies()
    );
    // SAFETY: the address only.
    let unwind = unsafe { sym::<*const c_void>(&s, "_Unwind_Resume") } as usize;
    assert_eq!(
        unwind,
        host_unwind_resume(),
        "libgcc_s.so.1 reused from the host"
    );
    use_libstdcxx_in_threads(&s);
}

/// libstdc++.so.6 with reuse_host(false): private libgcc_s.so.1 and
/// libm.so.6 (glibc stays the host's). In a fresh process.
#[test]
fn libstdcxx_itself_with_private_dependencies() {
    if !in_fresh_process("libstdcxx_itself_with_private_dependencies") {
        return;
    }
    let _serial = serial();
    // SAFETY: the system's libstdc++, every dependency a private copy.
    let s = unsafe { Loader::new().reuse_host(false).open("libstdc++.so.6") }
        .unwrap_or_else(|e| panic!("{e}"));
    let deps = s.dependencies();
    assert!(
        deps.iter().any(|d| d.ends_with("libgcc_s.so.1")),
        "{deps:?}"
    );
    assert!(deps.iter().any(|d| d.ends_with("libm.so.6")), "{deps:?}");
    // SAFETY: the address only.
    let unwind = unsafe { sym::<*const c_void>(&s, "_Unwind_Resume") } as usize;
    assert_ne!(unwind, host_unwind_resume(), "a private libgcc_s.so.1");
    let in_file = mapping_of(unwind).unwrap_or_default();
    assert!(
        Path::new(&in_file)
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("libgcc_s.so.1")),
        "{in_file}"
    );
    use_libstdcxx_in_threads(&s);
}
