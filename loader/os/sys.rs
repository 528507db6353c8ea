//! The system calls minld makes to open and map files, and the trace of them.
//!
//! Every call that touches the file or the address space goes through
//! [`Sys`], which makes the call directly (through libc's thin wrappers, one
//! system call each) and, when tracing, prints it to stderr the way strace
//! prints it, from the arguments actually passed and the value actually
//! returned, followed by two spaces and a `# note` saying why. A test runs the
//! example under strace and checks that each traced line is in strace's output.

use std::ffi::CStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::os::trace;

/// The system-call layer: makes each call and traces it when asked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sys {
    pub(crate) trace: bool,
}

/// A file descriptor minld reads and maps through: one it opened and owns,
/// closed (through [`Sys`], so the close is traced) when dropped, or one
/// the caller lent (`Loader::open_fd`), never closed by minld.
pub(crate) struct Fd {
    pub(crate) raw: RawFd,
    sys: Sys,
    /// Whether minld opened it (and closes it on drop).
    owned: bool,
}

impl Fd {
    /// Owns `raw`, closing it through `sys`.
    pub(super) fn new(raw: RawFd, sys: Sys) -> Fd {
        Fd {
            raw,
            sys,
            owned: true,
        }
    }

    /// A descriptor the caller lent: used as minld's own, never closed.
    /// The caller keeps it open for as long as the `Fd` lives.
    pub(crate) fn borrowed(raw: RawFd, sys: Sys) -> Fd {
        Fd {
            raw,
            sys,
            owned: false,
        }
    }

    /// Whether minld opened it itself (false: the caller's, lent).
    pub(crate) fn owned(&self) -> bool {
        self.owned
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        if self.owned {
            self.sys.close(self.raw);
        }
    }
}

/// The fields of `struct stat` minld uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileStat {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    /// st_uid.
    pub(crate) uid: u32,
    /// st_mtime, seconds and nanoseconds.
    pub(crate) mtime: (i64, i64),
    /// st_ctime, seconds and nanoseconds: set by the kernel on every change
    /// of the inode, and (unlike mtime) never set back by a program.
    pub(crate) ctime: (i64, i64),
}

impl FileStat {
    /// The fields of a filled `struct stat`.
    pub(super) fn of(st: &libc::stat) -> FileStat {
        FileStat {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mode: st.st_mode,
            uid: st.st_uid,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }
}

impl Sys {
    pub(super) fn emit(&self, call: String, result: &str, note: impl Note) {
        let note = note.text();
        let mut line = call;
        // strace aligns the result at column 40.
        if line.len() < 40 {
            let pad = 40 - line.len();
            line.extend(std::iter::repeat_n(' ', pad));
            line.push_str("= ");
        } else {
            line.push_str(" = ");
        }
        line.push_str(result);
        if !note.is_empty() {
            let _ = write!(line, "  # {note}");
        }
        line.push('\n');
        // One write per line so lines of concurrent loads do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    /// With tracing on, prints `text` as a line of its own starting with
    /// `# `, never taken for a system call: for what happened between two
    /// traced calls without going through this layer (glibc's `dlopen` of
    /// a static-TLS stub, whose own system calls are not traced).
    pub(crate) fn untraced(&self, text: std::fmt::Arguments<'_>) {
        if self.trace {
            let line = format!("# {text}\n");
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    pub(super) fn result_of(ret: Result<String, Errno>) -> String {
        match ret {
            Ok(s) => s,
            Err(e) => format!("-1 {} ({})", trace::errno_name(e), e.desc()),
        }
    }

    /// `openat(AT_FDCWD, path, O_RDONLY|O_CLOEXEC)`.
    pub(crate) fn open(&self, path: &CStr, note: impl Note) -> Result<Fd, Errno> {
        // SAFETY: `path` is a valid NUL-terminated string; openat has no
        // memory effects beyond reading it.
        let fd = unsafe {
            libc::openat(
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        let ret = if fd < 0 { Err(Errno::last()) } else { Ok(fd) };
        if self.trace {
            let call = format!(
                "openat(AT_FDCWD, {}, O_RDONLY|O_CLOEXEC)",
                trace::quote_path(path.to_bytes())
            );
            self.emit(call, &Self::result_of(ret.map(|fd| fd.to_string())), note);
        }
        ret.map(|raw| Fd::new(raw, *self))
    }

    /// `read(fd, buf, buf.len())`, returning the byte count.
    pub(crate) fn read(&self, fd: &Fd, buf: &mut [u8], note: impl Note) -> Result<usize, Errno> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::read(fd.raw, buf.as_mut_ptr().cast(), buf.len()) };
        let ret = if n < 0 {
            Err(Errno::last())
        } else {
            Ok(n as usize)
        };
        if self.trace {
            let shown = match ret {
                Ok(n) => trace::quote_buffer(&buf[..n]),
                Err(_) => format!("{:#x}", buf.as_ptr() as usize),
            };
            let call = format!("read({}, {}, {})", fd.raw, shown, buf.len());
            self.emit(call, &Self::result_of(ret.map(|n| n.to_string())), note);
        }
        ret
    }

    /// `pread64(fd, buf, buf.len(), offset)`, returning the byte count.
    pub(crate) fn pread(
        &self,
        fd: &Fd,
        buf: &mut [u8],
        offset: u64,
        note: impl Note,
    ) -> Result<usize, Errno> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::pread64(fd.raw, buf.as_mut_ptr().cast(), buf.len(), offset as i64) };
        let ret = if n < 0 {
            Err(Errno::last())
        } else {
            Ok(n as usize)
        };
        if self.trace {
            let shown = match ret {
                Ok(n) => trace::quote_buffer(&buf[..n]),
                Err(_) => format!("{:#x}", buf.as_ptr() as usize),
            };
            let call = format!("pread64({}, {}, {}, {})", fd.raw, shown, buf.len(), offset);
            self.emit(call, &Self::result_of(ret.map(|n| n.to_string())), note);
        }
        ret
    }

    /// `newfstatat(fd, "", &st, AT_EMPTY_PATH)`, as glibc's fstat makes it.
    pub(crate) fn fstat(&self, fd: &Fd, note: impl Note) -> Result<FileStat, Errno> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: the path is an empty NUL-terminated string and `st` is a
        // writable stat buffer of the right size.
        let r =
            unsafe { libc::fstatat(fd.raw, c"".as_ptr(), st.as_mut_ptr(), libc::AT_EMPTY_PATH) };
        let ret = if r < 0 {
            Err(Errno::last())
        } else {
            // SAFETY: fstatat returned 0, so it filled the buffer.
            let st = unsafe { st.assume_init() };
            Ok(FileStat::of(&st))
        };
        if self.trace {
            let shown = stat_shown(ret, st.as_ptr() as usize);
            let call = format!("newfstatat({}, \"\", {}, AT_EMPTY_PATH)", fd.raw, shown);
            self.emit(call, &Self::result_of(ret.map(|_| "0".to_string())), note);
        }
        ret
    }

    /// `close(fd)`. The result is traced and otherwise ignored, as ld.so does.
    fn close(&self, fd: RawFd) {
        // SAFETY: closing a descriptor this module opened and owns.
        let r = unsafe { libc::close(fd) };
        if self.trace {
            let ret = if r < 0 {
                Err(Errno::last())
            } else {
                Ok("0".to_string())
            };
            self.emit(format!("close({fd})"), &Self::result_of(ret), "");
        }
    }

    /// `mmap(addr, len, prot, flags, fd, offset)`.
    ///
    /// # Safety
    /// With `MAP_FIXED` in `flags`, the range `addr..addr+len` must belong to
    /// the caller (a reservation of its own): whatever was mapped there is
    /// replaced.
    #[allow(clippy::too_many_arguments)] // mmap's own six, plus self and the note
    pub(crate) unsafe fn mmap(
        &self,
        addr: usize,
        len: usize,
        prot: i32,
        flags: i32,
        fd: RawFd,
        offset: u64,
        note: impl Note,
    ) -> Result<usize, Errno> {
        // SAFETY: the caller guarantees a MAP_FIXED range is its own; without
        // MAP_FIXED the kernel picks a free range.
        let p = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len,
                prot,
                flags,
                fd,
                offset as i64,
            )
        };
        let ret = if p == libc::MAP_FAILED {
            Err(Errno::last())
        } else {
            Ok(p as usize)
        };
        if self.trace {
            let call = format!(
                "mmap({}, {}, {}, {}, {}, {})",
                trace::pointer(addr),
                len,
                trace::prot(prot),
                trace::map_flags(flags),
                fd,
                trace::offset(offset)
            );
            self.emit(call, &Self::result_of(ret.map(|a| format!("{a:#x}"))), note);
        }
        ret
    }

    /// `mprotect(addr, len, prot)`.
    ///
    /// # Safety
    /// The range must belong to the caller; code that relies on the old
    /// protections must not run while they are changed.
    pub(crate) unsafe fn mprotect(
        &self,
        addr: usize,
        len: usize,
        prot: i32,
        note: impl Note,
    ) -> Result<(), Errno> {
        // SAFETY: the caller guarantees the range is its own.
        let r = unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot) };
        let ret = if r < 0 { Err(Errno::last()) } else { Ok(()) };
        if self.trace {
            let call = format!("mprotect({:#x}, {}, {})", addr, len, trace::prot(prot));
            self.emit(call, &Self::result_of(ret.map(|_| "0".to_string())), note);
        }
        ret
    }

    /// `madvise(addr, len, MADV_POPULATE_WRITE)`: faults in, writable, every
    /// page of a range in one call (Linux 5.14+; EINVAL before).
    ///
    /// # Safety
    /// The range must belong to the caller and be writable.
    pub(crate) unsafe fn populate_write(
        &self,
        addr: usize,
        len: usize,
        note: impl Note,
    ) -> Result<(), Errno> {
        // SAFETY: the caller guarantees the range is its own and writable;
        // populating changes no contents.
        unsafe {
            self.madvise(
                addr,
                len,
                libc::MADV_POPULATE_WRITE,
                "MADV_POPULATE_WRITE",
                note,
            )
        }
    }

    /// `madvise(addr, len, MADV_DONTNEED)`: drops the process's pages of a
    /// range; a private file mapping's pages that were never written come
    /// back from the file, unchanged, if touched again.
    ///
    /// # Safety
    /// The range must belong to the caller, and no page of it may hold
    /// anything written since it was mapped (that would be lost).
    pub(crate) unsafe fn dontneed(
        &self,
        addr: usize,
        len: usize,
        note: impl Note,
    ) -> Result<(), Errno> {
        // SAFETY: the caller guarantees the range is its own and holds
        // nothing written: dropping it loses nothing.
        unsafe { self.madvise(addr, len, libc::MADV_DONTNEED, "MADV_DONTNEED", note) }
    }

    /// `madvise(addr, len, advice)`, traced with the advice's name.
    ///
    /// # Safety
    /// The range must belong to the caller, and `advice` must be one that
    /// is sound for it (each caller above states why its advice is).
    unsafe fn madvise(
        &self,
        addr: usize,
        len: usize,
        advice: libc::c_int,
        name: &str,
        note: impl Note,
    ) -> Result<(), Errno> {
        // SAFETY: the caller guarantees the range is its own and the advice
        // sound for it.
        let r = unsafe { libc::madvise(addr as *mut libc::c_void, len, advice) };
        let ret = if r < 0 { Err(Errno::last()) } else { Ok(()) };
        if self.trace {
            let call = format!("madvise({addr:#x}, {len}, {name})");
            self.emit(call, &Self::result_of(ret.map(|_| "0".to_string())), note);
        }
        ret
    }

    /// `munmap(addr, len)`.
    ///
    /// # Safety
    /// The range must belong to the caller and nothing may use it afterwards.
    pub(crate) unsafe fn munmap(
        &self,
        addr: usize,
        len: usize,
        note: impl Note,
    ) -> Result<(), Errno> {
        // SAFETY: the caller guarantees the range is its own and unused.
        let r = unsafe { libc::munmap(addr as *mut libc::c_void, len) };
        let ret = if r < 0 { Err(Errno::last()) } else { Ok(()) };
        if self.trace {
            let call = format!("munmap({:#x}, {})", addr, len);
            self.emit(call, &Self::result_of(ret.map(|_| "0".to_string())), note);
        }
        ret
    }
}

/// A stat call's buffer as strace prints it: the fields minld reads once
/// filled, else the buffer's address.
pub(super) fn stat_shown(ret: Result<FileStat, Errno>, buf: usize) -> String {
    match ret {
        Ok(st) => format!(
            "{{st_mode={}, st_size={}, ...}}",
            trace::mode(st.mode),
            st.size
        ),
        Err(_) => format!("{buf:#x}"),
    }
}

/// A trace note: a string, or a closure that builds one only when tracing.
pub(crate) trait Note {
    /// The text of the note.
    fn text(self) -> String;
}

impl Note for &str {
    fn text(self) -> String {
        self.to_string()
    }
}

impl Note for &String {
    fn text(self) -> String {
        self.clone()
    }
}

impl<F: FnOnce() -> String> Note for F {
    fn text(self) -> String {
        self()
    }
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    use std::sync::OnceLock;
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no memory effects.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 {
            p as usize
        } else {
            4096
        }
    })
}
