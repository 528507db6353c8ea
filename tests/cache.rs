//! The link cache (`Loader::cache`): a load bound from a record writes the
//! same words as one that looked every symbol up, and every way a record
//! can stop describing a load sends the load the normal way, saying why.
//!
//! Each load runs in a fresh process of this test binary (`child_entry`),
//! as a cached load would in real use: the record is written by one
//! process and read by the next.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use minld::Loader;

/// The variable that carries a child's orders.
const CHILD: &str = "MINLD_CACHE_TEST_CHILD";

/// A system library's path.
fn system(name: &str) -> PathBuf {
    PathBuf::from("/usr/lib/x86_64-linux-gnu").join(name)
}

/// A fresh, private cache directory for one test.
fn cache_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("minld-cache-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// What a child did: its dump of the relocated words, and what
/// `MINLD_DEBUG=libs` said of the cache.
struct Run {
    /// One line per word of each writable segment, addresses made
    /// relative to the object they point into.
    dump: String,
    /// The child's `link cache:` lines.
    cache: String,
    /// The child's `call` output.
    called: String,
}

/// Options of a child.
#[derive(Default, Clone)]
struct Orders {
    /// The cache directory (None: no cache).
    cache: Option<PathBuf>,
    /// Bind lazily.
    lazy: bool,
    /// A `const char *f(void)` to call and print.
    call: Option<String>,
    /// The executable to run instead of this test binary.
    exe: Option<PathBuf>,
    /// Extra environment.
    env: Vec<(String, String)>,
}

/// Loads `lib` in a fresh process with `o`; panics if the child fails.
fn run(lib: &Path, o: &Orders) -> Run {
    let exe = o
        .exe
        .clone()
        .unwrap_or_else(|| std::env::current_exe().unwrap());
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("minld-cache-dump-{}-{n}", std::process::id()));
    let mut c = Command::new(exe);
    c.args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, lib)
        .env("MINLD_CACHE_TEST_OUT", &out)
        .env("MINLD_DEBUG", "libs")
        .env_remove("MINLD_CACHE");
    if let Some(d) = &o.cache {
        c.env("MINLD_CACHE_TEST_DIR", d);
    }
    if o.lazy {
        c.env("MINLD_CACHE_TEST_LAZY", "1");
    }
    if let Some(f) = &o.call {
        c.env("MINLD_CACHE_TEST_CALL", f);
    }
    for (k, v) in &o.env {
        c.env(k, v);
    }
    let res = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&res.stdout).into_owned();
    assert!(
        res.status.success() && stdout.contains("1 passed"),
        "child for {}: {}\n{stdout}\n{stderr}",
        lib.display(),
        res.status
    );
    let dump = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let cache = stderr
        .lines()
        .filter(|l| l.contains("link cache:"))
        .collect::<Vec<_>>()
        .join("\n");
    let called = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("called: "))
        .collect::<Vec<_>>()
        .join("\n");
    Run {
        dump,
        cache,
        called,
    }
}

/// The child: loads the library its orders name, dumps what relocation
/// wrote, and calls a function if asked. Run alone (without the orders of
/// another test of this file) it has nothing to load and says so.
#[test]
fn child_entry() {
    let Some(lib) = std::env::var_os(CHILD) else {
        eprintln!("child_entry: started by the other tests of this file, with {CHILD} set; alone it has nothing to load");
        return;
    };
    let mut loader = match std::env::var_os("MINLD_CACHE_TEST_DIR") {
        Some(d) => Loader::new().cache(d),
        None => Loader::new().without_cache(),
    };
    if std::env::var_os("MINLD_CACHE_TEST_LAZY").is_some() {
        loader = loader.bind_now(false);
    }
    // SAFETY: system libraries and test-libs, trusted.
    let l = unsafe { loader.open(&lib) }.unwrap_or_else(|e| panic!("{e}"));
    let mut objects = vec![(l.path(), l.base(), l.segments())];
    for dep in l.dependencies() {
        // SAFETY: as above; reopening returns the object already loaded.
        if let Ok(d) = unsafe { Loader::new().without_cache().open(&dep) } {
            if d.segments().iter().all(|s| s.addr != 0) && d.base() != 0 {
                objects.push((d.path(), d.base(), d.segments()));
            }
        }
    }
    let dump = dump(&objects);
    std::fs::write(std::env::var_os("MINLD_CACHE_TEST_OUT").unwrap(), dump).unwrap();
    if let Some(f) = std::env::var_os("MINLD_CACHE_TEST_CALL") {
        // SAFETY: the tests name only `const char *f(void)` functions.
        let f = unsafe { l.get::<extern "C" fn() -> *const std::ffi::c_char>(f.to_str().unwrap()) }
            .unwrap();
        // SAFETY: such a function returns a NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(f()) };
        println!("called: {}", s.to_string_lossy());
    }
}

/// Every word of every writable segment of `objects`, each address into
/// one of them (or into a file /proc/self/maps names) made relative to it,
/// so two processes' dumps compare equal exactly when relocation wrote the
/// same thing.
fn dump(objects: &[(PathBuf, usize, Vec<minld::Segment>)]) -> String {
    let maps = common::process::maps();
    let mut lowest: HashMap<String, usize> = HashMap::new();
    for m in &maps {
        if m.path.starts_with('/') {
            let e = lowest.entry(m.path.clone()).or_insert(m.start);
            *e = (*e).min(m.start);
        }
    }
    let spans: Vec<(String, usize, usize, usize)> = objects
        .iter()
        .map(|(p, base, segs)| {
            let lo = segs.iter().map(|s| s.addr).min().unwrap_or(0);
            let hi = segs
                .iter()
                .map(|s| s.addr + s.mem_size as usize)
                .max()
                .unwrap_or(0);
            (p.display().to_string(), lo, hi, *base)
        })
        .collect();
    let name = |w: usize| -> String {
        if let Some((p, _, _, base)) = spans.iter().find(|(_, lo, hi, _)| w >= *lo && w < *hi) {
            return format!("{p}+{:#x}", w - base);
        }
        match maps.iter().find(|m| w >= m.start && w < m.end) {
            Some(m) if m.path.starts_with('/') => format!("{}+{:#x}", m.path, w - lowest[&m.path]),
            Some(_) => "anonymous".to_string(),
            None => format!("{w:#x}"),
        }
    };
    let mut out = String::new();
    for (path, base, segs) in objects {
        for s in segs.iter().filter(|s| s.prot.write()) {
            let words = s.mem_size as usize / 8;
            for i in 0..words {
                let at = s.addr + 8 * i;
                // SAFETY: inside a writable segment of a loaded library
                // (readable; RELRO only lost its write permission).
                let w = unsafe { (at as *const usize).read_unaligned() };
                out.push_str(&format!(
                    "{}+{:#x} {}\n",
                    path.display(),
                    at - base,
                    name(w)
                ));
            }
        }
    }
    out
}

/// Loads `lib` three ways, each in its own process: without the cache,
/// with an empty cache (which records), with the record: all three write
/// the same words, and the third says it used the record.
fn same_words(test: &str, lib: &Path, lazy: bool, call: Option<&str>) {
    let dir = cache_dir(test);
    let plain = run(
        lib,
        &Orders {
            lazy,
            call: call.map(str::to_string),
            ..Orders::default()
        },
    );
    let with = Orders {
        cache: Some(dir.clone()),
        lazy,
        call: call.map(str::to_string),
        ..Orders::default()
    };
    let first = run(lib, &with);
    assert!(first.cache.contains("recorded ("), "{}", first.cache);
    let cached = run(lib, &with);
    assert!(
        cached.cache.contains("proven, bindings taken from it"),
        "{}",
        cached.cache
    );
    assert!(!plain.dump.is_empty());
    for (what, r) in [("recording", &first), ("cached", &cached)] {
        if r.dump != plain.dump {
            let diff: Vec<_> = r
                .dump
                .lines()
                .zip(plain.dump.lines())
                .filter(|(a, b)| a != b)
                .take(10)
                .collect();
            panic!(
                "{}: the {what} load wrote other words than the plain one: {diff:#?}",
                lib.display()
            );
        }
        assert_eq!(r.called, plain.called);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cached_load_of_libz_writes_what_lookups_wrote() {
    same_words("libz", &system("libz.so.1"), false, Some("zlibVersion"));
}

#[test]
fn a_cached_load_of_sqlite_writes_what_lookups_wrote() {
    same_words(
        "sqlite",
        &system("libsqlite3.so.0"),
        false,
        Some("sqlite3_libversion"),
    );
}

#[test]
fn a_cached_load_of_libxml2_and_its_dependencies_writes_what_lookups_wrote() {
    same_words("xml2", &system("libxml2.so.2"), false, None);
}

#[test]
fn a_cached_load_of_libcrypto_writes_what_lookups_wrote() {
    same_words("crypto", &system("libcrypto.so.3"), false, None);
}

#[test]
fn a_cached_lazy_load_writes_what_lookups_wrote() {
    same_words(
        "lazy-sqlite",
        &system("libsqlite3.so.0"),
        true,
        Some("sqlite3_sourceid"),
    );
}

#[test]
fn unique_versioned_protected_and_interposed_bindings_survive_the_cache() {
    let lib = common::libs::test_lib("resolution/libres_user.so");
    same_words("res-user", &lib, false, None);
    let lib = common::libs::test_lib("resolution/libres_unique_user.so");
    same_words("res-unique", &lib, false, None);
}

#[test]
fn ifunc_tls_and_weak_bindings_survive_the_cache() {
    for name in [
        "libifunc_consumer.so",
        "libtls_models.so",
        "libweak.so",
        "librelocs.so",
    ] {
        same_words(name, &common::libs::test_lib(name), false, None);
    }
}
