//! Review 2 of the sandbox's path judge, as regression tests: a plugin
//! thread racing the host between its judging of a path and the kernel's
//! own walk of it (the path's text, a directory in it, the dirfd), a
//! trailing `/` or `/.` the host's judging once dropped, renameat2's
//! flags, and fcntl's record locks. Each race is bounded (the plugin
//! tries at most 20,000 times) and asserts that no try succeeded.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::sandbox::{plugin, Inner, INNER_ENV};
use minld::sandbox::{Builder, Sandbox, SandboxError};

/// atk_escape with the functions these tests call.
fn builder() -> Builder {
    Sandbox::builder(plugin("atk_escape"))
        .buffers(1 << 16, 1 << 16)
        .function("race")
        .function("race_dir")
        .function("race_fd")
        .function("openls")
        .function("misc")
        .function("fileop")
        .function("do_stat")
        .timeout(Duration::from_secs(120))
        .cpu_budget(Duration::from_secs(120), Duration::from_secs(120))
}

/// A fresh directory of this test (by its real path).
fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("races-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::canonicalize(d).unwrap()
}

/// Calls `f` with `op` then the `parts` joined by NULs (NUL-terminated);
/// the plugin's text answer.
fn call(sb: &mut Sandbox, f: &str, op: &str, parts: &[&[u8]]) -> Result<String, SandboxError> {
    let mut input = op.as_bytes().to_vec();
    for (i, r) in parts.iter().enumerate() {
        if i > 0 {
            input.push(0);
        }
        input.extend_from_slice(r);
    }
    input.push(0);
    sb.call(f, &input)
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// The bytes of `p`.
fn b(p: &Path) -> &[u8] {
    p.as_os_str().as_encoded_bytes()
}

/// Spawns `bld`, opted out of Landlock where `without_landlock`.
fn spawn(bld: Builder, without_landlock: bool) -> Sandbox {
    match without_landlock {
        true => bld.allow_without_landlock().spawn().unwrap(),
        false => bld.spawn().unwrap(),
    }
}

/// Finding 1: the three races on an `O_PATH` open of a granted path (the
/// text flipped between `<g>/.x/../..` and `<g>/../..`, a directory made
/// and removed in a read-write grant, fd 50 switched between the grant
/// and the public zoneinfo directory). Landlock never judges O_PATH, so
/// such an open is refused by the host, whatever the path: no try gets a
/// descriptor of /etc/passwd.
#[test]
fn o_path_races_never_open_a_file_outside() {
    if std::env::var(INNER_ENV).is_ok() {
        return;
    }
    let g = scratch("opath");
    let ups = "../".repeat(g.components().count() + 1);
    let a = format!("{}/.x/{ups}etc/passwd", g.display());
    let bb = format!("{}/../{ups}etc/passwd", g.display());
    let mut sb = spawn(builder().read_write(&g).refuse_forbidden_paths(), false);
    let got = call(&mut sb, "race", "p", &[a.as_bytes(), bb.as_bytes()]).unwrap();
    assert!(got.starts_with("tries=20000 rc=-13"), "string race: {got}");
    let d = g.join("d");
    let p = format!("{}/d/{ups}etc/passwd", g.display());
    let got = call(&mut sb, "race_dir", "p", &[b(&d), p.as_bytes()]).unwrap();
    assert!(got.starts_with("tries=20000 rc=-13"), "dir race: {got}");
    let got = call(
        &mut sb,
        "race_fd",
        "",
        &[b(&g), b"Etc/../../../../etc/passwd"],
    )
    .unwrap();
    assert!(
        got.starts_with("tries=20000 fd=-1 errno=13"),
        "fd race: {got}"
    );
    let _ = std::fs::remove_dir_all(&g);
}

/// Finding 1, no race: an O_PATH open of a file in a grant is a
/// forbidden open (refused with EACCES and recorded, or the runner
/// killed), while the same file opens for reading.
#[test]
fn an_o_path_open_of_a_granted_file_is_forbidden() {
    if std::env::var(INNER_ENV).is_ok() {
        return;
    }
    let g = scratch("opath1");
    std::fs::write(g.join("f"), b"data").unwrap();
    let f = g.join("f");
    let mut sb = spawn(builder().read_only(&g).refuse_forbidden_paths(), false);
    assert_eq!(call(&mut sb, "openls", "P", &[b(&f)]).unwrap(), "-13");
    let refused = sb.take_refused();
    assert_eq!(refused.calls.len(), 1, "{refused:?}");
    let read = call(&mut sb, "openls", "f", &[b(&f)]).unwrap();
    assert!(read.ends_with("read=data"), "{read}");
    let mut sb = spawn(builder().read_only(&g), false);
    match call(&mut sb, "openls", "P", &[b(&f)]) {
        Err(SandboxError::ForbiddenOpen { path, flags }) => {
            assert_eq!(path, f);
            assert_ne!(flags & libc::O_PATH, 0);
        }
        other => panic!("not killed for the O_PATH open: {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&g);
}

/// Finding 2: links `l -> /etc`, `f -> /etc/passwd`, `n -> /etc/no-such`
/// in a read-write grant, named with a trailing `/` or `/.`: the kernel
/// follows them (O_NOFOLLOW or not, readlink too), so the host judges
/// them as followed, out of the grant: EACCES for every call, with
/// Landlock or without. The cases and their answers.
fn trailing(without_landlock: bool) -> Vec<(String, String)> {
    let g = scratch(&format!("trail{}", without_landlock as u8));
    std::os::unix::fs::symlink("/etc", g.join("l")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", g.join("f")).unwrap();
    std::os::unix::fs::symlink("/etc/no-such-xyz", g.join("n")).unwrap();
    let mut sb = spawn(builder().read_write(&g), without_landlock);
    let mut out = Vec::new();
    for (f, op, p) in [
        ("openls", "n", "l/"),
        ("openls", "n", "l/."),
        ("openls", "n", "l/.."),
        ("openls", "f", "f/"),
        ("fileop", "l", "l/"),
        ("fileop", "l", "l/."),
        ("fileop", "l", "f/"),
        ("fileop", "l", "n/"),
        ("fileop", "a", "l/"),
        ("fileop", "m", "n/"),
        ("do_stat", "", "l/"),
        ("do_stat", "", "l/."),
    ] {
        let path = format!("{}/{p}", g.display());
        let got = call(&mut sb, f, op, &[path.as_bytes()]).unwrap_or_else(|e| format!("{e}"));
        out.push((format!("{f} {op} {p}"), got));
    }
    let _ = std::fs::remove_dir_all(&g);
    out
}

/// Finding 2 with Landlock.
#[test]
fn a_trailing_slash_follows_the_link_with_landlock() {
    if std::env::var(INNER_ENV).is_ok() {
        return;
    }
    for (case, got) in trailing(false) {
        assert_eq!(got, "-13", "{case}");
    }
}

/// Finding 2 without Landlock (an inner host whose
/// landlock_create_ruleset answers ENOSYS, opted in): no listing of /etc.
#[test]
fn a_trailing_slash_follows_the_link_without_landlock() {
    if let Ok(mode) = std::env::var(INNER_ENV) {
        if mode == "trailing" {
            for (case, got) in trailing(true) {
                println!("RESULT {case}: {got}");
            }
            println!("RESULT end");
        }
        return;
    }
    let inner = Inner::without_landlock(
        "a_trailing_slash_follows_the_link_without_landlock",
        "trailing",
        libc::ENOSYS,
    );
    let mut seen = 0;
    loop {
        let line = inner.line("RESULT ", Duration::from_secs(120));
        match line.as_deref() {
            Some("end") => break,
            Some(l) => {
                assert!(l.ends_with(": -13"), "{l}");
                seen += 1;
            }
            None => panic!("the inner host printed no end"),
        }
    }
    assert_eq!(seen, 12);
    let (st, err) = inner.finish(Duration::from_secs(30));
    assert!(st.success(), "{st}: {err}");
}

/// Finding 2 in the public set: a trailing `/` after a file is the
/// kernel's ENOTDIR (the host once answered for the file).
#[test]
fn a_trailing_slash_after_a_public_file_is_not_a_directory() {
    if std::env::var(INNER_ENV).is_ok() {
        return;
    }
    if std::fs::metadata("/etc/localtime").is_err() {
        eprintln!("skipped: this machine has no /etc/localtime");
        return;
    }
    let mut sb = spawn(builder().refuse_forbidden_paths(), false);
    assert_eq!(
        call(&mut sb, "do_stat", "", &[b"/etc/localtime/"]).unwrap(),
        "-20"
    );
    assert_eq!(
        call(&mut sb, "fileop", "l", &[b"/etc/localtime/"]).unwrap(),
        "-20"
    );
    assert_eq!(
        call(&mut sb, "openls", "f", &[b"/etc/localtime/"]).unwrap(),
        "-20"
    );
    let dir = call(&mut sb, "do_stat", "", &[b"/usr/share/zoneinfo/"]).unwrap();
    assert!(!dir.starts_with('-'), "{dir}");
}

/// Finding 4: renameat2 with RENAME_WHITEOUT is EINVAL (it would leave a
/// character device where the file was); RENAME_EXCHANGE still works in
/// a read-write grant.
#[test]
fn renameat2_makes_no_whiteout() {
    if std::env::var(INNER_ENV).is_ok() {
        return;
    }
    let g = scratch("whiteout");
    let f = g.join("f");
    std::fs::write(&f, b"x").unwrap();
    let mut sb = spawn(builder().read_write(&g), false);
    assert_eq!(call(&mut sb, "misc", "w", &[b(&f)]).unwrap(), "-1 22");
    let st = std::fs::symlink_metadata(&f).unwrap();
    assert!(st.file_type().is_file(), "{st:?}");
    assert!(!g.join("f.w").exists());
    std::fs::write(g.join("f.x"), b"yy").unwrap();
    assert_eq!(call(&mut sb, "misc", "x", &[b(&f)]).unwrap(), "0 0");
    assert_eq!(std::fs::read(&f).unwrap(), b"yy");
    let _ = std::fs::remove_dir_all(&g);
}

/// Finding 5: fcntl's record locks on a file in a grant work (SQLite
/// needs them); the runner lives on.
#[test]
fn record_locks_are_allowed() {
    if std::env::var(INNER_ENV).is_ok() {
        return;
    }
    let g = scratch("locks");
    let f = g.join("f");
    std::fs::write(&f, b"x").unwrap();
    let mut sb = spawn(builder().read_write(&g), false);
    assert_eq!(call(&mut sb, "misc", "k", &[b(&f)]).unwrap(), "0 0");
    assert_eq!(call(&mut sb, "misc", "k", &[b(&f)]).unwrap(), "0 0");
    let _ = std::fs::remove_dir_all(&g);
}
