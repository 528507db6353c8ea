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

/// A private directory `name` inside `dir` (for a cache beside files the
/// test changes).
fn private_subdir(dir: &Path, name: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// Orders for loading with the cache in `dir`, calling `zlibVersion` when
/// `call` (a libz load).
fn cached_in(dir: &Path, call: bool) -> Orders {
    Orders {
        cache: Some(dir.to_path_buf()),
        call: call.then(|| "zlibVersion".to_string()),
        ..Orders::default()
    }
}

/// The little-endian word at `at` of a record.
fn word(b: &[u8], at: usize) -> usize {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize
}

/// Edits the record at `rec` with `edit`, reseals it and writes it back;
/// the bytes written.
fn rewrite(rec: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = std::fs::read(rec).unwrap();
    edit(&mut bytes);
    Loader::reseal_link_record(&mut bytes);
    std::fs::write(rec, &bytes).unwrap();
    bytes
}

/// The same load without the cache, for comparison.
fn uncached(lib: &Path, o: &Orders) -> Run {
    run(
        lib,
        &Orders {
            cache: None,
            ..o.clone()
        },
    )
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
    // Held until the dump is made (a dependency this open maps afresh
    // would otherwise be unmapped with its handle).
    let mut held = Vec::new();
    for dep in l.dependencies() {
        // SAFETY: as above; reopening returns the object already loaded.
        if let Ok(d) = unsafe { Loader::new().without_cache().open(&dep) } {
            if d.segments().iter().all(|s| s.addr != 0) && d.base() != 0 {
                objects.push((d.path(), d.base(), d.segments()));
            }
            held.push(d);
        }
    }
    let dump = dump(&objects);
    drop(held);
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
    // Each file's lowest mapping outside minld's objects (a host object
    // minld also mapped a copy of has two).
    let mut lowest: HashMap<String, usize> = HashMap::new();
    for m in &maps {
        let minlds = spans
            .iter()
            .any(|(_, lo, hi, _)| m.start < *hi && m.end > *lo);
        if m.path.starts_with('/') && !minlds {
            let e = lowest.entry(m.path.clone()).or_insert(m.start);
            *e = (*e).min(m.start);
        }
    }
    let name = |w: usize| -> String {
        if let Some((p, _, _, base)) = spans.iter().find(|(_, lo, hi, _)| w >= *lo && w < *hi) {
            return format!("{p}+{:#x}", w - base);
        }
        match maps.iter().find(|m| w >= m.start && w < m.end) {
            Some(m) if lowest.contains_key(&m.path) => {
                format!("{}+{:#x}", m.path, w - lowest[&m.path])
            }
            Some(_) => "anonymous".to_string(),
            None => format!("{w:#x}"),
        }
    };
    // Only what is mapped readable now (a dependency that is the host's
    // own copy reports its file's segments).
    let readable = |lo: usize, hi: usize| {
        let mut at = lo;
        while at < hi {
            match maps
                .iter()
                .find(|m| at >= m.start && at < m.end && m.perms.starts_with('r'))
            {
                Some(m) => at = m.end,
                None => return false,
            }
        }
        true
    };
    let mut out = String::new();
    for (path, base, segs) in objects {
        for s in segs
            .iter()
            .filter(|s| s.prot.write() && readable(s.addr, s.addr + s.mem_size as usize))
        {
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
fn a_cached_load_of_libstdcxx_and_its_unique_symbols_writes_what_lookups_wrote() {
    same_words("stdcxx", &system("libstdc++.so.6"), false, None);
}

#[test]
fn a_cached_load_of_libpython_writes_what_lookups_wrote() {
    same_words(
        "python",
        &system("libpython3.11.so.1.0"),
        false,
        Some("Py_GetVersion"),
    );
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
        "libtls_ie.so",
        "libtls_ie_desc.so",
        "libweak.so",
        "librelocs.so",
    ] {
        same_words(name, &common::libs::test_lib(name), false, None);
    }
}

/// Records `lib` in `dir` (the first load), then returns the record's path.
fn record(lib: &Path, o: &Orders) -> PathBuf {
    let r = run(lib, o);
    assert!(r.cache.contains("recorded ("), "{}", r.cache);
    let dir = o.cache.as_ref().unwrap();
    let mut records: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let stem = lib.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&stem) && name.ends_with(".minld")
        })
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    records.pop().unwrap()
}

/// A copy of `from` at `to` (a new inode and mtime: another file).
fn copy(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

/// The next load goes the normal way, says `why`, still works, and
/// records again.
fn refused(lib: &Path, o: &Orders, why: &str) {
    let r = run(lib, o);
    assert!(r.cache.contains(why), "expected {why:?} in:\n{}", r.cache);
    assert!(!r.cache.contains("proven"), "{}", r.cache);
}

#[test]
fn a_replaced_library_is_not_bound_from_its_old_record() {
    let dir = cache_dir("replaced");
    let lib = dir.join("libz.so.1");
    copy(&system("libz.so.1"), &lib);
    let o = cached_in(&dir.join("c"), true);
    private_subdir(&dir, "c");
    record(&lib, &o);
    copy(&system("libz.so.1"), &lib);
    refused(&lib, &o, "scope member");
    // The new record is then proven.
    assert!(run(&lib, &o).cache.contains("proven"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_dependency_found_elsewhere_or_replaced_is_noticed() {
    let dir = cache_dir("dependency");
    let libs = dir.join("libs");
    std::fs::create_dir(&libs).unwrap();
    let xml = system("libxml2.so.2");
    let o = cached_in(&dir, false);
    record(&xml, &o);
    // LD_LIBRARY_PATH now finds another libz first.
    copy(&system("libz.so.1"), &libs.join("libz.so.1"));
    let moved = Orders {
        env: vec![("LD_LIBRARY_PATH".into(), libs.display().to_string())],
        ..o.clone()
    };
    // Another file at another path: the load's own record (the paths of
    // the objects a load relocates are part of a record's name).
    refused(&xml, &moved, "no record yet");
    assert!(run(&xml, &moved).cache.contains("proven"));
    // That libz replaced at its path: the same record, which no longer
    // holds.
    copy(&system("libz.so.1"), &libs.join("libz.so.1"));
    refused(&xml, &moved, "libz.so.1) is not the file recorded");
    assert!(run(&xml, &moved).cache.contains("proven"));
    // Back without LD_LIBRARY_PATH: the system's libz again, whose record
    // was kept.
    assert!(run(&xml, &o).cache.contains("proven"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A copy of this test binary at `to`, its build-id changed when `other`:
/// another program (an identical copy is the same program).
fn copy_exe(to: &Path, other: bool) {
    let mut bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    if other {
        let elf = goblin::elf::Elf::parse(&bytes).unwrap();
        let note = elf
            .section_headers
            .iter()
            .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(".note.gnu.build-id"))
            .expect("a build-id note");
        // The descriptor's last byte (after the 16-byte header and name).
        let at = (note.sh_offset + note.sh_size - 1) as usize;
        bytes[at] ^= 0xff;
    }
    std::fs::write(to, bytes).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn another_executable_does_not_use_this_ones_record() {
    let dir = cache_dir("executable");
    let o = cached_in(&dir.join("c"), false);
    private_subdir(&dir, "c");
    let libz = system("libz.so.1");
    record(&libz, &o);
    // An identical copy is the same program (the host's objects are
    // recognised by their build-id): the record holds.
    let same = dir.join("same-exe");
    copy_exe(&same, false);
    assert!(run(
        &libz,
        &Orders {
            exe: Some(same),
            ..o.clone()
        }
    )
    .cache
    .contains("proven"));
    // Another build-id is another program: its records are its own (the
    // host's build-ids are in a record's name), so it finds none.
    let other = dir.join("other-exe");
    copy_exe(&other, true);
    refused(
        &libz,
        &Orders {
            exe: Some(other),
            ..o.clone()
        },
        "no record yet",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_record_is_refused_with_what_is_wrong() {
    let dir = cache_dir("damaged");
    let libz = system("libz.so.1");
    let o = cached_in(&dir, true);
    let rec = record(&libz, &o);
    let good = std::fs::read(&rec).unwrap();
    // Truncated.
    std::fs::write(&rec, &good[..good.len() - 9]).unwrap();
    refused(&libz, &o, "bytes, needs");
    // One bit flipped in the bindings.
    let mut flipped = good.clone();
    let at = flipped.len() - 20;
    flipped[at] ^= 0x10;
    std::fs::write(&rec, &flipped).unwrap();
    refused(&libz, &o, "checksum");
    // Not a record at all.
    std::fs::write(&rec, b"#!/bin/sh\n").unwrap();
    refused(&libz, &o, "record is 10 bytes, needs 64");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_record_or_directory_others_may_write_is_not_trusted() {
    let dir = cache_dir("modes");
    let libz = system("libz.so.1");
    let o = cached_in(&dir, false);
    let rec = record(&libz, &o);
    std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(0o666)).unwrap();
    refused(&libz, &o, "writable by group or others");
    std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    refused(&libz, &o, "mode 777: writable by group or others");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A symbolic link in the record's place is not followed.
    let real = dir.join("elsewhere");
    std::fs::rename(&rec, &real).unwrap();
    std::os::unix::fs::symlink(&real, &rec).unwrap();
    refused(&libz, &o, "ELOOP");
    std::fs::remove_file(&rec).unwrap();
    std::fs::rename(&real, &rec).unwrap();
    // Owned by someone else (possible to arrange only as root).
    // SAFETY: geteuid has no memory effects.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&rec, Some(65534), None).unwrap();
        refused(&libz, &o, "is owned by uid 65534");
    } else {
        eprintln!("not root: the foreign-owner case needs chown, skipped");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_link_record_never_panics_on_damaged_records() {
    let dir = cache_dir("mutations");
    let o = cached_in(&dir, false);
    let rec = record(&system("libsqlite3.so.0"), &o);
    let good = std::fs::read(&rec).unwrap();
    assert_eq!(Loader::check_link_record(&good), Ok(()));
    // Deterministic mutations: truncations, bit flips, and header fields
    // set to extreme values with the checksum fixed up, so the table
    // checks behind it are reached too.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for len in [0, 1, 8, 63, 64, 65, good.len() / 2, good.len() - 1] {
        assert!(Loader::check_link_record(&good[..len]).is_err(), "{len}");
    }
    for _ in 0..3000 {
        let mut m = good.clone();
        let at = (next() as usize) % m.len();
        m[at] ^= 1 << (next() % 8);
        if next() % 2 == 0 && at >= 32 {
            Loader::reseal_link_record(&mut m);
            let _ = Loader::check_link_record(&m);
        } else {
            assert!(
                Loader::check_link_record(&m).is_err(),
                "flip at {at} accepted"
            );
        }
    }
    for field in [32usize, 36, 40, 48] {
        for v in [u64::MAX, u64::from(u32::MAX), good.len() as u64] {
            let mut m = good.clone();
            let w = if field < 40 { 4 } else { 8 };
            m[field..field + w].copy_from_slice(&v.to_le_bytes()[..w]);
            Loader::reseal_link_record(&mut m);
            assert!(
                Loader::check_link_record(&m).is_err(),
                "field {field} = {v}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_library_rewritten_in_place_with_its_mtime_put_back_is_noticed() {
    use std::os::unix::fs::MetadataExt;
    let dir = cache_dir("in-place");
    let lib = dir.join("libz.so.1");
    copy(&system("libz.so.1"), &lib);
    let c = private_subdir(&dir, "c");
    let o = cached_in(&c, true);
    record(&lib, &o);
    let before = std::fs::metadata(&lib).unwrap();
    // The same inode and size, rewritten, its mtime set back: only the
    // ctime, which no program can set, tells.
    std::fs::write(&lib, std::fs::read(system("libz.so.1")).unwrap()).unwrap();
    let times = [
        libc::timespec {
            tv_sec: before.atime(),
            tv_nsec: before.atime_nsec(),
        },
        libc::timespec {
            tv_sec: before.mtime(),
            tv_nsec: before.mtime_nsec(),
        },
    ];
    let c_lib = std::ffi::CString::new(lib.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path and two timespecs.
    let set = unsafe { libc::utimensat(libc::AT_FDCWD, c_lib.as_ptr(), times.as_ptr(), 0) };
    assert_eq!(set, 0);
    let after = std::fs::metadata(&lib).unwrap();
    assert_eq!(
        (after.ino(), after.size(), after.mtime(), after.mtime_nsec()),
        (
            before.ino(),
            before.size(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
    refused(&lib, &o, "is not the file recorded");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_record_that_does_not_fit_sends_its_object_the_normal_way_and_is_removed() {
    let dir = cache_dir("misfit");
    let libz = system("libz.so.1");
    let o = cached_in(&dir, true);
    let rec = record(&libz, &o);
    rewrite(&rec, |bytes| {
        // The first object's first RELR word: an address far outside libz.
        let relr = word(bytes, word(bytes, 48) + 32);
        bytes[relr..relr + 8].copy_from_slice(&0x1000_0000u64.to_le_bytes());
    });
    let plain = uncached(&libz, &o);
    let r = run(&libz, &o);
    assert!(r.cache.contains("does not fit"), "{}", r.cache);
    assert!(
        r.cache.contains("outside the writable segments"),
        "{}",
        r.cache
    );
    assert_eq!(r.dump, plain.dump, "the object went the normal way");
    assert_eq!(r.called, plain.called);
    assert!(!rec.exists(), "the record that did not fit is removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn programs_with_other_preloaded_objects_keep_records_of_their_own() {
    let dir = cache_dir("preload");
    let libz = system("libz.so.1");
    let o = cached_in(&dir, false);
    let preload = Orders {
        env: vec![(
            "LD_PRELOAD".into(),
            "/lib/x86_64-linux-gnu/libbz2.so.1.0".into(),
        )],
        ..o.clone()
    };
    for orders in [&o, &preload] {
        assert!(run(&libz, orders).cache.contains("recorded ("));
    }
    for orders in [&o, &preload, &o] {
        let r = run(&libz, orders);
        assert!(r.cache.contains("proven"), "{}", r.cache);
    }
    let records = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(records, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_record_without_a_relative_run_applies_all_of_dt_rela_and_is_kept() {
    // What the recorder writes for a run RELR cannot express (unaligned
    // or repeated targets): a run of 0, and no RELR words.
    let dir = cache_dir("no-run");
    let libz = system("libz.so.1");
    let o = cached_in(&dir, true);
    let rec = record(&libz, &o);
    let bytes = rewrite(&rec, |bytes| {
        let entry = word(bytes, 48);
        assert!(word(bytes, entry + 24) > 0, "libz has a RELATIVE run");
        bytes[entry + 24..entry + 32].copy_from_slice(&0u64.to_le_bytes());
        bytes[entry + 40..entry + 48].copy_from_slice(&0u64.to_le_bytes());
    });
    let plain = uncached(&libz, &o);
    let r = run(&libz, &o);
    assert!(r.cache.contains("proven"), "{}", r.cache);
    assert!(!r.cache.contains("does not fit"), "{}", r.cache);
    assert_eq!(r.dump, plain.dump);
    assert_eq!(std::fs::read(&rec).unwrap(), bytes, "the record is kept");
    let _ = std::fs::remove_dir_all(&dir);
}
