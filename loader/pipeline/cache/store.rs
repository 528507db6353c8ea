//! The cache directory on disk: checked before anything in it is read or
//! written (owned by the user, not writable by group or others, not a
//! symbolic link; once per process), records opened without following a
//! symbolic link and read (a small one) or mapped read-only to be read in
//! place (a big one), and written to a temporary file renamed over the old
//! one. A temporary file a writer left (killed between the two) is removed
//! by a later writer once its writer is certainly gone or it is clearly
//! old ([`prune`]).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::base::transfer::Failed;
use crate::os::sys::{Fd, FileStat, Sys};

/// Why the cache was not used, for `MINLD_DEBUG=libs` (and a warning
/// where the user must act: an unsafe directory).
pub(crate) type Refused = String;

/// Records up to this size are read into memory with one `read`; bigger
/// ones are mapped and read in place. A small record's mapping would cost
/// an `mmap`, a `munmap` and a page fault for a few pages: more than
/// copying them (libz's record is 2 kB); a big one (libLLVM's, 600 kB)
/// would cost a page fault per heap page it is copied to.
const READ_UP_TO: usize = 64 * 1024;

/// A record's bytes: read into memory, or mapped read-only (unmapped when
/// dropped).
pub(crate) enum Mapped {
    /// Read with `read`.
    Read(Vec<u8>),
    /// Mapped.
    Map {
        /// Where it is mapped.
        addr: usize,
        /// Its length.
        len: usize,
        /// Unmaps it.
        sys: Sys,
    },
}

impl Mapped {
    /// The record's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Mapped::Read(v) => v,
            // SAFETY: `addr..+len` is a private read-only mapping this
            // value owns until it is dropped. Records are only ever
            // replaced by a rename, never truncated in place; only another
            // process of the same user truncating the file by hand could
            // make a read fault.
            Mapped::Map { addr, len, .. } => unsafe {
                std::slice::from_raw_parts(*addr as *const u8, *len)
            },
        }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if let Mapped::Map { addr, len, sys } = self {
            // SAFETY: the mapping is this value's own and the slices of
            // `bytes` borrowed from it have ended with the borrow of self.
            let _ = unsafe { sys.munmap(*addr, *len, "the link record, applied") };
        }
    }
}

/// Reads all `len` bytes of `fd` (a record no bigger than [`READ_UP_TO`]).
fn read_all(sys: &Sys, fd: &Fd, len: usize, path: &Path) -> Result<Mapped, Refused> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match sys.read(fd, &mut buf[got..], "the link record") {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("{}: read: {e}", path.display())),
        }
    }
    buf.truncate(got);
    Ok(Mapped::Read(buf))
}

/// The effective user id, from the auxiliary vector the kernel gave the
/// process (no system call).
fn euid() -> u32 {
    // SAFETY: getauxval only reads the auxiliary vector.
    unsafe { libc::getauxval(libc::AT_EUID) as u32 }
}

/// A file or directory the cache may trust: owned by the user, writable
/// by nobody else.
fn check_owner(what: &str, path: &Path, st: &FileStat) -> Result<(), Refused> {
    if st.uid != euid() {
        return Err(format!(
            "{what} {} is owned by uid {}, not by this user ({})",
            path.display(),
            st.uid,
            euid()
        ));
    }
    if st.mode & 0o022 != 0 {
        return Err(format!(
            "{what} {} has mode {:o}: writable by group or others",
            path.display(),
            st.mode & 0o7777
        ));
    }
    Ok(())
}

/// A path as a C string.
fn c_path(path: &Path) -> Result<CString, Refused> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: path holds a NUL byte", path.display()))
}

/// Checks the cache directory once per process: a directory (not a
/// symbolic link to one) that the user owns and nobody else may write;
/// created, mode 0700, when it does not exist.
pub(crate) fn check_dir(sys: &Sys, dir: &Path) -> Result<(), Refused> {
    static CHECKED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if checked.iter().any(|d| d == dir) {
        return Ok(());
    }
    let c = c_path(dir)?;
    let note = "owner and mode of the link cache's directory";
    let st = match sys.lstat(&c, note) {
        Err(nix::errno::Errno::ENOENT) => {
            sys.mkdir(&c, 0o700, "create the link cache's directory")
                .map_err(|e| format!("link cache {}: mkdir: {e}", dir.display()))?;
            sys.lstat(&c, note)
        }
        other => other,
    }
    .map_err(|e| format!("link cache {}: {e}", dir.display()))?;
    if st.mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(format!(
            "link cache {} is not a directory (a symbolic link is not followed)",
            dir.display()
        ));
    }
    check_owner("link cache directory", dir, &st)?;
    checked.push(dir.to_path_buf());
    Ok(())
}

/// The record at `path`, mapped; None when there is none.
pub(crate) fn read(sys: &Sys, path: &Path) -> Result<Option<Mapped>, Refused> {
    let c = c_path(path)?;
    let fd = match sys.open_nofollow(&c, "the link record") {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "{}: {}",
                path.display(),
                crate::os::trace::errno_name(e)
            ))
        }
    };
    let st = sys
        .fstat(&fd, "owner, mode and size of the link record")
        .map_err(|e| format!("{}: fstat: {e}", path.display()))?;
    if st.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(format!("{}: not a regular file", path.display()));
    }
    check_owner("link record", path, &st)?;
    let len = usize::try_from(st.size).unwrap_or(0);
    if len == 0 {
        return Err(format!("{}: empty", path.display()));
    }
    if len <= READ_UP_TO {
        return read_all(sys, &fd, len, path).map(Some);
    }
    // SAFETY: no MAP_FIXED: the kernel picks a free range.
    let addr = unsafe {
        sys.mmap(
            0,
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            fd.raw,
            0,
            "the link record, read in place",
        )
    }
    .map_err(|e| format!("{}: mmap: {e}", path.display()))?;
    Ok(Some(Mapped::Map {
        addr,
        len,
        sys: *sys,
    }))
}

/// A name part no other writer uses: the process's 16 random bytes from
/// the auxiliary vector (no system call) and a count of this process's
/// writes.
fn unique_suffix() -> String {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // SAFETY: getauxval only reads the auxiliary vector; AT_RANDOM, when
    // the kernel gives it, points at 16 bytes that live as long as the
    // process.
    let random = unsafe {
        let p = libc::getauxval(libc::AT_RANDOM) as *const u8;
        if p.is_null() {
            [0u8; 16]
        } else {
            std::ptr::read_unaligned(p.cast::<[u8; 16]>())
        }
    };
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{n}")
}

/// Writes `bytes` as the record at `path`: to a temporary file of this
/// writer's own beside it (named `RECORD.PID.SUFFIX.tmp`, PID the
/// writer's, for [`prune`]), then renamed over the old record, so a reader
/// sees the old record or the new one, never a part of either.
pub(crate) fn write(sys: &Sys, path: &Path, bytes: &[u8]) -> Result<(), Refused> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.{}.tmp", std::process::id(), unique_suffix()));
    let (tmp, to) = (c_path(Path::new(&tmp))?, c_path(path)?);
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{}: {what}: {e}", path.display());
    let fd = sys
        .create(&tmp, "the new link record")
        .map_err(|e| fail("create", &e))?;
    let written = sys.write_all(&fd, bytes, "");
    drop(fd);
    let renamed = written.and_then(|()| {
        sys.rename(&tmp, &to, "the new record replaces the old")
            .map_err(Failed::Kernel)
    });
    if let Err(e) = renamed {
        let _ = sys.unlink(&tmp, "");
        return Err(fail("write", &e));
    }
    Ok(())
}

/// Removes the record at `path` (one that did not fit its load).
pub(crate) fn remove(sys: &Sys, path: &Path) {
    if let Ok(c) = c_path(path) {
        let _ = sys.unlink(&c, "a link record that did not fit its load");
    }
}

/// A temporary file whose writer is gone (its pid has no process) is
/// removed once it is this old, in seconds (its mtime): a writer in
/// another pid namespace sharing the directory, whose pid means nothing
/// here, creates, writes and renames its file well within it.
pub(crate) const GONE_WRITER_AGE: i64 = 60;

/// Any temporary file of the cache this old, in seconds, is removed,
/// whatever its name says of its writer (a pid reused since, a name
/// without a pid): no writer takes that long between its writes.
pub(crate) const CLEARLY_OLD_AGE: i64 = 3600;

/// What a temporary file's name says of its writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Its pid.
    Pid(i32),
    /// A name without a pid (written before names had one).
    Unknown,
}

/// Whether `name` is a temporary file of [`write()`] (`RECORD.PID.SUFFIX.tmp`,
/// or `RECORD.SUFFIX.tmp` from before names had a pid; RECORD ends with
/// `.minld`, SUFFIX is 32 hex digits, `-` and a count), and its writer.
fn temporary(name: &[u8]) -> Option<Writer> {
    let stem = name.strip_suffix(b".tmp")?;
    let dot = stem.iter().rposition(|&b| b == b'.')?;
    let (rest, suffix) = (&stem[..dot], &stem[dot + 1..]);
    let (hex, count) = suffix.split_at_checked(32)?;
    let count = count.strip_prefix(b"-")?;
    let suffix_ok = hex.iter().all(u8::is_ascii_hexdigit)
        && !count.is_empty()
        && count.iter().all(u8::is_ascii_digit);
    if !suffix_ok {
        return None;
    }
    if rest.ends_with(b".minld") {
        return Some(Writer::Unknown);
    }
    let dot = rest.iter().rposition(|&b| b == b'.')?;
    let (record, pid) = (&rest[..dot], &rest[dot + 1..]);
    let pid: i32 = std::str::from_utf8(pid).ok()?.parse().ok()?;
    (record.ends_with(b".minld") && pid > 0).then_some(Writer::Pid(pid))
}

/// Removes the temporary files of `dir` (checked by [`check_dir`]) that
/// writers left behind, once per process and directory: those whose writer (the pid in the name) is
/// certainly gone and which are [`GONE_WRITER_AGE`] old, and any
/// [`CLEARLY_OLD_AGE`] old. Never one of this process's own (another of
/// its threads may be writing it) unless clearly old, nor anything that is
/// not a regular file of this user named as [`write()`] names them. A
/// writer whose file is removed all the same (stopped for an hour) only
/// fails its rename: the record is not written, nothing is corrupted.
/// What was removed, for `MINLD_DEBUG=libs`.
pub(crate) fn prune(sys: &Sys, dir: &Path) -> Vec<String> {
    static PRUNED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    {
        let mut pruned = PRUNED.lock().unwrap_or_else(|e| e.into_inner());
        if pruned.iter().any(|d| d == dir) {
            return Vec::new();
        }
        pruned.push(dir.to_path_buf());
    }
    let Ok(c) = c_path(dir) else {
        return Vec::new();
    };
    let note = "temporary files of writers that were killed";
    let Ok(fd) = sys.open_dir(&c, note) else {
        return Vec::new();
    };
    let names = sys.dir_names(&fd, note).unwrap_or_default();
    drop(fd);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut removed = Vec::new();
    for name in names {
        let Some(writer) = temporary(&name) else {
            continue;
        };
        let path = dir.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&name));
        if let Some(why) = stale(sys, &path, writer, now) {
            if let Ok(c) = c_path(&path) {
                if sys.unlink(&c, why.as_str()).is_ok() {
                    removed.push(format!("{} removed: {why}", path.display()));
                }
            }
        }
    }
    removed
}

/// Why the temporary file at `path`, written by `writer`, is stale (None:
/// it is kept); `now` in seconds since the epoch.
fn stale(sys: &Sys, path: &Path, writer: Writer, now: i64) -> Option<String> {
    let c = c_path(path).ok()?;
    let st = sys
        .lstat(&c, "age and owner of a temporary link record")
        .ok()?;
    if st.mode & libc::S_IFMT != libc::S_IFREG || st.uid != euid() {
        return None;
    }
    let age = now.saturating_sub(st.mtime.0);
    if age >= CLEARLY_OLD_AGE {
        return Some(format!("a temporary link record {age} s old"));
    }
    match writer {
        Writer::Pid(pid)
            if age >= GONE_WRITER_AGE
                && pid as u32 != std::process::id()
                && sys.process_gone(pid, "is the writer of a temporary link record alive") =>
        {
            Some(format!(
                "a temporary link record {age} s old, its writer (pid {pid}) gone"
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{temporary, Writer};

    /// The names `write` gives are recognised, with their pid; others not.
    #[test]
    fn temporary_names() {
        let hex = "0123456789abcdef0123456789ABCDEF";
        let named = |s: String| temporary(s.as_bytes());
        assert_eq!(
            named(format!("libz.so.1-00ff.minld.4242.{hex}-0.tmp")),
            Some(Writer::Pid(4242))
        );
        assert_eq!(
            named(format!("libz.so.1-00ff.minld.{hex}-12.tmp")),
            Some(Writer::Unknown)
        );
        for other in [
            "libz.so.1-00ff.minld".to_string(),
            format!("notes.{hex}-0.tmp"),
            format!("libz.so.1-00ff.minld.42.{hex}.tmp"),
            format!("libz.so.1-00ff.minld.x42.{hex}-0.tmp"),
            format!("libz.so.1-00ff.minld.-1.{hex}-0.tmp"),
            "libz.so.1-00ff.minld.42.abc-0.tmp".to_string(),
        ] {
            assert_eq!(named(other.clone()), None, "{other}");
        }
    }
}
