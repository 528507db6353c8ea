//! `minld::pages` (issue 15): each number of a snapshot checked against
//! `/proc/self/smaps` and `/proc/self/pagemap` read here, by the test's own
//! code, right after it in the same process; what must hold at each stage
//! of a load (nothing of the code present after mapping, nothing of it
//! written after the load, the relocated pages written); sharing with
//! other processes (the `dlopen` example's `--hold` children, loading with
//! minld and with glibc) lowering the code's Pss; and `dlopen`'s calls with
//! a signature and its refusals. On libz, libsqlite3 and libLLVM-15. Each
//! case runs in a fresh process, so that no other test's load maps the
//! same file in this one.

mod common;

#[path = "../examples/support/call.rs"]
mod call;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::examples::example;
use common::process::in_fresh_process;
use minld::pages::{Mapping, Part, Snapshot};
use minld::Loader;

const LIBZ: &str = "/usr/lib/x86_64-linux-gnu/libz.so.1";
const SQLITE: &str = "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0";
const LLVM: &str = "/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1";

/// The page size.
fn page() -> usize {
    // SAFETY: sysconf has no memory effects.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// The smaps numbers this test reads itself: by VMA start, the fields.
fn smaps_here() -> HashMap<usize, (usize, HashMap<String, u64>)> {
    let text = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
    let mut out = HashMap::new();
    let mut cur: Option<usize> = None;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((s, e)) = first.split_once('-') {
            if let (Ok(s), Ok(e)) = (usize::from_str_radix(s, 16), usize::from_str_radix(e, 16)) {
                out.insert(s, (e, HashMap::new()));
                cur = Some(s);
                continue;
            }
        }
        if let (Some(c), Some((k, v))) = (cur, line.split_once(':')) {
            if let Some(n) = v.trim().strip_suffix("kB") {
                let n: u64 = n.trim().parse().expect("a kB number");
                out.get_mut(&c)
                    .expect("current VMA")
                    .1
                    .insert(k.to_string(), n);
            }
        }
    }
    out
}

/// The pagemap words of a range, read by this test.
fn pagemap_here(start: usize, pages: usize) -> Vec<u64> {
    let mut f = std::fs::File::open("/proc/self/pagemap").expect("/proc/self/pagemap");
    f.seek(SeekFrom::Start((start / page() * 8) as u64))
        .expect("seek");
    let mut buf = vec![0u8; pages * 8];
    f.read_exact(&mut buf).expect("read pagemap");
    buf.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Checks every number of `snap` against smaps and pagemap read now.
fn check_against_kernel(snap: &Snapshot) {
    let smaps = smaps_here();
    assert!(
        !snap.mappings.is_empty(),
        "{}: no mappings",
        snap.path.display()
    );
    let mut at = snap.mappings[0].start;
    for m in &snap.mappings {
        let what = format!("{}: {m:?}", snap.path.display()).replace("states: [", "[");
        let what = &what[..what.len().min(400)];
        assert_eq!(m.start, at, "mappings follow each other: {what}");
        at = m.end();
        assert_eq!(m.states.len(), m.pages, "{what}");
        assert!(m.present <= m.pages, "present <= pages: {what}");
        assert!(m.private + m.shared <= m.present, "{what}");
        assert!(m.cached <= m.pages, "{what}");
        // A page in this process's page table is in memory.
        assert!(
            m.cached >= m.present,
            "mincore counts every present page: {what}"
        );
        let words = pagemap_here(m.start, m.pages);
        let present = words.iter().filter(|&&w| w & (1 << 63) != 0).count();
        assert_eq!(m.present, present, "present against pagemap: {what}");
        let written = words
            .iter()
            .filter(|&&w| w & (1 << 63) != 0 && w & (1 << 61) == 0 && w & (1 << 56) != 0)
            .count();
        assert_eq!(m.private, written, "private against pagemap: {what}");
        if m.part == Part::Hole {
            assert_eq!(m.present, 0, "a hole has nothing present: {what}");
        }
        let Some(v) = m.vma else { continue };
        let (end, fields) = smaps.get(&v.start).expect("the VMA is in smaps");
        assert_eq!(*end, v.end, "{what}");
        assert!(v.start <= m.start && m.end() <= v.end, "{what}");
        assert_eq!(v.rss_kb, fields["Rss"], "Rss against smaps: {what}");
        assert_eq!(v.private_dirty_kb, fields["Private_Dirty"], "{what}");
        assert!(v.pss_kb <= v.rss_kb, "Pss <= Rss: {what}");
        if m.vma_is_exact() {
            // A file part has no zero page: every present page is counted.
            if m.part == Part::File {
                assert_eq!(v.rss_kb as usize, m.present * page() / 1024, "{what}");
            }
            // Written here: anonymous pages mapped here only, all dirty.
            assert_eq!(
                v.private_dirty_kb as usize,
                m.private * page() / 1024,
                "{what}"
            );
        }
    }
}

/// The mappings of segment `i`'s file part.
fn file_parts(snap: &Snapshot, i: usize) -> Vec<&Mapping> {
    snap.mappings
        .iter()
        .filter(|m| m.segment == Some(i) && m.part == Part::File)
        .collect()
}

/// The index of the executable segment.
fn code_segment(lib: &minld::Library) -> usize {
    lib.segments()
        .iter()
        .position(|s| s.prot.exec())
        .expect("an executable segment")
}

/// Whether a library the test needs is installed (a skip says why).
fn installed(path: &str) -> bool {
    let there = Path::new(path).exists();
    if !there {
        eprintln!("skipped: {path} is not installed (.ci/run installs it)");
    }
    there
}

/// The three stages of a load of `path`, each checked against the kernel.
fn stages(path: &str) {
    let obj = Loader::new().map(path).expect("map");
    let mapped = obj.pages().expect("pages after map");
    check_against_kernel(&mapped);
    for m in &mapped.mappings {
        let seg = m.segment.map(|i| &obj.segments()[i]);
        if m.part == Part::File && seg.is_some_and(|s| !s.prot.write()) {
            assert_eq!(
                m.present, 0,
                "nothing read-only is touched by mapping: {m:?}"
            );
        }
    }
    drop(obj);
    // SAFETY: a system library, trusted to run its init functions.
    let lib = unsafe { Loader::new().open(path) }.expect("open");
    let loaded = lib.pages().expect("pages after load");
    check_against_kernel(&loaded);
    let code = code_segment(&lib);
    for m in file_parts(&loaded, code) {
        assert_eq!(m.private, 0, "nothing of the code is written: {m:?}");
        assert_eq!(m.vma.unwrap().private_dirty_kb, 0);
    }
    let segments = lib.segments();
    let writable = |m: &&Mapping| m.segment.is_some_and(|i| segments[i].prot.write());
    let written: usize = loaded
        .mappings
        .iter()
        .filter(writable)
        .map(|m| m.private)
        .sum();
    assert!(written > 0, "relocation wrote the writable segment's pages");
    let present: usize = file_parts(&loaded, code).iter().map(|m| m.present).sum();
    let pages: usize = file_parts(&loaded, code).iter().map(|m| m.pages).sum();
    eprintln!(
        "{path}: code {present} of {pages} pages present after the load, {written} pages written"
    );
}

#[test]
fn libz_at_each_stage() {
    if in_fresh_process("libz_at_each_stage") {
        stages(LIBZ);
    }
}

#[test]
fn sqlite_at_each_stage_and_after_a_call() {
    if !in_fresh_process("sqlite_at_each_stage_and_after_a_call") {
        return;
    }
    stages(SQLITE);
    // SAFETY: the system's sqlite.
    let lib = unsafe { Loader::new().open(SQLITE) }.unwrap();
    // SAFETY: `const char *sqlite3_libversion(void)`.
    let f =
        unsafe { lib.get::<extern "C" fn() -> *const libc::c_char>("sqlite3_libversion") }.unwrap();
    assert!(!f().is_null());
    check_against_kernel(&lib.pages().unwrap());
}

#[test]
fn llvm_at_each_stage() {
    if installed(LLVM) && in_fresh_process("llvm_at_each_stage") {
        stages(LLVM);
    }
}

/// `n` children of the example holding `path`, loaded by `loader`, each
/// ready when this returns; dropping the list ends them.
struct Holders(Vec<Child>);

impl Holders {
    fn start(loader: &str, path: &str, n: usize) -> Holders {
        let mut all = Holders(Vec::new());
        for _ in 0..n {
            let mut c = Command::new(example("dlopen"))
                .args(["--hold", loader, path])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a holder");
            let mut line = String::new();
            BufReader::new(c.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), "ready", "a child loading {path} with {loader}");
            all.0.push(c);
        }
        all
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        for c in &mut self.0 {
            drop(c.stdin.take());
            let _ = c.wait();
        }
    }
}

/// Pss and shared pages of the code, and of the written pages.
fn sharing(lib: &minld::Library) -> (u64, usize, Vec<Mapping>) {
    let snap = lib.pages().unwrap();
    check_against_kernel(&snap);
    let code = file_parts(&snap, code_segment(lib));
    let pss = code.iter().map(|m| m.vma.unwrap().pss_kb).sum();
    let shared = code.iter().map(|m| m.shared).sum();
    let written = snap
        .mappings
        .iter()
        .filter(|m| m.private > 0)
        .cloned()
        .collect();
    (pss, shared, written)
}

fn shared_with_children(path: &str) {
    // SAFETY: a system library.
    let lib = unsafe { Loader::new().open(path) }.unwrap();
    let (alone, _, _) = sharing(&lib);
    for loader in ["minld", "glibc"] {
        let holders = Holders::start(loader, path, 3);
        let (pss, shared, written) = sharing(&lib);
        eprintln!("{path}: code Pss {alone} kB alone, {pss} kB with 3 {loader} children ({shared} pages shared)");
        assert!(shared > 0, "{loader}'s children share code pages");
        assert!(pss < alone, "{loader}: the code's Pss drops when shared");
        for m in written {
            if m.vma_is_exact() {
                let v = m.vma.unwrap();
                assert_eq!(v.private_dirty_kb as usize, m.private * page() / 1024);
                assert_eq!(
                    v.pss_kb, v.rss_kb,
                    "written pages stay private: {:?}",
                    m.vma
                );
            }
        }
        drop(holders);
    }
}

#[test]
fn sqlite_code_is_shared_with_other_processes() {
    if in_fresh_process("sqlite_code_is_shared_with_other_processes") {
        shared_with_children(SQLITE);
    }
}

#[test]
fn llvm_code_is_shared_with_other_processes() {
    if installed(LLVM) && in_fresh_process("llvm_code_is_shared_with_other_processes") {
        shared_with_children(LLVM);
    }
}

/// Runs the example, returning (success, stdout, stderr).
fn dlopen(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(example("dlopen"))
        .args(args)
        .output()
        .expect("run dlopen");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sqlite_libversion_called_with_a_signature_matches_glibc() {
    // SAFETY: the system's sqlite, loaded by glibc.
    let h = unsafe { libc::dlopen(c"libsqlite3.so.0".as_ptr(), libc::RTLD_NOW) };
    assert!(!h.is_null());
    // SAFETY: a symbol of the handle just opened.
    let f = unsafe { libc::dlsym(h, c"sqlite3_libversion".as_ptr()) };
    assert!(!f.is_null());
    // SAFETY: `const char *sqlite3_libversion(void)`.
    let f: extern "C" fn() -> *const libc::c_char = unsafe { std::mem::transmute(f) };
    // SAFETY: sqlite returns a static NUL-terminated string.
    let glibc = unsafe { std::ffi::CStr::from_ptr(f()) }
        .to_string_lossy()
        .into_owned();
    let (ok, out, err) = dlopen(&["libsqlite3.so.0", "sqlite3_libversion:str()"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("sqlite3_libversion() = \"{glibc}\"")),
        "{out}"
    );
    let (ok, out, err) = dlopen(&["libm.so.6", "pow:f64(f64,f64)", "2", "10"]);
    assert!(ok && out.contains("pow(2, 10) = 1024"), "{out}{err}");
    let (ok, out, err) = dlopen(&["libc.so.6", "abs:int(int)", "-7"]);
    assert!(ok && out.contains("abs(-7) = 7"), "{out}{err}");
}

#[test]
fn a_symbol_without_signature_shows_its_table_entry() {
    let (ok, out, err) = dlopen(&["libsqlite3.so.0", "sqlite3_libversion"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("sqlite3_libversion: GLOBAL FUNC, size "),
        "{out}"
    );
    assert!(out.contains("libsqlite3.so.0"), "{out}");
    // libz's zlibVersion has no version (versym 1, the global index);
    // deflateBound has ZLIB_1.2.0.
    let (ok, out, err) = dlopen(&["libz.so.1", "zlibVersion"]);
    assert!(
        ok && out.contains("GLOBAL FUNC, size 8, version (none), defined in "),
        "{out}{err}"
    );
    let (ok, out, err) = dlopen(&["libz.so.1", "deflateBound"]);
    assert!(
        ok && out.contains("version ZLIB_1.2.0, defined in "),
        "{out}{err}"
    );
    let (ok, out, _) = dlopen(&["libc.so.6", "environ"]);
    assert!(
        ok && out.contains("OBJECT, size 8, version GLIBC_2.2.5"),
        "{out}"
    );
}

#[test]
fn what_cannot_be_called_is_refused_with_a_message() {
    for (args, says) in [
        (
            &["libc.so.6", "environ:ptr()"][..],
            "cannot call environ: it is data (8 bytes)",
        ),
        (
            &["libc.so.6", "printf:int(str,...)", "x"],
            "variadic functions cannot be called",
        ),
        (
            &["libc.so.6", "abs:int(struct)", "1"],
            "unknown type `struct`",
        ),
        (
            &["libc.so.6", "abs:int(int)"],
            "takes 1 argument(s), 0 given",
        ),
        (&["libc.so.6", "abs:int(int)", "x"], "argument `x` as Int"),
        (
            &["libc.so.6", "no_such_function:int()"],
            "no_such_function: not defined",
        ),
    ] {
        let (ok, out, err) = dlopen(args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn signatures_parse_and_bad_ones_are_refused() {
    use call::{parse, Signature, Ty};
    assert_eq!(
        parse("pow:f64(f64,f64)").unwrap(),
        (
            "pow".into(),
            Some(Signature {
                ret: Ty::F64,
                args: vec![Ty::F64, Ty::F64]
            })
        )
    );
    assert_eq!(
        parse("sqlite3_libversion:str()").unwrap().1,
        Some(Signature {
            ret: Ty::Str,
            args: vec![]
        })
    );
    assert_eq!(parse("f:void(void)").unwrap().1.unwrap().args, vec![]);
    assert_eq!(parse("cos").unwrap(), ("cos".into(), None));
    assert!(parse(":int()").unwrap_err().contains("no symbol name"));
    assert!(parse("f:int").unwrap_err().contains("RET(ARG,...)"));
    assert!(parse("f:int(int").unwrap_err().contains("end with `)`"));
    assert!(parse("f:int(void,int)")
        .unwrap_err()
        .contains("not an argument type"));
    let many = format!("f:int({})", ["int"; 7].join(","));
    assert!(parse(&many)
        .unwrap_err()
        .contains("only what fits in registers"));
    let floats = format!("f:f64({})", ["f64"; 9].join(","));
    assert!(parse(&floats)
        .unwrap_err()
        .contains("only what fits in registers"));
    // Six integers and eight doubles, interleaved, fit.
    let mixed = format!("f:f64({},{})", ["f64,long"; 6].join(","), "f64,f64");
    assert_eq!(parse(&mixed).unwrap().1.unwrap().args.len(), 14);
}

#[test]
fn pages_json_has_the_issues_fields() {
    let (ok, out, err) = dlopen(&["--pages", "--json", LIBZ, "zlibVersion:str()"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!("{{\"library\": \"{LIBZ}\"")),
        "{out}"
    );
    for stage in ["mapped", "loaded", "called"] {
        assert!(out.contains(&format!("\"stage\": \"{stage}\"")), "{out}");
    }
    for field in [
        "\"segment\": 1",
        "\"prot\": \"r-x\"",
        "\"start\": \"0x",
        "\"pages\": ",
        "\"present\": ",
        "\"private_dirty_kb\": ",
        "\"shared_kb\": ",
        "\"rss_kb\": ",
        "\"pss_kb\": ",
    ] {
        assert!(out.contains(field), "{field} in {out}");
    }
    assert!(
        err.contains("zlibVersion() = \"1."),
        "the call's line goes to stderr: {err}"
    );
}

/// A traced or strace line as (call, result), without the padding.
fn call_and_result(line: &str) -> Option<(String, String)> {
    let line = line.split("  # ").next()?;
    let (call, result) = line.rsplit_once(" = ")?;
    Some((call.trim_end().to_string(), result.trim().to_string()))
}

#[test]
fn the_pages_reads_are_traced_as_strace_sees_them() {
    let file = std::env::temp_dir().join(format!("minld-pages-strace-{}", std::process::id()));
    let run = Command::new("strace")
        .arg("-o")
        .arg(&file)
        .args(["-e", "trace=openat,read,pread64,mincore"])
        .arg(example("dlopen"))
        .args(["--trace", "--pages", LIBZ, "zlibVersion:str()"])
        .output();
    let run = match run {
        Ok(r) => r,
        Err(e) => panic!("strace must be installed (.ci/run installs it): {e}"),
    };
    let seen = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
    let stderr = String::from_utf8_lossy(&run.stderr);
    if seen.contains("PTRACE_TRACEME") || stderr.contains("ptrace") && !run.status.success() {
        eprintln!("skipped: this machine forbids ptrace, so strace cannot run:\n{stderr}");
        return;
    }
    assert!(run.status.success(), "{stderr}");
    let seen: Vec<(String, String)> = seen.lines().filter_map(call_and_result).collect();
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("  # pages: "))
        .collect();
    // Each of the three stages: smaps opened and read to its end, pagemap
    // opened and read, one mincore per mapped part.
    for call in [
        "openat(AT_FDCWD, \"/proc/self/smaps\"",
        "openat(AT_FDCWD, \"/proc/self/pagemap\"",
    ] {
        assert_eq!(
            ours.iter().filter(|l| l.starts_with(call)).count(),
            3,
            "{call}: {stderr}"
        );
    }
    assert!(
        ours.iter().filter(|l| l.starts_with("mincore(")).count() >= 3 * 4,
        "{stderr}"
    );
    for line in ours {
        let ours = call_and_result(line).expect("a traced call");
        assert!(
            seen.contains(&ours),
            "traced but not seen by strace: {line}"
        );
    }
}
