//! `loadbench`: minld against glibc's `dlopen`, one fresh process per load
//! (issue 6, "Faster and leaner than glibc's dlopen").
//!
//! ```text
//! cargo run --release --example loadbench
//! cargo run --release --example loadbench -- --runs 21 --libs libz,libsqlite3 --modes now \
//!     --json /tmp/loadbench.json
//! python3 scripts/plot_loadbench.py /tmp/loadbench.json /tmp/loadbench.svg
//! ```
//!
//! Options:
//!
//! - `--runs N`: timed loads per library, mode and loader (default 11; use
//!   at least 10).
//! - `--libs a,b,c`: a subset of the libraries, by file name (`libz.so.1`),
//!   by the part before `.so` (`libz`, `libLLVM-15`) or by path. Default:
//!   libz.so.1, libsqlite3.so.0, libcrypto.so.3, libz3.so.4,
//!   libpython3.11.so.1.0 and libLLVM-15.so.1 from /usr/lib/x86_64-linux-gnu.
//! - `--modes now,lazy`: `now` is minld's `Loader::new().bind_now(true)`
//!   against `dlopen(RTLD_NOW | RTLD_LOCAL)`, `lazy` is `bind_now(false)`
//!   against `RTLD_LAZY | RTLD_LOCAL` (both bind PLT entries at their
//!   first call). Default: both. In each mode a third loader, **minld
//!   cached**, is the same minld load with `cache(dir)`: see below.
//! - `--json FILE`: every raw sample and every median, as JSON (the input of
//!   `scripts/plot_loadbench.py`); with `--smaps`, each run's growth by kind
//!   too (`smaps_kb`).
//! - `--no-strace`: skip the system-call counts.
//! - `--smaps`: after each mode's table, where the RSS growth went, by kind
//!   of memory: the loaded objects' code, read-only pages (clean, or
//!   written: RELRO), data and .bss; the host program's own pages (minld's
//!   code lives there); ld.so, libc and the other objects the process had;
//!   the heap, other anonymous memory and the stack. Each child reads
//!   `/proc/self/smaps` into a buffer allocated before the first reading,
//!   just before and just after the loading call (the RSS columns are
//!   measured between the two readings, as without the flag). See
//!   `examples/support/smaps.rs`; `examples/memsmaps.rs` prints one load's
//!   changed mappings one by one.
//!
//! How it measures:
//!
//! - Every load is a **fresh process**: the benchmark re-executes itself with
//!   a hidden `--child <minld|glibc|cached> <now|lazy> <path>` mode. The child reads
//!   VmRSS from /proc/self/status, takes a monotonic timestamp, makes the one
//!   loading call, takes the timestamp again, reads VmRSS again, prints
//!   `ns=<n> rss_kb=<delta>` and leaves with `_exit(0)`: nothing is unloaded
//!   (glibc never unloads DF_1_NODELETE objects such as libcrypto anyway) and
//!   no exit handlers run. Runs alternate minld, glibc, minld cached, minld, ...
//! - The page cache is warm: the parent reads each library once before it
//!   starts (it parses it then to count relocations), and one untimed load
//!   per library, mode and loader (which also lists the objects loaded)
//!   precedes the timed ones; the parent reads each of those objects once
//!   too.
//! - **Relocations** are counted by parsing the file (goblin for the
//!   headers): DT_RELASZ / DT_RELAENT + DT_PLTRELSZ / 24 (unless the PLT
//!   relocations lie inside the DT_RELA table) + DT_RELSZ / DT_RELENT + the
//!   DT_RELR table expanded (one per address entry, one per set bit but the
//!   lowest of a bitmap entry). This is the count of `readelf -rW`.
//!   **DT_NEEDED** is the count of direct dependencies (what
//!   `Library::dependencies()` returns); **objects** is the number of
//!   shared objects newly mapped in the child by each loader, the library
//!   included (new `.so` paths in /proc/self/maps): dependencies the
//!   process already has (libc, libgcc_s) are reused by both loaders.
//! - **minld cached**: the parent makes a fresh private directory (mode
//!   0700) under the temp dir for this run of loadbench, names it to the
//!   children in `LOADBENCH_CACHE_DIR` (MINLD_CACHE is scrubbed from every
//!   child), and removes it at the end. The untimed first load of each
//!   library and mode is what fills the link record; one more untimed load
//!   under `MINLD_DEBUG=libs` must then say the record is proven. Each timed
//!   cached child lists the records (name, inode, size, mtime) before the
//!   clock starts and again after the loading call (after both RSS
//!   readings): a run that found none, or whose load wrote a new one (what a
//!   load does when the record is not proven), is refused with an error
//!   naming the library, never mixed into the samples. Since the record
//!   holds the executable's build-id, the cache is filled by the very binary
//!   that is timed.
//! - **Lookup**: one child per loader loads libz.so.1 (bind-now) and times
//!   `Library::get::<*const c_void>` and `Library::find` (minld, no error
//!   built on a miss) against `dlsym` on the `dlopen` handle,
//!   for `inflateInit2_` (a hit) and `no_such_symbol_in_libz` (a miss):
//!   31 batches of 100,000 calls after one untimed batch, the median batch
//!   in ns per call.
//! - **System calls**: each library is loaded once more per loader under
//!   `strace -f -qq`; the child brackets the loading call with
//!   `write(-1, "minld-bench-begin", ..)` and `write(-1, "minld-bench-end",
//!   ..)` (they fail with EBADF; neither loader ever writes to fd -1) and the
//!   calls between the markers are counted. Done in the first mode given;
//!   the cached loader's calls include reading its record.
//!
//! The timings of a shared machine are noisy: compare the ratio column of
//! one run, not absolute times across runs.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_void, CStr, CString};
use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

#[path = "support/report.rs"]
mod report;
#[path = "support/smaps.rs"]
mod smaps;

/// The directory of the default libraries.
const LIB_DIR: &str = "/usr/lib/x86_64-linux-gnu";
/// The libraries measured unless `--libs` says otherwise.
const DEFAULT_LIBS: &[&str] = &[
    "libz.so.1",
    "libsqlite3.so.0",
    "libcrypto.so.3",
    "libz3.so.4",
    "libpython3.11.so.1.0",
    "libLLVM-15.so.1",
];
/// The library the lookup children load.
const LOOKUP_LIB: &str = "libz.so.1";
/// A symbol `LOOKUP_LIB` defines.
const LOOKUP_HIT: &str = "inflateInit2_";
/// A symbol no library defines.
const LOOKUP_MISS: &str = "no_such_symbol_in_libz";
/// Timed lookup batches per loader and name.
const LOOKUP_BATCHES: usize = 31;
/// Lookups per batch.
const LOOKUP_CALLS: u32 = 100_000;
/// The marker written just before the loading call.
const MARK_BEGIN: &[u8] = b"minld-bench-begin";
/// The marker written just after the loading call.
const MARK_END: &[u8] = b"minld-bench-end";
/// Variables that would change what either loader does in the children.
const SCRUBBED_ENV: &[&str] = &[
    "LD_BIND_NOW",
    "LD_DEBUG",
    "LD_PROFILE",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "MINLD_TRACE",
    "MINLD_DEBUG",
    "MINLD_CACHE",
    "RUST_LOG",
];
/// loadbench's own variable: the link cache directory of the "minld
/// cached" children (never MINLD_CACHE, which is scrubbed).
const CACHE_ENV: &str = "LOADBENCH_CACHE_DIR";
/// The directory `CACHE_ENV` names, set once by the parent.
static CACHE_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// A loader.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Which {
    /// minld without a link cache.
    Minld,
    /// glibc's dlopen.
    Glibc,
    /// minld with the link cache of `CACHE_ENV`, its record already filled.
    Cached,
}

impl Which {
    /// The name on the command line and in the output.
    fn name(self) -> &'static str {
        match self {
            Which::Minld => "minld",
            Which::Glibc => "glibc",
            Which::Cached => "cached",
        }
    }
    /// The loader named `s`.
    fn parse(s: &str) -> Option<Which> {
        match s {
            "minld" => Some(Which::Minld),
            "glibc" => Some(Which::Glibc),
            "cached" => Some(Which::Cached),
            _ => None,
        }
    }
}

/// The loaders, in the order runs alternate (and `loader_index`'s).
const LOADERS: [Which; 3] = [Which::Minld, Which::Glibc, Which::Cached];
/// The loaders whose symbol lookup is timed (the cache changes nothing there).
const LOOKUP_LOADERS: [Which; 2] = [Which::Minld, Which::Glibc];

/// A binding mode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Every relocation at load time.
    Now,
    /// PLT entries bound at their first call.
    Lazy,
}

impl Mode {
    /// The name on the command line and in the output.
    fn name(self) -> &'static str {
        match self {
            Mode::Now => "now",
            Mode::Lazy => "lazy",
        }
    }
    /// The mode named `s`.
    fn parse(s: &str) -> Option<Mode> {
        match s {
            "now" => Some(Mode::Now),
            "lazy" => Some(Mode::Lazy),
            _ => None,
        }
    }
    /// The heading of the mode's table.
    fn title(self) -> &'static str {
        match self {
            Mode::Now => {
                "bind now: minld `bind_now(true)` (cached: `.cache(dir)` too) vs glibc `dlopen(RTLD_NOW | RTLD_LOCAL)`"
            }
            Mode::Lazy => {
                "lazy: minld `bind_now(false)` (cached: `.cache(dir)` too) vs glibc `dlopen(RTLD_LAZY | RTLD_LOCAL)`"
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The child: one load, measured.
// ---------------------------------------------------------------------------

/// VmRSS of this process in kB, read into a stack buffer (no allocation, so
/// the reading itself does not move the number).
fn vm_rss_kb() -> u64 {
    let mut buf = [0u8; 8192];
    let mut n = 0;
    if let Ok(mut f) = std::fs::File::open("/proc/self/status") {
        while n < buf.len() {
            match f.read(&mut buf[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
    }
    for line in buf[..n].split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"VmRSS:") {
            let digits: Vec<u8> = rest
                .iter()
                .copied()
                .skip_while(|b| !b.is_ascii_digit())
                .take_while(u8::is_ascii_digit)
                .collect();
            return std::str::from_utf8(&digits)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

/// A system call neither loader makes, to find the load in strace's output.
fn marker(tag: &[u8]) {
    // SAFETY: write(2) on fd -1 reads `tag.len()` bytes of a live slice at
    // most (in fact none: it fails with EBADF at once); it has no effect
    // beyond showing in strace's output.
    unsafe { libc::write(-1, tag.as_ptr().cast(), tag.len()) };
}

/// The file-backed shared objects mapped in this process.
fn mapped_objects() -> BTreeSet<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut out = BTreeSet::new();
    for line in maps.lines() {
        // address perms offset dev inode path
        let mut rest = line;
        for _ in 0..5 {
            rest = rest.trim_start();
            rest = rest.find(' ').map_or("", |i| &rest[i..]);
        }
        let path = rest.trim();
        if path.starts_with('/') && path.contains(".so") {
            out.insert(path.to_string());
        }
    }
    out
}

/// Flushes stdout and leaves at once, with `_exit`.
fn child_exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    // SAFETY: _exit ends the process at once; nothing of ours needs to run
    // (stdout was flushed just above). Skipping exit handlers and fini
    // functions is the point: the load, not the teardown, is measured.
    unsafe { libc::_exit(code) }
}

/// `s` on one line, for a `key=value` line of the child.
fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// Bytes of each smaps buffer: room for a few thousand mappings.
const SMAPS_BUFFER: usize = 4 << 20;

/// One link record file as seen in the cache directory: name, inode,
/// size and modification time (a record is replaced by a rename, so a
/// rewritten one has another inode).
type RecordFile = (String, u64, u64, i64, i64);

/// The link records (`*.minld`) in `dir`, sorted.
fn records(dir: &Path) -> Vec<RecordFile> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out: Vec<RecordFile> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let md = e.metadata().ok()?;
            name.ends_with(".minld")
                .then(|| (name, md.ino(), md.size(), md.mtime(), md.mtime_nsec()))
        })
        .collect();
    out.sort();
    out
}

/// For the cached loader: whether the load used a record, from the
/// directory before and after it. The untimed `info` load must have written
/// one; a timed load must have found records and left them as they were (a
/// load whose record was not proven goes the normal way and writes a new
/// one, which changes the inode and mtime). The parent checks separately,
/// under `MINLD_DEBUG=libs`, that the record is proven.
fn cache_verdict(info: bool, before: &[RecordFile], after: &[RecordFile]) -> Result<(), String> {
    if info {
        if after != before {
            return Ok(());
        }
        return Err("the untimed load wrote no link record".into());
    }
    if before.is_empty() {
        return Err("no link record before the timed load".into());
    }
    if before != after {
        return Err(
            "the link record was not used: the load wrote a new one (MINLD_DEBUG=libs says why)"
                .into(),
        );
    }
    Ok(())
}

/// `--child <minld|glibc|cached> <now|lazy> <path> [info] [smaps]`
fn child_load(which: Which, mode: Mode, path: &str, info: bool, with_smaps: bool) -> ! {
    // Everything either call needs is made before the clock starts.
    let cpath = CString::new(path).expect("path with a NUL");
    let flags = match mode {
        Mode::Now => libc::RTLD_NOW | libc::RTLD_LOCAL,
        Mode::Lazy => libc::RTLD_LAZY | libc::RTLD_LOCAL,
    };
    let mut loader = minld::Loader::new()
        .bind_now(mode == Mode::Now)
        .without_cache();
    let cache_dir = std::env::var_os(CACHE_ENV).map(PathBuf::from);
    let mut records_before = Vec::new();
    if which == Which::Cached {
        let Some(dir) = &cache_dir else {
            println!("error={CACHE_ENV} is not set");
            child_exit(1);
        };
        loader = loader.cache(dir);
        records_before = records(dir);
    }
    let before = if info {
        mapped_objects()
    } else {
        BTreeSet::new()
    };

    // Nothing else runs before the loading call: in particular no earlier
    // dlopen or minld call warms up either loader's own state. It is fair
    // that minld's first `open` initialises its process-wide state (the
    // registry, the host's objects found through dl_iterate_phdr, the
    // ld.so.cache), as glibc's first dlopen does its own.
    let mut snapshots = with_smaps.then(|| {
        (
            smaps::Buffer::new(SMAPS_BUFFER),
            smaps::Buffer::new(SMAPS_BUFFER),
        )
    });
    if let Some((before, _)) = &mut snapshots {
        before.read();
    }
    let rss0 = vm_rss_kb();
    marker(MARK_BEGIN);
    let (ns, result) = match which {
        Which::Minld | Which::Cached => {
            let t0 = Instant::now();
            // SAFETY: a system library from the distribution, trusted to
            // run its init functions and ifunc resolvers in this throwaway
            // process.
            let r = unsafe { loader.open(path) };
            let ns = t0.elapsed().as_nanos();
            (ns, r.map(Loaded::Minld).map_err(|e| e.to_string()))
        }
        Which::Glibc => {
            let t0 = Instant::now();
            // SAFETY: `cpath` is a NUL-terminated path that outlives the
            // call; the library is a trusted system one whose init
            // functions may run in this throwaway process.
            let h = unsafe { libc::dlopen(cpath.as_ptr(), flags) };
            let ns = t0.elapsed().as_nanos();
            if h.is_null() {
                (ns, Err(dlerror_string()))
            } else {
                (ns, Ok(Loaded::Glibc { _handle: h }))
            }
        }
    };
    marker(MARK_END);
    let rss1 = vm_rss_kb();
    if let Some((_, after)) = &mut snapshots {
        after.read();
    }

    let loaded = match result {
        Ok(l) => l,
        Err(e) => {
            println!("error={}", one_line(&e));
            child_exit(1);
        }
    };
    if let (Which::Cached, Some(dir)) = (which, &cache_dir) {
        if let Err(e) = cache_verdict(info, &records_before, &records(dir)) {
            println!("error={e}");
            child_exit(1);
        }
    }
    println!("ns={ns} rss_kb={}", rss1 as i64 - rss0 as i64);
    if let Some((before, after)) = &snapshots {
        if before.full() || after.full() {
            println!("error=smaps did not fit in {SMAPS_BUFFER} bytes");
            child_exit(1);
        }
        for (kind, kb) in smaps::growth(before, after) {
            println!("smaps.{kind}={kb}");
        }
    }
    if info {
        if let Loaded::Minld(lib) = &loaded {
            println!("deps={}", lib.dependencies().len());
        }
        for p in mapped_objects().difference(&before) {
            println!("object={p}");
        }
    }
    // Kept loaded until _exit: no dlclose, no drop.
    std::mem::forget(loaded);
    child_exit(0);
}

/// What a child's load returned, kept until `_exit`.
enum Loaded {
    /// minld's library (cached or not).
    Minld(minld::Library),
    /// Held, never closed, until `_exit`.
    Glibc { _handle: *mut c_void },
}

/// glibc's last dlerror, as a string.
fn dlerror_string() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until
    // the next dl* call of this thread; it is copied at once.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "dlopen failed (no dlerror)".to_string()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

/// ns per call of each of `LOOKUP_BATCHES` batches (after one untimed).
fn batches(mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..LOOKUP_CALLS {
        f();
    }
    (0..LOOKUP_BATCHES)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..LOOKUP_CALLS {
                f();
            }
            t0.elapsed().as_nanos() as f64 / f64::from(LOOKUP_CALLS)
        })
        .collect()
}

/// Numbers as a comma-separated list (a child's output).
fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.3}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `--child-lookup <minld|glibc> <path>`: prints `hit=` and `miss=` (minld's
/// `get`, glibc's `dlsym`), and for minld `find_hit=` and `find_miss=`.
fn child_lookup(which: Which, path: &str) -> ! {
    let (hit, miss) = match which {
        Which::Minld | Which::Cached => {
            // SAFETY: a trusted system library (libz) whose init functions
            // may run in this throwaway process.
            let lib = match unsafe { minld::Loader::new().bind_now(true).open(path) } {
                Ok(l) => l,
                Err(e) => {
                    println!("error={}", one_line(&e.to_string()));
                    child_exit(1);
                }
            };
            let hit = batches(|| {
                // SAFETY: only the address is read; the symbol is never
                // called or dereferenced through the `*const c_void`.
                let s = unsafe { lib.get::<*const c_void>(black_box(LOOKUP_HIT)) };
                black_box(s.map(|s| *s).ok());
            });
            let miss = batches(|| {
                // SAFETY: only whether the lookup failed is used; no value of
                // type `*const c_void` is read or dereferenced.
                let s = unsafe { lib.get::<*const c_void>(black_box(LOOKUP_MISS)) };
                black_box(s.is_err());
            });
            // SAFETY: only whether the lookup succeeded is used; the
            // address is never dereferenced.
            if unsafe { lib.get::<*const c_void>(LOOKUP_HIT) }.is_err() {
                println!("error=minld: {LOOKUP_HIT} not found in {path}");
                child_exit(1);
            }
            let find_hit = batches(|| {
                // SAFETY: only the address is read; the symbol is never
                // called or dereferenced through the `*const c_void`.
                let s = unsafe { lib.find::<*const c_void>(black_box(LOOKUP_HIT)) };
                black_box(s.map(|s| *s));
            });
            let find_miss = batches(|| {
                // SAFETY: only whether the lookup failed is used; no value of
                // type `*const c_void` is read or dereferenced.
                let s = unsafe { lib.find::<*const c_void>(black_box(LOOKUP_MISS)) };
                black_box(s.is_none());
            });
            // SAFETY: only whether the lookups succeeded is used; no
            // address is dereferenced.
            let (h, m) = unsafe {
                (
                    lib.find::<*const c_void>(LOOKUP_HIT).is_some(),
                    lib.find::<*const c_void>(LOOKUP_MISS).is_some(),
                )
            };
            if !h || m {
                println!("error=minld: find({LOOKUP_HIT}) {h}, find({LOOKUP_MISS}) {m}");
                child_exit(1);
            }
            println!("find_hit={}", list(&find_hit));
            println!("find_miss={}", list(&find_miss));
            std::mem::forget(lib);
            (hit, miss)
        }
        Which::Glibc => {
            let cpath = CString::new(path).expect("path with a NUL");
            // SAFETY: a NUL-terminated path; a trusted system library.
            let h = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if h.is_null() {
                println!("error={}", one_line(&dlerror_string()));
                child_exit(1);
            }
            let hit_c = CString::new(LOOKUP_HIT).unwrap();
            let miss_c = CString::new(LOOKUP_MISS).unwrap();
            let hit = batches(|| {
                // SAFETY: `h` is a live handle (never closed) and the name
                // a NUL-terminated string that outlives the call.
                black_box(unsafe { libc::dlsym(h, black_box(hit_c.as_ptr())) });
            });
            let miss = batches(|| {
                // SAFETY: `h` is a live handle (never closed) and `miss_c` a
                // NUL-terminated string that outlives the call.
                black_box(unsafe { libc::dlsym(h, black_box(miss_c.as_ptr())) });
            });
            // SAFETY: `h` is a live handle and `hit_c` a NUL-terminated
            // string that outlives the call; only NULL-ness is used.
            if unsafe { libc::dlsym(h, hit_c.as_ptr()) }.is_null() {
                println!("error=glibc: {LOOKUP_HIT} not found in {path}");
                child_exit(1);
            }
            (hit, miss)
        }
    };
    println!("hit={}", list(&hit));
    println!("miss={}", list(&miss));
    child_exit(0);
}

// ---------------------------------------------------------------------------
// The parent: relocation counts, children, tables, JSON.
// ---------------------------------------------------------------------------

/// The command line.
struct Opts {
    /// `--runs`.
    runs: usize,
    /// `--libs`, resolved.
    libs: Vec<PathBuf>,
    /// `--modes`.
    modes: Vec<Mode>,
    /// `--json`.
    json: Option<PathBuf>,
    /// Not `--no-strace`.
    strace: bool,
    /// `--smaps`.
    smaps: bool,
}

/// Prints the usage; exit status 2.
fn usage() -> ExitCode {
    eprintln!(
        "usage: loadbench [--runs N] [--libs a,b,c] [--modes now,lazy] [--json FILE] [--no-strace] [--smaps]"
    );
    ExitCode::from(2)
}

/// The path of a `--libs` entry (see the module's doc).
fn resolve_lib(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    if let Some(d) = DEFAULT_LIBS
        .iter()
        .find(|d| **d == name || d.split(".so").next() == Some(name))
    {
        return Path::new(LIB_DIR).join(d);
    }
    Path::new(LIB_DIR).join(name)
}

/// Parses the command line.
fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        runs: 11,
        libs: DEFAULT_LIBS
            .iter()
            .map(|l| Path::new(LIB_DIR).join(l))
            .collect(),
        modes: vec![Mode::Now, Mode::Lazy],
        json: None,
        strace: true,
        smaps: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{what} needs a value"));
        match a.as_str() {
            "--runs" => {
                o.runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?;
                if o.runs == 0 {
                    return Err("--runs must be at least 1".into());
                }
            }
            "--libs" => {
                o.libs = value("--libs")?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(resolve_lib)
                    .collect()
            }
            "--modes" => {
                o.modes = value("--modes")?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|m| Mode::parse(m).ok_or(format!("unknown mode {m:?} (now, lazy)")))
                    .collect::<Result<_, _>>()?
            }
            "--json" => o.json = Some(PathBuf::from(value("--json")?)),
            "--no-strace" => o.strace = false,
            "--smaps" => o.smaps = true,
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    if o.libs.is_empty() || o.modes.is_empty() {
        return Err("no libraries or no modes".into());
    }
    Ok(o)
}

/// The file name of `p`, or all of it.
fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
}

/// Relocation entries of an ELF file and its DT_NEEDED count, from its
/// dynamic section.
fn count_relocations(bytes: &[u8]) -> Result<(u64, usize), String> {
    use goblin::elf::dynamic::*;
    let elf = goblin::elf::Elf::parse(bytes).map_err(|e| e.to_string())?;
    let dynamic = elf.dynamic.as_ref().ok_or("no dynamic section")?;
    let get = |tag: u64| {
        dynamic
            .dyns
            .iter()
            .find(|d| d.d_tag == tag)
            .map(|d| d.d_val)
    };
    let per = |size: Option<u64>, ent: Option<u64>, default: u64| {
        size.map_or(0, |s| s / ent.filter(|&e| e != 0).unwrap_or(default))
    };
    let mut n = per(get(DT_RELASZ), get(DT_RELAENT), 24) + per(get(DT_RELSZ), get(DT_RELENT), 16);
    // PLT relocations, unless the linker counted them in DT_RELASZ.
    if let (Some(jmprel), Some(sz)) = (get(DT_JMPREL), get(DT_PLTRELSZ)) {
        let inside = match (get(DT_RELA), get(DT_RELASZ)) {
            (Some(rela), Some(relasz)) => jmprel >= rela && jmprel < rela + relasz,
            _ => false,
        };
        if !inside {
            let ent = if get(DT_PLTREL) == Some(DT_REL) {
                16
            } else {
                24
            };
            n += sz / ent;
        }
    }
    // DT_RELR (36), DT_RELRSZ (35): an address entry is one relocation, a
    // bitmap entry (lowest bit set) one per other set bit.
    const DT_RELR_: u64 = 36;
    const DT_RELRSZ_: u64 = 35;
    if let (Some(relr), Some(sz)) = (get(DT_RELR_), get(DT_RELRSZ_)) {
        let off = elf
            .program_headers
            .iter()
            .filter(|ph| ph.p_type == goblin::elf::program_header::PT_LOAD)
            .find(|ph| relr >= ph.p_vaddr && relr < ph.p_vaddr + ph.p_filesz)
            .map(|ph| (relr - ph.p_vaddr + ph.p_offset) as usize)
            .ok_or("DT_RELR outside the file")?;
        let table = bytes
            .get(off..off + sz as usize)
            .ok_or("DT_RELR table past the end of the file")?;
        for e in table.chunks_exact(8) {
            let e = u64::from_le_bytes(e.try_into().unwrap());
            n += if e & 1 == 0 {
                1
            } else {
                u64::from(e.count_ones() - 1)
            };
        }
    }
    Ok((n, elf.libraries.len()))
}

/// Reads a file once so that its pages are in the page cache.
fn warm(path: &Path) {
    if let Ok(mut f) = std::fs::File::open(path) {
        let mut buf = vec![0u8; 1 << 20];
        while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// A child of `exe` (or of strace) with the loaders' variables scrubbed and
/// `CACHE_ENV` naming the cache directory.
fn scrubbed(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    for v in SCRUBBED_ENV {
        c.env_remove(v);
    }
    if let Some(dir) = CACHE_DIR.get() {
        c.env(CACHE_ENV, dir);
    }
    c.stdin(Stdio::null());
    c
}

/// A child of the benchmark itself (see `scrubbed`).
fn child_command(exe: &Path) -> Command {
    scrubbed(exe)
}

/// The untimed check that the cached loader's record for `path` is proven:
/// one more load, under `MINLD_DEBUG=libs`, whose stderr must say
/// `link cache: …: proven`.
fn check_proven(exe: &Path, mode: Mode, path: &Path) -> Result<(), String> {
    let mut cmd = child_command(exe);
    cmd.args(load_args(Which::Cached, mode, path))
        .env("MINLD_DEBUG", "libs");
    let out = cmd
        .output()
        .map_err(|e| format!("spawning the child: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("link cache:"))
        .collect();
    if out.status.success() && said.iter().any(|l| l.contains("proven")) {
        return Ok(());
    }
    Err(format!(
        "the link record was not proven ({}): {}",
        out.status,
        one_line(&said.join("; "))
    ))
}

/// Makes the private cache directory (mode 0700) of this run of loadbench.
fn make_cache_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = std::env::temp_dir().join(format!("loadbench-{}-cache", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Runs a child; its stdout's `key=value` lines, or its error.
fn run_child(mut cmd: Command) -> Result<Vec<(String, String)>, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("spawning the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut kv = Vec::new();
    for line in stdout.lines() {
        if let Some(e) = line.strip_prefix("error=") {
            return Err(e.to_string());
        }
        if line.starts_with("ns=") {
            for tok in line.split_whitespace() {
                if let Some((k, v)) = tok.split_once('=') {
                    kv.push((k.to_string(), v.to_string()));
                }
            }
        } else if let Some((k, v)) = line.split_once('=') {
            kv.push((k.to_string(), v.to_string()));
        }
    }
    if !out.status.success() {
        return Err(format!(
            "child {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(kv)
}

/// The value of `key` in a child's output, parsed.
fn field<T: std::str::FromStr>(kv: &[(String, String)], key: &str) -> Option<T> {
    kv.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// One loader's samples of one library and mode.
#[derive(Default, Clone)]
struct Samples {
    /// Each timed run's loading call, ns.
    ns: Vec<u64>,
    /// Each timed run's VmRSS growth, kB.
    rss_kb: Vec<i64>,
    /// Why the loader's samples stopped, if they did.
    error: Option<String>,
    /// Objects newly mapped by the untimed load, the library included.
    objects: Vec<String>,
    /// With `--smaps`: each run's growth by kind of memory.
    smaps: smaps::Runs,
}

/// Everything measured of one library.
struct LibResult {
    /// The library's path.
    path: PathBuf,
    /// Its file name.
    name: String,
    /// Its relocation entries, parsed from the file.
    relocations: Option<u64>,
    /// Its DT_NEEDED entries.
    needed: Option<usize>,
    /// `Library::dependencies().len()` in the untimed minld load.
    minld_deps: Option<usize>,
    /// Why the file could not be parsed.
    parse_error: Option<String>,
    /// [mode index][loader] (minld, glibc, cached)
    modes: Vec<[Samples; 3]>,
    /// By loader (minld, glibc, cached).
    syscalls: [Option<Result<Syscalls, String>>; 3],
}

/// System calls of one load: the total and by name.
#[derive(Default, Clone)]
struct Syscalls {
    /// All the calls between the markers.
    total: u64,
    /// The calls by name.
    by_kind: BTreeMap<String, u64>,
}

/// The median, None for no samples.
fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

/// The median of integers.
fn median_u(v: &[u64]) -> Option<f64> {
    median(&v.iter().map(|&x| x as f64).collect::<Vec<_>>())
}

/// The median of signed integers.
fn median_i(v: &[i64]) -> Option<f64> {
    median(&v.iter().map(|&x| x as f64).collect::<Vec<_>>())
}

/// The index of a loader in `LibResult`'s arrays (`LOADERS`' order).
fn loader_index(w: Which) -> usize {
    match w {
        Which::Minld => 0,
        Which::Glibc => 1,
        Which::Cached => 2,
    }
}

/// The arguments of a load child.
fn load_args(w: Which, m: Mode, path: &Path) -> Vec<String> {
    vec![
        "--child".into(),
        w.name().into(),
        m.name().into(),
        path.display().to_string(),
    ]
}

/// Counts the system calls between the markers of an strace -f -o file.
fn count_syscalls(trace: &str) -> Result<Syscalls, String> {
    let begin = format!("write(-1, \"{}\"", String::from_utf8_lossy(MARK_BEGIN));
    let end = format!("write(-1, \"{}\"", String::from_utf8_lossy(MARK_END));
    let mut s = Syscalls::default();
    let mut inside = false;
    let mut seen_end = false;
    for line in trace.lines() {
        // With -f each line starts with the thread id.
        let l = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        if l.contains(&begin) {
            inside = true;
            continue;
        }
        if l.contains(&end) {
            seen_end = inside;
            break;
        }
        if !inside || l.starts_with("---") || l.starts_with("+++") || l.starts_with("<...") {
            continue; // signals, exits, and the second half of an interrupted call
        }
        let Some(name) = l.split('(').next().filter(|n| !n.is_empty()) else {
            continue;
        };
        s.total += 1;
        *s.by_kind.entry(name.to_string()).or_default() += 1;
    }
    if !seen_end {
        return Err("markers not found in strace's output".into());
    }
    Ok(s)
}

/// Whether strace runs here, or why not.
fn strace_available() -> Result<(), String> {
    match Command::new("strace").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`strace -V` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("strace not found ({e})")),
    }
}

/// One load of `path` under strace: its system calls between the markers.
fn run_strace(exe: &Path, w: Which, m: Mode, path: &Path, n: usize) -> Result<Syscalls, String> {
    let out = std::env::temp_dir().join(format!(
        "loadbench-{}-{n}-{}.strace",
        std::process::id(),
        w.name()
    ));
    let mut cmd = scrubbed("strace");
    cmd.args(["-f", "-qq", "-o"])
        .arg(&out)
        .arg(exe)
        .args(load_args(w, m, path));
    let r = run_child(cmd).and_then(|_| {
        let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        count_syscalls(&text)
    });
    let _ = std::fs::remove_file(&out);
    r
}

/// Nanoseconds as microseconds, one decimal.
fn us(ns: Option<f64>) -> String {
    match ns {
        Some(v) => format!("{:.1}", v / 1000.0),
        None => "—".into(),
    }
}

/// kB, without a fraction when there is none.
fn kb(v: Option<f64>) -> String {
    match v {
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "—".into(),
    }
}

/// `n` with thousands separators.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// glibc, kernel, CPUs and load average, for the tables' heading.
fn host_line() -> String {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let glibc = unsafe { CStr::from_ptr(libc::gnu_get_libc_version()) }
        .to_string_lossy()
        .into_owned();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "glibc {glibc}, Linux {}, {cpus} CPUs, load average {}",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// The child modes, or the benchmark.
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // The hidden child modes.
    if args.get(1).map(String::as_str) == Some("--child") {
        match (
            args.get(2).and_then(|s| Which::parse(s)),
            args.get(3).and_then(|s| Mode::parse(s)),
            args.get(4),
        ) {
            (Some(w), Some(m), Some(p)) => {
                let has = |word: &str| args[5..].iter().any(|a| a == word);
                child_load(w, m, p, has("info"), has("smaps"))
            }
            _ => return usage(),
        }
    }
    if args.get(1).map(String::as_str) == Some("--child-lookup") {
        match (args.get(2).and_then(|s| Which::parse(s)), args.get(3)) {
            (Some(w), Some(p)) => child_lookup(w, p),
            _ => return usage(),
        }
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return usage();
    }
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadbench: {e}");
            return usage();
        }
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("loadbench: current_exe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let host = host_line();
    let dir = match make_cache_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("loadbench: the cache directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = CACHE_DIR.set(dir.clone());
    let code = run(&opts, &exe, &host);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("loadbench: removing {}: {e}", dir.display());
    }
    code
}

/// Each loader's lookup timings: key (`hit`, `miss`, and minld's
/// `find_hit`, `find_miss`) to ns per call of each batch.
type Lookup = Result<BTreeMap<String, Vec<f64>>, String>;

/// Step 1: reads each library once (page cache), counts its relocations.
fn read_libs(opts: &Opts) -> Vec<LibResult> {
    let mut libs: Vec<LibResult> = Vec::new();
    for path in &opts.libs {
        eprintln!("reading {}", path.display());
        let (relocations, needed, parse_error) = match std::fs::read(path) {
            Ok(bytes) => match count_relocations(&bytes) {
                Ok((r, n)) => (Some(r), Some(n), None),
                Err(e) => (None, None, Some(format!("{}: {e}", path.display()))),
            },
            Err(e) => (None, None, Some(format!("{}: {e}", path.display()))),
        };
        libs.push(LibResult {
            name: file_name(path),
            path: path.clone(),
            relocations,
            needed,
            minld_deps: None,
            parse_error,
            modes: vec![Default::default(); opts.modes.len()],
            syscalls: [None, None, None],
        });
    }
    libs
}

/// The untimed load of each loader: lists the objects, warms their pages;
/// the cached loader's fills its link record, then a check run confirms
/// the record is proven.
fn untimed_loads(exe: &Path, mi: usize, mode: Mode, lib: &mut LibResult) {
    for w in LOADERS {
        let mut args = load_args(w, mode, &lib.path);
        args.push("info".into());
        let mut cmd = child_command(exe);
        cmd.args(&args);
        let s = &mut lib.modes[mi][loader_index(w)];
        let r = run_child(cmd).and_then(|kv| {
            if w == Which::Cached {
                check_proven(exe, mode, &lib.path)?;
            }
            Ok(kv)
        });
        match r {
            Ok(kv) => {
                s.objects = kv
                    .iter()
                    .filter(|(k, _)| k == "object")
                    .map(|(_, v)| v.clone())
                    .collect();
                for o in &s.objects {
                    warm(Path::new(o));
                }
                if w == Which::Minld {
                    lib.minld_deps = field(&kv, "deps");
                }
            }
            Err(e) => {
                eprintln!("{} {} {}: {e}", lib.name, mode.name(), w.name());
                s.error = Some(e);
            }
        }
    }
}

/// Step 2, one library in one mode: the untimed loads, then the timed
/// runs, alternating loaders. A timed cached run that did not use the
/// record is refused (the child says so): the loader's samples stop there
/// and its cell says why.
fn time_loads(opts: &Opts, exe: &Path, mi: usize, mode: Mode, lib: &mut LibResult) {
    untimed_loads(exe, mi, mode, lib);
    for i in 0..opts.runs {
        for w in LOADERS {
            let s = &mut lib.modes[mi][loader_index(w)];
            if s.error.is_some() {
                continue;
            }
            let mut cmd = child_command(exe);
            cmd.args(load_args(w, mode, &lib.path));
            if opts.smaps {
                cmd.arg("smaps");
            }
            match run_child(cmd) {
                Ok(kv) => match (field(&kv, "ns"), field(&kv, "rss_kb")) {
                    (Some(ns), Some(rss)) => {
                        s.ns.push(ns);
                        s.rss_kb.push(rss);
                        smaps::collect(&mut s.smaps, &kv);
                    }
                    _ => s.error = Some(format!("unreadable child output {kv:?}")),
                },
                Err(e) => {
                    eprintln!("{} {} {} run {i}: {e}", lib.name, mode.name(), w.name());
                    s.error = Some(e);
                }
            }
        }
    }
    let [m, g, c] = &lib.modes[mi];
    eprintln!(
        "{} {}: glibc {} µs, minld {} µs, minld cached {} µs ({} runs)",
        lib.name,
        mode.name(),
        us(median_u(&g.ns)),
        us(median_u(&m.ns)),
        us(median_u(&c.ns)),
        m.ns.len().min(g.ns.len()).min(c.ns.len())
    );
}

/// Step 3: one lookup child per loader.
fn run_lookup(exe: &Path) -> Vec<(Which, Lookup)> {
    let lookup_path = Path::new(LIB_DIR).join(LOOKUP_LIB);
    LOOKUP_LOADERS
        .iter()
        .map(|&w| {
            eprintln!("lookup, {}", w.name());
            let mut cmd = child_command(exe);
            cmd.args(["--child-lookup", w.name()]).arg(&lookup_path);
            let r = run_child(cmd).and_then(|kv| {
                let mut got = BTreeMap::new();
                for (k, v) in kv {
                    if ["hit", "miss", "find_hit", "find_miss"].contains(&k.as_str()) {
                        let xs = v
                            .split(',')
                            .map(|x| x.parse::<f64>().map_err(|e| format!("{k}: {e}")))
                            .collect::<Result<Vec<f64>, String>>()?;
                        got.insert(k, xs);
                    }
                }
                for k in ["hit", "miss"] {
                    if !got.contains_key(k) {
                        return Err(format!("no {k}= in the child's output"));
                    }
                }
                Ok(got)
            });
            (w, r)
        })
        .collect()
}

/// Everything after the command line: loads, lookups, system calls, the
/// tables and the JSON.
fn run(opts: &Opts, exe: &Path, host: &str) -> ExitCode {
    let mut libs = read_libs(opts);
    for (mi, &mode) in opts.modes.iter().enumerate() {
        for lib in &mut libs {
            time_loads(opts, exe, mi, mode, lib);
        }
    }
    let lookup = run_lookup(exe);

    // 4. System calls.
    let strace_mode = opts.modes[0];
    let strace_skipped: Option<String> = if !opts.strace {
        Some("skipped: --no-strace".into())
    } else {
        strace_available().err()
    };
    if strace_skipped.is_none() {
        for (n, lib) in libs.iter_mut().enumerate() {
            for w in LOADERS {
                eprintln!("strace {} {}", lib.name, w.name());
                lib.syscalls[loader_index(w)] = Some(run_strace(exe, w, strace_mode, &lib.path, n));
            }
        }
    }

    // 5. Tables.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# minld vs glibc dlopen: {} runs per loader, each in a fresh process\n\n{host}\n",
        opts.runs
    );
    let mut footnotes: Vec<String> = Vec::new();
    for (mi, &mode) in opts.modes.iter().enumerate() {
        report::load_table(&mut out, &mut footnotes, opts, mi, mode, &libs);
    }
    report::notes(&mut out, &libs);
    report::lookup_table(&mut out, &lookup);
    report::syscall_table(
        &mut out,
        &mut footnotes,
        strace_mode,
        strace_skipped.as_deref(),
        &libs,
    );
    if !footnotes.is_empty() {
        let _ = writeln!(out, "Failures:\n");
        for (n, f) in footnotes.iter().enumerate() {
            let _ = writeln!(out, "[{}] {f}", n + 1);
        }
        out.push('\n');
    }
    print!("{out}");

    // 6. JSON.
    if let Some(path) = &opts.json {
        let text = report::json(opts, host, &libs, &lookup, strace_mode, strace_skipped);
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("loadbench: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
