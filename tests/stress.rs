//! Heavy use and injected faults: threads loading while glibc's dlopen runs
//! in others, 10,000 load/unload cycles with memory flat, and a fault at
//! each stage of a load (a dependency missing in the middle of a chain, a
//! symbol missing in the third library, mmap refused under RLIMIT_AS, an
//! init function that cannot be run). A failed load must leave nothing
//! mapped, no descriptor open and no reference counted, and the next load
//! must work.
//!
//! Mappings, descriptors and resident memory are per process, so every
//! test here takes one lock; the RLIMIT_AS test runs in a fresh copy of
//! this binary, since the limit is process-wide.

mod common;

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use minld::{Error, Library, Loader, Requester};

use common::libs::test_lib;
use common::process::{fd_count, in_fresh_process, maps_text as maps, serial};

/// Whether a file is mapped (by name: the mutants are copies in scratch
/// directories, the test-libs have unique names).
fn mapped(name: &str) -> bool {
    maps().lines().any(|l| {
        l.split_whitespace()
            .nth(5)
            .is_some_and(|p| p.ends_with(name))
    })
}

fn status_kb(field: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("minld-stress-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn copy(&self, from: &Path, to: &str) -> PathBuf {
        let dest = self.0.join(to);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(from, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        dest
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------

/// GMP's `mpz_t`.
#[repr(C)]
struct Mpz {
    alloc: c_int,
    size: c_int,
    d: *mut c_void,
}

/// 20! through GMP, reached as a dependency of libhogweed.
fn factorial_20(hogweed: &Library) -> c_ulong {
    // SAFETY: GMP's documented signatures (mpz_init, mpz_fac_ui, mpz_get_ui,
    // mpz_clear), on an mpz_t that lives through the calls.
    unsafe {
        let init = *hogweed
            .get::<extern "C" fn(*mut Mpz)>("__gmpz_init")
            .unwrap();
        let fac = *hogweed
            .get::<extern "C" fn(*mut Mpz, c_ulong)>("__gmpz_fac_ui")
            .unwrap();
        let get = *hogweed
            .get::<extern "C" fn(*const Mpz) -> c_ulong>("__gmpz_get_ui")
            .unwrap();
        let clear = *hogweed
            .get::<extern "C" fn(*mut Mpz)>("__gmpz_clear")
            .unwrap();
        let mut z = Mpz {
            alloc: 0,
            size: 0,
            d: std::ptr::null_mut(),
        };
        init(&mut z);
        fac(&mut z, 20);
        let v = get(&z);
        clear(&mut z);
        v
    }
}

/// One use of a library through minld, checked.
fn use_one(which: usize) {
    match which % 5 {
        0 => {
            // SAFETY: the system's libz; crc32 is
            // `uLong crc32(uLong, const Bytef *, uInt)`.
            let z = unsafe { Library::open("libz.so.1") }.unwrap();
            // SAFETY: the signature named above; the library is loaded.
            let crc = unsafe {
                z.get::<extern "C" fn(c_ulong, *const u8, u32) -> c_ulong>("crc32")
                    .unwrap()(0, b"hello".as_ptr(), 5)
            };
            assert_eq!(crc, 0x3610_a686);
        }
        1 => {
            // SAFETY: the system's libsqlite3; int sqlite3_libversion_number(void).
            let s = unsafe { Library::open("libsqlite3.so.0") }.unwrap();
            // SAFETY: the signature named above; the library is loaded.
            let v = unsafe {
                s.get::<extern "C" fn() -> c_int>("sqlite3_libversion_number")
                    .unwrap()()
            };
            assert!(v >= 3_000_000, "{v}");
        }
        2 => {
            // SAFETY: test-libs/tls.c: int tls_init_value(void).
            let t = unsafe { Library::open(test_lib("libtls.so")) }.unwrap();
            // SAFETY: the signature named above; the library is loaded.
            let v = unsafe { t.get::<extern "C" fn() -> c_int>("tls_init_value").unwrap()() };
            assert_eq!(v, 100);
        }
        3 => {
            // SAFETY: test-libs/cxx_basic.cpp: int cxx_basic_throw_catch(void).
            let c = unsafe { Library::open(test_lib("libcxx_basic.so")) }.unwrap();
            // SAFETY: the signature named above; the library is loaded.
            let v = unsafe {
                c.get::<extern "C" fn() -> c_int>("cxx_basic_throw_catch")
                    .unwrap()()
            };
            assert_eq!(v, 7);
        }
        _ => {
            // SAFETY: the system's libhogweed, whose dependency libgmp glibc
            // loads and unloads in another thread meanwhile.
            let h = unsafe { Library::open("libhogweed.so.6") }.unwrap();
            assert_eq!(factorial_20(&h), 2_432_902_008_176_640_000);
        }
    }
}

#[test]
fn threads_load_while_glibc_dlopens_the_same_dependencies() {
    let _l = serial();
    let done = Arc::new(AtomicBool::new(false));
    // glibc's dlopen/dlclose in two threads, on libgmp (a dependency of
    // libhogweed, which minld reuses from glibc while glibc has it, and must
    // keep from being unloaded under it) and on libbz2.
    let glibc: Vec<_> = [c"libgmp.so.10", c"libbz2.so.1.0"]
        .into_iter()
        .map(|name| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut rounds = 0u32;
                while !done.load(Ordering::Acquire) {
                    // SAFETY: system libraries, opened and closed by glibc.
                    unsafe {
                        let h = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
                        assert!(!h.is_null(), "glibc dlopen {name:?}");
                        assert!(
                            !libc::dlsym(h, c"__gmpz_init".as_ptr()).is_null()
                                || !libc::dlsym(h, c"BZ2_bzlibVersion".as_ptr()).is_null()
                        );
                        libc::dlclose(h);
                    }
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    let minld: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..60 {
                    use_one(t + i);
                }
            })
        })
        .collect();
    for h in minld {
        h.join().expect("a minld thread failed");
    }
    done.store(true, Ordering::Release);
    for h in glibc {
        let rounds = h.join().expect("a glibc thread failed");
        assert!(rounds > 0);
    }
}

// ---------------------------------------------------------------------------
// Leaks over many cycles
// ---------------------------------------------------------------------------

#[test]
fn ten_thousand_load_unload_cycles_of_libz() {
    let _l = serial();
    let cycle = || {
        // SAFETY: the system's libz; const char *zlibVersion(void).
        let z = unsafe { Library::open("/lib/x86_64-linux-gnu/libz.so.1") }.unwrap();
        // SAFETY: the signature named above; the library is loaded.
        let v = unsafe {
            z.get::<extern "C" fn() -> *const c_char>("zlibVersion")
                .unwrap()()
        };
        // SAFETY: zlib returns a static NUL-terminated string.
        assert!(unsafe { CStr::from_ptr(v) }.to_bytes().starts_with(b"1."));
    };
    for _ in 0..200 {
        cycle();
    }
    let (rss, fds, lines) = (status_kb("VmRSS:"), fd_count(), maps().lines().count());
    assert!(!mapped("libz.so.1") || maps().contains("libz.so.1"));
    let started = std::time::Instant::now();
    for _ in 0..10_000 {
        cycle();
    }
    let grown = status_kb("VmRSS:").saturating_sub(rss);
    eprintln!(
        "10,000 cycles in {:.2} s; resident memory grew {grown} kB",
        started.elapsed().as_secs_f64()
    );
    assert!(
        grown < 1024,
        "resident memory grew {grown} kB over 10,000 cycles"
    );
    assert_eq!(fd_count(), fds, "descriptors");
    assert_eq!(maps().lines().count(), lines, "mappings:\n{}", maps());
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

/// Loads `path`, which must fail; checks nothing of `names` stays mapped and
/// no descriptor stays open. Returns the error.
fn must_fail(loader: &Loader, path: &Path, names: &[&str]) -> Error {
    let fds = fd_count();
    // SAFETY: test-libs that fail before any of their code runs.
    let err = match unsafe { loader.open(path) } {
        Ok(l) => panic!("{} loaded at {:#x}", path.display(), l.base()),
        Err(e) => e,
    };
    eprintln!("refused as expected: {err}");
    for n in names {
        assert!(!mapped(n), "{n} still mapped after: {err}");
    }
    assert_eq!(fd_count(), fds, "a descriptor stayed open after: {err}");
    err
}

#[test]
fn dependency_missing_in_the_middle_of_a_chain() {
    let _l = serial();
    // chain_a -> chain/chain_b -> chain/chain_c, copied without chain_c:
    // the failure comes after chain_a and chain_b were mapped.
    let s = Scratch::new("chain");
    let a = s.copy(&test_lib("libchain_a.so"), "libchain_a.so");
    s.copy(&test_lib("chain/libchain_b.so"), "chain/libchain_b.so");
    let err = must_fail(&Loader::new(), &a, &["libchain_a.so", "libchain_b.so"]);
    match &err {
        Error::NotFound {
            name, needed_by, ..
        } => {
            assert_eq!(name, "libchain_c.so");
            assert!(
                matches!(needed_by, Requester::Library(p) if p.ends_with("chain/libchain_b.so")),
                "{needed_by}"
            );
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    // Put the missing library in place: the next load works.
    s.copy(&test_lib("chain/libchain_c.so"), "chain/libchain_c.so");
    // SAFETY: test-libs/chain_a.c: int chain_a(void).
    let l = unsafe { Library::open(&a) }.unwrap();
    assert_eq!(
        // SAFETY: the signature named above; the library is loaded.
        unsafe { l.get::<extern "C" fn() -> c_int>("chain_a").unwrap()() },
        321
    );
}

#[test]
fn symbol_missing_in_the_third_library_leaves_no_count() {
    let _l = serial();
    // libbasic is held open across the failed load, which also needs it; the
    // failure must leave no reference on it: dropping our handle unmaps it.
    // SAFETY: test-libs/basic.c.
    let basic = unsafe { Library::open(test_lib("libbasic.so")) }.unwrap();
    std::env::remove_var("MINLD_FAULT_CTOR_RAN");
    let err = must_fail(
        &Loader::new(),
        &test_lib("libfault_a.so"),
        &["libfault_a.so", "libfault_b.so", "libfault_c.so"],
    );
    match &err {
        Error::UndefinedSymbol {
            name, needed_by, ..
        } => {
            assert_eq!(name, "fault_nowhere");
            assert!(
                matches!(needed_by, Requester::Library(p) if p.ends_with("libfault_c.so")),
                "{needed_by}"
            );
        }
        other => panic!("expected UndefinedSymbol, got {other:?}"),
    }
    assert!(
        std::env::var_os("MINLD_FAULT_CTOR_RAN").is_none(),
        "a constructor ran in a load that failed"
    );
    assert!(mapped("libbasic.so"), "still ours");
    drop(basic);
    assert!(
        !mapped("libbasic.so"),
        "the failed load left a reference on libbasic.so"
    );
    // The next load works.
    // SAFETY: as above; int basic_add(int, int).
    let basic = unsafe { Library::open(test_lib("libbasic.so")) }.unwrap();
    assert_eq!(
        // SAFETY: the signature named above; the library is loaded.
        unsafe {
            basic
                .get::<extern "C" fn(c_int, c_int) -> c_int>("basic_add")
                .unwrap()(2, 3)
        },
        5
    );
}

#[test]
fn an_init_function_outside_the_code_runs_nothing() {
    let _l = serial();
    std::env::remove_var("MINLD_BAD_INIT_RAN");
    let err = must_fail(
        &Loader::new(),
        &test_lib("libbad_init.so"),
        &["libbad_init.so", "libbad_init_dep.so"],
    );
    let msg = err.to_string();
    assert!(
        msg.contains("libbad_init.so") && msg.contains("DT_INIT_ARRAY entry 0x1000"),
        "{msg}"
    );
    assert_eq!(
        std::env::var_os("MINLD_BAD_INIT_RAN"),
        None,
        "an init function ran although one of the load's was refused"
    );
    // The next load works, and its constructor does run.
    // SAFETY: test-libs/bad_init_dep.c.
    let dep = unsafe { Library::open(test_lib("libbad_init_dep.so")) }.unwrap();
    assert_eq!(
        std::env::var("MINLD_BAD_INIT_RAN").as_deref(),
        Ok("libbad_init_dep")
    );
    assert_eq!(
        // SAFETY: int bad_init_dep_value(void).
        unsafe {
            dep.get::<extern "C" fn() -> c_int>("bad_init_dep_value")
                .unwrap()()
        },
        2
    );
}

fn set_address_space_limit(bytes: u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut r), 0);
        r.rlim_cur = bytes.min(r.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &r), 0);
    }
}

/// The address space a library's PT_LOAD segments span.
fn span(path: &str) -> u64 {
    let bytes = fs::read(path).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let loads: Vec<_> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
        .collect();
    loads.last().map(|p| p.p_vaddr + p.p_memsz).unwrap() - loads[0].p_vaddr
}

#[test]
fn mmap_refused_under_rlimit_as() {
    // The lock first: the child's pipes are descriptors of this process.
    let _l = serial();
    if !in_fresh_process("mmap_refused_under_rlimit_as") {
        return;
    }
    let z3 = "/lib/x86_64-linux-gnu/libz3.so.4";
    // Warm up what every load allocates once (host objects, ld.so.cache).
    // SAFETY: the system's libz.
    drop(unsafe { Library::open("libz.so.1") }.unwrap());
    let fds = fd_count();
    let lines = maps().lines().count();
    let vm = status_kb("VmSize:") * 1024;

    // 1. The root's reservation is refused.
    set_address_space_limit(vm + (4 << 20));
    let err = must_fail(&Loader::new(), Path::new(z3), &["libz3.so.4"]);
    assert!(
        matches!(&err, Error::Io { errno, .. } if *errno == nix::errno::Errno::ENOMEM),
        "{err:?}"
    );
    assert!(err.to_string().contains("mmap"), "{err}");

    // 2. The root maps, its dependency (libstdc++, 2.3 MB) does not.
    set_address_space_limit(vm + span(z3) + (1 << 20));
    let err = must_fail(
        &Loader::new(),
        Path::new(z3),
        &["libz3.so.4", "libstdc++.so.6"],
    );
    assert!(err.to_string().contains("libstdc++.so.6"), "{err}");
    assert_eq!(fd_count(), fds);
    assert_eq!(maps().lines().count(), lines, "{}", maps());

    // 3. With the limit lifted the next load works.
    set_address_space_limit(u64::MAX);
    // SAFETY: the system's libz3; const char *Z3_get_full_version(void).
    let l = unsafe { Library::open(z3) }.unwrap();
    // SAFETY: the signature named above; the library is loaded.
    let v = unsafe {
        l.get::<extern "C" fn() -> *const c_char>("Z3_get_full_version")
            .unwrap()()
    };
    // SAFETY: a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(v) }.to_string_lossy();
    assert!(v.starts_with("4."), "{v}");
}
