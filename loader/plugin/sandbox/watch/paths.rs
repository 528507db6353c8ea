//! The paths a stopped call names, as the host reads and judges them.
//!
//! A path is read from the runner's memory and made absolute against its
//! working directory or the call's `dirfd`. Its `..` components are never
//! folded by their text (only those at the start of a relative path, into
//! that directory, which the kernel names by its real path): with `a` a
//! link to `/etc`, `<grant>/a/../etc/passwd` is `/etc/passwd`, not
//! `<grant>/etc/passwd`. What the path names is found by the kernel
//! ([`beneath`]): the part below a grant, `..` and links together, walked
//! by `openat2` with RESOLVE_BENEATH from the grant itself, so that a walk
//! leaving it fails (EXDEV) whatever way it tries, and only beneath the
//! grants that give the access the call needs (for a change, the
//! read-write ones).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use super::super::landlock::Access;
use super::public::{
    fstat, openat2, OpenHow, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS,
};

/// Reads a NUL-terminated string of the runner's (at most 4 KiB).
pub(super) fn read_cstr(tid: i32, at: u64) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut addr = at;
    while out.len() < 4096 {
        // Never across a page boundary in one read: the next may be
        // unmapped while the string ends before it.
        let chunk = (4096 - (addr % 4096)) as usize;
        let mut buf = vec![0u8; chunk];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: chunk,
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: chunk,
        };
        // SAFETY: reads into our own buffer; the remote side is checked by
        // the kernel.
        let n = unsafe { libc::process_vm_readv(tid, &local, 1, &remote, 1, 0) };
        if n <= 0 {
            return None;
        }
        let got = &buf[..n as usize];
        if let Some(end) = got.iter().position(|&b| b == 0) {
            out.extend_from_slice(&got[..end]);
            return Some(out);
        }
        out.extend_from_slice(got);
        addr += n as u64;
    }
    None
}

/// Writes `len` bytes at `at` in the runner.
pub(super) fn write_mem(tid: i32, at: u64, bytes: *const u8, len: usize) -> bool {
    let local = libc::iovec {
        iov_base: bytes as *mut libc::c_void,
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: at as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: reads `len` bytes of ours; the remote side is checked by the
    // kernel.
    unsafe { libc::process_vm_writev(tid, &local, 1, &remote, 1, 0) == len as isize }
}

/// The path a call names, made absolute against the runner's working
/// directory or `dirfd`, as the module says: `.` components dropped, the
/// `..` at the start of a relative path folded into that directory (its
/// real path, as `/proc` gives it: no link in it), every other `..` kept
/// for the kernel to resolve with the links before it. With it, whether
/// its text names a directory ([`names_dir`]), which the components lose.
pub(super) fn read_path(tid: i32, dirfd: i32, at: u64) -> Option<(PathBuf, bool)> {
    use std::os::unix::ffi::OsStrExt;
    let raw = read_cstr(tid, at)?;
    let path = absolute(tid, dirfd, Path::new(std::ffi::OsStr::from_bytes(&raw)))?;
    Some((path, names_dir(&raw)))
}

/// Whether the raw text of a path ends in `/`, `/.` or `/..` (or is `.`
/// or `..`): the kernel then follows its last component, even a link with
/// `O_NOFOLLOW` or for readlink, and requires a directory there. Such a
/// path is judged as followed, never by the link itself.
pub(super) fn names_dir(raw: &[u8]) -> bool {
    raw.ends_with(b"/")
        || raw.ends_with(b"/.")
        || raw.ends_with(b"/..")
        || raw == b"."
        || raw == b".."
}

/// [`read_path`] of the text `path`.
fn absolute(tid: i32, dirfd: i32, path: &Path) -> Option<PathBuf> {
    let mut out = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        let base = if dirfd == libc::AT_FDCWD {
            format!("/proc/{tid}/cwd")
        } else {
            format!("/proc/{tid}/fd/{dirfd}")
        };
        std::fs::read_link(base).ok()?
    };
    let mut leading = true;
    for c in path.components() {
        match c {
            Component::Normal(p) => {
                leading = false;
                out.push(p);
            }
            Component::ParentDir if leading => {
                out.pop();
            }
            Component::ParentDir => out.push(".."),
            _ => {}
        }
    }
    Some(out)
}

/// Whether a grant covers `path` by its text (for writing, a read-write
/// one). Where the path really leads is [`beneath`]'s to say.
pub(super) fn granted(grants: &[(PathBuf, Access)], path: &Path, writes: bool) -> bool {
    grants
        .iter()
        .any(|(g, a)| path.starts_with(g) && (!writes || *a == Access::ReadWrite))
}

/// Whether a call on `path` (which [`granted`] covers) may go on, the
/// kernel then doing it on the path as named (the final link itself with
/// `nofollow`): where it resolves [`beneath`] a grant giving the access
/// (read-write for `writes`), or where the walk ends at a name that is not
/// there (ENOENT: a file to create, in a directory the walk reached inside
/// that grant). Otherwise the errno to answer instead: EACCES where it
/// leads out of every such grant (as Landlock answers; without Landlock
/// this is the only check), else the error the walk met, which the
/// kernel's own walk of the same path meets too.
pub(super) fn judge(
    grants: &[(PathBuf, Access)],
    path: &Path,
    writes: bool,
    nofollow: bool,
) -> Result<(), i32> {
    match beneath(grants, path, writes, nofollow) {
        Ok(_) | Err(libc::ENOENT) => Ok(()),
        Err(libc::EXDEV) => Err(libc::EACCES),
        Err(e) => Err(e),
    }
}

/// The host's own stat of `path` (not following a final symlink with
/// AT_SYMLINK_NOFOLLOW of `flags`), of the file the kernel reaches
/// [`beneath`] a grant: a path that leads out of the grant (a link to
/// `/etc`, `..` after a link) gives EACCES, as Landlock would refuse the
/// plugin's own open, never the stat of what it reaches (nor whether that
/// exists). An errno on failure.
pub(super) fn stat_beneath(
    grants: &[(PathBuf, Access)],
    path: &Path,
    flags: i32,
) -> Result<libc::stat, i32> {
    let nofollow = flags & libc::AT_SYMLINK_NOFOLLOW != 0;
    let fd = beneath(grants, path, false, nofollow).map_err(|e| match e {
        libc::EXDEV => libc::EACCES,
        e => e,
    })?;
    fstat(&fd)
}

/// An `O_PATH` descriptor of the file `path` names (the final link itself
/// with `nofollow`), resolved by the kernel beneath a grant whose text
/// covers it and that gives the access (read-write for `writes`),
/// innermost first ([`beneath_one`]). Nested grants differ only in where
/// a walk may go, so the first that resolves it holds the file. An errno
/// on failure: the first error not EXDEV (the walk stayed in that grant up
/// to it: the kernel's own walk meets it there too), else EXDEV where it
/// leads out of each, EACCES where no grant covers it.
fn beneath(
    grants: &[(PathBuf, Access)],
    path: &Path,
    writes: bool,
    nofollow: bool,
) -> Result<OwnedFd, i32> {
    let mut covering: Vec<&PathBuf> = grants
        .iter()
        .filter(|(g, a)| path.starts_with(g) && (!writes || *a == Access::ReadWrite))
        .map(|(g, _)| g)
        .collect();
    covering.sort_by_key(|g| std::cmp::Reverse(g.as_os_str().len()));
    let mut err = libc::EACCES;
    for grant in covering {
        match beneath_one(grant, path, nofollow) {
            Ok(fd) => return Ok(fd),
            Err(libc::EXDEV) if err == libc::EACCES => err = libc::EXDEV,
            Err(libc::EXDEV) => {}
            Err(e) if matches!(err, libc::EACCES | libc::EXDEV) => err = e,
            Err(_) => {}
        }
    }
    Err(err)
}

/// [`beneath`] for one grant. The grant is opened by its real path with
/// no link followed (a grant replaced by a link, by a plugin that may
/// change its parent, is EXDEV: not the grant); a grant that is a
/// directory has the rest of the path (`..` included) walked from it with
/// RESOLVE_BENEATH and RESOLVE_NO_MAGICLINKS; one that is a file covers
/// itself only (ENOTDIR below it, as the kernel answers). openat2's
/// EAGAIN (a rename elsewhere while it walked `..`) is tried again, a few
/// times.
fn beneath_one(grant: &Path, path: &Path, nofollow: bool) -> Result<OwnedFd, i32> {
    let rest = path.strip_prefix(grant).map_err(|_| libc::EACCES)?;
    let own = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    let root = openat2(libc::AT_FDCWD, grant, &own).map_err(|e| match e {
        libc::ELOOP => libc::EXDEV,
        e => e,
    })?;
    if rest.as_os_str().is_empty() {
        return Ok(root);
    }
    if fstat(&root)?.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(libc::ENOTDIR);
    }
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC | if nofollow { libc::O_NOFOLLOW } else { 0 })
            as u64,
        mode: 0,
        resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    let mut tries = 0;
    loop {
        match openat2(root.as_raw_fd(), rest, &how) {
            Err(libc::EAGAIN) if tries < 8 => tries += 1,
            got => return got,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_cover_paths_beneath() {
        let g = vec![
            (PathBuf::from("/data/in"), Access::Read),
            (PathBuf::from("/data/out"), Access::ReadWrite),
        ];
        assert!(granted(&g, Path::new("/data/in/a.txt"), false));
        assert!(!granted(&g, Path::new("/data/in/a.txt"), true));
        assert!(granted(&g, Path::new("/data/out/b"), true));
        assert!(!granted(&g, Path::new("/data/inside"), false));
        assert!(!granted(&g, Path::new("/etc/passwd"), false));
    }

    #[test]
    fn only_leading_dot_dots_fold() {
        let cwd = std::fs::canonicalize("/proc/self/cwd").unwrap();
        let me = std::process::id() as i32;
        let at = |p: &str| absolute(me, libc::AT_FDCWD, Path::new(p)).unwrap();
        assert_eq!(at("/g/a/../etc/./passwd"), Path::new("/g/a/../etc/passwd"));
        assert_eq!(at("/../g/x"), Path::new("/g/x"));
        assert_eq!(at("../x/../y"), cwd.parent().unwrap().join("x/../y"));
        assert_eq!(at("./x"), cwd.join("x"));
    }

    /// Review 2, finding 2: the text's trailing `/`, `/.` or `/..`,
    /// which the components lose, names a directory (followed).
    #[test]
    fn a_trailing_slash_names_a_directory() {
        for p in ["g/l/", "g/l/.", "g/l/..", ".", "..", "/"] {
            assert!(names_dir(p.as_bytes()), "{p}");
        }
        for p in ["g/l", "g/l.", "g/..l", "g/.x", ""] {
            assert!(!names_dir(p.as_bytes()), "{p}");
        }
    }

    /// A scratch directory of this test process, removed on drop.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn scratch(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("minld-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(std::fs::canonicalize(&d).unwrap())
    }

    /// Review finding 1: `..` after a link leading out of the grant is
    /// where the link leads, never the text folded.
    #[test]
    fn dot_dot_after_a_link_leaves_the_grant() {
        let d = scratch("dotdot");
        let g = vec![(d.0.clone(), Access::ReadWrite)];
        std::os::unix::fs::symlink("/etc", d.0.join("a")).unwrap();
        std::fs::create_dir(d.0.join("sub")).unwrap();
        std::fs::write(d.0.join("mine"), b"x").unwrap();
        let eacces = Err(libc::EACCES);
        for p in ["a/../etc/passwd", "a/../etc/no-such-file", "a/..", ".."] {
            let p = d.0.join(p);
            assert_eq!(judge(&g, &p, false, false), eacces, "{}", p.display());
            assert_eq!(judge(&g, &p, true, true), eacces, "{}", p.display());
            assert_eq!(stat_beneath(&g, &p, 0).err(), Some(libc::EACCES));
        }
        let inside = d.0.join("sub/../mine");
        assert_eq!(judge(&g, &inside, false, false), Ok(()));
        assert_eq!(judge(&g, &d.0.join("sub/../new"), true, false), Ok(()));
        assert_eq!(stat_beneath(&g, &inside, 0).unwrap().st_size, 1);
    }

    /// Review finding 2: a change through a link from a read-write grant
    /// into a read-only grant around it.
    #[test]
    fn a_change_stays_in_a_read_write_grant() {
        let d = scratch("nested");
        let w = d.0.join("w");
        std::fs::create_dir_all(&w).unwrap();
        std::fs::create_dir_all(d.0.join("ro")).unwrap();
        std::fs::write(d.0.join("ro/x"), b"keep").unwrap();
        std::os::unix::fs::symlink("../ro", w.join("l")).unwrap();
        let g = vec![(d.0.clone(), Access::Read), (w.clone(), Access::ReadWrite)];
        let x = w.join("l/x");
        assert!(granted(&g, &x, true));
        assert_eq!(judge(&g, &x, true, true), Err(libc::EACCES));
        assert_eq!(judge(&g, &w.join("l/new"), true, false), Err(libc::EACCES));
        assert_eq!(judge(&g, &x, false, false), Ok(()), "reading it is granted");
        assert_eq!(judge(&g, &w.join("new"), true, false), Ok(()));
    }

    /// Review finding 5: a grant that is a file covers itself, only.
    #[test]
    fn a_file_grant_covers_itself() {
        let d = scratch("filegrant");
        let f = d.0.join("f");
        std::fs::write(&f, b"12345").unwrap();
        let g = vec![(f.clone(), Access::Read)];
        assert_eq!(stat_beneath(&g, &f, 0).unwrap().st_size, 5);
        assert_eq!(judge(&g, &f, false, false), Ok(()));
        assert_eq!(judge(&g, &f.join(".."), false, false), Err(libc::ENOTDIR));
        assert_eq!(stat_beneath(&g, &d.0, 0).err(), Some(libc::EACCES));
    }
}
