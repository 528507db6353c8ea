//! Nothing outlives a library: after map+drop, open+drop, and every kind of
//! failed load, no line of /proc/self/maps names the library (or what it
//! pulled in), no anonymous piece of its image is left, and the number of
//! open descriptors is what it was.
//!
//! The process's mappings and descriptors are shared by the test threads of
//! this binary, so every test takes one lock and compares before and after
//! inside it. Each test first loads once to warm up what minld keeps for the
//! life of the process (the parsed ld.so.cache, the host's objects).

mod common;

use std::ffi::{c_char, CStr};
use std::fs;
use std::path::{Path, PathBuf};

use minld::{Error, HeaderFault, Loader, Requester, SegmentFault};

use common::libs::test_lib;
use common::process::{in_fresh_process, maps, naming, overlapping, serial, Before};

const LIBZ: &str = "/lib/x86_64-linux-gnu/libz.so.1";
const ROUNDS: usize = 200;

fn real(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    fs::canonicalize(path).unwrap_or_else(|e| panic!("canonicalize {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// /proc/self/maps and /proc/self/fd
// ---------------------------------------------------------------------------

impl Before {
    /// Nothing names any of `files`, and descriptors and anonymous
    /// mappings are as they were.
    fn check_files(&self, what: &str, files: &[PathBuf]) {
        let lines = maps();
        for f in files {
            let left = naming(&lines, f);
            assert!(
                left.is_empty(),
                "{what}: {} is still mapped: {left:#?}",
                f.display()
            );
        }
        self.check(what);
    }
}

// ---------------------------------------------------------------------------
// Loads that succeed
// ---------------------------------------------------------------------------

/// Alone in a fresh process, as [`images_with_bss_holes_and_big_alignment`]
/// (it checks that the last image's span is free).
#[test]
fn map_and_drop_libz_200_times() {
    // Under the lock in both processes: the pipes to the child are
    // descriptors of this one, which the other tests count.
    let _lock = serial();
    if !in_fresh_process("map_and_drop_libz_200_times") {
        return;
    }
    let libz = real(LIBZ);
    assert!(
        naming(&maps(), &libz).is_empty(),
        "libz mapped before the test"
    );
    drop(Loader::new().map(LIBZ).expect("warm-up map of libz"));
    let before = Before::take();

    for round in 0..ROUNDS {
        let m = Loader::new()
            .map(LIBZ)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        if round == 0 {
            assert!(
                !naming(&maps(), &libz).is_empty(),
                "libz not in /proc/self/maps while mapped"
            );
        }
        let (start, len) = m.span();
        drop(m);
        if round == ROUNDS - 1 {
            let left = overlapping(&maps(), start, len);
            assert!(
                left.is_empty(),
                "the last image's span is not free after drop: {left:#?}"
            );
        }
    }
    before.check_files("200 × map+drop of libz", &[libz]);
}

#[test]
fn open_and_drop_libz_200_times() {
    // In a process of its own: the last span is checked free after drop,
    // where another test thread's new stack may land at once.
    // Under the lock in both processes: the pipes to the child are
    // descriptors of this one, which the other tests count.
    let _lock = serial();
    if !in_fresh_process("open_and_drop_libz_200_times") {
        return;
    }
    let libz = real(LIBZ);
    assert!(
        naming(&maps(), &libz).is_empty(),
        "libz mapped before the test"
    );
    let version = |lib: &minld::Library| -> String {
        // SAFETY: zlibVersion is `const char *zlibVersion(void)`.
        let f = unsafe { lib.get::<extern "C" fn() -> *const c_char>("zlibVersion") }
            .expect("zlibVersion");
        // SAFETY: zlib returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(f()) }
            .to_string_lossy()
            .into_owned()
    };
    {
        // SAFETY: libz's initialisers are harmless.
        let lib = unsafe { Loader::new().open(LIBZ) }.expect("warm-up open of libz");
        assert!(version(&lib).starts_with("1."));
    }
    let before = Before::take();

    for round in 0..ROUNDS {
        // SAFETY: as above.
        let lib =
            unsafe { Loader::new().open(LIBZ) }.unwrap_or_else(|e| panic!("round {round}: {e}"));
        let v = version(&lib);
        assert!(v.starts_with("1."), "round {round}: zlibVersion() = {v:?}");
        let segs = lib.segments();
        assert_eq!(segs.len(), 4, "round {round}: {segs:#?}");
        if round == 0 {
            assert!(
                !naming(&maps(), &libz).is_empty(),
                "libz not in /proc/self/maps while open"
            );
        }
        let start = segs[0].addr & !0xfff;
        let last = segs.last().expect("a segment");
        let len = last.addr + last.mem_size as usize - start;
        drop(lib);
        if round == ROUNDS - 1 {
            let left = overlapping(&maps(), start, len);
            assert!(
                left.is_empty(),
                "the last image's span is not free after drop: {left:#?}"
            );
        }
    }
    before.check_files("200 × open+call+drop of libz", &[libz]);
}

#[test]
fn chain_is_unloaded_whole() {
    let _lock = serial();
    let files = [
        real(test_lib("libchain_a.so")),
        real(test_lib("chain/libchain_b.so")),
        real(test_lib("chain/libchain_c.so")),
    ];
    {
        // SAFETY: the chain test libraries only compute numbers.
        let lib = unsafe { Loader::new().open(test_lib("libchain_a.so")) }.expect("warm-up open");
        drop(lib);
    }
    let before = Before::take();
    for round in 0..3 {
        // SAFETY: as above.
        let lib =
            unsafe { Loader::new().open(test_lib("libchain_a.so")) }.expect("open libchain_a.so");
        // SAFETY: `int chain_a(void)`.
        let chain_a = unsafe { lib.get::<extern "C" fn() -> i32>("chain_a") }.expect("chain_a");
        assert_eq!(chain_a(), 321);
        let lines = maps();
        for f in &files {
            assert!(
                !naming(&lines, f).is_empty(),
                "round {round}: {} not mapped while loaded",
                f.display()
            );
        }
        drop(lib);
        before.check_files(&format!("round {round}: libchain_a.so dropped"), &files);
    }
}

/// Images with anonymous parts: .bss pages (libbss), p_align 64 KiB with
/// holes between segments (libhole), p_align 2 MiB (libbigalign), whose
/// reservation is an anonymous mapping trimmed at both ends. After drop,
/// nothing may be left in the image's span, file-backed or anonymous.
///
/// Runs alone in a fresh process: a test thread the harness starts
/// meanwhile maps its signal stack (a guard page and 12 KiB, from
/// AT_MINSIGSTKSZ) wherever there is room, often in a span just given back,
/// which the check would take for a piece of the image left behind.
#[test]
fn images_with_bss_holes_and_big_alignment() {
    // Under the lock in both processes: the pipes to the child are
    // descriptors of this one, which the other tests count.
    let _lock = serial();
    if !in_fresh_process("images_with_bss_holes_and_big_alignment") {
        return;
    }
    for name in ["libbss.so", "libhole.so", "libbigalign.so"] {
        let path = test_lib(name);
        let file = real(&path);
        drop(Loader::new().map(&path).expect("warm-up map"));
        let before = Before::take();
        for round in 0..50 {
            let m = Loader::new()
                .map(&path)
                .unwrap_or_else(|e| panic!("{name} round {round}: {e}"));
            let (start, len) = m.span();
            let end = m
                .segments()
                .iter()
                .map(|s| s.addr + s.mem_size as usize)
                .max()
                .expect("segments");
            assert!(
                end <= start + len,
                "{name}: segments end at {end:#x}, past the span"
            );
            if round == 0 {
                let inside = overlapping(&maps(), start, len);
                assert!(
                    inside.iter().any(|l| l.path.is_empty()) || name == "libhole.so",
                    "{name}: expected an anonymous part in {inside:#?}"
                );
            }
            drop(m);
            let left = overlapping(&maps(), start, len);
            assert!(
                left.is_empty(),
                "{name} round {round}: left in the span after drop: {left:#?}"
            );
        }
        before.check_files(
            &format!("50 × map+drop of {name}"),
            std::slice::from_ref(&file),
        );

        // And loaded for real.
        // SAFETY: these test libraries' initialisers only touch their own data.
        drop(unsafe { Loader::new().open(&path) }.expect("warm-up open"));
        let before = Before::take();
        for round in 0..20 {
            // SAFETY: as above.
            let lib = unsafe { Loader::new().open(&path) }
                .unwrap_or_else(|e| panic!("{name} round {round}: {e}"));
            drop(lib);
        }
        before.check_files(&format!("20 × open+drop of {name}"), &[file]);
    }
}

/// The checks above can fail: a forgotten image and an unclosed descriptor
/// are both seen.
#[test]
fn the_leak_checks_see_leaks() {
    let _lock = serial();
    let scratch = Scratch::new("the_leak_checks_see_leaks");
    let copy = scratch.dir.join("libz_copy.so");
    fs::copy(LIBZ, &copy).expect("copy libz");
    let file = real(&copy);
    drop(Loader::new().map(&copy).expect("warm-up map"));

    let before = Before::take();
    let m = Loader::new().map(&copy).expect("map the copy");
    let (start, len) = m.span();
    std::mem::forget(m);
    let seen = std::panic::catch_unwind(|| {
        before.check_files("a forgotten image", std::slice::from_ref(&file))
    });
    assert!(seen.is_err(), "a forgotten image was not noticed");
    // SAFETY: the forgotten image's whole span, which nothing else uses.
    assert_eq!(unsafe { libc::munmap(start as *mut libc::c_void, len) }, 0);
    before.check_files(
        "after unmapping the forgotten image by hand",
        std::slice::from_ref(&file),
    );

    let f = fs::File::open(&copy).expect("open");
    let seen = std::panic::catch_unwind(|| before.check_files("an open descriptor", &[]));
    assert!(seen.is_err(), "an open descriptor was not noticed");
    drop(f);
    before.check_files("after closing it", &[]);
}

// ---------------------------------------------------------------------------
// Loads that fail
// ---------------------------------------------------------------------------

/// Opens `name`, which must fail; the library and `also` (what the attempt
/// mapped on the way) must be gone after, descriptors and anonymous
/// mappings as before. Twice: the first attempt warms up.
fn open_must_fail(name: &Path, also: &[PathBuf]) -> Error {
    let mut files = vec![real(name)];
    files.extend(also.iter().cloned());
    // SAFETY: every library used here fails to load before its code runs.
    let warm = unsafe { Loader::new().open(name) };
    assert!(warm.is_err(), "{} loaded", name.display());
    drop(warm);
    let before = Before::take();
    // SAFETY: as above.
    let err = match unsafe { Loader::new().open(name) } {
        Ok(_) => panic!("{} loaded", name.display()),
        Err(e) => e,
    };
    eprintln!("refused as expected: {err}");
    before.check_files(&format!("failed load of {}: {err}", name.display()), &files);
    // Many more of the same leave nothing either.
    for _ in 0..20 {
        // SAFETY: as above.
        assert!(unsafe { Loader::new().open(name) }.is_err());
    }
    before.check_files(&format!("21 failed loads of {}", name.display()), &files);
    err
}

#[test]
fn missing_dependency_leaks_nothing() {
    let _lock = serial();
    let lib = test_lib("libmissing_dep.so");
    let err = open_must_fail(&lib, &[]);
    let msg = err.to_string();
    match &err {
        Error::NotFound {
            name,
            needed_by,
            confined,
            tried,
        } => {
            assert_eq!(name, "libminld_nonexistent.so");
            assert!(!confined);
            assert!(
                matches!(needed_by, Requester::Library(p) if p.ends_with("libmissing_dep.so")),
                "needed_by {needed_by}"
            );
            assert!(!tried.is_empty());
            for t in tried {
                assert!(
                    t.ends_with("libminld_nonexistent.so"),
                    "tried {}",
                    t.display()
                );
                assert!(
                    msg.contains(&t.display().to_string()),
                    "message lacks {}: {msg}",
                    t.display()
                );
            }
            assert!(
                tried.iter().any(|t| t.starts_with("/lib/x86_64-linux-gnu")),
                "the system directories were not tried: {tried:?}"
            );
        }
        other => panic!("expected Error::NotFound, got {other:?}: {msg}"),
    }
    assert!(
        msg.contains("libminld_nonexistent.so") && msg.contains("libmissing_dep.so"),
        "{msg}"
    );
}

#[test]
fn undefined_symbol_leaks_nothing() {
    let _lock = serial();
    let lib = test_lib("libmissing_sym.so");
    let err = open_must_fail(&lib, &[]);
    let msg = err.to_string();
    match &err {
        Error::UndefinedSymbol {
            name, needed_by, ..
        } => {
            assert_eq!(name, "minld_no_such_function");
            assert!(
                matches!(needed_by, Requester::Library(p) if p.ends_with("libmissing_sym.so")),
                "needed_by {needed_by}"
            );
        }
        other => panic!("expected Error::UndefinedSymbol, got {other:?}: {msg}"),
    }
    assert!(
        msg.contains("minld_no_such_function") && msg.contains("libmissing_sym.so"),
        "{msg}"
    );
}

#[test]
fn undefined_data_leaks_nothing() {
    let _lock = serial();
    let lib = test_lib("libmissing_data.so");
    let err = open_must_fail(&lib, &[]);
    let msg = err.to_string();
    assert!(matches!(err, Error::UndefinedSymbol { .. }), "{err:?}");
    assert!(msg.contains("libmissing_data.so"), "{msg}");
}

#[test]
fn refused_initial_exec_tls_leaks_nothing() {
    let _lock = serial();
    // Refused after mapping and relocating, its TLS module registered, when
    // glibc's static TLS has no room for its 1 MiB initial-exec block: the
    // memfd written for glibc and glibc's mapping of it go too.
    let lib = test_lib("libtls_ie_huge.so");
    let err = open_must_fail(&lib, &[]);
    let msg = err.to_string();
    assert!(
        msg.contains("libtls_ie_huge.so") && msg.contains("static TLS"),
        "the message does not name the library and static TLS: {msg}"
    );
    assert!(!maps().iter().any(|l| l.path.contains("minld-static-tls")));
}

#[test]
fn text_relocations_leak_nothing() {
    let _lock = serial();
    let lib = test_lib("libtextrel.so");
    let err = open_must_fail(&lib, &[]);
    match &err {
        Error::TextRelocations { path } => assert_eq!(real(path), real(&lib)),
        other => panic!("expected Error::TextRelocations, got {other:?}"),
    }
    assert!(err.to_string().contains("libtextrel.so"), "{err}");
}

/// Segments packed into shared pages (`-z max-page-size=16`) are refused
/// before the first mmap, over and over without a trace (the load used to
/// crash in the constructor: tests/segment_layout.rs shows it in a child).
#[test]
fn segments_sharing_a_page_leak_nothing() {
    let _lock = serial();
    let lib = test_lib("libpacked.so");
    let err = open_must_fail(&lib, &[]);
    match &err {
        Error::AlignBelowPage { path, align, .. } => {
            assert_eq!(real(path), real(&lib));
            assert_eq!(*align, 0x10);
        }
        other => panic!("expected Error::AlignBelowPage, got {other:?}"),
    }
}

/// A scratch directory of its own, removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("minld-leaks-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Scratch { dir }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn truncated_file_leaks_nothing() {
    let _lock = serial();
    let scratch = Scratch::new("truncated_file_leaks_nothing");
    let bytes = fs::read(LIBZ).expect("read libz");
    let path = scratch.dir.join("libz_half.so");
    fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
    let err = open_must_fail(&path, &[]);
    match &err {
        Error::BadSegments {
            path: p,
            field: "p_offset",
            fault:
                SegmentFault::PastEndOfFile {
                    plus: "p_filesz",
                    file_size,
                    ..
                },
            ..
        } => {
            assert_eq!(p, &path);
            assert_eq!(*file_size, (bytes.len() / 2) as u64);
            assert!(
                err.to_string().contains("past the end of the file"),
                "{err}"
            );
        }
        other => panic!("expected Error::BadSegments, got {other:?}"),
    }
    // map() refuses it the same way.
    let before = Before::take();
    assert!(matches!(
        Loader::new().map(&path),
        Err(Error::BadSegments { .. })
    ));
    before.check_files("map of a truncated libz", &[real(&path)]);
}

/// A failure deep in a dependency chain: libchain_a.so and
/// chain/libchain_b.so are mapped (b's dynamic section names c), then
/// chain/libchain_c.so turns out to be a truncated file. Both a and b must
/// be unmapped again.
#[test]
fn failure_after_dependencies_were_mapped_leaks_nothing() {
    let _lock = serial();
    let scratch = Scratch::new("failure_after_dependencies_were_mapped");
    let chain = scratch.dir.join("chain");
    fs::create_dir(&chain).expect("mkdir chain");
    let a = scratch.dir.join("libchain_a.so");
    let b = chain.join("libchain_b.so");
    let c = chain.join("libchain_c.so");
    fs::copy(test_lib("libchain_a.so"), &a).expect("copy a");
    fs::copy(test_lib("chain/libchain_b.so"), &b).expect("copy b");
    let c_bytes = fs::read(test_lib("chain/libchain_c.so")).expect("read c");
    fs::write(&c, &c_bytes[..40]).expect("write c");
    let (ra, rb, rc) = (real(&a), real(&b), real(&c));

    let err = open_must_fail(&a, &[rb.clone(), rc.clone()]);
    let msg = err.to_string();
    match &err {
        Error::BadHeader {
            path,
            field: "file size",
            found: 40,
            fault: HeaderFault::TooShort { .. },
        } => {
            assert_eq!(real(path), rc, "{msg}");
            assert!(msg.contains("too short"), "{msg}");
        }
        other => panic!("expected Error::BadHeader for libchain_c.so, got {other:?}: {msg}"),
    }
    let lines = maps();
    for f in [&ra, &rb, &rc] {
        assert!(naming(&lines, f).is_empty(), "{} left mapped", f.display());
    }
}
