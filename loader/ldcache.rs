//! `/etc/ld.so.cache`, the index ldconfig writes: soname to path.
//!
//! The format (glibc `sysdeps/generic/dl-cache.h`, "new" format): a header
//! `glibc-ld.so.cache1.1`, u32 nlibs, u32 len_strings, u8 flags, 3 bytes of
//! padding, u32 extension_offset, 3 unused u32 (48 bytes); then nlibs
//! entries of 24 bytes: i32 flags, u32 key, u32 value (string offsets from
//! the start of the file), u32 osversion, u64 hwcap. An old-format
//! (`ld.so-1.7.0`) table may come first; the new one follows it, 8-aligned.

use std::path::PathBuf;

use crate::sys::Sys;

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// Entry flags of an x86-64 ELF library (FLAG_ELF_LIBC6 | FLAG_X8664_LIB64).
const X86_64_LIBC6: i32 = 0x0303;

/// The cache's bytes, searched in place on each lookup (as glibc does)
/// rather than turned into a map: most processes look up a few names.
#[derive(Debug, Default)]
pub(crate) struct LdCache {
    data: Vec<u8>,
    /// Offset of the new-format header.
    start: usize,
    nlibs: usize,
}

impl LdCache {
    /// Checks the header of `data`; an unknown format gives an empty cache.
    pub(crate) fn parse(data: Vec<u8>) -> LdCache {
        let u32_at = |d: &[u8], o: usize| {
            d.get(o..o + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let mut start = 0usize;
        if data.starts_with(OLD_MAGIC) {
            let Some(n) = u32_at(&data, 12) else {
                return LdCache::default();
            };
            start = (16 + n as usize * 12 + 7) & !7;
        }
        if !data.get(start..).is_some_and(|d| d.starts_with(NEW_MAGIC)) {
            return LdCache::default();
        }
        let nlibs = u32_at(&data, start + 20).unwrap_or(0) as usize;
        LdCache {
            data,
            start,
            nlibs: nlibs.min(1 << 20),
        }
    }

    fn u32_at(&self, o: usize) -> Option<u32> {
        self.data
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The NUL-terminated string at `off` equals `name`.
    fn string_is(&self, off: u32, name: &[u8]) -> bool {
        let off = off as usize;
        self.data.get(off..off + name.len()) == Some(name)
            && self.data.get(off + name.len()) == Some(&0)
    }

    fn string(&self, off: u32) -> Option<&[u8]> {
        let s = self.data.get(off as usize..)?;
        let end = s.iter().position(|&b| b == 0)?;
        Some(&s[..end])
    }

    /// The path of the first x86-64 entry for `name` (no hwcap subdirectory).
    pub(crate) fn lookup(&self, name: &str) -> Option<PathBuf> {
        let name = name.as_bytes();
        (0..self.nlibs).find_map(|i| {
            let e = self.start + 48 + i * 24;
            let flags = self.u32_at(e)? as i32;
            let key = self.u32_at(e + 4)?;
            let hwcap_lo = self.u32_at(e + 16)?;
            let hwcap_hi = self.u32_at(e + 20)?;
            if flags != X86_64_LIBC6 || hwcap_lo != 0 || hwcap_hi != 0 || !self.string_is(key, name)
            {
                return None;
            }
            let value = self.string(self.u32_at(e + 8)?)?;
            Some(PathBuf::from(String::from_utf8_lossy(value).into_owned()))
        })
    }
}

/// Reads /etc/ld.so.cache (mapped, copied, unmapped); empty if missing.
pub(crate) fn load(sys: &Sys) -> LdCache {
    let path = c"/etc/ld.so.cache";
    let Ok(fd) = sys.open(path, "the ld.so.cache index, soname to path") else {
        return LdCache::default();
    };
    let Ok(st) = sys.fstat(&fd, "") else {
        return LdCache::default();
    };
    let len = st.size as usize;
    if len == 0 {
        return LdCache::default();
    }
    // SAFETY: a private read-only mapping of the whole file, no MAP_FIXED.
    let Ok(addr) = (unsafe { sys.mmap(0, len, libc::PROT_READ, libc::MAP_PRIVATE, fd.raw, 0, "") })
    else {
        return LdCache::default();
    };
    drop(fd);
    // SAFETY: the mapping covers `len` readable bytes until the munmap
    // below; they are copied out before it.
    let data = unsafe { std::slice::from_raw_parts(addr as *const u8, len) }.to_vec();
    // SAFETY: unmapping the mapping made above, no longer referenced.
    let _ = unsafe { sys.munmap(addr, len, "done with ld.so.cache") };
    LdCache::parse(data)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_system_cache_knows_libz() {
        let Ok(data) = std::fs::read("/etc/ld.so.cache") else {
            eprintln!("skipped: no /etc/ld.so.cache on this machine");
            return;
        };
        let cache = super::LdCache::parse(data);
        let libz = cache.lookup("libz.so.1").expect("libz.so.1 in the cache");
        assert!(libz.ends_with("libz.so.1"), "{libz:?}");
        assert!(cache.nlibs > 20);
        assert_eq!(cache.lookup("libminld_nonexistent.so"), None);
    }
}
