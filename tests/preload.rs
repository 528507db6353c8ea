//! The drop-in `<dlfcn.h>` (`preload/`, `libminld_preload.so`): real
//! programs run with `LD_PRELOAD` of it, each case in a process of its
//! own. `test-libs/dl_host.c` is a C program using `<dlfcn.h>` as any
//! program does; each of its cases is also run without the preload, so
//! that glibc's answer is the reference. Python's extension modules are
//! imported through it with `MINLD_TRACE=1`.
//!
//! The preload is built here (`cargo build -p minld-preload`, a debug
//! build, in a target directory of its own so that it never waits for the
//! lock of the build running these tests), or taken from
//! `MINLD_PRELOAD` (e.g. the release build).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::process::rerun;

/// The preload library, built once per test binary.
fn preload() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        if let Some(p) = std::env::var_os("MINLD_PRELOAD") {
            return PathBuf::from(p);
        }
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("preload-target");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "minld-preload", "--target-dir"])
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p minld-preload");
        assert!(status.success(), "cargo build -p minld-preload failed");
        target.join("debug/libminld_preload.so")
    })
}

/// Runs `program args` with the preload (or without), `env` added.
fn run(program: &Path, args: &[&str], with_preload: bool, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(program);
    c.args(args)
        .env_remove("MINLD_TRACE")
        .env_remove("MINLD_DEBUG");
    if with_preload {
        c.env("LD_PRELOAD", preload());
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run the program")
}

/// Runs one case of `dl_host` under glibc and through minld; both must
/// pass. The output through minld.
fn host_case(case: &str) -> String {
    let host = common::libs::test_lib("dl_host");
    let glibc = run(&host, &[case], false, &[]);
    assert!(
        glibc.status.success(),
        "glibc: {case}: {}{}",
        String::from_utf8_lossy(&glibc.stdout),
        String::from_utf8_lossy(&glibc.stderr)
    );
    let minld = run(&host, &[case], true, &[("MINLD_TRACE", "1")]);
    let (out, err) = (
        String::from_utf8_lossy(&minld.stdout).into_owned(),
        String::from_utf8_lossy(&minld.stderr).into_owned(),
    );
    assert!(minld.status.success(), "minld: {case}: {out}{err}");
    // The libraries really went through minld: its trace maps them.
    assert!(
        err.contains("mmap("),
        "minld: {case}: no mmap in minld's trace: {err}"
    );
    out
}

#[test]
fn rtld_global_serves_later_loads_and_rtld_default() {
    let out = host_case("global");
    assert!(out.contains("use_global() = 42"), "{out}");
}

#[test]
fn sibling_found_through_the_callers_origin() {
    let out = host_case("origin");
    assert!(out.contains("chain_a() = 321"), "{out}");
}

#[test]
fn process_own_copies_are_returned() {
    // libc.so.6 goes to glibc; libbasic.so (linked by the program) is
    // found by minld and is the program's copy: nothing of it is mapped
    // again. (Not host_case: nothing here is minld's to map.)
    let host = common::libs::test_lib("dl_host");
    let out = run(&host, &["own"], true, &[("MINLD_TRACE", "1")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !err.lines()
            .any(|l| l.contains("mmap(") && l.contains("libbasic.so")),
        "libbasic.so mapped again: {err}"
    );
    assert!(
        err.contains("libbasic.so"),
        "minld never looked at libbasic.so: {err}"
    );
}

#[test]
fn destructor_runs_at_exit_once() {
    let out = host_case("dtor");
    assert_eq!(out.matches("dl_dtor: destructor ran").count(), 1, "{out}");
    assert!(
        out.find("exiting without dlclose") < out.find("destructor ran"),
        "{out}"
    );
}

#[test]
fn dl_iterate_phdr_lists_minlds_objects() {
    let out = host_case("phdr");
    assert!(out.contains("phdr: adds"), "{out}");
}

#[test]
fn dlerror_is_per_thread_and_read_once() {
    let out = host_case("dlerror");
    // minld's details follow glibc's words: the paths it tried.
    assert!(out.contains("tried: "), "{out}");
}

#[test]
fn two_threads_open_at_once() {
    let out = host_case("threads");
    assert!(out.contains("threads: 2 x 20 opens"), "{out}");
    assert_eq!(out.matches("dl_dtor: destructor ran").count(), 20, "{out}");
}

/// Python's extension modules, imported through minld: the imports work
/// and minld's trace maps each module that is a file.
#[test]
fn python_imports_extension_modules_through_minld() {
    let Some(python) = debian_python() else {
        eprintln!("skipped: no python3 on PATH");
        return;
    };
    let script = "import _sqlite3, _ssl, _ctypes, zlib\n\
        for m in (_sqlite3, _ssl, _ctypes, zlib): print(m.__name__, getattr(m, '__file__', 'builtin'))\n\
        print('crc', zlib.crc32(b'minld'))\n\
        import sqlite3; print('sqlite', sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0])\n";
    let glibc = run(&python, &["-c", script], false, &[]);
    assert!(glibc.status.success(), "{glibc:?}");
    let out = run(&python, &["-c", script], true, &[("MINLD_TRACE", "1")]);
    let (stdout, trace) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}{trace}");
    assert_eq!(stdout, String::from_utf8_lossy(&glibc.stdout), "{trace}");
    let mut extensions = 0;
    for line in stdout.lines().take(4) {
        let (module, file) = line.split_once(' ').expect("module and file");
        if file == "builtin" {
            eprintln!("{module} is built into this python");
            continue;
        }
        let name = Path::new(file).file_name().unwrap().to_string_lossy();
        assert!(
            trace
                .lines()
                .any(|l| l.starts_with("mmap(") && l.contains(&format!("{name} segment 0"))),
            "{module}: no mmap of {name} in minld's trace:\n{trace}"
        );
        extensions += 1;
    }
    assert!(extensions >= 2, "{stdout}");
}

/// Debian's python3 (whose extension modules are files it dlopens), else
/// the first python3 on PATH (a pyenv shim, for one, execs another build).
fn debian_python() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/bin/python3");
    debian
        .is_file()
        .then_some(debian)
        .or_else(|| which("python3"))
}

/// A program on PATH.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

#[test]
fn rtld_flags_as_glibc() {
    let out = host_case("flags");
    assert!(out.contains("flags: NOLOAD, NODELETE, DEEPBIND"), "{out}");
}

/// `MINLD_POLICY`: strict refuses a library bound lazily (the test
/// libraries are linked without `-z now`), with the report in `dlerror`;
/// a file naming the permitted directories refuses one elsewhere.
#[test]
fn minld_policy_refuses_with_the_report_in_dlerror() {
    let host = common::libs::test_lib("dl_host");
    let out = run(&host, &["policy"], true, &[("MINLD_POLICY", "strict")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("libglobal_def.so: refused by policy") && text.contains("NotBindNow"),
        "{text}"
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("preload-policy");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("permitted");
    std::fs::write(&file, "# only this one\n/nonexistent/plugins\n").unwrap();
    let out = run(
        &host,
        &["policy"],
        true,
        &[("MINLD_POLICY", file.to_str().unwrap())],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("refused by policy"), "{text}");
    assert!(text.contains("outside the permitted directories"), "{text}");
    // Without a policy it loads.
    let out = run(&host, &["policy"], true, &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("policy: loaded"));
}

#[test]
fn dlopen_from_a_constructor() {
    let out = host_case("nested");
    assert!(out.contains("dl_dtor_alive() = 5"), "{out}");
}

/// A library with initial-exec TLS (libgomp, `DF_STATIC_TLS`) opened by a
/// program through the drop-in: minld maps it and places its block in
/// glibc's static TLS; the program gets glibc's answers.
#[test]
fn initial_exec_tls_library_through_ctypes() {
    let Some(python) = debian_python() else {
        eprintln!("skipped: no python3 on PATH");
        return;
    };
    if !Path::new("/lib/x86_64-linux-gnu/libgomp.so.1").exists() {
        eprintln!("skipped: no libgomp.so.1 (Debian's libgomp1)");
        return;
    }
    let script = "import ctypes\n\
        g = ctypes.CDLL('libgomp.so.1')\n\
        print(g.omp_get_max_threads(), g.omp_get_num_procs(), g.omp_in_parallel())\n";
    let glibc = run(&python, &["-c", script], false, &[]);
    let out = run(&python, &["-c", script], true, &[("MINLD_TRACE", "1")]);
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{trace}");
    assert_eq!(out.stdout, glibc.stdout, "{trace}");
    assert!(
        trace
            .lines()
            .any(|l| l.starts_with("mmap(") && l.contains("libgomp.so.1 segment 0")),
        "{trace}"
    );
}

/// The variable that makes [`backtrace_child`] run its case.
const BACKTRACE_CHILD: &str = "MINLD_PRELOAD_BACKTRACE_CHILD";

/// Called by libctor_base.so's code (its `order_set_sink` replays the
/// recorded events through it): Rust's std backtrace from inside a
/// library the program opened, printed to stdout.
extern "C" fn backtrace_sink(_event: *const std::ffi::c_char) {
    println!("{}", std::backtrace::Backtrace::force_capture());
}

/// The child of [`rust_backtrace_names_frames_of_minlds_objects`]: this
/// test binary, a Rust program, opens libctor_base.so with `dlopen` (the
/// preload's, in the child) and takes a backtrace inside it.
#[test]
fn backtrace_child() {
    if std::env::var_os(BACKTRACE_CHILD).is_none() {
        eprintln!("backtrace_child: run by rust_backtrace_names_frames_of_minlds_objects; alone it has nothing to do");
        return;
    }
    let path = std::ffi::CString::new(common::libs::lib("libctor_base.so")).unwrap();
    // SAFETY: dlopen and dlsym with valid C strings; order_set_sink is
    // `void (*)(void (*)(const char *))`.
    unsafe {
        let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW);
        assert!(!h.is_null(), "dlopen libctor_base.so");
        let set = libc::dlsym(h, c"order_set_sink".as_ptr());
        assert!(!set.is_null(), "dlsym order_set_sink");
        let set: extern "C" fn(extern "C" fn(*const std::ffi::c_char)) = std::mem::transmute(set);
        set(backtrace_sink);
    }
}

/// Item 7 of issue 14: a Rust program's `std::backtrace` names the frames
/// of a library minld loaded (std finds the object through
/// `dl_iterate_phdr`, which reports minld's objects), as it does under
/// glibc.
#[test]
fn rust_backtrace_names_frames_of_minlds_objects() {
    let child = |with_preload: bool| {
        let mut c = rerun("backtrace_child");
        c.env(BACKTRACE_CHILD, "1").env("MINLD_TRACE", "1");
        if with_preload {
            c.env("LD_PRELOAD", preload());
        }
        let out = c.output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "{stdout}{stderr}");
        (stdout, stderr)
    };
    let (glibc, _) = child(false);
    assert!(glibc.contains("order_set_sink"), "glibc: {glibc}");
    let (minld, trace) = child(true);
    assert!(
        trace.contains("libctor_base.so segment 0"),
        "not loaded by minld: {trace}"
    );
    assert!(minld.contains("order_set_sink"), "minld: {minld}");
}

#[test]
fn dlvsym_never_answers_with_an_unversioned_definition() {
    let out = host_case("vsym");
    assert!(
        out.contains("libversioned.so: undefined symbol: vers_value, version VERS_9"),
        "{out}"
    );
}

#[test]
fn rtld_next_from_a_minld_library_names_it_on_a_miss() {
    let out = host_case("next");
    assert!(
        out.contains("libdl_next.so: undefined symbol: puts"),
        "{out}"
    );
}

#[test]
fn a_closed_handle_fails_naming_the_library() {
    // Not host_case: with glibc alone the closed handle is freed memory.
    let host = common::libs::test_lib("dl_host");
    let out = run(&host, &["closed"], true, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("closed: shared object not open: ") && stdout.contains("libchain_a.so"),
        "{stdout}"
    );
}

#[test]
fn failures_start_as_glibcs() {
    let out = host_case("errors");
    assert!(out.contains("errors: as glibc's"), "{out}");
}

/// Runs one case of `dl_host2` under glibc and through minld (with
/// `MINLD_TRACE=1`), `env` added to both; both must pass. (glibc's
/// output, minld's output, minld's trace.)
fn host2_case(case: &str, env: &[(&str, &str)]) -> (String, String, String) {
    let host = common::libs::test_lib("dl_host2");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let glibc = run(&host, &[case], false, env);
    assert!(
        glibc.status.success(),
        "glibc: {case}: {}{}",
        text(&glibc.stdout),
        text(&glibc.stderr)
    );
    let mut env = env.to_vec();
    env.push(("MINLD_TRACE", "1"));
    let minld = run(&host, &[case], true, &env);
    let (out, trace) = (text(&minld.stdout), text(&minld.stderr));
    assert!(minld.status.success(), "minld: {case}: {out}{trace}");
    (text(&glibc.stdout), out, trace)
}

/// Every `[0x…]` (an absolute address, which differs between runs) as
/// `[ADDR]`; the offsets from symbols and load biases stay.
fn without_addresses(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("[0x") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 3..];
        let end = after
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(after.len());
        out.push_str("[ADDR");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `backtrace_symbols` and `backtrace_symbols_fd` of frames inside a
/// library minld loaded print as glibc's: `file(symbol+0xoff) [0xaddr]`,
/// `file(+0xoff)` for the static function, the program's and libc's
/// frames as glibc prints them; the same lines as under glibc once the
/// absolute addresses are set aside.
#[test]
fn backtrace_symbols_name_frames_of_minlds_objects() {
    let (glibc, minld, trace) = host2_case("backtrace", &[]);
    assert!(
        trace
            .lines()
            .any(|l| l.starts_with("mmap(") && l.contains("libdl_backtrace.so segment 0")),
        "libdl_backtrace.so not loaded by minld: {trace}"
    );
    for want in [
        "libdl_backtrace.so(bt_inner+0x",
        "libdl_backtrace.so(bt_outer+0x",
        "libdl_backtrace.so(bt_via_hidden+0x",
        "libdl_backtrace.so(+0x",
        "dl_host2(+0x",
        "libc.so.6(__libc_start_main+0x",
    ] {
        // In both forms: `) [0x` (backtrace_symbols), `)[0x` (the fd one).
        for form in [") [0x", ")[0x"] {
            assert!(
                minld.lines().any(|l| l.contains(want) && l.contains(form)),
                "no line with {want:?} and {form:?}:\n{minld}"
            );
        }
    }
    assert_eq!(without_addresses(&minld), without_addresses(&glibc));
}

/// `dlinfo` `RTLD_DI_SERINFOSIZE` then `RTLD_DI_SERINFO` on minld's
/// handles: the search path for the library's dependencies, as glibc
/// gives it for the same library (RUNPATH after `LD_LIBRARY_PATH`, RPATH
/// before it, the system directories last; the counts and sizes too);
/// `RTLD_DI_CONFIGADDR` is unsupported, as by glibc.
#[test]
fn dlinfo_serinfo_gives_glibcs_search_path() {
    let (glibc, minld, trace) = host2_case(
        "serinfo",
        &[("LD_LIBRARY_PATH", "/nonexistent/minld-serinfo:/tmp:")],
    );
    assert!(
        trace
            .lines()
            .any(|l| l.starts_with("mmap(") && l.contains("librpath_a.so segment 0")),
        "librpath_a.so not loaded by minld: {trace}"
    );
    assert_eq!(minld, glibc);
    let chain = format!("  {}/chain (flags 0)", env!("MINLD_TEST_LIBS"));
    assert!(minld.contains(&chain), "{minld}");
    assert!(
        minld.contains("  /nonexistent/minld-serinfo (flags 0)\n  /tmp (flags 0)\n  . (flags 0)\n"),
        "{minld}"
    );
    assert!(
        minld.contains("configaddr: unsupported dlinfo request"),
        "{minld}"
    );
    // A buffer whose head does not match the path: refused, not written
    // past (not run under glibc, which would write past it).
    let host = common::libs::test_lib("dl_host2");
    let out = run(&host, &["serinfo_small"], true, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("libchain_a.so: RTLD_DI_SERINFO: the buffer says dls_size 32"),
        "{text}"
    );
}

/// The dlerror of a path through a regular file says `Not a directory`
/// (not ENOENT); a bare name not found is reported under that name (not a
/// path tried) when `LD_LIBRARY_PATH` has directories that cannot be
/// searched (a file, a symbolic-link loop), and one too long says so; the
/// search goes on past those directories to a library after them.
#[test]
fn dlerror_of_enotdir_and_bare_names_as_glibcs() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("preload-errors");
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("loop_a"), dir.join("loop_b"));
    for (link, to) in [(&a, &b), (&b, &a)] {
        if std::fs::symlink_metadata(link).is_err() {
            std::os::unix::fs::symlink(to, link).unwrap();
        }
    }
    let host = common::libs::test_lib("dl_host2");
    let path = format!(
        "{}:{}:{}/chain",
        host.display(),
        a.display(),
        env!("MINLD_TEST_LIBS")
    );
    let (_, minld, trace) = host2_case("errors", &[("LD_LIBRARY_PATH", &path)]);
    assert!(minld.contains("errors: as glibc's"), "{minld}");
    assert!(
        trace
            .lines()
            .any(|l| l.starts_with("mmap(") && l.contains("libchain_c.so segment 0")),
        "libchain_c.so not loaded by minld: {trace}"
    );
}

/// The program's own DT_RPATH is searched, as glibc searches it: for the
/// bare name it dlopens (the program is the caller), and for that
/// library's dependency (it has no RPATH or RUNPATH of its own, so its
/// loader's RPATH, the program's, is inherited). `dl_rpath` prints
/// "inherit_b 77" under glibc and through minld.
#[test]
fn the_programs_rpath_is_searched_and_inherited() {
    let host = common::libs::test_lib("dl_rpath");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let glibc = run(&host, &[], false, &[]);
    assert!(glibc.status.success(), "glibc: {}", text(&glibc.stdout));
    assert_eq!(text(&glibc.stdout), "inherit_b 77\n");
    let minld = run(&host, &[], true, &[("MINLD_TRACE", "1")]);
    let (out, trace) = (text(&minld.stdout), text(&minld.stderr));
    assert!(minld.status.success(), "minld: {out}{trace}");
    assert_eq!(out, "inherit_b 77\n");
    assert!(
        trace.contains("libinherit_c.so segment 0"),
        "libinherit_c.so not mapped by minld: {trace}"
    );
}

/// A library glibc loaded at startup inherits its loader's DT_RPATH for
/// what it opens: `dl_rpath2` needs `libinherit_top.so` (RPATH
/// `$ORIGIN/inherit`), whose dependency `inherit/libinherit_opener.so`
/// dlopens `libinherit_d.so`, found only through top's RPATH. "d 7" under
/// glibc and through minld.
#[test]
fn a_startup_librarys_loaders_rpath_is_searched() {
    let host = common::libs::test_lib("dl_rpath2");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let glibc = run(&host, &[], false, &[]);
    assert_eq!(text(&glibc.stdout), "d 7\n", "glibc");
    let minld = run(&host, &[], true, &[("MINLD_TRACE", "1")]);
    let (out, trace) = (text(&minld.stdout), text(&minld.stderr));
    assert_eq!(out, "d 7\n", "minld: {trace}");
    assert!(
        trace.contains("libinherit_d.so segment 0"),
        "libinherit_d.so not mapped by minld: {trace}"
    );
}
