//! The system calls of the link cache (`pipeline::cache`): files opened
//! and created without following a symbolic link, written, renamed,
//! removed, and `stat` by path; its directory listed, and whether the
//! process that left a temporary file still exists. Traced like every
//! other call minld makes.

use std::ffi::CStr;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::base::transfer::{Failed, TransferFault};
use crate::os::sys::{Fd, FileStat, Note, Sys};
use crate::os::trace;

/// `openat`'s flags as strace prints them.
fn open_flags(flags: i32) -> String {
    let mut parts = vec![match flags & libc::O_ACCMODE {
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    }];
    for (bit, name) in [
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_CLOEXEC, "O_CLOEXEC"),
        (libc::O_DIRECTORY, "O_DIRECTORY"),
    ] {
        if flags & bit != 0 {
            parts.push(name);
        }
    }
    parts.join("|")
}

impl Sys {
    /// `openat(AT_FDCWD, path, flags, mode)`.
    fn open_with(&self, path: &CStr, flags: i32, mode: u32, note: impl Note) -> Result<Fd, Errno> {
        // SAFETY: `path` is NUL-terminated; openat only reads it.
        let fd = unsafe { libc::openat(libc::AT_FDCWD, path.as_ptr(), flags, mode) };
        let ret = if fd < 0 { Err(Errno::last()) } else { Ok(fd) };
        if self.trace {
            let mode = if flags & libc::O_CREAT != 0 {
                format!(", 0{mode:o}")
            } else {
                String::new()
            };
            let call = format!(
                "openat(AT_FDCWD, {}, {}{mode})",
                trace::quote_path(path.to_bytes()),
                open_flags(flags)
            );
            self.emit(call, &Self::result_of(ret.map(|fd| fd.to_string())), note);
        }
        ret.map(|raw| Fd::new(raw, *self))
    }

    /// A file for reading, refusing a symbolic link as its last component.
    pub(crate) fn open_nofollow(&self, path: &CStr, note: impl Note) -> Result<Fd, Errno> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        self.open_with(path, flags, 0, note)
    }

    /// A directory for listing, refusing a symbolic link as its last
    /// component.
    pub(crate) fn open_dir(&self, path: &CStr, note: impl Note) -> Result<Fd, Errno> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        self.open_with(path, flags, 0, note)
    }

    /// The names in the directory `fd` (`.` and `..` left out), by
    /// `getdents64` until it returns 0.
    pub(crate) fn dir_names(&self, fd: &Fd, note: impl Note) -> Result<Vec<Vec<u8>>, Errno> {
        let note = note.text();
        let mut buf = vec![0u8; 32 * 1024];
        let mut names = Vec::new();
        loop {
            // SAFETY: `buf` is writable for its length; getdents64 fills at
            // most that many bytes of whole records.
            let n =
                unsafe { libc::syscall(libc::SYS_getdents64, fd.raw, buf.as_mut_ptr(), buf.len()) };
            let ret = if n < 0 {
                Err(Errno::last())
            } else {
                Ok(n as usize)
            };
            let entries = match ret {
                Ok(n) => dirent_names(&buf[..n.min(buf.len())], &mut names),
                Err(_) => 0,
            };
            if self.trace {
                let shown = match ret {
                    Ok(_) => format!("{:p} /* {entries} entries */", buf.as_ptr()),
                    Err(_) => format!("{:p}", buf.as_ptr()),
                };
                let call = format!("getdents64({}, {shown}, {})", fd.raw, buf.len());
                self.emit(call, &Self::result_of(ret.map(|n| n.to_string())), &note);
            }
            match ret {
                Ok(0) => return Ok(names),
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether process `pid` is certainly gone: `kill(pid, 0)` fails with
    /// ESRCH (EPERM means it exists, another user's).
    pub(crate) fn process_gone(&self, pid: i32, note: impl Note) -> bool {
        // SAFETY: signal 0 sends nothing; it only checks the pid.
        let r = unsafe { libc::kill(pid, 0) };
        let ret = if r < 0 { Err(Errno::last()) } else { Ok(()) };
        if self.trace {
            let call = format!("kill({pid}, 0)");
            self.emit(call, &Self::result_of(ret.map(|_| "0".to_string())), note);
        }
        ret == Err(Errno::ESRCH)
    }

    /// A new file, readable and writable by its owner only; fails if the
    /// name exists (a symbolic link included).
    pub(crate) fn create(&self, path: &CStr, note: impl Note) -> Result<Fd, Errno> {
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        self.open_with(path, flags, 0o600, note)
    }

    /// `write(fd, data)` until all of it is written; a write that returns 0
    /// is a [`TransferFault::ShortWrite`] (no call failed).
    pub(crate) fn write_all(
        &self,
        fd: &Fd,
        mut data: &[u8],
        note: impl Note,
    ) -> Result<(), Failed> {
        let note = note.text();
        let wanted = data.len() as u64;
        while !data.is_empty() {
            // SAFETY: `data` is valid for reads of `data.len()` bytes.
            let n = unsafe { libc::write(fd.raw, data.as_ptr().cast(), data.len()) };
            let ret = if n < 0 {
                Err(Errno::last())
            } else {
                Ok(n as usize)
            };
            if self.trace {
                let call = format!(
                    "write({}, {}, {})",
                    fd.raw,
                    trace::quote_buffer(data),
                    data.len()
                );
                self.emit(call, &Self::result_of(ret.map(|n| n.to_string())), &note);
            }
            match ret {
                Ok(0) => {
                    return Err(Failed::Short(TransferFault::ShortWrite {
                        wanted,
                        written: wanted - data.len() as u64,
                    }))
                }
                Ok(n) => data = &data[n..],
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Failed::Kernel(e)),
            }
        }
        Ok(())
    }

    /// `rename(from, to)`: replaces `to` atomically.
    pub(crate) fn rename(&self, from: &CStr, to: &CStr, note: impl Note) -> Result<(), Errno> {
        // SAFETY: both names are NUL-terminated; rename only reads them.
        let r = unsafe { libc::rename(from.as_ptr(), to.as_ptr()) };
        let ret = if r < 0 { Err(Errno::last()) } else { Ok(()) };
        if self.trace {
            let call = format!(
                "rename({}, {})",
                trace::quote_path(from.to_bytes()),
                trace::quote_path(to.to_bytes())
            );
            self.emit(call, &Self::result_of(ret.map(|_| "0".to_string())), note);
        }
        ret
    }

    /// `unlink(path)`.
    pub(crate) fn unlink(&self, path: &CStr, note: impl Note) -> Result<(), Errno> {
        // SAFETY: `path` is NUL-terminated; unlink only reads it.
        let r = unsafe { libc::unlink(path.as_ptr()) };
        let ret = if r < 0 { Err(Errno::last()) } else { Ok(()) };
        if self.trace {
            let call = format!("unlink({})", trace::quote_path(path.to_bytes()));
            self.emit(call, &Self::result_of(ret.map(|_| "0".to_string())), note);
        }
        ret
    }

    /// `mkdir(path, mode)`.
    pub(crate) fn mkdir(&self, path: &CStr, mode: u32, note: impl Note) -> Result<(), Errno> {
        // SAFETY: `path` is NUL-terminated; mkdir only reads it.
        let r = unsafe { libc::mkdir(path.as_ptr(), mode) };
        let ret = if r < 0 { Err(Errno::last()) } else { Ok(()) };
        if self.trace {
            let call = format!("mkdir({}, 0{mode:o})", trace::quote_path(path.to_bytes()));
            self.emit(call, &Self::result_of(ret.map(|_| "0".to_string())), note);
        }
        ret
    }

    /// `newfstatat(AT_FDCWD, path, &st, 0)`: what a path names, following
    /// symbolic links.
    pub(crate) fn stat(&self, path: &CStr, note: impl Note) -> Result<FileStat, Errno> {
        self.stat_at(path, 0, note)
    }

    /// `newfstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW)`: a symbolic
    /// link is described, not followed.
    pub(crate) fn lstat(&self, path: &CStr, note: impl Note) -> Result<FileStat, Errno> {
        self.stat_at(path, libc::AT_SYMLINK_NOFOLLOW, note)
    }

    /// `readlink(path, buf, PATH_MAX)`: where the symbolic link `path`
    /// points; None when the target fills the buffer (it may be cut).
    pub(crate) fn readlink(&self, path: &CStr, note: impl Note) -> Result<Option<PathBuf>, Errno> {
        let mut buf = vec![0u8; libc::PATH_MAX as usize];
        // SAFETY: `path` is NUL-terminated and `buf` is writable for the
        // length given; readlink writes at most that many bytes.
        let r = unsafe { libc::readlink(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        let ret = match usize::try_from(r) {
            Err(_) => Err(Errno::last()),
            Ok(n) => Ok(n),
        };
        if self.trace {
            let shown = match ret {
                Ok(n) => trace::quote_path(&buf[..n]),
                Err(_) => format!("{:#x}", buf.as_ptr() as usize),
            };
            let call = format!(
                "readlink({}, {shown}, {})",
                trace::quote_path(path.to_bytes()),
                buf.len()
            );
            self.emit(call, &Self::result_of(ret.map(|n| n.to_string())), note);
        }
        let n = ret?;
        if n == buf.len() {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some(PathBuf::from(std::ffi::OsString::from_vec(buf))))
    }

    /// `newfstatat(AT_FDCWD, path, &st, flags)`.
    fn stat_at(&self, path: &CStr, flags: i32, note: impl Note) -> Result<FileStat, Errno> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: `path` is NUL-terminated and `st` is a writable stat
        // buffer of the right size.
        let r = unsafe { libc::fstatat(libc::AT_FDCWD, path.as_ptr(), st.as_mut_ptr(), flags) };
        let ret = if r < 0 {
            Err(Errno::last())
        } else {
            // SAFETY: fstatat returned 0, so it filled the buffer.
            Ok(FileStat::of(&unsafe { st.assume_init() }))
        };
        if self.trace {
            let shown = crate::os::sys::stat_shown(ret, st.as_ptr() as usize);
            let flags = if flags == 0 {
                "0"
            } else {
                "AT_SYMLINK_NOFOLLOW"
            };
            let call = format!(
                "newfstatat(AT_FDCWD, {}, {shown}, {flags})",
                trace::quote_path(path.to_bytes())
            );
            self.emit(call, &Self::result_of(ret.map(|_| "0".to_string())), note);
        }
        ret
    }
}

/// Appends the names of the `linux_dirent64` records in `buf` (`d_ino`
/// u64, `d_off` i64, `d_reclen` u16, `d_type` u8, then the NUL-terminated
/// name) to `out`, leaving out `.` and `..`; stops at a record that does
/// not fit. How many records there were (`.` and `..` included, as strace
/// counts them).
fn dirent_names(buf: &[u8], out: &mut Vec<Vec<u8>>) -> usize {
    let (mut at, mut records) = (0, 0);
    while let Some(head) = buf.get(at..at + 19) {
        let reclen = usize::from(u16::from_ne_bytes([head[16], head[17]]));
        let Some(rec) = buf.get(at..at + reclen).filter(|_| reclen > 19) else {
            break;
        };
        records += 1;
        let name = &rec[19..];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        if name != b"." && name != b".." {
            out.push(name.to_vec());
        }
        at += reclen;
    }
    records
}
