//! Debuggers see minld's objects: gdb, in batch mode, resolves a pending
//! breakpoint in a library minld loads, names the function in a backtrace,
//! lists the library in `info sharedlibrary`, and notices its unloading.

use std::path::PathBuf;
use std::process::Command;

/// The `dlopen` example, built by `cargo test` beside the test binaries.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/gdb-<hash> -> target/<profile>/examples/dlopen
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|p| p.join("examples").join("dlopen"))
        .unwrap()
}

#[test]
fn gdb_breaks_in_and_lists_a_library_minld_loaded() {
    let lib = format!("{}/libbasic.so", env!("MINLD_TEST_LIBS"));
    let dlopen = example();
    assert!(
        dlopen.exists(),
        "{} is missing: `cargo test` builds the examples",
        dlopen.display()
    );
    let out = Command::new("gdb")
        .args(["-batch", "-nx"])
        .args(["-ex", "set breakpoint pending on"])
        .args(["-ex", "break basic_scale"])
        .args(["-ex", "run"])
        .args(["-ex", "bt 2"])
        .args(["-ex", "info sharedlibrary"])
        .args(["-ex", "continue"])
        .arg("--args")
        .arg(&dlopen)
        .args([lib.as_str(), "basic_scale:f64(f64)", "2"])
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
    let frame0 = text
        .lines()
        .find(|l| l.starts_with("#0 "))
        .unwrap_or_else(|| panic!("no backtrace:\n{text}"));
    assert!(
        frame0.contains("basic_scale") && frame0.contains("basic.c"),
        "frame #0 names the function and its source: {frame0}\n{text}"
    );
    let listed = text
        .lines()
        .find(|l| l.ends_with(&lib))
        .unwrap_or_else(|| panic!("{lib} not in info sharedlibrary:\n{text}"));
    assert!(listed.contains("Yes"), "symbols read: {listed}");
    assert!(text.contains("basic_scale(2) = 5"), "{text}");
    assert!(
        text.contains(&format!(
            "breakpoints for unloaded shared library \"{lib}\""
        )),
        "gdb noticed the unload:\n{text}"
    );
    assert!(text.contains("exited normally"), "{text}");
}
