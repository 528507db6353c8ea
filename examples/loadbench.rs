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

#[path = "support/child.rs"]
mod child;
#[path = "support/counts.rs"]
mod counts;
#[path = "support/report.rs"]
mod report;
#[path = "support/runs.rs"]
mod runs;
#[path = "support/smaps.rs"]
mod smaps;

use child::{child_load, child_lookup, one_line};
use counts::{count_relocations, run_strace, strace_available};
use runs::{make_cache_dir, run, run_child, scrubbed, Lookup};

/// The directory of the default libraries.
const LIB_DIR: &str = "/usr/lib/x86_64-linux-gnu";
/// The libraries measured unless `--libs` says otherwise.
const DEFAULT_LIBS: &[&str] = &[
    "libz.so.1",
    "libgmp.so.10",
    "libsqlite3.so.0",
    "libxml2.so.2",
    "libcurl.so.4",
    "libicuuc.so.72",
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
