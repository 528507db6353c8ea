//! loadbench's children: one load, measured (`--child`), and the symbol
//! lookups, timed (`--child-lookup`). A submodule of `loadbench.rs`.

use super::*;

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
pub(super) fn one_line(s: &str) -> String {
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

/// The loading call itself between two timestamps: its nanoseconds and
/// what it returned (inlined into `child_load`, so the clock sees nothing
/// else).
#[inline(always)]
fn timed_load(
    which: Which,
    loader: &minld::Loader,
    path: &str,
    cpath: &CStr,
    flags: i32,
) -> (u128, Result<Loaded, String>) {
    match which {
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
    }
}

/// `--child <minld|glibc|cached> <now|lazy> <path> [info] [smaps]`
pub(super) fn child_load(which: Which, mode: Mode, path: &str, info: bool, with_smaps: bool) -> ! {
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
    let (ns, result) = timed_load(which, &loader, path, &cpath, flags);
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
pub(super) fn child_lookup(which: Which, path: &str) -> ! {
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
