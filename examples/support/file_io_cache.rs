//! file_io's page cache: how much of a file it holds (mincore), emptying
//! it of a file (fsync and POSIX_FADV_DONTNEED, or drop_caches), filling
//! it (a submodule of `file_io.rs`: it uses its system-call counter).

use std::path::Path;

use super::{seq_read, Calls, PAGE};

/// How much of `path` is in the page cache, in percent (mincore over a
/// mapping of it, which faults nothing in); None for an empty file.
pub fn cached_pct(path: &Path) -> Option<f64> {
    let mut c = Calls::default();
    let fd = c.open(path);
    let len = c.size(fd);
    let pct = c.mmap(fd, len).map(|p| {
        let pages = len.div_ceil(PAGE) as usize;
        let mut vec = vec![0u8; pages];
        // SAFETY: `p` maps len bytes; vec has one byte per page.
        let r = unsafe { libc::mincore(p as *mut libc::c_void, len as usize, vec.as_mut_ptr()) };
        let resident = if r == 0 {
            vec.iter().filter(|&&b| b & 1 != 0).count()
        } else {
            0
        };
        c.munmap(p, len);
        100.0 * resident as f64 / pages as f64
    });
    c.close(fd);
    pct
}

/// Empties the page cache of `path`: fsync then POSIX_FADV_DONTNEED, or
/// (`global`) sync and /proc/sys/vm/drop_caches. Returns how, or why not.
pub fn drop_cache(path: &Path, global: bool) -> Result<&'static str, String> {
    if global {
        // SAFETY: sync has no memory effects.
        unsafe { libc::sync() };
        return std::fs::write("/proc/sys/vm/drop_caches", "1")
            .map(|()| "drop_caches")
            .map_err(|e| format!("/proc/sys/vm/drop_caches: {e}"));
    }
    let mut c = Calls::default();
    let fd = c.open(path);
    // SAFETY: fsync and posix_fadvise only act on the descriptor's file.
    let r = unsafe {
        libc::fsync(fd);
        libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED)
    };
    c.close(fd);
    if r == 0 {
        Ok("posix_fadvise")
    } else {
        Err(format!(
            "posix_fadvise: {}",
            std::io::Error::from_raw_os_error(r)
        ))
    }
}

/// Brings the whole file into the page cache.
pub fn warm(path: &Path) {
    let _ = seq_read(path, 1 << 20);
}
