//! Thread-local storage of the libraries minld loads (their own PT_TLS):
//! general and local dynamic through `__tls_get_addr`, TLS descriptors, a
//! dependency's TLS, blocks per thread created on first use and freed at
//! thread exit and at unload. (The initial-exec model, in glibc's static
//! TLS, is tests/static_tls.rs.)
//!
//! The test-libs are described in `test-libs/README.md`; each was checked
//! with glibc's own `dlopen` (same values, same per-thread behaviour).

mod common;

use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_long, CStr};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use minld::Library;

use common::libs::{mapped, open};
use common::process::serial;

const THREADS: usize = 8;

/// Runs `f`, then waits at `barrier` even if `f` panicked, so that the
/// other threads are not left waiting forever, then passes the panic on.
fn then_wait<R>(barrier: &Barrier, f: impl FnOnce() -> R) -> R {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    barrier.wait();
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The `TLSM_BAD_*` bits of test-libs/tls_models.c, for messages.
fn describe(mask: c_int) -> String {
    const BITS: [&str; 10] = [
        "tlsm_gd",
        "tlsm_name",
        "tlsm_gd_zero (.tbss)",
        "tlsm_ld_data",
        "tlsm_ld_zero (.tbss)",
        "tlsm_aligned",
        "tlsm_aligned_zero (.tbss)",
        "tlsm_big (64 KiB .tbss)",
        "tlsm_aligned not 64-aligned",
        "tlsm_aligned_zero not 128-aligned",
    ];
    let wrong: Vec<&str> = BITS
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect();
    format!("{mask:#x}: {}", wrong.join(", "))
}

/// The functions of test-libs/tls_models.c. Plain function pointers: the
/// caller keeps the `Library` alive while they are used.
#[derive(Clone, Copy)]
struct Models {
    check_initial: extern "C" fn() -> c_int,
    scribble: extern "C" fn(c_int),
    check_scribbled: extern "C" fn(c_int) -> c_int,
    gd_get: extern "C" fn() -> c_int,
    gd_set: extern "C" fn(c_int),
    gd_addr: extern "C" fn() -> *mut c_int,
    name_get: extern "C" fn() -> *const c_char,
    gd_zero_get: extern "C" fn() -> c_long,
    ld_get: extern "C" fn() -> c_long,
    ld_set: extern "C" fn(c_long),
    ld_addr: extern "C" fn() -> *mut c_long,
    aligned_addr: extern "C" fn() -> *mut u8,
    aligned_zero_addr: extern "C" fn() -> *mut u8,
    big_addr: extern "C" fn() -> *mut u8,
    big_size: extern "C" fn() -> usize,
}

/// Where one thread found its variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Addresses {
    gd: usize,
    ld: usize,
    aligned: usize,
    aligned_zero: usize,
    big: usize,
}

impl Models {
    fn new(l: &Library) -> Models {
        fn get<T: Copy>(l: &Library, name: &str) -> T {
            // SAFETY: every T below is the C signature in tls_models.c.
            *unsafe { l.get::<T>(name) }.unwrap_or_else(|e| panic!("{name}: {e}"))
        }
        Models {
            check_initial: get(l, "tlsm_check_initial"),
            scribble: get(l, "tlsm_scribble"),
            check_scribbled: get(l, "tlsm_check_scribbled"),
            gd_get: get(l, "tlsm_gd_get"),
            gd_set: get(l, "tlsm_gd_set"),
            gd_addr: get(l, "tlsm_gd_addr"),
            name_get: get(l, "tlsm_name_get"),
            gd_zero_get: get(l, "tlsm_gd_zero_get"),
            ld_get: get(l, "tlsm_ld_get"),
            ld_set: get(l, "tlsm_ld_set"),
            ld_addr: get(l, "tlsm_ld_addr"),
            aligned_addr: get(l, "tlsm_aligned_addr"),
            aligned_zero_addr: get(l, "tlsm_aligned_zero_addr"),
            big_addr: get(l, "tlsm_big_addr"),
            big_size: get(l, "tlsm_big_size"),
        }
    }

    fn addresses(&self) -> Addresses {
        Addresses {
            gd: (self.gd_addr)() as usize,
            ld: (self.ld_addr)() as usize,
            aligned: (self.aligned_addr)() as usize,
            aligned_zero: (self.aligned_zero_addr)() as usize,
            big: (self.big_addr)() as usize,
        }
    }

    /// Every variable of the calling thread at its initial value, read both
    /// by the library's own check and through the getters.
    fn assert_initial(&self, who: &str) {
        let bad = (self.check_initial)();
        assert_eq!(bad, 0, "{who}: not initial: {}", describe(bad));
        assert_eq!((self.gd_get)(), 1234, "{who}: .tdata int");
        // SAFETY: the library returns its NUL-terminated tlsm_name.
        let name = unsafe { CStr::from_ptr((self.name_get)()) };
        assert_eq!(name.to_str().unwrap(), "minld-tls", "{who}: .tdata string");
        assert_eq!((self.gd_zero_get)(), 0, "{who}: .tbss long");
        assert_eq!((self.ld_get)(), 0x1122334455667788, "{who}: local dynamic");
        assert_eq!((self.big_size)(), 65536);
        let a = self.addresses();
        assert_eq!(a.aligned % 64, 0, "{who}: _Alignas(64) at {:#x}", a.aligned);
        assert_eq!(
            a.aligned_zero % 128,
            0,
            "{who}: _Alignas(128) at {:#x}",
            a.aligned_zero
        );
        // SAFETY: tlsm_big is this thread's 64 KiB array.
        let big = unsafe { std::slice::from_raw_parts((self.big_addr)(), 65536) };
        assert!(
            big.iter().all(|&b| b == 0),
            "{who}: 64 KiB .tbss not zero at byte {:?}",
            big.iter().position(|&b| b != 0)
        );
    }

    /// What a worker thread does: finds its initial values, writes its own
    /// (`seed`), and checks they are still its own after every other thread
    /// has written too (`barrier`, when given, lines the threads up).
    fn exercise(&self, seed: c_int, barrier: Option<&Barrier>) -> Addresses {
        let who = format!("thread {seed}");
        let first = || {
            self.assert_initial(&who);
            let before = self.addresses();
            (self.gd_set)(1000 + seed);
            assert_eq!((self.gd_get)(), 1000 + seed);
            (self.ld_set)(-(seed as c_long));
            assert_eq!((self.ld_get)(), -(seed as c_long));
            (self.scribble)(seed);
            before
        };
        let before = match barrier {
            Some(barrier) => then_wait(barrier, first),
            None => first(),
        };
        let bad = (self.check_scribbled)(seed);
        assert_eq!(
            bad,
            0,
            "{who}: its values changed under it: {}",
            describe(bad)
        );
        assert_eq!(
            self.addresses(),
            before,
            "{who}: a variable moved between two uses"
        );
        before
    }
}

/// `THREADS` threads alive at once each get their own block: initial
/// values, zeroed .tbss, alignment, distinct addresses; the calling thread's
/// copy is untouched by theirs; a second wave of threads (after the first
/// exited and its blocks were freed) again starts from initial values.
fn per_thread_blocks(name: &str) {
    let l = open(name);
    let m = Models::new(&l);
    m.assert_initial("main thread");
    let main = m.addresses();

    let barrier = Arc::new(Barrier::new(THREADS));
    let seen: Vec<Addresses> = (0..THREADS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || m.exercise(i as c_int + 1, Some(&barrier)))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("worker panicked"))
        .collect();

    let all: Vec<Addresses> = seen.iter().copied().chain([main]).collect();
    for (field, get) in [
        ("tlsm_gd", (|a: &Addresses| a.gd) as fn(&Addresses) -> usize),
        ("tlsm_ld_data", |a| a.ld),
        ("tlsm_aligned", |a| a.aligned),
        ("tlsm_aligned_zero", |a| a.aligned_zero),
        ("tlsm_big", |a| a.big),
    ] {
        let distinct: HashSet<usize> = all.iter().map(get).collect();
        assert_eq!(
            distinct.len(),
            all.len(),
            "{name}: {field} shared between threads: {all:x?}"
        );
    }
    // One PT_TLS image: the offsets between variables are the same in every
    // thread's block.
    let layout =
        |a: &Addresses| [a.gd, a.ld, a.aligned_zero, a.big].map(|x| x.wrapping_sub(a.aligned));
    assert!(
        all.iter().all(|a| layout(a) == layout(&main)),
        "{name}: blocks laid out differently: {all:x?}"
    );
    // The 64 KiB arrays do not overlap.
    let mut bigs: Vec<usize> = all.iter().map(|a| a.big).collect();
    bigs.sort_unstable();
    assert!(bigs.windows(2).all(|w| w[1] - w[0] >= 65536), "{bigs:x?}");

    m.assert_initial("main thread, after the workers wrote theirs");
    assert_eq!(m.addresses(), main);

    // Second wave: fresh blocks again (reused memory must be re-initialised).
    let handles: Vec<_> = (0..THREADS)
        .map(|i| thread::spawn(move || m.exercise(100 + i as c_int, None)))
        .collect();
    for h in handles {
        h.join().expect("second-wave worker panicked");
    }
    drop(l);
}

#[test]
fn general_and_local_dynamic_per_thread() {
    let _serial = serial();
    per_thread_blocks("libtls_models.so");
}

#[test]
fn tlsdesc_per_thread() {
    let _serial = serial();
    per_thread_blocks("libtls_desc.so");
}

#[test]
fn the_original_libtls() {
    let _serial = serial();
    let l = open("libtls.so");
    // SAFETY: int tls_bump(void), int tls_init_value(void) from tls.c.
    let (bump, init) = unsafe {
        (
            *l.get::<extern "C" fn() -> c_int>("tls_bump").unwrap(),
            *l.get::<extern "C" fn() -> c_int>("tls_init_value").unwrap(),
        )
    };
    let counts = move |n: c_int| {
        assert_eq!(init(), 100);
        (1..=n).all(|i| bump() == i)
    };
    assert!(counts(3));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| thread::spawn(move || counts(5)))
        .collect();
    for h in handles {
        assert!(h.join().unwrap(), "each thread counts from 1");
    }
    assert_eq!(bump(), 4, "the main thread's counter went on from 3");
}

#[test]
fn a_dependencys_thread_locals() {
    let _serial = serial();
    let owner = open("libtls_owner.so");
    let user = open("libtls_user.so");
    assert!(
        user.dependencies()
            .iter()
            .any(|d| d.ends_with("libtls_owner.so")),
        "{:?}",
        user.dependencies()
    );
    type AddrFn = extern "C" fn() -> *mut c_int;
    type ZeroFn = extern "C" fn() -> *mut c_long;
    type IntFn = extern "C" fn() -> c_int;
    // SAFETY: signatures from tls_owner.c and tls_user.c.
    let (owner_addr, owner_zero, owner_counter, user_addr, user_zero, bump, own, own_addr) = unsafe {
        (
            *owner.get::<AddrFn>("tls_owner_addr").unwrap(),
            *owner.get::<ZeroFn>("tls_owner_zero_addr").unwrap(),
            *owner.get::<IntFn>("tls_owner_counter").unwrap(),
            *user.get::<AddrFn>("tls_user_addr").unwrap(),
            *user.get::<ZeroFn>("tls_user_zero_addr").unwrap(),
            *user.get::<IntFn>("tls_user_bump").unwrap(),
            *user.get::<IntFn>("tls_user_own").unwrap(),
            *user.get::<AddrFn>("tls_user_own_addr").unwrap(),
        )
    };
    // SAFETY: as above; through the user's handle, found in its dependency.
    let via_user = *unsafe { user.get::<AddrFn>("tls_owner_addr") }.unwrap();
    assert_eq!(
        via_user as usize, owner_addr as usize,
        "one libtls_owner.so for both handles"
    );

    let check = move |who: &str| -> [usize; 3] {
        let counter = owner_addr();
        assert_eq!(
            user_addr(),
            counter,
            "{who}: DTPMOD64/DTPOFF64 against the owner's symbol find the owner's block"
        );
        assert_eq!(user_zero(), owner_zero(), "{who}");
        // SAFETY: this thread's tls_shared_zero.
        assert_eq!(unsafe { *owner_zero() }, 0, "{who}: owner's .tbss");
        assert_eq!(owner_counter(), 5, "{who}: owner's .tdata");
        assert_eq!(bump(), 6, "{who}");
        assert_eq!(bump(), 7, "{who}");
        assert_eq!(owner_counter(), 7, "{who}: the user wrote the owner's copy");
        assert_eq!(own(), 77, "{who}: the user's own TLS");
        assert_ne!(own_addr(), counter, "{who}: two modules, two blocks");
        [counter as usize, owner_zero() as usize, own_addr() as usize]
    };
    let barrier = Arc::new(Barrier::new(THREADS));
    let mut seen: Vec<[usize; 3]> = (0..THREADS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let a = then_wait(&barrier, || check(&format!("thread {i}")));
                assert_eq!(owner_counter(), 7, "thread {i}: no other thread's bumps");
                a
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("worker panicked"))
        .collect();
    seen.push(check("main thread"));
    for k in 0..3 {
        let distinct: HashSet<usize> = seen.iter().map(|a| a[k]).collect();
        assert_eq!(distinct.len(), seen.len(), "{seen:x?}");
    }
    drop(user);
    assert!(mapped("libtls_owner.so"), "still held by its own handle");
    assert!(!mapped("libtls_user.so"));
    drop(owner);
    assert!(!mapped("libtls_owner.so"));
}

/// Long-lived threads use the TLS of a library across 50 loads and unloads
/// (of two different libraries, alternately: the next load may get the same
/// address, or the same module id): each load they must find initial values
/// again, never the block of an unloaded library. Fresh threads join in
/// each round.
#[test]
fn load_unload_cycles_with_long_lived_threads() {
    let _serial = serial();
    const WORKERS: usize = 4;
    type Reply = thread::Result<Addresses>;
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (to_worker, jobs) = mpsc::channel::<(Models, c_int)>();
        let (replies, from_worker) = mpsc::channel::<Reply>();
        let handle = thread::spawn(move || {
            for (m, seed) in jobs {
                let r = std::panic::catch_unwind(|| m.exercise(seed, None));
                replies.send(r).unwrap();
            }
        });
        workers.push((w, to_worker, from_worker, handle));
    }
    for round in 0..50 {
        let name = if round % 2 == 0 {
            "libtls_models.so"
        } else {
            "libtls_desc.so"
        };
        let l = open(name);
        let m = Models::new(&l);
        for (w, to_worker, _, _) in &workers {
            to_worker.send((m, (round * 10 + w) as c_int)).unwrap();
        }
        let fresh: Vec<_> = (0..2)
            .map(|f| thread::spawn(move || m.exercise((round * 10 + 8 + f) as c_int, None)))
            .collect();
        for (w, _, from_worker, _) in &workers {
            if let Err(panic) = from_worker.recv().unwrap() {
                let what = panic.downcast_ref::<String>().cloned().unwrap_or_default();
                panic!("round {round} ({name}), long-lived worker {w}: {what}");
            }
        }
        for f in fresh {
            f.join()
                .unwrap_or_else(|_| panic!("round {round} ({name}): fresh thread"));
        }
        m.assert_initial(&format!("round {round} ({name}), main thread"));
        drop(l);
        assert!(!mapped(name), "round {round}: {name} still mapped");
    }
    for (_, to_worker, _, handle) in workers {
        drop(to_worker);
        handle.join().unwrap();
    }
}

/// Threads hold live thread-locals of a library (written, so their blocks
/// are allocated) while the main thread drops it: the library is unmapped at
/// once, the threads then exit without touching it, and nothing crashes;
/// a new load starts from initial values.
#[test]
fn unload_while_threads_hold_thread_locals() {
    let _serial = serial();
    for name in ["libtls_models.so", "libtls_desc.so", "libtls_user.so"] {
        for round in 0..3 {
            let l = open(name);
            let touch: Box<dyn Fn(c_int) + Send + Sync> = if name == "libtls_user.so" {
                // SAFETY: int tls_user_bump(void), int tls_user_own(void).
                let (bump, own) = unsafe {
                    (
                        *l.get::<extern "C" fn() -> c_int>("tls_user_bump").unwrap(),
                        *l.get::<extern "C" fn() -> c_int>("tls_user_own").unwrap(),
                    )
                };
                Box::new(move |_| {
                    assert_eq!(bump(), 6);
                    assert_eq!(own(), 77);
                })
            } else {
                let m = Models::new(&l);
                Box::new(move |seed| {
                    m.exercise(seed, None);
                })
            };
            let touch = Arc::new(touch);
            let touched = Arc::new(Barrier::new(THREADS + 1));
            let dropped = Arc::new(Barrier::new(THREADS + 1));
            let handles: Vec<_> = (0..THREADS)
                .map(|i| {
                    let (touch, touched, dropped) = (
                        Arc::clone(&touch),
                        Arc::clone(&touched),
                        Arc::clone(&dropped),
                    );
                    thread::spawn(move || {
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            touch(i as c_int + 1)
                        }));
                        drop(touch);
                        touched.wait();
                        dropped.wait();
                        // Exits now, with a block of the unloaded library.
                        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                })
                .collect();
            touched.wait();
            drop(touch);
            drop(l);
            let still_mapped = mapped(name);
            dropped.wait();
            for h in handles {
                h.join().expect("worker panicked");
            }
            assert!(
                !still_mapped,
                "{name} round {round}: still mapped after the last drop"
            );
        }
        if name != "libtls_user.so" {
            let l = open(name);
            Models::new(&l).assert_initial(&format!("{name} reloaded, main thread"));
        }
    }
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Blocks are freed at thread exit and at unload: 200 rounds of 8 threads
/// that each fill the 64 KiB .tbss array (100 MiB if nothing were freed),
/// half of them exiting before the unload and half after, leave the
/// resident size within 32 MiB of where it started.
#[test]
fn thread_exit_and_unload_free_the_blocks() {
    let _serial = serial();
    let round = |i: usize| {
        let name = if i % 4 < 2 {
            "libtls_models.so"
        } else {
            "libtls_desc.so"
        };
        let l = open(name);
        let m = Models::new(&l);
        let written = Arc::new(Barrier::new(THREADS + 1));
        let go = Arc::new(Barrier::new(THREADS + 1));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (written, go) = (Arc::clone(&written), Arc::clone(&go));
                thread::spawn(move || {
                    let seed = (i * THREADS + t) as c_int;
                    (m.scribble)(seed);
                    let bad = (m.check_scribbled)(seed);
                    written.wait();
                    go.wait();
                    bad
                })
            })
            .collect();
        // Every worker has its block, filled.
        written.wait();
        let exit_after_unload = i % 2 == 1;
        let l = if exit_after_unload {
            drop(l);
            None
        } else {
            Some(l)
        };
        go.wait();
        for h in handles {
            let bad = h.join().expect("worker panicked");
            assert_eq!(bad, 0, "round {i}: {}", describe(bad));
        }
        drop(l);
    };
    for i in 0..20 {
        round(i);
    }
    let before = vm_rss_kib();
    for i in 0..200 {
        round(i);
    }
    let after = vm_rss_kib();
    assert!(
        after < before + 32 * 1024,
        "resident size grew from {before} KiB to {after} KiB over 200 rounds \
         (a leaked 64 KiB block per thread would be 100 MiB)"
    );
}

/// A TLSDESC call preserves every register but %rax: vector registers
/// (ymm when the CPU has AVX), the caller-saved integer registers and the
/// x87 stack, across minld's slow path (first access in a thread: an
/// allocation and a 4 KiB copy, which use the vector registers). glibc
/// 2.36's own resolver loses xmm0 here (fixed in glibc 2.40).
#[test]
fn tlsdesc_calls_preserve_every_register() {
    let l = open("libtlsdesc_regs.so");
    // SAFETY: int tlsdesc_regs_check(int use_avx), test-libs/tlsdesc_regs.S.
    let check = unsafe {
        *l.get::<extern "C" fn(c_int) -> c_int>("tlsdesc_regs_check")
            .unwrap()
    };
    let avx = std::is_x86_feature_detected!("avx");
    for use_avx in [false, avx] {
        for _ in 0..4 {
            // A fresh thread each time: its first access takes the slow path.
            let code = std::thread::spawn(move || check(c_int::from(use_avx)))
                .join()
                .unwrap();
            assert_eq!(
                code, 0,
                "register {code} (1-16 vector, 17-24 integer, 25 x87) was not preserved (avx: {use_avx})"
            );
        }
    }
}

/// A library's pthread key destructor, created after minld's key, still
/// finds its thread-local storage at thread exit (glibc runs key
/// destructors in key order; minld frees the blocks in the last round).
#[test]
fn tls_survives_until_later_key_destructors() {
    let l = open("libtls_key_dtor.so");
    // SAFETY: void tls_key_dtor_use(int); int tls_key_dtor_seen(void).
    let (use_it, seen) = unsafe {
        (
            *l.get::<extern "C" fn(c_int)>("tls_key_dtor_use").unwrap(),
            *l.get::<extern "C" fn() -> c_int>("tls_key_dtor_seen")
                .unwrap(),
        )
    };
    for v in [42, 7] {
        std::thread::spawn(move || use_it(v)).join().unwrap();
        assert_eq!(seen(), v * 1000 + v, "what the key destructor saw");
    }
}

/// `Library::get` of a TLS variable gives the calling thread's copy, as
/// glibc's dlsym does.
#[test]
fn get_of_a_tls_symbol_is_this_threads_address() {
    let _serial = serial();
    let l = Arc::new(open("libtls.so"));
    let in_thread = |l: Arc<Library>| {
        // SAFETY: test-libs/tls.c: __thread int tls_counter; int tls_bump(void).
        unsafe {
            let p = *l.get::<*mut c_int>("tls_counter").unwrap();
            let bump = *l.get::<extern "C" fn() -> c_int>("tls_bump").unwrap();
            let before = *p;
            assert_eq!(bump(), before + 1);
            assert_eq!(*p, before + 1, "the address is this thread's tls_counter");
            p as usize
        }
    };
    let here = in_thread(l.clone());
    let l2 = l.clone();
    let there = std::thread::spawn(move || in_thread(l2)).join().unwrap();
    assert_ne!(here, there);
}

/// fork() while other threads are inside minld's TLS slow path (holding
/// its lock): the child's first TLS access must not hang on a lock held
/// by a thread the child does not have.
#[test]
fn fork_while_other_threads_allocate_tls() {
    let _serial = serial();
    let l = Arc::new(open("libtls_models.so"));
    // SAFETY: test-libs/tls_models.c: int tlsm_check_initial(void) touches
    // every thread-local of the library (its first call in a thread
    // allocates the 64 KiB block).
    let check = unsafe {
        *l.get::<extern "C" fn() -> c_int>("tlsm_check_initial")
            .unwrap()
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    thread::spawn(move || check()).join().unwrap();
                }
            })
        })
        .collect();
    let mut hung = 0;
    for _ in 0..40 {
        // SAFETY: the child only calls into the loaded library (its first
        // TLS access there) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = check();
            // SAFETY: ends the child without running the parent's handlers.
            unsafe { libc::_exit(if code == 0 { 0 } else { 1 }) };
        }
        let started = std::time::Instant::now();
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                    "child status {status:#x}"
                );
                break;
            }
            if started.elapsed() > std::time::Duration::from_secs(10) {
                hung += 1;
                // SAFETY: killing and reaping our own hung child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                break;
            }
            thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in churn {
        t.join().unwrap();
    }
    assert_eq!(hung, 0, "children hung on their first TLS access");
}
