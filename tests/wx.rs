//! W^X: no page of a loaded object is ever writable and executable at once,
//! not even while text relocations are applied (bionic's rule: PROT_EXEC is
//! taken away whenever PROT_WRITE is added).
//!
//! The test re-executes itself: the inner process loads libtextrel.so with
//! `Loader::trace`, which prints every mmap and mprotect with its arguments
//! to stderr; the outer one reads them all.

mod common;

use common::process::rerun;

use std::ffi::c_int;

use common::libs::lib;
use minld::Loader;

/// Set in the inner process.
const INNER: &str = "MINLD_WX_INNER";

/// The lines of /proc/self/maps that name `file`.
fn maps_of(file: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(file))
        .map(str::to_string)
        .collect()
}

/// The inner process: load, check the relocated word, check the maps.
fn inner() {
    // SAFETY: the library's code is ours.
    let l = unsafe {
        Loader::new()
            .trace(true)
            .allow_text_relocations(true)
            .open(lib("libtextrel.so"))
    }
    .unwrap();
    // SAFETY: void *textrel_ptr(void); int textrel_target.
    unsafe {
        let ptr = l
            .get::<extern "C" fn() -> *const c_int>("textrel_ptr")
            .unwrap();
        let target = l.get::<*const c_int>("textrel_target").unwrap();
        assert_eq!(ptr(), *target);
    }
    let maps = maps_of("libtextrel.so");
    assert!(!maps.is_empty());
    for m in &maps {
        let perms = m.split_whitespace().nth(1).unwrap();
        assert!(!(perms.contains('w') && perms.contains('x')), "{m}");
    }
    println!("inner ok");
}

#[test]
fn text_relocations_never_make_a_page_writable_and_executable() {
    if std::env::var_os(INNER).is_some() {
        inner();
        return;
    }
    let out = rerun("text_relocations_never_make_a_page_writable_and_executable")
        .env(INNER, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("inner ok"),
        "inner process failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    let calls: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mmap(") || l.starts_with("mprotect("))
        .collect();
    assert!(!calls.is_empty(), "no trace: {stderr}");
    for c in &calls {
        assert!(
            !(c.contains("PROT_WRITE") && c.contains("PROT_EXEC")),
            "writable and executable at once: {c}"
        );
    }
    // The text relocation did happen: the code segment was made read-write
    // (without exec), then given back read-exec.
    let textrel: Vec<&&str> = calls
        .iter()
        .filter(|c| c.contains("libtextrel.so: text relocations"))
        .collect();
    assert!(
        textrel
            .iter()
            .any(|c| c.contains(", PROT_READ|PROT_WRITE)")),
        "{textrel:#?}"
    );
    assert!(
        textrel.iter().any(|c| c.contains(", PROT_READ|PROT_EXEC)")),
        "{textrel:#?}"
    );
}
