//! What the kernel says about this process's own memory, for
//! [`crate::api::pages`]: a `/proc/self` file read whole (`smaps`), the
//! `/proc/self/pagemap` entries of a range, and `mincore` on a range.
//! Traced like every other call minld makes: the reads show as `openat`,
//! `read`/`pread64` and `close`, and `mincore` as strace prints it.

use std::ffi::CStr;

use nix::errno::Errno;

use crate::base::transfer::{Failed, TransferFault};
use crate::os::sys::{page_size, Note, Sys};

/// How many elements of an array strace prints before `...`.
const ARRAY_LIMIT: usize = 32;

impl Sys {
    /// A file of `/proc` read whole: `openat`, `read` in 64 KiB pieces
    /// until it returns 0, `close`.
    pub(crate) fn read_whole(&self, path: &CStr, note: &str) -> Result<Vec<u8>, Errno> {
        let fd = self.open(path, note)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.read(&fd, &mut buf, note) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The `/proc/self/pagemap` entries of each range, `(start, pages)`:
    /// `pages` pages from `start` (a page-aligned address); the file opened
    /// once, one `pread64` per range at offset `start / page * 8`. The
    /// caller bounds the counts by the mappings it found (a range's buffer
    /// is `pages * 8` bytes); an end of file before a range's last entry is
    /// a [`TransferFault::ShortRead`].
    pub(crate) fn pagemap(
        &self,
        ranges: &[(usize, usize)],
        note: &str,
    ) -> Result<Vec<Vec<u64>>, Failed> {
        let fd = self.open(c"/proc/self/pagemap", note)?;
        ranges
            .iter()
            .map(|&(start, pages)| self.pagemap_of(&fd, start, pages, note))
            .collect()
    }

    /// The entries of one range, read from the open pagemap `fd`.
    fn pagemap_of(
        &self,
        fd: &crate::os::sys::Fd,
        start: usize,
        pages: usize,
        note: &str,
    ) -> Result<Vec<u64>, Failed> {
        let len = pages * 8;
        let mut bytes = vec![0u8; len];
        let mut done = 0;
        while done < bytes.len() {
            let offset = ((start / page_size()) * 8 + done) as u64;
            match self.pread(fd, &mut bytes[done..], offset, note) {
                Ok(0) => {
                    return Err(Failed::Short(TransferFault::ShortRead {
                        wanted: len as u64,
                        got: done as u64,
                    }))
                }
                Ok(n) => done += n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Failed::Kernel(e)),
            }
        }
        Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect())
    }

    /// `mincore(addr, len, vec)`: one byte per page, bit 0 set when the
    /// page is in memory (for a file mapping: in the page cache, whether or
    /// not this process has touched it). The range must be mapped.
    pub(crate) fn mincore(
        &self,
        addr: usize,
        len: usize,
        note: impl Note,
    ) -> Result<Vec<u8>, Errno> {
        let mut vec = vec![0u8; len.div_ceil(page_size())];
        // SAFETY: mincore only writes `vec`, one byte per page of the
        // range, which it has room for; it changes no mapping.
        let r = unsafe { libc::mincore(addr as *mut libc::c_void, len, vec.as_mut_ptr()) };
        let ret = if r < 0 { Err(Errno::last()) } else { Ok(()) };
        if self.trace {
            let shown = match ret {
                Ok(()) => {
                    let mut parts: Vec<String> = vec
                        .iter()
                        .take(ARRAY_LIMIT)
                        .map(|b| b.to_string())
                        .collect();
                    if vec.len() > ARRAY_LIMIT {
                        parts.push("...".to_string());
                    }
                    format!("[{}]", parts.join(", "))
                }
                Err(_) => format!("{:#x}", vec.as_ptr() as usize),
            };
            let call = format!("mincore({addr:#x}, {len}, {shown})");
            self.emit(call, &Self::result_of(ret.map(|()| "0".to_string())), note);
        }
        ret.map(|()| vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past the last entry the kernel's pagemap ends: a read of 0 there is
    /// a short read with the sizes, not an errno no call returned.
    #[test]
    fn pagemap_past_its_end_is_a_short_read() {
        let sys = Sys { trace: false };
        let last = usize::MAX & !(page_size() - 1);
        match sys.pagemap(&[(last, 2)], "test") {
            Err(Failed::Short(TransferFault::ShortRead { wanted: 16, got })) => {
                assert!(got < 16, "{got}");
            }
            Err(Failed::Kernel(e)) => panic!("expected a short read, got the kernel's {e}"),
            other => panic!("expected a short read, got {other:?}"),
        }
        let local = 0u64;
        let here = std::ptr::addr_of!(local) as usize & !(page_size() - 1);
        let got = sys.pagemap(&[(here, 1), (here, 2)], "test");
        assert_eq!(
            got.map(|v| v.iter().map(Vec::len).collect()),
            Ok(vec![1, 2])
        );
    }
}
