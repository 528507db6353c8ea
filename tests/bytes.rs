//! Loading from bytes and from a descriptor (`Loader::open_bytes`,
//! `Loader::open_fd`, their `map_` forms): libz and the test libraries load
//! and run from each, a memfd included; a bad image is refused with the
//! very error a file holding the same bytes gets (compared field for
//! field); nothing is left behind, on success and drop or on any error
//! (mappings and descriptors counted); the trace of a load from bytes shows
//! anonymous mappings and no file mapping; `Library::source` says which.
//!
//! Every test takes one lock: the descriptor count and the mappings of the
//! process are shared by all the test threads of this binary.

mod common;

use std::ffi::{c_char, c_int, c_ulong, CStr};
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use minld::{Error, Library, Loader, Requester, Source};

use common::examples::example;
use common::libs::test_lib;
use common::process::{maps, overlapping, rerun, serial, Before, MapLine};

const LIBZ: &str = "/lib/x86_64-linux-gnu/libz.so.1";
const ROUNDS: usize = 40;
const PAGE: usize = 4096;

// ---------------------------------------------------------------------------
// Process state
// ---------------------------------------------------------------------------

/// The lines over a library's segments.
fn lines_of(lib: &Library) -> Vec<MapLine> {
    let segs = lib.segments();
    let first = segs.first().expect("segments").addr & !(PAGE - 1);
    let last = segs.last().expect("segments");
    overlapping(&maps(), first, last.addr + last.mem_size as usize - first)
}

fn real(path: &str) -> String {
    fs::canonicalize(path)
        .unwrap_or_else(|e| panic!("canonicalize {path}: {e}"))
        .display()
        .to_string()
}

/// A memfd holding `bytes`, its offset left at the end.
fn memfd(bytes: &[u8]) -> fs::File {
    // SAFETY: the name is NUL-terminated; memfd_create has no other memory
    // effects.
    let fd = unsafe { libc::memfd_create(c"minld-bytes-test".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: fd was just created and nothing else owns it.
    let mut f = fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.write_all(bytes).expect("write the memfd");
    f
}

// ---------------------------------------------------------------------------
// libz, run
// ---------------------------------------------------------------------------

type Compress = unsafe extern "C" fn(*mut u8, *mut c_ulong, *const u8, c_ulong) -> c_int;

/// zlibVersion is "1.x", and compress then uncompress gives the input back.
fn exercise_libz(lib: &Library) {
    // SAFETY: zlib's documented signatures.
    let version =
        unsafe { lib.get::<extern "C" fn() -> *const c_char>("zlibVersion") }.expect("zlibVersion");
    // SAFETY: zlibVersion returns a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(version()) }.to_string_lossy();
    assert!(v.starts_with("1."), "zlibVersion() = {v}");
    // SAFETY: as above.
    let compress = unsafe { lib.get::<Compress>("compress") }.expect("compress");
    // SAFETY: as above.
    let uncompress = unsafe { lib.get::<Compress>("uncompress") }.expect("uncompress");
    let input: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8 ^ b'z').collect();
    let mut packed = vec![0u8; input.len() + 1024];
    let mut packed_len = packed.len() as c_ulong;
    // SAFETY: the buffers and lengths are valid and match.
    let rc = unsafe {
        compress(
            packed.as_mut_ptr(),
            &mut packed_len,
            input.as_ptr(),
            input.len() as c_ulong,
        )
    };
    assert_eq!(rc, 0, "compress");
    assert!((packed_len as usize) < input.len() / 4, "compressed well");
    let mut out = vec![0u8; input.len()];
    let mut out_len = out.len() as c_ulong;
    // SAFETY: the buffers and lengths are valid and match.
    let rc = unsafe { uncompress(out.as_mut_ptr(), &mut out_len, packed.as_ptr(), packed_len) };
    assert_eq!(rc, 0, "uncompress");
    assert_eq!(out_len as usize, input.len());
    assert_eq!(out, input, "the round trip gives the input back");
}

#[test]
fn libz_from_bytes_runs_in_anonymous_memory() {
    let _lock = serial();
    let bytes = fs::read(LIBZ).expect("read libz");
    // SAFETY: the system's libz.
    let lib = unsafe { Loader::new().open_bytes(&bytes) }.expect("open_bytes libz");
    drop(bytes);
    assert_eq!(lib.source(), Source::Bytes);
    assert_eq!(lib.path(), PathBuf::from("<bytes>"));
    exercise_libz(&lib);
    let lines = lines_of(&lib);
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(l.path.is_empty(), "not anonymous: {l:?}");
    }
    // The code segment is executable, the rest not.
    assert!(lines.iter().any(|l| l.perms == "r-xp"), "{lines:?}");
    assert!(!lines
        .iter()
        .any(|l| l.perms.contains('w') && l.perms.contains('x')));
    // Bytes need no alignment (include_bytes! gives none): an odd address.
    let mut odd = vec![0u8];
    odd.extend(fs::read(LIBZ).expect("read libz"));
    assert_eq!(odd[1..].as_ptr() as usize % 2, 1);
    // SAFETY: the system's libz.
    let lib = unsafe { Loader::new().open_bytes(&odd[1..]) }.expect("open_bytes, odd address");
    exercise_libz(&lib);
}

#[test]
fn libz_from_a_descriptor_maps_the_file() {
    let _lock = serial();
    let mut file = fs::File::open(LIBZ).expect("open libz");
    file.seek(SeekFrom::Start(77)).expect("seek");
    let raw = file.as_raw_fd();
    // SAFETY: the system's libz.
    let lib = unsafe { Loader::new().open_fd(&file) }.expect("open_fd libz");
    assert_eq!(lib.source(), Source::Fd(raw));
    assert_eq!(lib.path(), PathBuf::from(format!("/proc/self/fd/{raw}")));
    exercise_libz(&lib);
    // The descriptor is still the caller's: open, its offset unmoved.
    assert_eq!(file.stream_position().expect("offset"), 77);
    let lines = lines_of(&lib);
    let libz = real(LIBZ);
    assert!(
        lines.iter().any(|l| l.path == libz),
        "no mapping of {libz}: {lines:?}"
    );
    drop(file);
    // The mappings keep the file: libz still works with the descriptor closed.
    exercise_libz(&lib);
}

#[test]
fn a_named_library_from_bytes_finds_its_dependency_by_origin() {
    let _lock = serial();
    let path = test_lib("librelocs.so");
    let bytes = fs::read(&path).expect("read librelocs");
    // Named by its path: RUNPATH $ORIGIN is the test libraries' directory.
    // SAFETY: a test library of ours.
    let lib = unsafe { Loader::new().name(&path).open_bytes(&bytes) }.expect("open_bytes");
    assert_eq!(lib.source(), Source::Bytes);
    assert_eq!(lib.path(), path);
    // SAFETY: int relocs_call_add(int, int) in test-libs/relocs.c.
    let call_add = unsafe { lib.get::<extern "C" fn(c_int, c_int) -> c_int>("relocs_call_add") };
    assert_eq!(call_add.expect("relocs_call_add")(40, 2), 42);
    // SAFETY: int relocs_read_counter(void).
    let counter = unsafe { lib.get::<extern "C" fn() -> c_int>("relocs_read_counter") };
    assert_eq!(counter.expect("relocs_read_counter")(), 41);
    // SAFETY: char *relocs_text_plus3, R_X86_64_64 with an addend.
    let text = unsafe { lib.get::<*const *const c_char>("relocs_text_plus3") }.expect("text");
    // SAFETY: the variable holds a pointer into libbasic's string.
    assert_eq!(unsafe { CStr::from_ptr(**text) }.to_bytes(), b"defgh");
    // The dependency came from its file, as usual.
    let deps = lib.dependencies();
    assert!(
        deps.iter().any(|d| d.ends_with("libbasic.so")),
        "dependencies: {deps:?}"
    );
}

/// What the copy must get right beyond relocation: a TLS initialisation
/// image read from the copy (libtls), and C++ constructors, vtables and an
/// exception thrown and caught inside the library, whose unwind tables are
/// found in the copy (libcxx_basic).
#[test]
fn tls_and_cxx_from_bytes() {
    let _lock = serial();
    let bytes = fs::read(test_lib("libtls.so")).expect("read libtls");
    // SAFETY: a test library of ours.
    let tls = unsafe { Loader::new().open_bytes(&bytes) }.expect("open_bytes libtls");
    // SAFETY: int tls_init_value(void), int tls_bump(void).
    let init = unsafe { tls.get::<extern "C" fn() -> c_int>("tls_init_value") }.expect("init");
    assert_eq!(init(), 100, "the .tdata image, from the copy");
    // SAFETY: as above.
    let bump = unsafe { tls.get::<extern "C" fn() -> c_int>("tls_bump") }.expect("bump");
    assert_eq!(bump(), 1);
    let bump = *bump;
    let other = std::thread::spawn(move || bump()).join().expect("a thread");
    assert_eq!(other, 1, "a new thread's own copy");
    let path = test_lib("libcxx_basic.so");
    let bytes = fs::read(&path).expect("read libcxx_basic");
    // SAFETY: a test library of ours.
    let cxx = unsafe { Loader::new().name(&path).open_bytes(&bytes) }.expect("open_bytes cxx");
    // SAFETY: int cxx_basic_static_init(void), int cxx_basic_virtual(int),
    // int cxx_basic_throw_catch(void).
    unsafe {
        let f = cxx.get::<extern "C" fn() -> c_int>("cxx_basic_static_init");
        assert_eq!(f.expect("static_init")(), 42);
        let f = cxx.get::<extern "C" fn(c_int) -> c_int>("cxx_basic_virtual");
        assert_eq!(f.expect("virtual")(5), 15);
        let f = cxx.get::<extern "C" fn() -> c_int>("cxx_basic_throw_catch");
        assert_eq!(f.expect("throw_catch")(), 7);
    }
}

#[test]
fn an_unnamed_library_from_bytes_has_no_origin() {
    let _lock = serial();
    let before = Before::take();
    let bytes = fs::read(test_lib("librelocs.so")).expect("read librelocs");
    // SAFETY: a test library of ours.
    let err = unsafe { Loader::new().open_bytes(&bytes) }.expect_err("libbasic is not found");
    match &err {
        Error::NotFound {
            name, needed_by, ..
        } => {
            assert_eq!(name, "libbasic.so");
            assert!(
                matches!(needed_by, Requester::Library(p) if p == Path::new("<bytes>")),
                "{err}"
            );
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    // Searched where the caller says instead, it loads.
    let dir = test_lib("");
    // SAFETY: a test library of ours.
    let lib = unsafe { Loader::new().search_path(&dir).open_bytes(&bytes) }.expect("open");
    // SAFETY: int basic_add(int, int), reached through librelocs's PLT.
    let call_add = unsafe { lib.get::<extern "C" fn(c_int, c_int) -> c_int>("relocs_call_add") };
    assert_eq!(call_add.expect("relocs_call_add")(1, 2), 3);
    drop(lib);
    before.check("an unnamed library from bytes");
}

#[test]
fn a_test_lib_from_a_memfd() {
    let _lock = serial();
    let bytes = fs::read(test_lib("libbasic.so")).expect("read libbasic");
    let fd = memfd(&bytes);
    // SAFETY: a test library of ours.
    let lib = unsafe { Loader::new().open_fd(&fd) }.expect("open_fd memfd");
    assert_eq!(lib.source(), Source::Fd(fd.as_raw_fd()));
    // SAFETY: double basic_scale(double), int basic_bump(void).
    let scale = unsafe { lib.get::<extern "C" fn(f64) -> f64>("basic_scale") }.expect("scale");
    assert_eq!(scale(2.0), 5.0);
    // SAFETY: as above.
    let bump = unsafe { lib.get::<extern "C" fn() -> c_int>("basic_bump") }.expect("bump");
    assert_eq!(bump(), 42);
    // The pages are the memfd's (the kernel names it /memfd:NAME).
    let lines = lines_of(&lib);
    assert!(
        lines
            .iter()
            .any(|l| l.path.starts_with("/memfd:minld-bytes-test")),
        "{lines:?}"
    );
    // The same memfd again is the same library (identity by fstat).
    // SAFETY: as above.
    let again = unsafe { Loader::new().open_fd(&fd) }.expect("open_fd again");
    assert_eq!(again.base(), lib.base());
}

/// A pipe whose other end a thread fills with `bytes` and closes.
fn pipe_of(bytes: Vec<u8>) -> (fs::File, std::thread::JoinHandle<()>) {
    let mut fds = [0; 2];
    // SAFETY: fds is an array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and nothing else owns them.
    let (r, mut w) = unsafe {
        (
            fs::File::from(OwnedFd::from_raw_fd(fds[0])),
            fs::File::from(OwnedFd::from_raw_fd(fds[1])),
        )
    };
    let writer = std::thread::spawn(move || w.write_all(&bytes).expect("write the pipe"));
    (r, writer)
}

/// A library received through a pipe (no pread, no mmap): read to its end
/// and copied, as from bytes.
#[test]
fn libz_from_a_pipe_is_read_and_copied() {
    let _lock = serial();
    let before = Before::take();
    for _ in 0..4 {
        let (r, writer) = pipe_of(fs::read(LIBZ).expect("read libz"));
        // SAFETY: the system's libz.
        let lib = unsafe { Loader::new().open_fd(&r) }.expect("open_fd on a pipe");
        writer.join().expect("the writer");
        assert_eq!(lib.source(), Source::Bytes);
        assert!(lines_of(&lib).iter().all(|l| l.path.is_empty()));
        exercise_libz(&lib);
        drop((lib, r));
    }
    // A pipe that ends early: the truncated file's error.
    let z = fs::read(LIBZ).expect("read libz");
    let scratch = Scratch::new(&z[..z.len() / 2]);
    let from_file = Loader::new().link(&scratch.0).expect_err("truncated");
    let (r, writer) = pipe_of(z[..z.len() / 2].to_vec());
    // SAFETY: refused before anything of it runs.
    let from_pipe = unsafe { Loader::new().name(&scratch.0).open_fd(&r) }.expect_err("truncated");
    writer.join().expect("the writer");
    assert_same(&from_pipe, &from_file, "a pipe that ends early");
    drop((r, scratch));
    before.check("open_fd on pipes");
}

/// Every test library (and a few real ones) laid out alike from bytes and
/// from the file: the same segments at the same offsets from a base
/// aligned as the largest p_align asks, the same protections, the file's
/// data in each, zeros after it; or refused alike (libexecstack).
#[test]
fn every_test_lib_is_laid_out_alike_from_bytes() {
    let _lock = serial();
    let before = Before::take();
    let mut paths: Vec<PathBuf> = fs::read_dir(test_lib(""))
        .expect("the test libraries")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "so"))
        .collect();
    paths.sort();
    for real in [LIBZ, "/lib/x86_64-linux-gnu/libsqlite3.so.0"] {
        paths.push(PathBuf::from(real));
    }
    let mut compared = 0;
    for path in &paths {
        let bytes = fs::read(path).expect("read");
        let file = Loader::new().map(path);
        let copy = Loader::new().name(path).map_bytes(&bytes);
        let (f, c) = match (file, copy) {
            (Ok(f), Ok(c)) => (f, c),
            (Err(f), Err(c)) => {
                assert_same(&c, &f, &path.display().to_string());
                continue;
            }
            (f, c) => panic!("{}: map gave {f:?}, map_bytes {c:?}", path.display()),
        };
        assert_eq!(f.span().1, c.span().1, "{}", path.display());
        let elf = goblin::elf::Elf::parse(&bytes).expect("parse");
        let max_align = elf
            .program_headers
            .iter()
            .filter(|p| p.p_type == PT_LOAD)
            .map(|p| p.p_align)
            .max()
            .unwrap_or(1)
            .max(PAGE as u64) as usize;
        assert_eq!(c.span().0 % max_align, 0, "{}: alignment", path.display());
        for (fs_, cs) in f.segments().iter().zip(c.segments()) {
            assert_eq!(
                fs_.addr - f.base(),
                cs.addr - c.base(),
                "{}",
                path.display()
            );
            assert_eq!(fs_.prot, cs.prot, "{}", path.display());
            if !cs.prot.read() {
                continue;
            }
            let n = cs.mem_size as usize;
            // SAFETY: readable segments of `n` bytes, mapped while `f` and
            // `c` live.
            let (x, y) = unsafe {
                (
                    std::slice::from_raw_parts(fs_.addr as *const u8, n),
                    std::slice::from_raw_parts(cs.addr as *const u8, n),
                )
            };
            let file_part = cs.file_size as usize;
            assert_eq!(
                &y[..file_part],
                &bytes[cs.file_offset as usize..][..file_part]
            );
            assert!(
                y[file_part..].iter().all(|&b| b == 0),
                "{}: .bss",
                path.display()
            );
            assert_eq!(x, y, "{}: the file's mapping and the copy", path.display());
        }
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} libraries compared");
    before.check("every test library mapped and copied");
}

#[test]
fn map_bytes_and_map_fd_say_where_the_pages_came_from() {
    let _lock = serial();
    let before = Before::take();
    let bytes = fs::read(LIBZ).expect("read libz");
    let file = fs::File::open(LIBZ).expect("open libz");
    for _ in 0..ROUNDS {
        let m = Loader::new().map_bytes(&bytes).expect("map_bytes");
        assert_eq!(m.source(), &Source::Bytes);
        let (start, len) = m.span();
        assert!(overlapping(&maps(), start, len)
            .iter()
            .all(|l| l.path.is_empty()));
        // The copy holds the file's bytes: its ELF header at the base.
        // SAFETY: the first segment is readable and at least a page long.
        let head = unsafe { std::slice::from_raw_parts(m.base() as *const u8, 64) };
        assert_eq!(head, &bytes[..64]);
        let f = Loader::new().map_fd(&file).expect("map_fd");
        assert_eq!(f.source(), &Source::Fd(file.as_raw_fd()));
        let m = Loader::new().map(LIBZ).expect("map");
        assert_eq!(m.source(), &Source::File(PathBuf::from(LIBZ)));
    }
    drop((bytes, file));
    before.check("map_bytes, map_fd and map, then drop");
}

#[test]
fn nothing_left_after_loads_and_drops() {
    let _lock = serial();
    let bytes = fs::read(LIBZ).expect("read libz");
    // Warm up what minld keeps for the process's life.
    // SAFETY: the system's libz.
    drop(unsafe { Loader::new().open_bytes(&bytes) }.expect("warm-up"));
    let before = Before::take();
    for _ in 0..ROUNDS {
        // SAFETY: the system's libz.
        let lib = unsafe { Loader::new().open_bytes(&bytes) }.expect("open_bytes");
        exercise_libz(&lib);
        let fd = memfd(&bytes);
        // SAFETY: as above.
        let lib2 = unsafe { Loader::new().open_fd(&fd) }.expect("open_fd");
        exercise_libz(&lib2);
        drop((lib, lib2, fd));
    }
    before.check("open_bytes and open_fd of libz, then drop");
}

// ---------------------------------------------------------------------------
// Bad images: the file's errors
// ---------------------------------------------------------------------------

// ELF header and program header fields (64-bit).
const E_PHOFF: usize = 32;
const PHDR_SIZE: usize = 56;
const P_VADDR: usize = 16;
const P_FILESZ: usize = 32;
const PT_LOAD: u32 = 1;

fn set_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// A PT_LOAD: its index, p_vaddr, p_offset, p_filesz and p_memsz.
type Load = (usize, u64, u64, u64, u64);

/// libz's bytes, the offset of its program headers and its PT_LOADs.
fn libz_image() -> (Vec<u8>, usize, Vec<Load>) {
    let bytes = fs::read(LIBZ).expect("read libz");
    let elf = goblin::elf::Elf::parse(&bytes).expect("parse libz");
    let phoff = elf.header.e_phoff as usize;
    let loads = elf
        .program_headers
        .iter()
        .enumerate()
        .filter(|(_, p)| p.p_type == PT_LOAD)
        .map(|(i, p)| (i, p.p_vaddr, p.p_offset, p.p_filesz, p.p_memsz))
        .collect();
    (bytes, phoff, loads)
}

/// The corruptions tests/validation.rs makes of libz, each with its name.
fn corruptions() -> Vec<(&'static str, Vec<u8>)> {
    let (z, phoff, loads) = libz_image();
    let mut out = vec![
        ("truncated to 40 bytes", z[..40].to_vec()),
        ("truncated to 16 bytes", z[..16].to_vec()),
        ("truncated to half", z[..z.len() / 2].to_vec()),
        ("empty", Vec::new()),
    ];
    let mut b = z.clone();
    b[1..4].copy_from_slice(b"XYZ");
    out.push(("bad magic", b));
    let mut b = z.clone();
    set_u64(&mut b, E_PHOFF, (z.len() - 100) as u64);
    out.push(("program headers past the end", b));
    let mut b = z.clone();
    set_u64(&mut b, E_PHOFF, u64::MAX - 16);
    out.push(("e_phoff overflows", b));
    // Beyond any file offset (above i64::MAX): no pread64 is tried.
    let mut b = z.clone();
    set_u64(&mut b, E_PHOFF, 0xb900_0000_0000_0000);
    out.push(("e_phoff beyond any file", b));
    let mut b = z.clone();
    let (i, ..) = loads[2];
    set_u64(&mut b, phoff + i * PHDR_SIZE + P_FILESZ, z.len() as u64);
    out.push(("segment past the end", b));
    // Segment 2 moved into the middle of segment 1, congruent.
    let mut b = z.clone();
    let (_, prev_vaddr, ..) = loads[1];
    let (cur, _, cur_off, ..) = loads[2];
    let vaddr = (prev_vaddr & !(PAGE as u64 - 1)) + PAGE as u64 + cur_off % PAGE as u64;
    set_u64(&mut b, phoff + cur * PHDR_SIZE + P_VADDR, vaddr);
    out.push(("overlapping segments", b));
    // The dynamic section's string table far outside the image.
    let elf = goblin::elf::Elf::parse(&z).expect("parse libz");
    let dynamic = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == goblin::elf::program_header::PT_DYNAMIC)
        .expect("PT_DYNAMIC");
    let mut b = z.clone();
    let at = dynamic.p_offset as usize;
    let strtab = (0..dynamic.p_filesz as usize / 16)
        .map(|k| at + 16 * k)
        .find(|&e| u64::from_le_bytes(z[e..e + 8].try_into().unwrap()) == 5)
        .expect("DT_STRTAB");
    set_u64(&mut b, strtab + 8, 0x7fff_0000);
    out.push(("DT_STRTAB outside the image", b));
    out
}

/// A scratch file holding `bytes`, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(bytes: &[u8]) -> Scratch {
        let path = std::env::temp_dir().join(format!("minld-bytes-{}.so", std::process::id()));
        fs::write(&path, bytes).expect("write scratch file");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The same error, field for field, but a dynamic table's address, which
/// is where the image happened to be mapped (the load bias plus the value
/// in the file), and the name of a failed system call's purpose (a copy
/// maps a segment's .bss with the segment, a file's mapping apart).
fn assert_same(got: &Error, want: &Error, what: &str) {
    match (got, want) {
        (
            Error::Io {
                path,
                segment,
                errno,
                ..
            },
            Error::Io {
                path: p,
                segment: s,
                errno: e,
                ..
            },
        ) => assert_eq!((path, segment, errno), (p, s, e), "{what}: {got} / {want}"),
        (
            Error::BadDynamic {
                path, field, fault, ..
            },
            Error::BadDynamic {
                path: p,
                field: f,
                fault: fa,
                ..
            },
        ) => {
            assert_eq!((path, field), (p, f), "{what}");
            assert_eq!(format!("{fault:?}"), format!("{fa:?}"), "{what}");
        }
        _ => assert_eq!(format!("{got:?}"), format!("{want:?}"), "{what}"),
    }
}

#[test]
fn a_bad_image_gets_the_files_error() {
    let _lock = serial();
    let before = Before::take();
    for (what, bytes) in corruptions() {
        let scratch = Scratch::new(&bytes);
        let path = &scratch.0;
        // Linked only (nothing runs): the dynamic section is read too.
        let from_file = Loader::new().link(path).expect_err(what);
        // Named as the file is, the error is the file's, field for field.
        let named = Loader::new().name(path);
        // Mapping only reads no dynamic table: the same outcome as the file's.
        match (Loader::new().map(path), named.map_bytes(&bytes)) {
            (Err(f), Err(b)) => assert_eq!(format!("{b:?}"), format!("{f:?}"), "{what}"),
            (Ok(_), Ok(_)) => {}
            (f, b) => panic!("{what}: map gave {f:?}, map_bytes {b:?}"),
        }
        // SAFETY: refused before anything of it runs.
        let opened = unsafe { named.open_bytes(&bytes) }.expect_err(what);
        assert_same(&opened, &from_file, what);
        // From a memfd under the same name: the file's error again.
        let fd = memfd(&bytes);
        // SAFETY: as above.
        let from_fd = unsafe { named.open_fd(&fd) }.expect_err(what);
        assert_same(&from_fd, &from_file, what);
        if what == "e_phoff beyond any file" {
            assert!(
                matches!(
                    &from_file,
                    Error::BadHeader {
                        field: "e_phoff",
                        ..
                    }
                ),
                "{from_file:?}"
            );
        }
        // Unnamed, the message names "<bytes>".
        // SAFETY: as above.
        let unnamed = unsafe { Loader::new().open_bytes(&bytes) }.expect_err(what);
        let msg = unnamed.to_string();
        assert!(msg.contains("<bytes>"), "{what}: {msg}");
        eprintln!("{what}: {msg}");
        drop(fd);
    }
    before.check("every refused image");
}

/// libz with a few bytes of its headers changed at random (a fixed seed),
/// many times: `map` of the file and `map_bytes` of the same bytes always
/// agree, both mapping the same layout or both refusing with the same error.
#[test]
fn random_header_damage_gets_the_same_answer_from_bytes_and_file() {
    let _lock = serial();
    let before = Before::take();
    let z = fs::read(LIBZ).expect("read libz");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut mapped, mut refused) = (0, 0);
    // MINLD_BYTES_ROUNDS runs more (the same seed, so the same first 300).
    let rounds = std::env::var("MINLD_BYTES_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(300);
    for round in 0..rounds {
        let mut b = z.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % 832) as usize;
            b[at] = next() as u8;
        }
        let scratch = Scratch::new(&b);
        let from_file = Loader::new().map(&scratch.0);
        let from_bytes = Loader::new().name(&scratch.0).map_bytes(&b);
        match (&from_file, &from_bytes) {
            (Ok(f), Ok(m)) => {
                mapped += 1;
                assert_eq!(f.span().1, m.span().1, "round {round}");
                let layout = |o: &minld::MappedObject| {
                    o.segments()
                        .iter()
                        .map(|s| (s.addr - o.base(), s.mem_size, s.prot))
                        .collect::<Vec<_>>()
                };
                assert_eq!(layout(f), layout(m), "round {round}");
            }
            (Err(f), Err(m)) => {
                refused += 1;
                assert_same(m, f, &format!("round {round}"));
            }
            (f, m) => panic!("round {round}: map gave {f:?}, map_bytes {m:?}"),
        }
    }
    eprintln!("{mapped} mapped alike, {refused} refused alike");
    assert!(
        mapped > 0 && refused > 0,
        "{mapped} mapped, {refused} refused"
    );
    before.check("random header damage");
}

#[test]
fn the_descriptor_of_a_directory_is_refused_as_a_directory_is() {
    let _lock = serial();
    let dir = fs::File::open("/tmp").expect("open /tmp");
    let from_path = Loader::new().map("/tmp").expect_err("a directory");
    let from_fd = Loader::new()
        .name("/tmp")
        .map_fd(&dir)
        .expect_err("a directory");
    // The path's first read and the descriptor's pread64 both fail so.
    for e in [&from_path, &from_fd] {
        match e {
            Error::Io { path, errno, .. } => {
                assert_eq!(path, Path::new("/tmp"));
                assert_eq!(*errno as i32, libc::EISDIR, "{e}");
            }
            other => panic!("expected Error::Io, got {other:?}"),
        }
    }
}

/// A load with a link cache: from bytes or a descriptor it neither reads
/// nor writes a record (nothing to prove one against); from the file, the
/// same directory gets one (the cache is on).
#[test]
fn the_link_cache_is_left_alone() {
    let _lock = serial();
    let dir = std::env::temp_dir().join(format!("minld-bytes-cache-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let records = || fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    let bytes = fs::read(test_lib("libbasic.so")).expect("read libbasic");
    let loader = Loader::new().cache(&dir);
    // SAFETY: a test library of ours.
    let lib = unsafe { loader.open_bytes(&bytes) }.expect("open_bytes");
    drop(lib);
    let file = fs::File::open(test_lib("libbasic.so")).expect("open libbasic");
    // SAFETY: as above.
    let lib = unsafe { loader.open_fd(&file) }.expect("open_fd");
    drop(lib);
    assert_eq!(records(), 0, "a record from bytes or a descriptor");
    // SAFETY: as above.
    let lib = unsafe { loader.open(test_lib("libbasic.so")) }.expect("open");
    drop(lib);
    assert_eq!(records(), 1, "no record from the file: is the cache on?");
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// The trace
// ---------------------------------------------------------------------------

/// The variable that makes the trace test's child do the load.
const TRACE_CHILD: &str = "MINLD_BYTES_TRACE_CHILD";

/// The trace of a load from bytes: anonymous mappings only, no read (run
/// in a child process of this binary, whose stderr is the trace).
#[test]
fn the_trace_of_a_load_from_bytes_shows_anonymous_mappings() {
    if std::env::var_os(TRACE_CHILD).is_some() {
        let bytes = fs::read(LIBZ).expect("read libz");
        // SAFETY: the system's libz.
        let lib = unsafe { Loader::new().trace(true).open_bytes(&bytes) }.expect("open_bytes");
        exercise_libz(&lib);
        return;
    }
    let stderr = trace_of_child("the_trace_of_a_load_from_bytes_shows_anonymous_mappings");
    check_anonymous_load(&stderr);
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("read(") || l.starts_with("pread64(")),
        "a read from bytes:\n{stderr}"
    );
}

/// The trace of a load from a pipe: an fstat that says it is a FIFO, the
/// read calls that take the object in (no pread64: a pipe has no offset),
/// then as from bytes.
#[test]
fn the_trace_of_a_load_from_a_pipe_shows_the_reads() {
    if std::env::var_os(TRACE_CHILD).is_some() {
        let (r, writer) = pipe_of(fs::read(LIBZ).expect("read libz"));
        // SAFETY: the system's libz.
        let lib = unsafe { Loader::new().trace(true).open_fd(&r) }.expect("open_fd");
        writer.join().expect("the writer");
        exercise_libz(&lib);
        return;
    }
    let stderr = trace_of_child("the_trace_of_a_load_from_a_pipe_shows_the_reads");
    check_anonymous_load(&stderr);
    let fstat = stderr
        .lines()
        .find(|l| l.starts_with("newfstatat("))
        .expect("a newfstatat");
    assert!(fstat.contains("S_IFIFO"), "{fstat}");
    assert!(
        !stderr.lines().any(|l| l.starts_with("pread64(")),
        "{stderr}"
    );
    let reads: Vec<&str> = stderr.lines().filter(|l| l.starts_with("read(")).collect();
    let size = fs::metadata(LIBZ).expect("stat libz").len() as usize;
    let total: usize = reads
        .iter()
        .filter_map(|l| {
            l.rsplit_once("= ")?
                .1
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(total, size, "the reads took in the whole file:\n{stderr}");
    assert!(
        reads.last().is_some_and(|l| l.contains("= 0")),
        "read to the end"
    );
}

/// Runs test `name` in a child process of this binary with the trace
/// child's variable set; its stderr.
fn trace_of_child(name: &str) -> String {
    // The pipes of the child's output are descriptors of this process.
    let _lock = serial();
    let out = rerun(name)
        .env(TRACE_CHILD, "1")
        .env_remove("MINLD_CACHE")
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child failed:\n{stderr}");
    stderr
}

/// A load of libz into anonymous memory: the reservation and each segment
/// are anonymous mappings, each followed by its mprotect; no file is
/// opened or mapped (libz's only dependency is the host's libc).
fn check_anonymous_load(stderr: &str) {
    let calls: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(") ") && l.contains(" = "))
        .collect();
    let (z, _, loads) = libz_image();
    drop(z);
    let mmaps: Vec<&&str> = calls.iter().filter(|l| l.starts_with("mmap(")).collect();
    assert!(
        mmaps[0].starts_with("mmap(NULL, ")
            && mmaps[0].contains("PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0)"),
        "the reservation: {}",
        mmaps[0]
    );
    let segments: Vec<&&&str> = mmaps
        .iter()
        .filter(|l| l.contains("PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0)"))
        .collect();
    assert_eq!(segments.len(), loads.len(), "one per PT_LOAD:\n{stderr}");
    assert!(
        mmaps.iter().all(|l| l.contains(", -1, 0)")),
        "a file mapping:\n{stderr}"
    );
    assert!(
        !calls.iter().any(|l| l.starts_with("openat(")),
        "a file opened:\n{stderr}"
    );
    let protects = calls.iter().filter(|l| l.starts_with("mprotect(")).count();
    assert!(protects >= loads.len() - 1, "mprotects:\n{stderr}");
    assert!(
        calls
            .iter()
            .any(|l| l.starts_with("munmap(") && l.contains("unload")),
        "the unload:\n{stderr}"
    );
}

// ---------------------------------------------------------------------------
// The debugger
// ---------------------------------------------------------------------------

/// A library loaded from bytes is in the debugger's list under the name it
/// was given (`dlopen --from-bytes` names it by its path): gdb reads its
/// symbols from that file, resolves a breakpoint in it and sees it go.
#[test]
fn gdb_knows_a_library_from_bytes_by_its_name() {
    // The pipes of the children's output are descriptors of this process.
    let _lock = serial();
    let lib = test_lib("libbasic.so").display().to_string();
    let dlopen = example("dlopen");
    let out = Command::new("gdb")
        .args(["-batch", "-nx"])
        .args(["-ex", "set breakpoint pending on"])
        .args(["-ex", "break basic_scale"])
        .args(["-ex", "run"])
        .args(["-ex", "info sharedlibrary"])
        .args(["-ex", "continue"])
        .arg("--args")
        .arg(&dlopen)
        .args(["--from-bytes", lib.as_str(), "basic_scale:f64(f64)", "2"])
        .output()
        .expect("gdb must be installed (.ci/run installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("ptrace: Operation not permitted") {
        eprintln!("SKIPPED: this machine forbids ptrace, so gdb cannot run a program:\n{text}");
        return;
    }
    let hit = text
        .lines()
        .find(|l| l.starts_with("Breakpoint 1, "))
        .unwrap_or_else(|| panic!("breakpoint never hit:\n{text}"));
    assert!(hit.contains("basic_scale"), "{hit}\n{text}");
    // info sharedlibrary's line: From, To, Syms Read, the name.
    let listed = text
        .lines()
        .find(|l| l.starts_with("0x") && l.ends_with(&lib))
        .unwrap_or_else(|| panic!("{lib} not in info sharedlibrary:\n{text}"));
    assert!(listed.contains("Yes"), "symbols read: {listed}");
    assert!(text.contains("basic_scale(2) = 5"), "{text}");
    assert!(text.contains("exited normally"), "{text}");
}

/// `dlopen --from-bytes --trace` under strace: every line of minld's trace
/// (the anonymous reservation, each segment's anonymous mapping and
/// mprotect, RELRO, the unload) is, character for character, a line strace
/// printed. strace runs without `-f` (the example's calls are on its main
/// thread), so its lines have no pid prefix.
#[test]
fn the_trace_of_dlopen_from_bytes_is_what_strace_saw() {
    let _lock = serial();
    let dlopen = example("dlopen");
    let out_file =
        std::env::temp_dir().join(format!("minld-bytes-strace-{}.txt", std::process::id()));
    let out = Command::new("strace")
        .arg("-o")
        .arg(&out_file)
        .args(["-e", "trace=openat,read,pread64,mmap,mprotect,munmap,close"])
        .arg(&dlopen)
        .args(["--from-bytes", "--trace", LIBZ, "zlibVersion"])
        .env_remove("MINLD_TRACE")
        .env_remove("MINLD_CACHE")
        .output()
        .expect("strace must be installed (.ci/run installs it)");
    let seen = fs::read_to_string(&out_file).unwrap_or_default();
    let _ = fs::remove_file(&out_file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dlopen --from-bytes under strace:\n{stderr}"
    );
    let seen: Vec<&str> = seen.lines().map(str::trim_end).collect();
    let traced: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.split_once("  # ").map(|(call, _)| call.trim_end()))
        .collect();
    assert!(traced.len() >= 9, "the trace:\n{stderr}");
    let missing: Vec<&&str> = traced.iter().filter(|l| !seen.contains(l)).collect();
    assert!(
        missing.is_empty(),
        "trace lines strace did not see:\n{missing:#?}\n--- strace\n{}",
        seen.join("\n")
    );
}

/// What the docs of `open_bytes` and `Source::Bytes` promise of a copy:
/// every page holding file data is present; the `.bss` pages past the file
/// data (libbss.so has 73 of them) are anonymous zero pages, not present
/// until touched.
#[test]
fn a_copy_has_its_file_data_present_and_its_bss_not() {
    let _lock = serial();
    let bytes = fs::read(test_lib("libbss.so")).expect("read libbss.so");
    let m = Loader::new().map_bytes(&bytes).expect("map_bytes");
    let snap = m.pages().expect("pages");
    let (mut file, mut bss) = (0, 0);
    for p in &snap.mappings {
        match p.part {
            minld::pages::Part::File => {
                assert_eq!(p.present, p.pages, "file data present: {p:?}");
                file += p.pages;
            }
            minld::pages::Part::Bss => {
                assert_eq!(p.present, 0, "bss not present: {p:?}");
                bss += p.pages;
            }
            minld::pages::Part::Hole => {}
        }
    }
    assert!(file > 0 && bss > 50, "file {file} bss {bss}");
}

/// `map_fd` on `raw` in a thread: its result, or None when it is still
/// blocked after two minutes (reading a descriptor that never ends).
fn map_fd_or_hang(raw: c_int, name: &str) -> Option<Result<minld::MappedObject, Error>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = name.to_string();
    let thread = std::thread::spawn(move || {
        // SAFETY: the caller keeps `raw` open until the thread answers (or
        // leaks it when the thread never does).
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
        let _ = tx.send(Loader::new().name(&name).map_fd(fd));
    });
    let got = rx.recv_timeout(std::time::Duration::from_secs(120)).ok()?;
    thread.join().expect("the map_fd thread");
    Some(got)
}

/// A terminal (a pty master) and an eventfd are not files and never end:
/// `map_fd` refuses them by their fstat, without a read (which would block
/// forever), with the error a file that is not regular gets (`st_mode`,
/// its value), and leaves no mapping or descriptor behind.
#[test]
fn a_terminal_and_an_eventfd_are_refused_unread() {
    let _lock = serial();
    // A first thread's stack and malloc arena stay cached by glibc: made
    // before counting, they are reused by the threads below.
    std::thread::spawn(|| drop(vec![0u8; 100]))
        .join()
        .expect("a thread");
    let before = Before::take();
    // SAFETY: plain descriptor-creating calls; each result is checked.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    // SAFETY: as above.
    let pty = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    assert!(efd >= 0 && pty >= 0, "eventfd {efd}, posix_openpt {pty}");
    for (raw, name) in [(efd, "an eventfd"), (pty, "a pty master")] {
        let Some(got) = map_fd_or_hang(raw, name) else {
            panic!("map_fd on {name} still blocked after two minutes");
        };
        match got {
            Err(Error::BadHeader {
                path,
                field: "st_mode",
                found,
                fault: minld::HeaderFault::NotRegular,
            }) => {
                assert_eq!(path, Path::new(name));
                assert_eq!(
                    found & u64::from(libc::S_IFMT),
                    if raw == pty {
                        u64::from(libc::S_IFCHR)
                    } else {
                        0
                    }
                );
            }
            other => panic!("{name}: expected BadHeader st_mode, got {other:?}"),
        }
    }
    // SAFETY: both are ours, open, used by nothing else now.
    unsafe {
        libc::close(efd);
        libc::close(pty);
    }
    before.check("an eventfd and a pty refused");
}
