//! Fini at exit: libraries opened and never closed run their destructors
//! when the process exits, once, dependents first, in the order glibc's
//! `_dl_fini` gives (`test-libs/ctor_*.c`); a library closed before exit
//! does not run them again.
//!
//! Each case runs in a process of its own (this test binary again), whose
//! output after it returns from `main` is what is checked.

mod common;

use common::process::rerun;

use minld::Library;

/// The variable that tells the child which case to run.
const CHILD: &str = "MINLD_EXIT_TEST_CHILD";

/// Where the libraries' events go: straight to stdout, also at exit.
extern "C" fn sink(event: *const std::ffi::c_char) {
    // SAFETY: the test libraries pass NUL-terminated static strings.
    let e = unsafe { std::ffi::CStr::from_ptr(event) }.to_bytes();
    let line = [e, b"\n"].concat();
    // SAFETY: writes a buffer of this length to stdout.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

/// Opens libctor_top.so (which needs libctor_mid and libctor_base) and
/// sends its events to stdout.
fn open_top() -> Library {
    let top = common::libs::open("libctor_top.so");
    // SAFETY: `order_set_sink` of libctor_base is `void (*)(void (*)(const char *))`.
    let set = unsafe {
        top.get::<extern "C" fn(extern "C" fn(*const std::ffi::c_char))>("order_set_sink")
    }
    .unwrap();
    set(sink);
    top
}

/// The child: runs its case, then returns from the test, so the harness
/// returns from `main` and libc's exit runs the handlers.
#[test]
fn child_entry() {
    match std::env::var(CHILD).as_deref() {
        Ok("never closed") => std::mem::forget(open_top()),
        Ok("closed") => drop(open_top()),
        _ => {
            eprintln!("child_entry: started by the other tests of this file, with {CHILD} set; alone it has nothing to do");
            return;
        }
    }
    sink(c"-- leaving main".as_ptr());
}

/// Runs case `case` in a child; its stdout's event lines.
fn events(case: &str) -> Vec<String> {
    let out = rerun("child_entry").env(CHILD, case).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{case}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| {
            l.starts_with("-- ")
                || l.contains(':') && !l.starts_with("test ") && !l.starts_with("running")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn libraries_never_closed_run_their_fini_at_exit_dependents_first() {
    let e = events("never closed");
    let at = e
        .iter()
        .position(|l| l == "-- leaving main")
        .expect("the child left main");
    // Observed with glibc 2.36 for dlopen without dlclose, then exit: the
    // atexit handler a constructor registered first (exit runs handlers
    // before _dl_fini), then each object's fini, dependents first.
    assert_eq!(
        &e[at + 1..],
        [
            "top:atexit",
            "top:dtor",
            "top:fini",
            "mid:dtor",
            "base:dtor"
        ],
        "{e:#?}"
    );
}

#[test]
fn a_library_closed_before_exit_does_not_run_its_fini_again() {
    let e = events("closed");
    let at = e
        .iter()
        .position(|l| l == "-- leaving main")
        .expect("the child left main");
    assert_eq!(
        &e[..at].iter().filter(|l| l.ends_with(":dtor")).count(),
        &3,
        "{e:#?}"
    );
    assert!(
        e[at + 1..].is_empty(),
        "ran again at exit: {:#?}",
        &e[at + 1..]
    );
}
