//! The link cache's temporary files: a writer killed between its write
//! and its rename leaves `RECORD.PID.SUFFIX.tmp` behind; the next process
//! that writes a record removes those whose writer is certainly gone (and
//! which are a minute old), and any an hour old, never one a live process
//! may still be writing, nor anything else in the directory.
//!
//! The case runs in a process of its own: the directory is pruned once
//! per process.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use minld::Loader;

use common::process::in_fresh_process;

/// A suffix as the cache writes it: 32 hex digits, `-`, a count.
const SUFFIX: &str = "00112233445566778899aabbccddeeff-0";

/// Creates `dir/name` with its mtime `age` in the past.
fn file_aged(dir: &Path, name: &str, age: Duration) -> PathBuf {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
    path
}

/// Sets the mtime of the symbolic link `path` itself `age` in the past.
fn link_aged(path: &Path, age: Duration) {
    let secs = (SystemTime::now() - age)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as libc::time_t;
    let times = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    ];
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path and two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", path.display());
}

/// A pid whose process is certainly gone: a child's, waited for.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn stale_temporaries_are_removed_and_live_ones_kept() {
    if !in_fresh_process("stale_temporaries_are_removed_and_live_ones_kept") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("minld-cache-tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let outside =
        std::env::temp_dir().join(format!("minld-cache-tmp-{}-target", std::process::id()));
    std::fs::write(&outside, b"not the cache's").unwrap();

    let (dead, me) = (dead_pid(), std::process::id());
    // The process that started this one waits for it: alive.
    // SAFETY: getppid has no preconditions.
    let live = unsafe { libc::getppid() } as u32;
    let rec = |n: u32| format!("libfoo.so-{n:016x}.minld");
    let min = |m: u64| Duration::from_secs(60 * m);
    let removed = [
        file_aged(&dir, &format!("{}.{dead}.{SUFFIX}.tmp", rec(1)), min(2)),
        file_aged(&dir, &format!("{}.{live}.{SUFFIX}.tmp", rec(2)), min(120)),
        file_aged(&dir, &format!("{}.{SUFFIX}.tmp", rec(3)), min(120)),
    ];
    let kept = [
        // A writer that may be in another pid namespace, still writing.
        file_aged(&dir, &format!("{}.{dead}.{SUFFIX}.tmp", rec(4)), min(0)),
        // A live writer, a few minutes into its write (stopped, say).
        file_aged(&dir, &format!("{}.{live}.{SUFFIX}.tmp", rec(5)), min(10)),
        // This process's own: another thread may be writing it.
        file_aged(&dir, &format!("{}.{me}.{SUFFIX}.tmp", rec(6)), min(10)),
        // A name without a pid, not clearly old.
        file_aged(&dir, &format!("{}.{SUFFIX}.tmp", rec(7)), min(10)),
        // Not the cache's temporaries.
        file_aged(&dir, "notes.tmp", min(120)),
        file_aged(&dir, &format!("{}.{dead}.tmp", rec(8)), min(120)),
    ];
    // A symbolic link named like a stale temporary: not a regular file.
    let link = dir.join(format!("{}.{dead}.{SUFFIX}.tmp", rec(9)));
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    link_aged(&link, min(120));

    // SAFETY: libz, a system library with trusted constructors.
    let l = unsafe { Loader::new().cache(&dir).open("libz.so.1") }.expect("libz");
    drop(l);

    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("libz.so.1-") && n.ends_with(".minld")),
        "no record written: {names:?}"
    );
    for p in &removed {
        assert!(!p.exists(), "{} kept: {names:?}", p.display());
    }
    for p in &kept {
        assert!(p.exists(), "{} removed: {names:?}", p.display());
    }
    assert!(link.symlink_metadata().is_ok(), "the symbolic link removed");
    assert!(outside.exists(), "the link's target removed");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&outside).unwrap();
}
