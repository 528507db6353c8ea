//! `file_io [FILE...] [--size S] [--sizes S,S,...] [--accesses N] [--repeat R]
//! [--buffer B] [--samples K] [--dir DIR] [--warm-only] [--drop-caches] [--json]`
//!
//! read() against mmap on regular files, measured: for each file named and
//! each file generated (of size S, in DIR, by default the temporary
//! directory; removed at the end), with a cold and a warm page cache:
//!
//! * sequential: the whole file once with `read()` into a buffer of B bytes
//!   (default 128K), against `mmap` and touching every byte of every page;
//! * random: N (default 1000) accesses of 4 KiB at page-aligned offsets,
//!   the same N repeated R times (default 5), with `pread()` against the
//!   same accesses in one `mmap`.
//!
//! Both ways sum every byte they get (the checksum shows they read the same
//! data). For each: the time (the median of K samples, default 3, and that
//! sample's other numbers), the page faults (getrusage's minflt and majflt
//! deltas), the system calls it made (counted here, each open, fstat, read,
//! pread, mmap, munmap and close), and RSS growth (/proc/self/statm, taken
//! with the work done, before the munmap or close).
//!
//! A cold cache is made with fsync then posix_fadvise(POSIX_FADV_DONTNEED)
//! on the file, or with `--drop-caches` (root only) by writing 1 to
//! /proc/sys/vm/drop_caches, which empties the whole machine's page cache.
//! Either can fail to drop pages (another process maps the file, a file
//! system that keeps files in memory): the page cache's share of the file,
//! measured with mincore just before each run, is printed beside it.
//! `--json` prints the same as JSON for scripts/plot_file_io.py.

#[path = "support/file_io_cache.rs"]
mod cache;
#[path = "support/json.rs"]
mod json;
#[path = "support/file_io_report.rs"]
mod report;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// One access of the random pattern, and the page size.
const PAGE: u64 = 4096;

/// The command line.
struct Args {
    files: Vec<PathBuf>,
    sizes: Vec<u64>,
    accesses: usize,
    repeat: usize,
    buffer: usize,
    samples: usize,
    dir: PathBuf,
    cold: bool,
    drop_caches: bool,
    json: bool,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: file_io [FILE...] [--size S] [--sizes S,S,...] [--accesses N] [--repeat R] \
         [--buffer B] [--samples K] [--dir DIR] [--warm-only] [--drop-caches] [--json]"
    );
    ExitCode::from(2)
}

/// `4K`, `16M`, `1G` or a number of bytes; a size past `u64::MAX` bytes is
/// refused with a message naming it.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1 << 10),
        (i, 'M' | 'm') => (&s[..i], 1 << 20),
        (i, 'G' | 'g') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n = num.parse::<u64>().ok()?;
    let size = n.checked_mul(mult);
    if size.is_none() {
        eprintln!(
            "file_io: size {s}: {n} * {mult} bytes is more than {} bytes",
            u64::MAX
        );
    }
    size
}

fn parse_args() -> Option<Args> {
    let mut a = Args {
        files: Vec::new(),
        sizes: Vec::new(),
        accesses: 1000,
        repeat: 5,
        buffer: 128 << 10,
        samples: 3,
        dir: std::env::temp_dir(),
        cold: true,
        drop_caches: false,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--size" => a.sizes.push(parse_size(&it.next()?)?),
            "--sizes" => {
                for s in it.next()?.split(',') {
                    a.sizes.push(parse_size(s)?);
                }
            }
            "--accesses" => a.accesses = it.next()?.parse().ok()?,
            "--repeat" => a.repeat = it.next()?.parse().ok()?,
            "--buffer" => a.buffer = parse_size(&it.next()?)? as usize,
            "--samples" => a.samples = it.next()?.parse().ok()?,
            "--dir" => a.dir = PathBuf::from(it.next()?),
            "--warm-only" => a.cold = false,
            "--drop-caches" => a.drop_caches = true,
            "--json" => a.json = true,
            s if s.starts_with('-') => return None,
            _ => a.files.push(PathBuf::from(arg)),
        }
    }
    if a.files.is_empty() && a.sizes.is_empty() {
        a.sizes.push(16 << 20);
    }
    (a.buffer > 0 && a.samples > 0 && a.repeat > 0).then_some(a)
}

// ---------------------------------------------------------------------------
// System calls, counted
// ---------------------------------------------------------------------------

/// The system calls one measurement made, each counted as it is made.
#[derive(Default, Clone, Copy)]
struct Calls {
    open: u64,
    fstat: u64,
    read: u64,
    pread: u64,
    mmap: u64,
    munmap: u64,
    close: u64,
}

impl Calls {
    fn total(&self) -> u64 {
        self.open + self.fstat + self.read + self.pread + self.mmap + self.munmap + self.close
    }

    fn open(&mut self, path: &Path) -> i32 {
        self.open += 1;
        let c = CString::new(path.as_os_str().as_bytes()).expect("a path without NUL");
        // SAFETY: a NUL-terminated path; open only reads it.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        assert!(fd >= 0, "open {}: {}", path.display(), last_error());
        fd
    }

    fn size(&mut self, fd: i32) -> u64 {
        self.fstat += 1;
        let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: `st` is a writable stat buffer.
        let r = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
        assert_eq!(r, 0, "fstat: {}", last_error());
        // SAFETY: fstat succeeded, so it filled the buffer.
        unsafe { st.assume_init() }.st_size as u64
    }

    fn read(&mut self, fd: i32, buf: &mut [u8]) -> usize {
        self.read += 1;
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        assert!(n >= 0, "read: {}", last_error());
        n as usize
    }

    fn pread(&mut self, fd: i32, buf: &mut [u8], offset: u64) -> usize {
        self.pread += 1;
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), offset as i64) };
        assert!(n >= 0, "pread: {}", last_error());
        n as usize
    }

    /// The whole file mapped read-only (None for an empty file, which
    /// cannot be mapped: no call is made).
    fn mmap(&mut self, fd: i32, len: u64) -> Option<*const u8> {
        if len == 0 {
            return None;
        }
        self.mmap += 1;
        // SAFETY: a new mapping where the kernel chooses; nothing else
        // refers to that range.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "mmap: {}", last_error());
        Some(p as *const u8)
    }

    fn munmap(&mut self, p: *const u8, len: u64) {
        self.munmap += 1;
        // SAFETY: the mapping made by `mmap` above, no longer used.
        let r = unsafe { libc::munmap(p as *mut libc::c_void, len as usize) };
        assert_eq!(r, 0, "munmap: {}", last_error());
    }

    fn close(&mut self, fd: i32) {
        self.close += 1;
        // SAFETY: a descriptor this program opened and no longer uses.
        unsafe { libc::close(fd) };
    }
}

fn last_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// Every byte summed, eight at a time: what each way does with the data.
fn checksum(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut sum = 0u64;
    for c in &mut chunks {
        sum = sum.wrapping_add(u64::from_le_bytes(c.try_into().unwrap_or_default()));
    }
    chunks
        .remainder()
        .iter()
        .fold(sum, |s, &b| s.wrapping_add(u64::from(b)))
}

// ---------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------

/// Page faults so far and resident memory now.
#[derive(Clone, Copy)]
struct Usage {
    minflt: i64,
    majflt: i64,
    rss_kb: i64,
}

fn usage_now() -> Usage {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` is a writable rusage buffer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    // SAFETY: zeroed is a valid rusage, and getrusage filled it.
    let ru = unsafe { ru.assume_init() };
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Usage {
        minflt: ru.ru_minflt,
        majflt: ru.ru_majflt,
        rss_kb: pages * (PAGE as i64 / 1024),
    }
}

/// One measurement: its time, the faults and RSS growth up to the end of
/// the work (before the munmap or close), the calls, the bytes it got.
#[derive(Clone, Copy)]
struct Measure {
    time_us: f64,
    minflt: i64,
    majflt: i64,
    rss_growth_kb: i64,
    calls: Calls,
    bytes: u64,
    checksum: u64,
}

/// Runs `work` (which returns the usage at the end of its work, the bytes
/// and the checksum), timed.
fn measure(work: impl FnOnce(&mut Calls) -> (Usage, u64, u64)) -> Measure {
    let mut calls = Calls::default();
    let before = usage_now();
    let t = Instant::now();
    let (at_end, bytes, sum) = work(&mut calls);
    let time_us = t.elapsed().as_secs_f64() * 1e6;
    Measure {
        time_us,
        minflt: at_end.minflt - before.minflt,
        majflt: at_end.majflt - before.majflt,
        rss_growth_kb: at_end.rss_kb - before.rss_kb,
        calls,
        bytes,
        checksum: std::hint::black_box(sum),
    }
}

fn seq_read(path: &Path, buffer: usize) -> Measure {
    let mut buf = vec![0u8; buffer];
    // Fault the buffer in first: its pages are not the file's.
    buf.iter_mut().for_each(|b| *b = 1);
    measure(|c| {
        let fd = c.open(path);
        let (mut bytes, mut sum) = (0u64, 0u64);
        loop {
            let n = c.read(fd, &mut buf);
            if n == 0 {
                break;
            }
            bytes += n as u64;
            sum = sum.wrapping_add(checksum(&buf[..n]));
        }
        let at_end = usage_now();
        c.close(fd);
        (at_end, bytes, sum)
    })
}

fn seq_mmap(path: &Path) -> Measure {
    measure(|c| {
        let fd = c.open(path);
        let len = c.size(fd);
        let map = c.mmap(fd, len);
        // SAFETY: the mapping covers the whole file, len bytes, readable;
        // the file is not truncated while it is read (a generated file is
        // this program's own; a named one is the learner's to keep still).
        let data = map.map(|p| unsafe { std::slice::from_raw_parts(p, len as usize) });
        let sum = data.map_or(0, checksum);
        let at_end = usage_now();
        if let Some(p) = map {
            c.munmap(p, len);
        }
        c.close(fd);
        (at_end, len, sum)
    })
}

/// `n` page-aligned offsets in a file of `size` bytes, the same every run.
fn offsets(size: u64, n: usize) -> Vec<u64> {
    let pages = size.div_ceil(PAGE).max(1);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % pages) * PAGE
        })
        .collect()
}

fn rand_pread(path: &Path, offs: &[u64], repeat: usize) -> Measure {
    let mut buf = vec![1u8; PAGE as usize];
    measure(|c| {
        let fd = c.open(path);
        let (mut bytes, mut sum) = (0u64, 0u64);
        for _ in 0..repeat {
            for &o in offs {
                let n = c.pread(fd, &mut buf, o);
                bytes += n as u64;
                sum = sum.wrapping_add(checksum(&buf[..n]));
            }
        }
        let at_end = usage_now();
        c.close(fd);
        (at_end, bytes, sum)
    })
}

fn rand_mmap(path: &Path, offs: &[u64], repeat: usize) -> Measure {
    measure(|c| {
        let fd = c.open(path);
        let len = c.size(fd);
        let map = c.mmap(fd, len);
        // SAFETY: as in seq_mmap.
        let data = map.map_or(&[][..], |p| unsafe {
            std::slice::from_raw_parts(p, len as usize)
        });
        let (mut bytes, mut sum) = (0u64, 0u64);
        for _ in 0..repeat {
            for &o in offs {
                let end = (o + PAGE).min(len);
                let page = data.get(o as usize..end as usize).unwrap_or_default();
                bytes += page.len() as u64;
                sum = sum.wrapping_add(checksum(page));
            }
        }
        let at_end = usage_now();
        if let Some(p) = map {
            c.munmap(p, len);
        }
        c.close(fd);
        (at_end, bytes, sum)
    })
}

/// A file of `size` pseudo-random bytes in `dir`, on disk (fsync).
fn generate(dir: &Path, size: u64) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let path = dir.join(format!("file_io-{}-{size}.bin", std::process::id()));
    let mut f = std::fs::File::create(&path)?;
    let mut x = size | 1;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(path)
}

// ---------------------------------------------------------------------------
// Runs and output
// ---------------------------------------------------------------------------

/// One line of the results.
struct Row {
    file: PathBuf,
    size: u64,
    generated: bool,
    cache: &'static str,
    /// How the cache was dropped (cold), or "warm-up read" (warm).
    prepared: String,
    cached_pct: Option<f64>,
    method: &'static str,
    pattern: &'static str,
    m: Measure,
}

/// How the cache was made ready for a sample, and the share of the file
/// it then held.
type Prepared = (String, Option<f64>);

/// The median-time sample of `k`, with how its cache was prepared
/// (`prepare` runs before each).
fn median_of(
    k: usize,
    mut prepare: impl FnMut() -> Prepared,
    mut run: impl FnMut() -> Measure,
) -> (Measure, Prepared) {
    let mut all: Vec<(Measure, Prepared)> = (0..k)
        .map(|_| {
            let p = prepare();
            (run(), p)
        })
        .collect();
    all.sort_by(|a, b| a.0.time_us.total_cmp(&b.0.time_us));
    all.swap_remove(all.len() / 2)
}

/// Every method on `file`, cold (unless warm only) then warm.
fn run_file(a: &Args, file: &Path, generated: bool, rows: &mut Vec<Row>) {
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if size == 0 {
        // mmap of 0 bytes fails (EINVAL): there is nothing to map or read,
        // and no time to report.
        eprintln!(
            "file_io: {}: empty, nothing to read or map: skipped",
            file.display()
        );
        return;
    }
    let offs = offsets(size, a.accesses);
    type Method<'a> = (&'static str, &'static str, Box<dyn Fn() -> Measure + 'a>);
    let methods: Vec<Method<'_>> = vec![
        ("read", "sequential", Box::new(|| seq_read(file, a.buffer))),
        ("mmap", "sequential", Box::new(|| seq_mmap(file))),
        (
            "pread",
            "random",
            Box::new(|| rand_pread(file, &offs, a.repeat)),
        ),
        (
            "mmap",
            "random",
            Box::new(|| rand_mmap(file, &offs, a.repeat)),
        ),
    ];
    let caches: &[&'static str] = if a.cold { &["cold", "warm"] } else { &["warm"] };
    for &cache in caches {
        for (method, pattern, run) in &methods {
            let (m, (prepared, cached)) = median_of(
                a.samples,
                || {
                    let how = if cache == "cold" {
                        cache::drop_cache(file, a.drop_caches).map_or_else(|e| e, str::to_string)
                    } else {
                        cache::warm(file);
                        "warm-up read".to_string()
                    };
                    (how, cache::cached_pct(file))
                },
                run,
            );
            rows.push(Row {
                file: file.to_path_buf(),
                size,
                generated,
                cache,
                prepared,
                cached_pct: cached,
                method,
                pattern,
                m,
            });
        }
    }
}

fn main() -> ExitCode {
    let Some(a) = parse_args() else {
        return usage();
    };
    if a.drop_caches {
        // SAFETY: geteuid has no memory effects.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("file_io: --drop-caches needs root");
            return ExitCode::FAILURE;
        }
    }
    let host = report::host();
    let mut rows = Vec::new();
    for f in &a.files {
        if !f.is_file() {
            eprintln!("file_io: {}: not a regular file", f.display());
            return ExitCode::FAILURE;
        }
        if let Err(e) = std::fs::File::open(f) {
            eprintln!("file_io: {}: {e}", f.display());
            return ExitCode::FAILURE;
        }
        run_file(&a, f, false, &mut rows);
    }
    for &size in &a.sizes {
        let path = match generate(&a.dir, size) {
            Ok(p) => p,
            Err(e) => {
                eprintln!(
                    "file_io: generating {size} bytes in {}: {e}",
                    a.dir.display()
                );
                return ExitCode::FAILURE;
            }
        };
        run_file(&a, &path, true, &mut rows);
        let _ = std::fs::remove_file(&path);
    }
    if a.json {
        report::print_json(&a, &host, &rows);
    } else {
        report::print_table(&a, &host, &rows);
    }
    ExitCode::SUCCESS
}
