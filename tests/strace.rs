//! minld's system calls, checked against the kernel's own record of them.
//!
//! Every test here runs a child program under strace (the test process
//! itself is never traced):
//!
//! * `probe_dlopen PATH` (from test-libs) loads PATH with glibc's `dlopen`:
//!   that is ld.so's behaviour, the reference;
//! * the `dlopen` example loads PATH with minld.
//!
//! strace writes what it saw to a file under `CARGO_TARGET_TMPDIR`; the
//! tests cut out of it the calls that belong to one library, normalise the
//! addresses and the file descriptor, and compare.
//!
//! `STRACE_TEST_SHOW=1 cargo test --test strace -- --nocapture` prints each
//! normalised sequence that matched.

mod common;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};

use goblin::elf::program_header as ph;

use common::examples::example;
use common::libs::test_lib;

/// Where `.ci/run` installs strace.
const STRACE: &str = "/usr/bin/strace";

/// The system calls a load makes on a file and on the address space.
const TRACED: &[&str] = &[
    "openat",
    "read",
    "pread64",
    "newfstatat",
    "mmap",
    "mprotect",
    "munmap",
    "close",
    "madvise",
    "write",
    "rename",
    "unlink",
    "mkdir",
    "memfd_create",
];

/// Real libraries of a Debian 12 system, each with its own layout.
const SYSTEM_LIBS: &[&str] = &[
    "/lib/x86_64-linux-gnu/libz.so.1",
    "/lib/x86_64-linux-gnu/libsqlite3.so.0",
    "/lib/x86_64-linux-gnu/libm.so.6",
    "/lib/x86_64-linux-gnu/libcrypto.so.3",
    "/lib/x86_64-linux-gnu/libstdc++.so.6",
];

/// test-libs that take the unusual mapping paths: holes between segments
/// (PROT_NONE mprotect), p_align above the page size (anonymous reservation,
/// slack unmapped at both ends), and a large .bss (anonymous zero pages).
const MAPPING_TEST_LIBS: &[&str] = &["libhole.so", "libbigalign.so", "libbss.so"];

const LIBZ: &str = "/lib/x86_64-linux-gnu/libz.so.1";

// ---------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------

/// strace itself; a clear panic when it is missing.
fn strace() -> &'static Path {
    let p = Path::new(STRACE);
    assert!(
        p.is_file(),
        "{STRACE} not found: these tests compare minld with ld.so through strace; \
         install it (`apt-get install strace`, as .ci/run does)"
    );
    p
}

/// glibc's loader, driven by `probe_dlopen PATH`.
fn probe() -> PathBuf {
    let p = test_lib("probe_dlopen");
    assert!(
        p.is_file(),
        "{} is missing: test-libs were not built",
        p.display()
    );
    p
}

/// What a program printed, and what strace saw it do.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// strace's output file, line by line, as written.
    strace_lines: Vec<String>,
    /// The same, parsed.
    calls: Vec<Call>,
}

impl Run {
    fn describe(&self, what: &str) -> String {
        format!(
            "{what}: {}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `program args` under `strace -o FILE -e trace=TRACED` (with `-f`
/// when `follow` is set) and collects everything.
fn run_traced(follow: bool, program: &Path, args: &[&OsStr]) -> Run {
    run_traced_with(follow, program, args, &[])
}

/// [`run_traced`] with variables `env` set for the program.
fn run_traced_with(follow: bool, program: &Path, args: &[&OsStr], env: &[(&str, &Path)]) -> Run {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let out_file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "strace-{}-{}.txt",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut cmd = Command::new(strace());
    if follow {
        cmd.arg("-f");
    }
    cmd.arg("-o")
        .arg(&out_file)
        .arg("-e")
        .arg(format!("trace={}", TRACED.join(",")))
        .arg(program)
        .args(args)
        .env_remove("MINLD_TRACE")
        .env_remove("MINLD_CACHE")
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("run {STRACE}: {e}"));
    let text = std::fs::read_to_string(&out_file).unwrap_or_else(|e| {
        panic!(
            "read {}: {e}\nstrace stderr:\n{}",
            out_file.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let _ = std::fs::remove_file(&out_file);
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        strace_lines: text.lines().map(str::to_string).collect(),
        calls: parse_strace(&text),
    }
}

/// glibc's `dlopen(path, RTLD_NOW)` under strace; it must succeed.
fn run_ld_so(path: &str) -> Run {
    let run = run_traced(true, &probe(), &[OsStr::new(path)]);
    assert!(
        run.status.success() && run.stdout.trim() == path,
        "{}",
        run.describe(&format!("probe_dlopen {path}"))
    );
    run
}

/// How far minld got with a library under strace.
enum MinldRun {
    /// Loaded and linked: the whole sequence compares, RELRO included.
    Loaded(Run),
    /// minld refuses to link it for a documented limitation (an object's own
    /// TLS block, see tests/link.rs `own_tls_is_refused_clearly_for_now`):
    /// it was mapped with `--map-only` instead, so only the calls up to the
    /// close compare.
    MappedOnly { run: Run, why: String },
}

/// The error of the one limitation [`MinldRun::MappedOnly`] stands for.
fn is_own_tls_limitation(stderr: &str) -> bool {
    stderr.contains("thread-local storage") && stderr.contains("not supported yet")
}

/// minld's load of `path` through the example under strace. With no symbol
/// the example looks up `cos` after loading, which fails for libraries
/// without one: the load itself (and its RELRO mprotect) is complete by
/// then, so only `loaded ` on stdout is required.
fn run_minld(path: &str) -> MinldRun {
    let run = run_traced(true, &example("dlopen"), &[OsStr::new(path)]);
    if run.stdout.contains("loaded ") {
        return MinldRun::Loaded(run);
    }
    assert!(
        is_own_tls_limitation(&run.stderr),
        "{}",
        run.describe(&format!("dlopen {path}"))
    );
    let why = run
        .stderr
        .lines()
        .find(|l| l.starts_with("dlopen: "))
        .unwrap_or_default()
        .to_string();
    let mapped = run_traced(
        true,
        &example("dlopen"),
        &[OsStr::new("--map-only"), OsStr::new(path)],
    );
    assert!(
        mapped.status.success() && mapped.stdout.contains("mapped "),
        "{}",
        mapped.describe(&format!("dlopen --map-only {path}"))
    );
    MinldRun::MappedOnly { run: mapped, why }
}

// ---------------------------------------------------------------------------
// Parsing strace's output
// ---------------------------------------------------------------------------

/// One system call as strace printed it.
#[derive(Debug, Clone)]
struct Call {
    pid: Option<u32>,
    name: String,
    args: Vec<String>,
    /// What follows ` = `: `3`, `0x7f…`, `-1 ENOENT (No such file or directory)`.
    result: String,
}

impl Call {
    fn arg(&self, i: usize) -> &str {
        self.args.get(i).map(String::as_str).unwrap_or("")
    }

    /// The result as a number (decimal or hex), when it is one.
    fn ret(&self) -> Option<u64> {
        number(&self.result)
    }

    /// The line again, without strace's column padding.
    fn render(&self) -> String {
        format!("{}({}) = {}", self.name, self.args.join(", "), self.result)
    }
}

/// A decimal or `0x` hex number.
fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Splits `1234  rest` (strace -f's pid column) into the pid and the rest.
fn strip_pid(line: &str) -> (Option<u32>, &str) {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && line[digits..].starts_with(' ') {
        (
            line[..digits].parse().ok(),
            line[digits..].trim_start_matches(' '),
        )
    } else {
        (None, line)
    }
}

/// The index just past the `)` that closes the call starting a line
/// (`name(args…)`), skipping quoted strings and nested brackets.
fn call_end(line: &str) -> Option<usize> {
    let open = line.find('(')?;
    let name = &line[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let bytes = line.as_bytes();
    let (mut depth, mut in_quote, mut i) = (0usize, false, open);
    while i < bytes.len() {
        let b = bytes[i];
        if in_quote {
            match b {
                b'\\' => i += 1,
                b'"' => in_quote = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_quote = true,
                b'(' | b'{' | b'[' => depth += 1,
                b')' | b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return (b == b')').then_some(i + 1);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Splits an argument list at its top-level commas.
fn split_args(inner: &str) -> Vec<String> {
    let mut args = Vec::new();
    let (mut depth, mut in_quote, mut escaped, mut cur) = (0usize, false, false, String::new());
    for c in inner.chars() {
        if in_quote {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' => in_quote = true,
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                args.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() || !args.is_empty() {
        args.push(cur.trim().to_string());
    }
    args
}

/// Parses `name(args) = result` (padding allowed before `=`).
fn parse_call(pid: Option<u32>, line: &str) -> Option<Call> {
    let end = call_end(line)?;
    let open = line.find('(')?;
    let result = line[end..]
        .trim_start()
        .strip_prefix('=')?
        .trim()
        .to_string();
    Some(Call {
        pid,
        name: line[..open].to_string(),
        args: split_args(&line[open + 1..end - 1]),
        result,
    })
}

/// Parses strace's output: pid columns, `<unfinished ...>`/`resumed` pairs
/// joined again, signals and exits skipped.
fn parse_strace(text: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut pending: HashMap<Option<u32>, String> = HashMap::new();
    for raw in text.lines() {
        let (pid, line) = strip_pid(raw);
        let joined;
        let line = if let Some(head) = line.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, head.to_string());
            continue;
        } else if let Some(rest) = line.strip_prefix("<... ") {
            let Some(i) = rest.find(" resumed>") else {
                continue;
            };
            joined = format!(
                "{}{}",
                pending.remove(&pid).unwrap_or_default(),
                &rest[i + " resumed>".len()..]
            );
            joined.as_str()
        } else {
            line
        };
        if line.starts_with("+++") || line.starts_with("---") {
            continue;
        }
        if let Some(c) = parse_call(pid, line) {
            calls.push(c);
        }
    }
    calls
}

// ---------------------------------------------------------------------------
// One library's calls, normalised
// ---------------------------------------------------------------------------

/// The calls that load one file, normalised so two processes compare.
#[derive(Debug)]
struct Sequence {
    lines: Vec<String>,
    /// How many of `lines` run from the openat to the close (the rest are
    /// the mprotects after relocation).
    mapping_len: usize,
    /// The lowest address a file-backed mmap of the file returned.
    base: u64,
    /// With p_align above the page size: where the anonymous reservation
    /// landed and whether it happened to be aligned already (then ld.so has
    /// no slack below the image to unmap, and the sequence is one shorter).
    reservation: Option<(u64, u64)>,
}

impl Sequence {
    fn reservation_was_aligned(&self) -> bool {
        self.reservation
            .is_some_and(|(start, _)| start == self.base)
    }
}

/// Cuts the calls for `path` out of a trace: from its successful openat to
/// the close of that descriptor, plus every later mprotect inside the image
/// (RELRO, after relocation) in the same process. Then normalises:
///
/// * addresses become `base+0x…` (base: the lowest file-backed mapping);
/// * an anonymous reservation's address becomes `RESERVATION`, and the
///   lengths of the slack unmapped below and above the aligned image (which
///   depend on where the kernel put the reservation) are named, provided
///   they are exactly what is left of the reservation;
/// * the descriptor becomes `FD`;
/// * strace's padding before ` = ` goes.
fn object_sequence(calls: &[Call], path: &str) -> Result<Sequence, String> {
    let quoted = format!("\"{path}\"");
    let open_at = calls
        .iter()
        .position(|c| c.name == "openat" && c.arg(1) == quoted && c.ret().is_some())
        .ok_or_else(|| format!("no successful openat of {quoted}"))?;
    let pid = calls[open_at].pid;
    let fd = calls[open_at].result.clone();
    let mine = |c: &&Call| c.pid == pid;
    let close_at = calls[open_at..]
        .iter()
        .position(|c| c.pid == pid && c.name == "close" && c.arg(0) == fd)
        .map(|i| open_at + i)
        .ok_or_else(|| format!("{path}: no close({fd}) after its openat"))?;
    let span: Vec<&Call> = calls[open_at..=close_at].iter().filter(mine).collect();
    let mapping_len = span.len();

    let file_maps: Vec<(u64, u64)> = span
        .iter()
        .filter(|c| c.name == "mmap" && c.arg(4) == fd)
        .filter_map(|c| Some((c.ret()?, number(c.arg(1))?)))
        .collect();
    let &(first_start, first_len) = file_maps
        .first()
        .ok_or_else(|| format!("{path}: no mmap of fd {fd}"))?;
    let base = file_maps.iter().map(|m| m.0).min().unwrap_or(first_start);
    let image = first_start..first_start + first_len;

    // An anonymous PROT_NONE mapping before the first file mapping.
    let reservation = span
        .iter()
        .take_while(|c| !(c.name == "mmap" && c.arg(4) == fd))
        .find(|c| c.name == "mmap" && c.arg(4) == "-1" && c.arg(2) == "PROT_NONE")
        .and_then(|c| Some((c.ret()?, number(c.arg(1))?)));

    let later = calls[close_at + 1..]
        .iter()
        .filter(mine)
        .filter(|c| c.name == "mprotect" && number(c.arg(0)).is_some_and(|a| image.contains(&a)));

    let rel = |a: u64| {
        if a >= base {
            format!("base+{:#x}", a - base)
        } else {
            format!("base-{:#x}", base - a)
        }
    };
    let lines = span
        .into_iter()
        .chain(later)
        .map(|c| {
            let mut c = c.clone();
            let addr = number(c.arg(0));
            match c.name.as_str() {
                "openat" => c.result = "FD".into(),
                "read" | "pread64" | "newfstatat" | "close" if c.arg(0) == fd => {
                    c.args[0] = "FD".into()
                }
                "mmap" => {
                    if c.arg(4) == fd {
                        c.args[4] = "FD".into();
                    }
                    if let Some(a) = addr {
                        c.args[0] = rel(a);
                    }
                    let is_reservation =
                        reservation.is_some_and(|(r, _)| c.ret() == Some(r) && c.arg(4) == "-1");
                    match c.ret() {
                        Some(_) if is_reservation => c.result = "RESERVATION".into(),
                        Some(r) => c.result = rel(r),
                        None => {}
                    }
                }
                "munmap" => {
                    if let (Some(a), Some(len)) = (addr, number(c.arg(1))) {
                        match reservation {
                            Some((r, _)) if a == r && a + len == base => {
                                c.args = vec!["RESERVATION".into(), "<up to base>".into()];
                            }
                            Some((r, rlen)) if a > r && a + len == r + rlen => {
                                c.args = vec![rel(a), "<to the end of the reservation>".into()];
                            }
                            _ => c.args[0] = rel(a),
                        }
                    }
                }
                "mprotect" => {
                    if let Some(a) = addr {
                        c.args[0] = rel(a);
                    }
                }
                _ => {}
            }
            c.render()
        })
        .collect();
    Ok(Sequence {
        lines,
        mapping_len,
        base,
        reservation,
    })
}

// ---------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------

/// A line diff (longest common subsequence): `-` only in `a`, `+` only in
/// `b`, two spaces in both.
fn diff(a: &[String], b: &[String]) -> String {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            let _ = writeln!(out, "  {}", a[i]);
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
        }
    }
    out
}

fn numbered(lines: &[String]) -> String {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("  {:>3}  {l}\n", i + 1))
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Same system calls as ld.so
// ---------------------------------------------------------------------------

/// Loads `path` with ld.so and with minld and compares the normalised calls.
/// Retried when either reservation was aligned by chance (ld.so then skips
/// the unmap of the slack below the image, and so does minld, but not both
/// in the same run). Ok holds a note when only the mapping could be
/// compared; Err the report of a difference.
fn compare_with_ld_so(path: &str) -> Result<Option<String>, String> {
    for _attempt in 0..5 {
        let mut glibc =
            object_sequence(&run_ld_so(path).calls, path).unwrap_or_else(|e| panic!("ld.so: {e}"));
        let (minld_run, note) = match run_minld(path) {
            MinldRun::Loaded(run) => (run, None),
            MinldRun::MappedOnly { run, why } => {
                // Nothing was relocated, so there is no RELRO mprotect:
                // compare what ld.so did up to the close.
                glibc.lines.truncate(glibc.mapping_len);
                (
                    run,
                    Some(format!(
                        "{path}: only the mapping compared, minld does not link it: {why}"
                    )),
                )
            }
        };
        let minld =
            object_sequence(&minld_run.calls, path).unwrap_or_else(|e| panic!("minld: {e}"));
        if glibc.reservation_was_aligned() || minld.reservation_was_aligned() {
            continue;
        }
        if glibc.reservation.is_some() || minld.reservation.is_some() {
            // The point of the reservation: both put the image at a
            // p_align-aligned address.
            let align = max_p_align(path);
            for (who, s) in [("ld.so", &glibc), ("minld", &minld)] {
                assert_eq!(
                    s.base % align,
                    0,
                    "{path}: {who} put the image at {:#x}, not {align:#x}-aligned",
                    s.base
                );
            }
        }
        if glibc.lines == minld.lines {
            eprintln!("{path}: {} calls, the same as ld.so's", minld.lines.len());
            if std::env::var_os("STRACE_TEST_SHOW").is_some() {
                eprint!("{}", numbered(&minld.lines));
            }
            return Ok(note);
        }
        return Err(format!(
            "{path}: minld's system calls differ from ld.so's (normalised){}\n\
             ld.so ({} calls):\n{}minld ({} calls):\n{}diff (- ld.so only, + minld only):\n{}",
            note.map(|n| format!("\n({n})")).unwrap_or_default(),
            glibc.lines.len(),
            numbered(&glibc.lines),
            minld.lines.len(),
            numbered(&minld.lines),
            diff(&glibc.lines, &minld.lines)
        ));
    }
    panic!("{path}: the reservation was aligned by chance five times in a row");
}

/// The largest p_align of the PT_LOAD headers of a file.
fn max_p_align(path: &str) -> u64 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let elf = goblin::elf::Elf::parse(&bytes).unwrap_or_else(|e| panic!("parse {path}: {e}"));
    elf.program_headers
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD)
        .map(|p| p.p_align)
        .max()
        .unwrap_or(4096)
        .max(4096)
}

/// minld opens, reads, stats, maps, protects and closes each library with
/// exactly the system calls ld.so makes, in the same order and with the same
/// arguments (addresses relative to the load base): the 832-byte header
/// read, the fstat, the reservation and every segment, the holes, the
/// alignment slack, .bss, and the RELRO mprotect after relocation. Real
/// system libraries and the test-libs with unusual layouts.
#[test]
fn same_system_calls_as_ld_so() {
    let test_libs: Vec<String> = MAPPING_TEST_LIBS
        .iter()
        .map(|n| test_lib(n).to_string_lossy().into_owned())
        .collect();
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for path in SYSTEM_LIBS
        .iter()
        .copied()
        .chain(test_libs.iter().map(String::as_str))
    {
        assert!(
            Path::new(path).exists(),
            "{path} is missing (.ci/run installs it)"
        );
        match compare_with_ld_so(path) {
            Ok(None) => checked.push(path),
            Ok(Some(note)) => {
                eprintln!("note: {note}");
                checked.push(path);
            }
            Err(report) => failures.push(report),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} libraries differ (same: {checked:?})\n\n{}",
        failures.len(),
        failures.len() + checked.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// 2. minld's trace is what strace saw
// ---------------------------------------------------------------------------

/// A line of minld's trace without its `  # note`, trailing spaces trimmed;
/// None when the line is not a traced system call.
fn trace_line(line: &str) -> Option<String> {
    let open = line.find('(')?;
    if !TRACED.contains(&&line[..open]) {
        return None;
    }
    let end = call_end(line)?;
    let rest = &line[end..];
    let rest = rest.find("  # ").map_or(rest, |i| &rest[..i]);
    Some(format!("{}{}", &line[..end], rest).trim_end().to_string())
}

/// Runs the example with `--trace` under strace and checks every trace line
/// minld printed is, character for character (strace's column padding
/// included), a line strace printed. Returns how many lines were checked.
///
/// strace runs without `-f` here: with `-f` it prefixes each line with the
/// pid and pads the result to column 40 counting that prefix. The example
/// makes its calls on its main thread, which strace follows without `-f`.
fn check_trace_against_strace(lib: &str) -> usize {
    check_trace_with(lib, &[])
}

/// [`check_trace_against_strace`] with variables `env` set.
fn check_trace_with(lib: &str, env: &[(&str, &Path)]) -> usize {
    let run = run_traced_with(
        false,
        &example("dlopen"),
        &[OsStr::new("--trace"), OsStr::new(lib)],
        env,
    );
    assert!(
        run.stdout.contains("loaded "),
        "{}",
        run.describe(&format!("dlopen --trace {lib}"))
    );
    let seen: Vec<&str> = run
        .strace_lines
        .iter()
        .map(|l| strip_pid(l).1.trim_end())
        .collect();
    let traced: Vec<String> = run.stderr.lines().filter_map(trace_line).collect();
    let missing: Vec<&String> = traced
        .iter()
        .filter(|l| !seen.contains(&l.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{lib}: {} of minld's {} trace lines are not in strace's output:\n{}\n--- minld's stderr\n{}--- strace's output\n{}",
        missing.len(),
        traced.len(),
        missing.iter().map(|l| format!("  {l}\n")).collect::<String>(),
        run.stderr,
        run.strace_lines.iter().map(|l| format!("{l}\n")).collect::<String>()
    );
    eprintln!(
        "{lib}: all {} trace lines are in strace's output",
        traced.len()
    );
    traced.len()
}

/// `--trace` prints each system call exactly as strace does (same
/// formatting of strings, flags, modes and results, same padding), with the
/// values actually passed and returned: for libz by path, and for `libm.so`,
/// Debian's linker script, found through the search and ld.so.cache.
#[test]
fn trace_lines_are_what_strace_saw() {
    let n = check_trace_against_strace(LIBZ);
    assert!(n >= 8, "only {n} trace lines for libz");
    let n = check_trace_against_strace("libm.so");
    assert!(n >= 8, "only {n} trace lines for libm.so");
}

/// A library with initial-exec TLS: the memfd minld writes the stub object
/// into, for glibc's dlopen to reserve the block in its static TLS, is
/// traced as strace saw it (the name, the flags, the bytes written).
#[test]
fn the_static_tls_stubs_calls_are_traced_as_strace_saw_them() {
    let lib = test_lib("libtls_ie.so");
    let lib = lib.to_str().unwrap();
    let run = run_traced_with(
        false,
        &example("dlopen"),
        &[OsStr::new("--trace"), OsStr::new(lib)],
        &[],
    );
    assert!(
        run.stderr
            .contains("memfd_create(\"minld-static-tls:libtls_ie.so\", MFD_CLOEXEC)"),
        "{}",
        run.describe("dlopen --trace libtls_ie.so")
    );
    // glibc's dlopen of the stub makes system calls minld does not trace:
    // one `# ` line says so, with its result, and is no system call line.
    let note: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("# not traced: glibc's dlopen(\"/proc/self/fd/"))
        .collect();
    assert_eq!(note.len(), 1, "{}", run.describe("the untraced note"));
    assert!(
        note[0].contains("RTLD_NOW|RTLD_LOCAL) ran here")
            && note[0].contains("are not in this trace")
            && note[0].ends_with("(a handle)"),
        "{}",
        note[0]
    );
    assert_eq!(trace_line(note[0]), None, "taken for a system call");
    // The calls it made are strace's alone: the stub's open by its
    // /proc/self/fd name is in strace's output, not in minld's trace.
    let fd_open = |l: &&str| l.contains("openat(AT_FDCWD, \"/proc/self/fd/");
    assert!(run
        .strace_lines
        .iter()
        .map(String::as_str)
        .any(|l| fd_open(&l)));
    assert!(!run.stderr.lines().any(|l| fd_open(&l)));
    let n = check_trace_against_strace(lib);
    assert!(n >= 8, "only {n} trace lines for libtls_ie.so");
}

/// The link cache's system calls are traced as strace sees them too: the
/// directory created, the record's temporary file written and renamed on
/// the first load, the record read on the second.
#[test]
fn the_link_caches_calls_are_traced_as_strace_saw_them() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("trace-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let env = [("MINLD_CACHE", dir.as_path())];
    let first = check_trace_with("libsqlite3.so.0", &env);
    let second = check_trace_with("libsqlite3.so.0", &env);
    assert!(
        first >= 8 && second >= 8,
        "{first} and {second} trace lines"
    );
    let records = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(records, 1, "one record in {}", dir.display());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// 3. --maps
// ---------------------------------------------------------------------------

/// The /proc/self/maps lines ld.so would leave for a file once relocated:
/// `(offset from the first page, perms, file offset)` per mapping, each
/// PT_LOAD page-rounded, the start of the writable one read-only when
/// PT_GNU_RELRO covers it.
fn expected_maps(path: &str) -> Vec<(u64, String, u64)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let elf = goblin::elf::Elf::parse(&bytes).unwrap_or_else(|e| panic!("parse {path}: {e}"));
    let page = 4096u64;
    let down = |x: u64| x & !(page - 1);
    let relro = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == ph::PT_GNU_RELRO);
    let mut out = Vec::new();
    for p in elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD)
    {
        let perms = format!(
            "{}{}{}p",
            if p.is_read() { 'r' } else { '-' },
            if p.is_write() { 'w' } else { '-' },
            if p.is_executable() { 'x' } else { '-' }
        );
        let (start, off) = (down(p.p_vaddr), down(p.p_offset));
        let file_end = (p.p_vaddr + p.p_filesz + page - 1) & !(page - 1);
        let relro_end = relro
            .filter(|r| down(r.p_vaddr) == start)
            .map(|r| down(r.p_vaddr + r.p_memsz));
        match relro_end {
            Some(end) if end > start => {
                out.push((start, "r--p".to_string(), off));
                if file_end > end {
                    out.push((end, perms, off + (end - start)));
                }
            }
            _ => out.push((start, perms, off)),
        }
    }
    out
}

/// `--maps` shows the loaded library's lines of /proc/self/maps: one per
/// segment with the segment's protections and page-rounded file offset
/// (libz's code, r-xp, from its executable PT_LOAD's p_offset), the start
/// of the data segment read-only after RELRO, each at its p_vaddr from the
/// load base.
#[test]
fn maps_flag_shows_the_segments() {
    let out = Command::new(example("dlopen"))
        .args(["--maps", LIBZ])
        .env_remove("MINLD_TRACE")
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!(
        "{}\n--- stdout\n{stdout}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let base = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("loaded ")?
                .rsplit_once(" at ")
                .and_then(|(_, a)| number(a))
        })
        .unwrap_or_else(|| panic!("no `loaded PATH at ADDR` line: {context}"));
    assert!(
        stdout.contains("/proc/self/maps of the loaded object:"),
        "{context}"
    );
    let real = std::fs::canonicalize(LIBZ).expect("canonicalize libz");
    let real = real.to_string_lossy();

    // `  start-end perms offset dev inode path`
    let mut seen: Vec<(u64, String, u64)> = Vec::new();
    for line in stdout
        .lines()
        .filter(|l| l.trim_end().ends_with(real.as_ref()))
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let start = f[0]
            .split_once('-')
            .and_then(|(s, _)| u64::from_str_radix(s, 16).ok());
        let offset = u64::from_str_radix(f[2], 16).ok();
        let (Some(start), Some(offset)) = (start, offset) else {
            panic!("bad maps line {line:?}: {context}")
        };
        seen.push((start - base, f[1].to_string(), offset));
    }
    let expected = expected_maps(LIBZ);
    for perms in ["r--p", "r-xp", "rw-p"] {
        assert!(
            seen.iter().any(|s| s.1 == perms),
            "no {perms} line for {real}: {context}"
        );
    }
    let bytes = std::fs::read(LIBZ).expect("read libz");
    let elf = goblin::elf::Elf::parse(&bytes).expect("parse libz");
    let code = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == ph::PT_LOAD && p.is_executable())
        .expect("libz has an executable PT_LOAD");
    let code_off = code.p_offset & !0xfff;
    assert!(
        seen.iter().any(|s| s.1 == "r-xp" && s.2 == code_off),
        "no r-xp line at file offset {code_off:08x}: {context}"
    );
    let show = |v: &[(u64, String, u64)]| -> Vec<String> {
        v.iter()
            .map(|(s, p, o)| format!("base+{s:#x} {p} {o:08x}"))
            .collect()
    };
    assert_eq!(
        show(&seen),
        show(&expected),
        "maps lines of {real} (left: shown, right: from the program headers)\n{context}"
    );
}

// ---------------------------------------------------------------------------
// 4. MINLD_TRACE
// ---------------------------------------------------------------------------

/// `MINLD_TRACE=1` turns the trace on without `--trace`; without it the
/// example prints no trace at all.
#[test]
fn minld_trace_env_var() {
    let run = |trace: bool| {
        let mut cmd = Command::new(example("dlopen"));
        cmd.arg(LIBZ).env_remove("MINLD_TRACE");
        if trace {
            cmd.env("MINLD_TRACE", "1");
        }
        let out = cmd.output().expect("run the example");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            stdout.contains("loaded "),
            "{}\n{stdout}{stderr}",
            out.status
        );
        stderr
    };
    let traced = run(true);
    let lines: Vec<String> = traced.lines().filter_map(trace_line).collect();
    let open = format!("openat(AT_FDCWD, \"{LIBZ}\", O_RDONLY|O_CLOEXEC) = ");
    assert!(
        lines.iter().any(|l| l.starts_with(&open)),
        "no {open}… in\n{traced}"
    );
    assert!(
        traced
            .lines()
            .any(|l| l.starts_with("mmap(") && l.contains("  # libz.so.1 segment")),
        "no annotated mmap of libz in\n{traced}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("mprotect(")),
        "no RELRO mprotect in\n{traced}"
    );

    let quiet = run(false);
    let stray: Vec<String> = quiet.lines().filter_map(trace_line).collect();
    assert!(
        stray.is_empty(),
        "trace lines without MINLD_TRACE:\n{quiet}"
    );
}

// ---------------------------------------------------------------------------
// The helpers themselves, on canned strace output
// ---------------------------------------------------------------------------

/// ld.so loading libhole.so (p_align 0x10000), as `strace -f` printed it,
/// with a dependency's RELRO after it and a call split by another thread.
const CANNED: &str = r#"7647  openat(AT_FDCWD, "/t/libhole.so", O_RDONLY|O_CLOEXEC) = 3
7647  read(3, "\177ELF\2\1\1\0\0\0\0\0\0\0\0\0\3\0>\0\1\0\0\0\0\0\0\0\0\0\0\0"..., 832) = 832
7647  newfstatat(3, "", {st_mode=S_IFREG|0755, st_size=200328, ...}, AT_EMPTY_PATH) = 0
7647  mmap(NULL, 327696, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f30efdf8000
7647  mmap(0x7f30efe00000, 262160, PROT_READ, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0) = 0x7f30efe00000
7647  munmap(0x7f30efdf8000, 32768)     = 0
7648  read(5,  <unfinished ...>
7647  munmap(0x7f30efe41000, 28688)     = 0
7648  <... read resumed>"a, \"b\"", 10) = 6
7647  mprotect(0x7f30efe01000, 253952, PROT_NONE) = 0
7647  mmap(0x7f30efe10000, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x10000) = 0x7f30efe10000
7647  close(3)                          = 0
7647  mprotect(0x7f30ef000000, 4096, PROT_READ) = 0
7647  mprotect(0x7f30efe3f000, 4096, PROT_READ) = 0
7647  +++ exited with 0 +++
"#;

/// The parser strips pids and padding, joins an interrupted call again and
/// splits arguments at top-level commas only (not inside strings or structs).
#[test]
fn strace_output_is_parsed() {
    let calls = parse_strace(CANNED);
    assert_eq!(calls.len(), 13, "{calls:#?}");
    assert_eq!(calls[0].pid, Some(7647));
    assert_eq!(calls[2].args.len(), 4, "{:?}", calls[2].args);
    assert_eq!(
        calls[2].arg(2),
        "{st_mode=S_IFREG|0755, st_size=200328, ...}"
    );
    let resumed = calls
        .iter()
        .find(|c| c.pid == Some(7648))
        .expect("the resumed read");
    assert_eq!(resumed.args, ["5", r#""a, \"b\"""#, "10"]);
    assert_eq!(resumed.result, "6");
    assert_eq!(calls[10].render(), "close(3) = 0");
    assert_eq!(
        trace_line("close(3)                                = 0  # a note"),
        Some("close(3)                                = 0".to_string())
    );
    assert_eq!(trace_line("dlopen: undefined symbol: cos"), None);
}

/// Normalisation: base-relative addresses, `FD`, the reservation and its
/// slack named, other processes and mprotects outside the image dropped.
#[test]
fn a_load_is_cut_out_and_normalised() {
    let seq = object_sequence(&parse_strace(CANNED), "/t/libhole.so").expect("sequence");
    let expected = [
        r#"openat(AT_FDCWD, "/t/libhole.so", O_RDONLY|O_CLOEXEC) = FD"#,
        r#"read(FD, "\177ELF\2\1\1\0\0\0\0\0\0\0\0\0\3\0>\0\1\0\0\0\0\0\0\0\0\0\0\0"..., 832) = 832"#,
        r#"newfstatat(FD, "", {st_mode=S_IFREG|0755, st_size=200328, ...}, AT_EMPTY_PATH) = 0"#,
        "mmap(NULL, 327696, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = RESERVATION",
        "mmap(base+0x0, 262160, PROT_READ, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, FD, 0) = base+0x0",
        "munmap(RESERVATION, <up to base>) = 0",
        "munmap(base+0x41000, <to the end of the reservation>) = 0",
        "mprotect(base+0x1000, 253952, PROT_NONE) = 0",
        "mmap(base+0x10000, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, FD, 0x10000) = base+0x10000",
        "close(FD) = 0",
        "mprotect(base+0x3f000, 4096, PROT_READ) = 0",
    ];
    assert_eq!(seq.lines, expected, "\n{}", numbered(&seq.lines));
    assert_eq!(seq.mapping_len, 10);
    assert_eq!(seq.base, 0x7f30efe00000);
    assert!(!seq.reservation_was_aligned());

    // A slack length that is not what is left of the reservation stays a
    // number, so a wrong munmap shows up as a difference.
    let wrong = CANNED.replace(
        "munmap(0x7f30efe41000, 28688)",
        "munmap(0x7f30efe41000, 4096)",
    );
    let seq = object_sequence(&parse_strace(&wrong), "/t/libhole.so").expect("sequence");
    assert!(
        seq.lines
            .contains(&"munmap(base+0x41000, 4096) = 0".to_string()),
        "\n{}",
        numbered(&seq.lines)
    );
    let d = diff(&expected.map(String::from), &seq.lines);
    assert!(
        d.contains("- munmap(base+0x41000, <to the end of the reservation>) = 0\n+ munmap(base+0x41000, 4096) = 0"),
        "{d}"
    );
}
