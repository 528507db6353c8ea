//! minld against glibc's dlopen, side by side in one run:
//! `cargo bench --bench load`.
//!
//! - load+unload: `Library::open` then drop, against `dlopen(RTLD_NOW)` then
//!   `dlclose`, for libz and libsqlite3 (each really mapped and unmapped on
//!   every iteration by both loaders). libcrypto.so.3 is DF_1_NODELETE:
//!   neither loader ever unloads it, so after the first iteration both only
//!   raise a count; its "first load" is timed once per loader instead.
//! - lookup: `Library::get` (and `Library::find`, which builds no error)
//!   against `dlsym` on a handle, for a symbol that exists and one that
//!   does not.
//! - sandbox: one call round trip to the echo plugin of test-libs/sandbox
//!   (8 bytes in, 8 out) through `minld::sandbox::Sandbox` (another process,
//!   shared memory, spinning then a futex), against the same function
//!   loaded in process with minld. The bench binary is its own runner.
//! - tls: a call that increments a `__thread` counter of test-libs' libtls.so
//!   (general dynamic: one `__tls_get_addr` per call), the library loaded by
//!   minld (minld's `__tls_get_addr`) and by glibc (glibc's).

use std::ffi::{c_void, CString};
use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use minld::Library;

const LIBS: &[&str] = &[
    "/lib/x86_64-linux-gnu/libz.so.1",
    "/lib/x86_64-linux-gnu/libsqlite3.so.0",
];

fn glibc_open(path: &str) -> *mut c_void {
    let c = CString::new(path).unwrap();
    // SAFETY: dlopen of a system library; the handle is closed by the caller.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "dlopen {path}");
    h
}

fn load_unload(c: &mut Criterion) {
    let mut g = c.benchmark_group("load+unload");
    for path in LIBS {
        let short = path.rsplit('/').next().unwrap();
        g.bench_function(format!("{short}/minld"), |b| {
            b.iter(|| {
                // SAFETY: a system library.
                let l = unsafe { Library::open(black_box(path)) }.unwrap();
                drop(black_box(l));
            })
        });
        g.bench_function(format!("{short}/glibc"), |b| {
            b.iter(|| {
                let h = glibc_open(black_box(path));
                // SAFETY: closing the handle just opened.
                unsafe { libc::dlclose(h) };
            })
        });
    }
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let path = "/lib/x86_64-linux-gnu/libz.so.1";
    // SAFETY: a system library.
    let lib = unsafe { Library::open(path) }.unwrap();
    let h = glibc_open(path);
    let hit = c"inflateInit2_";
    let miss = c"no_such_symbol_in_libz";
    let mut g = c.benchmark_group("lookup");
    g.bench_function("hit/minld", |b| {
        // SAFETY: only the address is used.
        b.iter(|| *unsafe { lib.get::<*const c_void>(black_box("inflateInit2_")) }.unwrap())
    });
    g.bench_function("hit/dlsym", |b| {
        // SAFETY: dlsym on a live handle.
        b.iter(|| unsafe { libc::dlsym(h, black_box(hit.as_ptr())) })
    });
    g.bench_function("miss/minld", |b| {
        // SAFETY: only the result is used.
        b.iter(|| unsafe { lib.get::<*const c_void>(black_box("no_such_symbol_in_libz")) }.is_err())
    });
    g.bench_function("hit/minld-find", |b| {
        // SAFETY: only the address is used.
        b.iter(|| unsafe { lib.find::<*const c_void>(black_box("inflateInit2_")) }.is_some())
    });
    g.bench_function("miss/minld-find", |b| {
        // SAFETY: only the result is used.
        b.iter(|| {
            unsafe { lib.find::<*const c_void>(black_box("no_such_symbol_in_libz")) }.is_none()
        })
    });
    g.bench_function("miss/dlsym", |b| {
        // SAFETY: dlsym on a live handle.
        b.iter(|| unsafe { libc::dlsym(h, black_box(miss.as_ptr())) })
    });
    g.finish();
}

fn tls(c: &mut Criterion) {
    let path = format!("{}/libtls.so", env!("MINLD_TEST_LIBS"));
    // SAFETY: a test library of ours.
    let lib = unsafe { Library::open(&path) }.unwrap();
    // SAFETY: int tls_bump(void).
    let ours = *unsafe { lib.get::<extern "C" fn() -> i32>("tls_bump") }.unwrap();
    let h = glibc_open(&path);
    // SAFETY: dlsym on a live handle; the symbol is `int tls_bump(void)`.
    let theirs: extern "C" fn() -> i32 =
        unsafe { std::mem::transmute(libc::dlsym(h, c"tls_bump".as_ptr())) };
    let mut g = c.benchmark_group("tls");
    g.bench_function("general-dynamic/minld", |b| b.iter(|| black_box(ours())));
    g.bench_function("general-dynamic/glibc", |b| b.iter(|| black_box(theirs())));
    g.finish();
}

fn sandbox(c: &mut Criterion) {
    let path = format!("{}/sandbox/libecho.so", env!("MINLD_TEST_LIBS"));
    let mut sb = minld::sandbox::Sandbox::builder(path.clone())
        .function("echo")
        .spawn()
        .expect("start the sandbox");
    // SAFETY: a test plugin of ours, loaded in process for the comparison.
    let lib = unsafe { Library::open(&path) }.unwrap();
    // SAFETY: the byte-buffer ABI of the sandbox's plugins.
    let echo =
        *unsafe { lib.get::<extern "C" fn(*const u8, usize, *mut u8, usize) -> isize>("echo") }
            .unwrap();
    let input = *b"12345678";
    let mut out = [0u8; 64];
    let mut g = c.benchmark_group("sandbox call");
    g.bench_function("in process", |b| {
        b.iter(|| echo(black_box(input.as_ptr()), 8, out.as_mut_ptr(), out.len()))
    });
    g.bench_function("sandbox round trip", |b| {
        b.iter(|| sb.call("echo", black_box(&input)).unwrap())
    });
    g.finish();
}

/// libcrypto is never unloaded by either loader: time its first load once.
fn first_load_of_libcrypto(_c: &mut Criterion) {
    let path = "/lib/x86_64-linux-gnu/libcrypto.so.3";
    let t = Instant::now();
    // SAFETY: a system library.
    let l = unsafe { Library::open(path) }.unwrap();
    let minld = t.elapsed();
    let t = Instant::now();
    let h = glibc_open(path);
    let glibc = t.elapsed();
    println!(
        "first load of libcrypto.so.3 (NODELETE, one sample each): minld {:.0} µs, glibc {:.0} µs",
        minld.as_secs_f64() * 1e6,
        glibc.as_secs_f64() * 1e6
    );
    drop(l);
    // SAFETY: closing our handle (glibc keeps the object: NODELETE).
    unsafe { libc::dlclose(h) };
}

criterion_group!(
    benches,
    load_unload,
    lookup,
    tls,
    sandbox,
    first_load_of_libcrypto
);
criterion_main!(benches);
