//! Shared by the fuzz targets: a file held in memory, opened through the
//! real loader by its `/proc/self/fd` path.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A memfd holding `bytes` and the path that opens it; closed on drop.
pub struct MemFile {
    fd: OwnedFd,
    /// `/proc/self/fd/N`.
    pub path: String,
}

impl MemFile {
    /// Writes `bytes` to a new memfd.
    pub fn new(bytes: &[u8]) -> MemFile {
        // SAFETY: memfd_create with a NUL-terminated name; the descriptor is
        // owned below.
        let raw = unsafe { libc::memfd_create(c"minld-fuzz".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut f = std::fs::File::from(fd.try_clone().expect("dup"));
        f.write_all(bytes).expect("write to memfd");
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        MemFile { fd, path }
    }

    /// The descriptor (kept open while the file is loaded).
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}
