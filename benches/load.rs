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
//! - sandbox 1 MiB: 1 MiB through a sandbox, two ways. In place on a shared
//!   buffer: `buffer(0).write` 1 MiB, `call_in("invert", 0, 1 MiB)`,
//!   `buffer(0).read` 1 MiB (test-libs/sandbox/real.c), and `call_in` alone
//!   (a host that fills and reads the buffer in place). Copied through the
//!   call buffers: `call` with 1 MiB in, 1 MiB out: the echo plugin's
//!   `upper` (toupper on each byte, in to out), its `echo` (a memcpy: the
//!   transport alone), and libreal's `invert` (on the response buffer: the
//!   same work and copies as the in-place path, but `invert` ignores its
//!   input, so the request's bytes never reach the runner's core). The
//!   in-process runs of `invert` and `upper` show what the functions
//!   themselves cost.
//! - sandbox start: `Sandbox::builder(libecho).function("upper").spawn()`
//!   then drop (re-exec of the bench binary, linking, lock-down, kill and
//!   reap), a small sample.
//! - the memory of a runner just started (Rss and Pss of
//!   `/proc/<pid>/smaps_rollup`), printed once, not a benchmark.
//! - tls: a call that increments a `__thread` counter of test-libs' libtls.so
//!   (general dynamic: one `__tls_get_addr` per call), the library loaded by
//!   minld (minld's `__tls_get_addr`) and by glibc (glibc's).

use std::ffi::{c_void, CString};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
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
        b.iter(|| {
            // SAFETY: only whether it is found is used.
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

/// The plugin functions' ABI, for the in-process runs.
type PluginFn = extern "C" fn(*const u8, usize, *mut u8, usize) -> isize;

/// A plugin of test-libs/sandbox, by file name.
fn sandbox_lib(name: &str) -> String {
    format!("{}/sandbox/{name}", env!("MINLD_TEST_LIBS"))
}

/// The directory libreal.so's constructor reads `config.txt` from (the
/// plugin is killed in its start unless it is granted): written here.
fn real_grant() -> &'static str {
    let dir = "/tmp/minld-sandbox-grant";
    std::fs::create_dir_all(dir).expect("create the grant directory");
    std::fs::write(format!("{dir}/config.txt"), b"answer=42\n").expect("write config.txt");
    dir
}

/// A function of a library loaded in process.
fn in_process(lib: &Library, name: &str) -> PluginFn {
    // SAFETY: the byte-buffer ABI of the sandbox's plugins.
    *unsafe { lib.get::<PluginFn>(name) }.unwrap()
}

/// 1 MiB through a sandbox: in place on a shared buffer against copied
/// in and out of the call buffers.
fn sandbox_mib(c: &mut Criterion) {
    const MIB: usize = 1 << 20;
    let grant = real_grant();
    let (echo_path, real_path) = (sandbox_lib("libecho.so"), sandbox_lib("libreal.so"));
    let mut shared = minld::sandbox::Sandbox::builder(real_path.clone())
        .function("invert")
        .read_only(grant)
        .shared_buffer(MIB)
        .spawn()
        .expect("start the libreal sandbox");
    let mut real_copy = minld::sandbox::Sandbox::builder(real_path.clone())
        .function("invert")
        .read_only(grant)
        .spawn()
        .expect("start the libreal sandbox");
    let mut echo = minld::sandbox::Sandbox::builder(echo_path.clone())
        .function("upper")
        .function("echo")
        .spawn()
        .expect("start the echo sandbox");
    // SAFETY: test plugins of ours, loaded in process for the comparison
    // (libreal's constructor reads the config file here too).
    let (echo_lib, real_lib) = unsafe { (Library::open(&echo_path), Library::open(&real_path)) };
    let (echo_lib, real_lib) = (echo_lib.unwrap(), real_lib.unwrap());
    let (upper_fn, invert_fn) = (
        in_process(&echo_lib, "upper"),
        in_process(&real_lib, "invert"),
    );

    let data: Vec<u8> = (0..MIB).map(|i| i as u8).collect();
    let mut back = vec![0u8; MIB];
    let mut g = c.benchmark_group("sandbox 1 MiB");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("shared buffer: write, call_in invert, read", |b| {
        b.iter(|| {
            let buf = shared.buffer(0).unwrap();
            buf.write(0, black_box(&data)).unwrap();
            assert_eq!(shared.call_in("invert", 0, MIB).unwrap(), MIB);
            shared.buffer(0).unwrap().read(0, &mut back).unwrap();
            black_box(&back);
        })
    });
    g.bench_function("shared buffer: call_in invert alone", |b| {
        b.iter(|| assert_eq!(shared.call_in("invert", 0, MIB).unwrap(), MIB))
    });
    g.bench_function("call buffers: call upper", |b| {
        b.iter(|| black_box(echo.call("upper", black_box(&data)).unwrap()))
    });
    g.bench_function("call buffers: call echo", |b| {
        b.iter(|| black_box(echo.call("echo", black_box(&data)).unwrap()))
    });
    g.bench_function("call buffers: call invert", |b| {
        b.iter(|| black_box(real_copy.call("invert", black_box(&data)).unwrap()))
    });
    g.bench_function("in process: invert", |b| {
        b.iter(|| invert_fn(data.as_ptr(), MIB, back.as_mut_ptr(), MIB))
    });
    g.bench_function("in process: upper", |b| {
        b.iter(|| upper_fn(black_box(data.as_ptr()), MIB, back.as_mut_ptr(), MIB))
    });
    g.finish();
}

/// The start of a sandbox, and its end: spawn then drop.
fn sandbox_start(c: &mut Criterion) {
    let path = sandbox_lib("libecho.so");
    let mut g = c.benchmark_group("sandbox start");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("spawn+drop (libecho)", |b| {
        b.iter(|| {
            let sb = minld::sandbox::Sandbox::builder(black_box(path.as_str()))
                .function("upper")
                .spawn()
                .unwrap();
            drop(black_box(sb));
        })
    });
    // The same plugin forked from a zygote: no exec, no link of the
    // runner or the plugin, pages shared with the zygote.
    let zygote = minld::sandbox::Sandbox::builder(path.as_str())
        .function("upper")
        .zygote()
        .unwrap();
    g.bench_function("zygote instance+drop (libecho)", |b| {
        b.iter(|| drop(black_box(zygote.instance().unwrap())))
    });
    g.finish();
}

/// The memory of a runner just started: Rss and Pss (and Pss's parts) of
/// `/proc/<pid>/smaps_rollup`, for the echo plugin (default 1 MiB call
/// buffers) and libreal with a 1 MiB shared buffer.
fn runner_memory(_c: &mut Criterion) {
    let fields = [
        "Rss",
        "Pss",
        "Pss_Anon",
        "Pss_File",
        "Pss_Shmem",
        "Private_Dirty",
    ];
    let grant = real_grant();
    let builders = [
        (
            "libecho",
            minld::sandbox::Sandbox::builder(sandbox_lib("libecho.so")).function("upper"),
        ),
        (
            "libreal + 1 MiB shared buffer",
            minld::sandbox::Sandbox::builder(sandbox_lib("libreal.so"))
                .function("invert")
                .read_only(grant)
                .shared_buffer(1 << 20),
        ),
    ];
    let zygote = minld::sandbox::Sandbox::builder(sandbox_lib("libecho.so"))
        .function("upper")
        .zygote()
        .expect("start the zygote");
    let instances: Vec<_> = (0..4)
        .map(|_| zygote.instance().expect("an instance"))
        .collect();
    let forked = instances
        .iter()
        .map(|i| ("libecho, one of 4 zygote instances", i));
    let spawned: Vec<_> = builders
        .into_iter()
        .map(|(name, b)| (name, b.spawn().expect("start the sandbox")))
        .collect();
    let all: Vec<(&str, &minld::sandbox::Sandbox)> = spawned
        .iter()
        .map(|(n, s)| (*n, s))
        .chain(forked.take(1))
        .collect();
    for (name, sb) in all {
        let pid = sb.pid().expect("a runner pid");
        let rollup = match std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            Ok(t) => t,
            Err(e) => {
                println!("runner memory ({name}): /proc/{pid}/smaps_rollup: {e}");
                continue;
            }
        };
        let got: Vec<String> = fields
            .iter()
            .filter_map(|f| {
                let line = rollup.lines().find(|l| l.split(':').next() == Some(f))?;
                Some(format!("{f} {}", line.split(':').nth(1)?.trim()))
            })
            .collect();
        println!("runner memory just started ({name}): {}", got.join(", "));
    }
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
    sandbox_mib,
    sandbox_start,
    runner_memory,
    first_load_of_libcrypto
);
criterion_main!(benches);
