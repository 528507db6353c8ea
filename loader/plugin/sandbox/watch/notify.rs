//! The seccomp user-notification side of the watcher: a call the serving
//! filter does not allow stops in the kernel and is decided here. A granted
//! `open`/`openat` goes on (Landlock then judges the path the kernel really
//! resolves) unless it is `O_PATH` (which Landlock never judges: a
//! forbidden open), so do access, readlink, mkdir, unlink, rmdir and rename of
//! granted paths, a thread's `clone` goes on under the thread limit, an
//! `fstat`-like `newfstatat` is answered from the host's own stat, an open
//! of a public system file is done by the host (`public`), and so are its
//! stat, access and readlink, `statx` gets ENOSYS (glibc falls back), and
//! anything else (or a call of another ABI) kills the runner, recorded as
//! the host saw it (or, for a path, refused with EACCES where the host
//! asked for that). What a path names, and whether it stays in its grant,
//! is judged in `paths`.
//!
//! The runner's memory (paths, the stat buffer) is read and written with
//! `process_vm_readv`/`process_vm_writev`, so a bad pointer of the
//! plugin's is an EFAULT for it, never a fault here.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::super::seccomp::is_thread_clone;
use super::paths::{granted, judge, read_cstr, read_path, stat_beneath, write_mem};
use super::public::{self, last_errno};
use super::{Kill, Limits, Shared, SyscallAbi};

// The seccomp user-notification interface (linux/seccomp.h).
/// `struct seccomp_data`: the call as the kernel saw it.
#[repr(C)]
#[derive(Default)]
struct SeccompData {
    /// The system call number.
    nr: i32,
    /// The `AUDIT_ARCH_*` of the call's ABI.
    arch: u32,
    /// The instruction pointer.
    ip: u64,
    /// The arguments.
    args: [u64; 6],
}
/// `struct seccomp_notif`: one stopped call.
#[repr(C)]
#[derive(Default)]
struct Notif {
    /// Its id, for the answer.
    id: u64,
    /// The thread that made it.
    pid: u32,
    /// Unused flags.
    flags: u32,
    /// The call.
    data: SeccompData,
}
/// `struct seccomp_notif_resp`: the answer.
#[repr(C)]
struct NotifResp {
    /// The notification's id.
    id: u64,
    /// The call's return value (with `error` 0).
    val: i64,
    /// A negative errno, or 0.
    error: i32,
    /// `FLAG_CONTINUE`: let the call go on as it is.
    flags: u32,
}
/// `SECCOMP_IOCTL_NOTIF_RECV`.
const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
/// `SECCOMP_IOCTL_NOTIF_SEND`.
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;
/// `SECCOMP_IOCTL_NOTIF_ID_VALID`.
const NOTIF_ID_VALID: libc::c_ulong = 0x4008_2102;
/// `SECCOMP_USER_NOTIF_FLAG_CONTINUE`.
const FLAG_CONTINUE: u32 = 1;
/// `AUDIT_ARCH_X86_64`.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// Answers a stopped system call.
fn respond(listener: RawFd, id: u64, val: i64, error: i32, flags: u32) {
    let r = NotifResp {
        id,
        val,
        error,
        flags,
    };
    // SAFETY: the documented ioctl with a valid response struct. It fails
    // harmlessly if the thread is gone.
    unsafe { libc::ioctl(listener, NOTIF_SEND, &r as *const NotifResp) };
}

/// Receives one notification and decides it.
pub(super) fn notification(shared: &Shared, listener: RawFd, pidfd: RawFd, limits: &Limits) {
    let mut n = Notif::default();
    // SAFETY: the documented ioctl into a zeroed struct of the right size.
    if unsafe { libc::ioctl(listener, NOTIF_RECV, &mut n as *mut Notif) } != 0 {
        return;
    }
    let d = &n.data;
    let nr = i64::from(d.nr);
    if d.arch != AUDIT_ARCH_X86_64 {
        return shared.kill(
            pidfd,
            Kill::Syscall {
                nr,
                abi: SyscallAbi::I386,
            },
        );
    }
    if nr & 0x4000_0000 != 0 {
        return shared.kill(
            pidfd,
            Kill::Syscall {
                nr: nr & !0x4000_0000,
                abi: SyscallAbi::X32,
            },
        );
    }
    let tid = n.pid as i32;
    let (dirfd, path_at, flags) = match nr {
        libc::SYS_openat => (d.args[0] as i32, d.args[1], d.args[2] as i32),
        libc::SYS_open => (libc::AT_FDCWD, d.args[0], d.args[1] as i32),
        libc::SYS_newfstatat => {
            return stat(listener, &n, pidfd, limits);
        }
        libc::SYS_statx => return respond(listener, n.id, 0, -libc::ENOSYS, 0),
        libc::SYS_clone if is_thread_clone(d.args[0]) => {
            return thread(listener, &n, limits.max_threads);
        }
        _ if path_call(nr, &d.args).is_some() => {
            return on_paths(shared, listener, &n, pidfd, limits);
        }
        _ => {
            return shared.kill(
                pidfd,
                Kill::Syscall {
                    nr,
                    abi: SyscallAbi::X86_64,
                },
            )
        }
    };
    let Some((path, dir)) = read_path(tid, dirfd, path_at) else {
        return respond(listener, n.id, 0, -libc::EFAULT, 0);
    };
    if !still_valid(listener, n.id) {
        return;
    }
    // A trailing `/`, `/.` or `/..` follows the last link and wants a
    // directory, whatever O_NOFOLLOW says.
    let flags = match dir {
        true => (flags | libc::O_DIRECTORY) & !libc::O_NOFOLLOW,
        false => flags,
    };
    let writes = flags & (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) != 0;
    // An O_PATH open of a granted path never goes on: Landlock does not
    // judge such opens, so a racing thread changing the path (its text, a
    // directory in it, the dirfd) between the host's judging and the
    // kernel's second walk would get a descriptor (and the `fstat`) of any
    // file. It is a forbidden open, like one of a path no grant covers.
    if granted(&limits.grants, &path, writes) && flags & libc::O_PATH == 0 {
        let nofollow = flags & libc::O_NOFOLLOW != 0;
        match judge(&limits.grants, &path, writes, nofollow) {
            // Landlock decides for real, on the path the kernel resolves.
            Ok(()) => respond(listener, n.id, 0, 0, FLAG_CONTINUE),
            Err(e) => respond(listener, n.id, 0, -e, 0),
        }
    } else if limits.system_files && !writes && public::covering(&path).is_some() {
        match public::open(&path, flags) {
            Ok(fd) => add_fd(listener, n.id, &fd, flags),
            Err(e) => respond(listener, n.id, 0, -e, 0),
        }
    } else {
        let why = Kill::Open { path, flags };
        if shared.forbidden(pidfd, nr, why, limits.refuse_paths) {
            respond(listener, n.id, 0, -libc::EACCES, 0);
        }
    }
}

/// `struct seccomp_notif_addfd`: a descriptor of the host's to install in
/// the stopped thread's process.
#[repr(C)]
struct NotifAddfd {
    /// The notification's id.
    id: u64,
    /// `ADDFD_FLAG_SEND`: install it and answer the call with its number.
    flags: u32,
    /// The host's descriptor.
    srcfd: u32,
    /// The number wanted in the runner (0: the lowest free, as open).
    newfd: u32,
    /// `O_CLOEXEC` or 0.
    newfd_flags: u32,
}
/// `SECCOMP_IOCTL_NOTIF_ADDFD`.
const NOTIF_ADDFD: libc::c_ulong = 0x4018_2103;
/// `SECCOMP_ADDFD_FLAG_SEND`.
const ADDFD_FLAG_SEND: u32 = 1 << 1;

/// Answers an open with the host's own descriptor `fd` of the file, put
/// into the runner at its lowest free number (close-on-exec if the
/// plugin's `flags` asked for it), as the open's result; the runner's own
/// error (EMFILE with its table full) where that fails.
fn add_fd(listener: RawFd, id: u64, fd: &OwnedFd, flags: i32) {
    let add = NotifAddfd {
        id,
        flags: ADDFD_FLAG_SEND,
        srcfd: fd.as_raw_fd() as u32,
        newfd: 0,
        newfd_flags: (flags & libc::O_CLOEXEC) as u32,
    };
    // SAFETY: the documented ioctl with a valid struct; it fails harmlessly
    // if the thread is gone.
    let rc = unsafe { libc::ioctl(listener, NOTIF_ADDFD, &add as *const NotifAddfd) };
    if rc < 0 {
        let e = last_errno();
        if e != libc::ENOENT {
            respond(listener, id, 0, -e, 0);
        }
    }
}

/// The calls on paths besides open and stat that a plugin working with
/// its files makes: the (dirfd, path) argument pairs of `nr`, whether it
/// changes what they name (a read-write grant needed), and whether it
/// acts on a final symbolic link itself rather than its target. None for
/// any other call.
fn path_call(nr: i64, a: &[u64; 6]) -> Option<PathCall> {
    let cwd = libc::AT_FDCWD;
    let (paths, writes, nofollow) = match nr {
        libc::SYS_access => (vec![(cwd, a[0])], false, false),
        libc::SYS_faccessat | libc::SYS_faccessat2 => (vec![(a[0] as i32, a[1])], false, false),
        libc::SYS_readlink => (vec![(cwd, a[0])], false, true),
        libc::SYS_readlinkat => (vec![(a[0] as i32, a[1])], false, true),
        libc::SYS_mkdir => (vec![(cwd, a[0])], true, true),
        libc::SYS_mkdirat => (vec![(a[0] as i32, a[1])], true, true),
        libc::SYS_unlink | libc::SYS_rmdir => (vec![(cwd, a[0])], true, true),
        libc::SYS_unlinkat => (vec![(a[0] as i32, a[1])], true, true),
        libc::SYS_rename => (vec![(cwd, a[0]), (cwd, a[1])], true, true),
        libc::SYS_renameat | libc::SYS_renameat2 => {
            (vec![(a[0] as i32, a[1]), (a[2] as i32, a[3])], true, true)
        }
        _ => return None,
    };
    Some(PathCall {
        paths,
        writes,
        nofollow,
    })
}

/// What [`path_call`] finds in a call on paths.
struct PathCall {
    /// Its (dirfd, path pointer) pairs.
    paths: Vec<(i32, u64)>,
    /// It changes what they name.
    writes: bool,
    /// It acts on a final symbolic link itself.
    nofollow: bool,
}

/// A [`path_call`]: it goes on when a grant covers every path it names
/// (a read-write one for a change) and each resolves beneath such a grant
/// (`paths::judge`; Landlock then decides for real); a path that leads
/// out of them (a link, `..` after a link) gets EACCES, as Landlock would
/// answer; a path no grant covers kills the runner.
fn on_paths(shared: &Shared, listener: RawFd, n: &Notif, pidfd: RawFd, limits: &Limits) {
    let nr = i64::from(n.data.nr);
    let Some(PathCall {
        paths,
        writes,
        nofollow,
    }) = path_call(nr, &n.data.args)
    else {
        return;
    };
    // renameat2: RENAME_NOREPLACE and RENAME_EXCHANGE (both paths judged
    // for a change) only; RENAME_WHITEOUT would make a device node, which
    // no plugin may (mknod is forbidden): EINVAL, as a file system
    // without it answers.
    let known = (libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) as u64;
    if nr == libc::SYS_renameat2 && n.data.args[4] & !known != 0 {
        return respond(listener, n.id, 0, -libc::EINVAL, 0);
    }
    let mut read = Vec::new();
    for (dirfd, at) in paths {
        let Some(p) = read_path(n.pid as i32, dirfd, at) else {
            return respond(listener, n.id, 0, -libc::EFAULT, 0);
        };
        read.push(p);
    }
    if !still_valid(listener, n.id) {
        return;
    }
    if let Some((path, dir)) = read.iter().find(|p| !granted(&limits.grants, &p.0, writes)) {
        if limits.system_files && !writes && read.len() == 1 && public::covering(path).is_some() {
            return public_path(listener, n, path, *dir);
        }
        let path = path.clone();
        if shared.forbidden(pidfd, nr, Kill::Path { nr, path }, limits.refuse_paths) {
            respond(listener, n.id, 0, -libc::EACCES, 0);
        }
        return;
    }
    match read
        .iter()
        .try_for_each(|(p, dir)| judge(&limits.grants, p, writes, nofollow && !dir))
    {
        Ok(()) => respond(listener, n.id, 0, 0, FLAG_CONTINUE),
        Err(e) => respond(listener, n.id, 0, -e, 0),
    }
}

/// access or readlink of a public system file: answered by the host from
/// its own resolution of the path (`public`), the link's target written
/// into the plugin's buffer (at most its length, as readlink does). A
/// path whose text names a directory (`dir`) is followed, and is ENOTDIR
/// where it ends at a file (EINVAL for readlink where it is a directory,
/// which is no link).
fn public_path(listener: RawFd, n: &Notif, path: &Path, dir: bool) {
    let (nr, a) = (i64::from(n.data.nr), &n.data.args);
    let is_dir = || {
        let fd = public::resolve(path, false)?;
        match public::fstat(&fd)?.st_mode & libc::S_IFMT == libc::S_IFDIR {
            true => Ok(()),
            false => Err(libc::ENOTDIR),
        }
    };
    let checked = match dir {
        true => is_dir(),
        false => Ok(()),
    };
    let got = match nr {
        _ if checked.is_err() => checked.map(|()| 0),
        libc::SYS_readlink | libc::SYS_readlinkat if dir => Err(libc::EINVAL),
        libc::SYS_readlink | libc::SYS_readlinkat => {
            let (buf, len) = if nr == libc::SYS_readlink {
                (a[1], a[2] as i32)
            } else {
                (a[2], a[3] as i32)
            };
            public::readlink(path).and_then(|t| {
                let k = t.len().min(len.max(0) as usize);
                match len > 0 && write_mem(n.pid as i32, buf, t.as_ptr(), k) {
                    true => Ok(k as i64),
                    false if len <= 0 => Err(libc::EINVAL),
                    false => Err(libc::EFAULT),
                }
            })
        }
        libc::SYS_access => public::access(path, a[1] as i32, 0),
        libc::SYS_faccessat2 if dir => public::access(path, a[2] as i32, 0),
        libc::SYS_faccessat2 => public::access(path, a[2] as i32, a[3] as i32),
        _ => public::access(path, a[2] as i32, 0),
    };
    match got {
        Ok(v) => respond(listener, n.id, v, 0, 0),
        Err(e) => respond(listener, n.id, 0, -e, 0),
    }
}

/// `clone` of a thread: it goes on while the runner has fewer than `max`
/// threads (the kernel's count in `/proc/<tid>/status`), else EAGAIN
/// (pthread_create's answer when the system is out of threads; the
/// plugin lives on). Clones the host let go on may not show in the count
/// yet, but each comes from a thread that was counted and can make no
/// other until its clone is done: the runner never has more than twice
/// `max` threads.
fn thread(listener: RawFd, n: &Notif, max: usize) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", n.pid)).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    if !still_valid(listener, n.id) {
        return;
    }
    match threads {
        Some(t) if t < max => respond(listener, n.id, 0, 0, FLAG_CONTINUE),
        _ => respond(listener, n.id, 0, -libc::EAGAIN, 0),
    }
}

/// `newfstatat`: glibc's fstat (an empty path with AT_EMPTY_PATH) is
/// answered from the descriptor the host copies out of the runner; a
/// path beneath a grant from the host's own stat of the path it read
/// (never letting the kernel re-read a path a racing thread could swap),
/// resolved beneath that grant ([`stat_beneath`]); anything else gets
/// EACCES.
fn stat(listener: RawFd, n: &Notif, pidfd: RawFd, limits: &Limits) {
    let d = &n.data;
    let tid = n.pid as i32;
    let (dirfd, path_at, buf, flags) = (d.args[0] as i32, d.args[1], d.args[2], d.args[3] as i32);
    let raw = read_cstr(tid, path_at);
    let st =
        match raw.as_deref() {
            Some(b"") if flags & libc::AT_EMPTY_PATH != 0 => fstat_of(pidfd, dirfd),
            Some(_) => match read_path(tid, dirfd, path_at) {
                Some((p, false)) => stat_path(limits, &p, flags),
                // Followed, and only a directory (the kernel's ENOTDIR else).
                Some((p, true)) => stat_path(limits, &p, flags & !libc::AT_SYMLINK_NOFOLLOW)
                    .and_then(|st| match st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                        true => Ok(st),
                        false => Err(libc::ENOTDIR),
                    }),
                None => Err(libc::EFAULT),
            },
            None => Err(libc::EFAULT),
        };
    if !still_valid(listener, n.id) {
        return;
    }
    match st {
        Ok(st) => {
            let bytes = (&st as *const libc::stat).cast::<u8>();
            let len = std::mem::size_of::<libc::stat>();
            if write_mem(tid, buf, bytes, len) {
                respond(listener, n.id, 0, 0, 0);
            } else {
                respond(listener, n.id, 0, -libc::EFAULT, 0);
            }
        }
        Err(e) => respond(listener, n.id, 0, -e, 0),
    }
}

/// `fstat` of the runner's descriptor `fd`, on a copy of it of ours; an
/// errno on failure.
fn fstat_of(pidfd: RawFd, fd: i32) -> Result<libc::stat, i32> {
    // SAFETY: copies the runner's descriptor into ours (we own the result).
    let mine = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
    if mine < 0 {
        return Err(libc::EBADF);
    }
    // SAFETY: pidfd_getfd returned a fresh descriptor, owned by nothing
    // else: the OwnedFd closes it.
    let mine = unsafe { OwnedFd::from_raw_fd(mine as i32) };
    // SAFETY: `libc::stat` is plain integers, for which all zeroes is a
    // valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes at most one `stat` into the local it is given.
    if unsafe { libc::fstat(mine.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    Ok(st)
}

/// The host's stat of `path` for the runner: beneath a grant
/// ([`stat_beneath`]), else in the public system files when they are on
/// (resolved as their open is), else EACCES.
fn stat_path(limits: &Limits, path: &Path, flags: i32) -> Result<libc::stat, i32> {
    if !granted(&limits.grants, path, false)
        && limits.system_files
        && public::covering(path).is_some()
    {
        let fd = public::resolve(path, flags & libc::AT_SYMLINK_NOFOLLOW != 0)?;
        return public::fstat(&fd);
    }
    stat_beneath(&limits.grants, path, flags)
}

/// The notification still stands for the same thread (not a recycled id).
fn still_valid(listener: RawFd, id: u64) -> bool {
    // SAFETY: the documented ioctl with a pointer to the id.
    unsafe { libc::ioctl(listener, NOTIF_ID_VALID, &id as *const u64) == 0 }
}
