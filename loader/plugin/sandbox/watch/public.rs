//! The public system files every runner may read unless the host says
//! otherwise ([`SYSTEM_FILES`], `Builder::system_files`): what glibc itself
//! opens for the time zone (`localtime` without `TZ`), the CPU count
//! (`sysconf(_SC_NPROCESSORS_ONLN)`, `get_nprocs_conf`) and the locale
//! (`setlocale`, `strerror` with `LANG` set). Nothing in it is the host's or
//! the user's: it is the same on every machine with the same packages.
//!
//! The runner never opens these itself (its Landlock rules do not cover
//! them): the host resolves the path it read from the stopped call, opens
//! the file read-only itself and puts the descriptor into the runner as the
//! call's result (a seccomp ADDFD). No racing thread can swap the path
//! between the host's check and the open, with Landlock or without.
//!
//! Resolving: beneath a directory of the set, the kernel walks the path
//! with RESOLVE_BENEATH from that directory (a link leading out of it is
//! EACCES, and nothing outside is ever looked at); a file of the set is
//! followed wherever its links go (`/etc/localtime` is a link into
//! `/usr/share/zoneinfo`), and what it ends at must lie in the set too.
//! Only regular files and directories are opened; magic links never.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The public system files and directories a runner may read (unless
/// `Builder::system_files(false)`): the local time zone link and the time
/// zone data, the kernel's lists of online, possible and present CPUs, the
/// compiled locales, the message catalogues and locale aliases, and
/// glibc's character-set converters' cache. Read-only; a write open of any
/// of them is a forbidden open, like one of a path no grant covers.
pub const SYSTEM_FILES: &[&str] = &[
    "/etc/localtime",
    "/usr/share/zoneinfo",
    "/sys/devices/system/cpu/online",
    "/sys/devices/system/cpu/possible",
    "/sys/devices/system/cpu/present",
    "/usr/lib/locale",
    "/usr/share/locale",
    "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache",
];

impl super::super::Builder {
    /// Whether the plugin may read the public system files
    /// ([`SYSTEM_FILES`]: time zone data, the CPU lists, locale data), which
    /// the host opens for it read-only (default: yes). Off, an open of one
    /// kills the runner like any path no grant covers.
    pub fn system_files(mut self, on: bool) -> Self {
        self.system_files = on;
        self
    }
}

/// `struct open_how` of openat2(2).
#[repr(C)]
pub(super) struct OpenHow {
    /// The open flags.
    pub(super) flags: u64,
    /// The creation mode (none here).
    pub(super) mode: u64,
    /// `RESOLVE_*` flags.
    pub(super) resolve: u64,
}
/// `RESOLVE_NO_MAGICLINKS`: no `/proc/<pid>/fd/N`-like links.
pub(super) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// `RESOLVE_NO_SYMLINKS`: no symbolic link followed anywhere in the walk.
pub(super) const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// `RESOLVE_BENEATH`: the walk never leaves the starting directory (no
/// absolute link, no `..` above it).
pub(super) const RESOLVE_BENEATH: u64 = 0x08;

/// The errno of the last failed call.
pub(super) fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// How many times [`openat2`] walks again when the kernel could not
/// ensure a `..` stayed beneath (EAGAIN).
const EAGAIN_TRIES: usize = 64;

/// openat2 of `path` relative to `dirfd` with `how`; an errno on failure.
///
/// With `RESOLVE_BENEATH`, a walk through `..` (in the path or in a link
/// it follows, as `zoneinfo/posix/Europe -> ../Europe`) fails with EAGAIN
/// when a rename or mount anywhere on the system raced it: the kernel
/// could not prove the `..` stayed beneath, and asks the caller to try
/// again. A busy machine (a build renaming files) makes that common, so
/// the walk is tried again, up to [`EAGAIN_TRIES`] times.
pub(super) fn openat2(dirfd: i32, path: &Path, how: &OpenHow) -> Result<OwnedFd, i32> {
    let c =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| libc::EINVAL)?;
    let mut tries = 0;
    loop {
        // SAFETY: openat2 reads the NUL-terminated `c` and the `open_how`
        // of the size given, both of which outlive the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh descriptor we own.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = last_errno();
        tries += 1;
        if e != libc::EAGAIN || tries >= EAGAIN_TRIES {
            return Err(e);
        }
    }
}

/// The entry of [`SYSTEM_FILES`] whose text covers `path` (made absolute,
/// its `..` kept), if any. None for a path with a `..` in it: glibc names
/// none such here, and its text says nothing of where it leads (after a
/// link, `..` is the link's target's parent), so it is a path outside the
/// set, never judged by a folded text.
pub(super) fn covering(path: &Path) -> Option<&'static str> {
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return None;
    }
    SYSTEM_FILES.iter().copied().find(|e| path.starts_with(e))
}

/// Whether the real path `real` (no link left in it) lies in the set:
/// beneath one of its entries as they really are on this machine. An entry
/// that is itself a link counts for nothing here (`/etc/localtime` is let
/// through only because where it leads is another entry).
fn in_set(real: &Path) -> bool {
    SYSTEM_FILES.iter().any(|e| {
        let link = std::fs::symlink_metadata(e).is_ok_and(|m| m.file_type().is_symlink());
        !link && std::fs::canonicalize(e).is_ok_and(|r| real.starts_with(r))
    })
}

/// `fstat` of `fd`; an errno on failure.
pub(super) fn fstat(fd: &OwnedFd) -> Result<libc::stat, i32> {
    // SAFETY: `libc::stat` is plain integers, for which all zeroes is a
    // valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes at most one `stat` into the local it is given.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(last_errno());
    }
    Ok(st)
}

/// An `O_PATH` descriptor of `path`, which [`covering`] puts in the set
/// (the final link itself with `nofollow`), resolved as the module says.
/// An errno on failure: EACCES where the path leads out of the set.
pub(super) fn resolve(path: &Path, nofollow: bool) -> Result<OwnedFd, i32> {
    let entry = covering(path).ok_or(libc::EACCES)?;
    let flags =
        (libc::O_PATH | libc::O_CLOEXEC | if nofollow { libc::O_NOFOLLOW } else { 0 }) as u64;
    let rel = path.strip_prefix(entry).map_err(|_| libc::EACCES)?;
    let fd = if rel.as_os_str().is_empty() {
        // The entry itself: followed wherever its links lead.
        let how = OpenHow {
            flags,
            mode: 0,
            resolve: RESOLVE_NO_MAGICLINKS,
        };
        openat2(libc::AT_FDCWD, path, &how)?
    } else {
        // Beneath a directory of the set: never out of it.
        let dir = OpenHow {
            flags: (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_NO_MAGICLINKS,
        };
        let dir = openat2(libc::AT_FDCWD, Path::new(entry), &dir)?;
        let how = OpenHow {
            flags,
            mode: 0,
            resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        openat2(dir.as_raw_fd(), rel, &how).map_err(|e| match e {
            libc::EXDEV => libc::EACCES,
            e => e,
        })?
    };
    if fstat(&fd)?.st_mode & libc::S_IFMT == libc::S_IFLNK {
        // The final link itself (`nofollow`), where its text says.
        return Ok(fd);
    }
    let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| libc::EACCES)?;
    if !in_set(&real) {
        return Err(libc::EACCES);
    }
    Ok(fd)
}

/// The host's open of `path` (in the set by its text) for the runner,
/// read-only: `O_NOFOLLOW` and `O_DIRECTORY` of the plugin's `flags` are
/// honoured, only a regular file or a directory is opened (no FIFO to block
/// on, no device). An errno on failure, as the plugin's own open would
/// have failed (ENOENT for a locale glibc probes for and that is not
/// there).
pub(super) fn open(path: &Path, flags: i32) -> Result<OwnedFd, i32> {
    let at = resolve(path, flags & libc::O_NOFOLLOW != 0)?;
    let st = fstat(&at)?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind == libc::S_IFLNK {
        return Err(libc::ELOOP);
    }
    if flags & libc::O_DIRECTORY != 0 && kind != libc::S_IFDIR {
        return Err(libc::ENOTDIR);
    }
    if kind != libc::S_IFREG && kind != libc::S_IFDIR {
        return Err(libc::EACCES);
    }
    // Reopened through the O_PATH descriptor: the very file resolved
    // above, no second walk of the path.
    let me = PathBuf::from(format!("/proc/self/fd/{}", at.as_raw_fd()));
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY) as u64,
        mode: 0,
        resolve: 0,
    };
    openat2(libc::AT_FDCWD, &me, &how)
}

/// readlink of `path` in the set: the final link's target, read by the
/// host from its own resolution; EINVAL where it is not a link, as the
/// kernel answers.
pub(super) fn readlink(path: &Path) -> Result<Vec<u8>, i32> {
    let fd = resolve(path, true)?;
    if fstat(&fd)?.st_mode & libc::S_IFMT != libc::S_IFLNK {
        return Err(libc::EINVAL);
    }
    let mut buf = vec![0u8; 4096];
    // SAFETY: readlinkat with an empty path reads the link the O_PATH
    // descriptor names, into our buffer of the length given.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(last_errno());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// access of `path` in the set for `mode` (AT_SYMLINK_NOFOLLOW of `flags`
/// honoured): 0 where it resolves and reading or existence is asked, or
/// searching a directory; EACCES for writing (the set is read-only) or
/// executing a file.
pub(super) fn access(path: &Path, mode: i32, flags: i32) -> Result<i64, i32> {
    let fd = resolve(path, flags & libc::AT_SYMLINK_NOFOLLOW != 0)?;
    let dir = fstat(&fd)?.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if mode & libc::W_OK != 0 || (mode & libc::X_OK != 0 && !dir) {
        return Err(libc::EACCES);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A walk through `..` beneath a directory while another thread
    /// renames files elsewhere: the kernel answers EAGAIN to some walks
    /// (about 3 % of them here), which [`openat2`] tries again, so every
    /// open succeeds (CI once showed a plugin glibc's UTC fallback for
    /// posix/Europe/Paris, whose `Europe` is a link to `../Europe`).
    #[test]
    fn a_walk_raced_by_renames_is_tried_again() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = std::env::temp_dir().join(format!("minld-eagain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // A directory with a link through `..`, as zoneinfo/posix has.
        std::fs::create_dir_all(dir.join("zone/Europe")).expect("zone");
        std::fs::write(dir.join("zone/Europe/Paris"), b"TZif").expect("file");
        std::fs::create_dir_all(dir.join("zone/posix")).expect("posix");
        let _ = std::os::unix::fs::symlink("../Europe", dir.join("zone/posix/Europe"));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let renamer = {
            let (stop, dir) = (stop.clone(), dir.clone());
            std::thread::spawn(move || {
                let (a, b) = (dir.join("a"), dir.join("b"));
                std::fs::write(&a, b"").expect("a");
                while !stop.load(Ordering::Relaxed) {
                    let _ = std::fs::rename(&a, &b);
                    let _ = std::fs::rename(&b, &a);
                }
            })
        };
        let zone = std::fs::File::open(dir.join("zone")).expect("zone dir");
        let how = OpenHow {
            flags: libc::O_RDONLY as u64 | libc::O_CLOEXEC as u64,
            mode: 0,
            resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        let failed = (0..20_000)
            .filter(|_| openat2(zone.as_raw_fd(), Path::new("posix/Europe/Paris"), &how).is_err())
            .count();
        stop.store(true, Ordering::Relaxed);
        renamer.join().expect("renamer");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(failed, 0, "walks failed despite the retries");
    }

    #[test]
    fn only_the_set_is_covered() {
        assert_eq!(
            covering(Path::new("/usr/share/zoneinfo/Europe/Paris")),
            Some("/usr/share/zoneinfo")
        );
        assert_eq!(
            covering(Path::new("/etc/localtime")),
            Some("/etc/localtime")
        );
        assert_eq!(covering(Path::new("/etc/passwd")), None);
        assert_eq!(
            covering(Path::new("/usr/share/zoneinfo/Europe/../UTC")),
            None
        );
        assert_eq!(covering(Path::new("/usr/share/zoneinfo/../../..")), None);
        assert_eq!(covering(Path::new("/etc/localtime2")), None);
        assert_eq!(covering(Path::new("/sys/devices/system/cpu")), None);
        assert_eq!(covering(Path::new("/sys/devices/system/cpu/cpu0")), None);
    }

    #[test]
    fn files_outside_the_set_are_refused() {
        assert_eq!(open(Path::new("/etc/passwd"), 0).err(), Some(libc::EACCES));
        assert_eq!(open(Path::new("/etc/shadow"), 0).err(), Some(libc::EACCES));
    }

    #[test]
    fn the_local_time_link_reads_and_is_read_only() {
        let real = std::fs::read_link("/etc/localtime");
        match real {
            Ok(target) => assert_eq!(
                readlink(Path::new("/etc/localtime")).ok().as_deref(),
                Some(target.as_os_str().as_encoded_bytes())
            ),
            Err(_) => assert_eq!(
                readlink(Path::new("/etc/localtime")).err(),
                Some(libc::EINVAL)
            ),
        }
        assert_eq!(access(Path::new("/etc/localtime"), libc::R_OK, 0), Ok(0));
        assert_eq!(
            access(Path::new("/etc/localtime"), libc::W_OK, 0),
            Err(libc::EACCES)
        );
    }

    #[test]
    fn the_cpu_list_opens() {
        let fd = open(Path::new("/sys/devices/system/cpu/online"), 0).unwrap();
        let st = fstat(&fd).unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFREG);
    }
}
