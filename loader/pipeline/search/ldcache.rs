//! `/etc/ld.so.cache`, the index ldconfig writes: soname to path.
//!
//! The format (glibc `sysdeps/generic/dl-cache.h`, "new" format): a header
//! `glibc-ld.so.cache1.1`, u32 nlibs, u32 len_strings, u8 flags, 3 bytes of
//! padding, u32 extension_offset, 3 unused u32 (48 bytes); then nlibs
//! entries of 24 bytes: i32 flags, u32 key, u32 value (string offsets from
//! the new-format header), u32 osversion, u64 hwcap. An old-format
//! (`ld.so-1.7.0`) table may come first; the new one follows it, 8-aligned.

use std::path::PathBuf;

use crate::os::sys::Sys;

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// Entry flags of an x86-64 ELF library (FLAG_ELF_LIBC6 | FLAG_X8664_LIB64).
const X86_64_LIBC6: i32 = 0x0303;

/// The cache, mapped once and kept for the process's life (33 KB here),
/// searched in place as glibc does: a binary search touches a few pages,
/// where reading every entry would fault in and copy the whole file.
#[derive(Debug, Default)]
pub(crate) struct LdCache {
    data: &'static [u8],
    /// Offset of the new-format header.
    start: usize,
    nlibs: usize,
}

/// ldconfig's sort order of names (that of glibc's `_dl_cache_libcmp`):
/// runs of digits compare by their numeric value, a digit sorts after any
/// other byte, other bytes compare as bytes. The table is sorted from the
/// greatest name down.
fn libcmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut i, mut j) = (0, 0);
    let number = |s: &[u8], k: &mut usize| {
        let mut v: u64 = 0;
        while let Some(d) = s.get(*k).filter(|d| d.is_ascii_digit()) {
            v = v.saturating_mul(10).saturating_add(u64::from(d - b'0'));
            *k += 1;
        }
        v
    };
    loop {
        let (x, y) = (a.get(i).copied(), b.get(j).copied());
        match (x, y) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match (x.is_ascii_digit(), y.is_ascii_digit()) {
                (true, true) => match number(a, &mut i).cmp(&number(b, &mut j)) {
                    Ordering::Equal => {}
                    o => return o,
                },
                (true, false) => return Ordering::Greater,
                (false, true) => return Ordering::Less,
                (false, false) if x != y => return x.cmp(&y),
                _ => {
                    i += 1;
                    j += 1;
                }
            },
        }
    }
}

impl LdCache {
    /// Checks the header of `data`; an unknown format gives an empty cache.
    pub(crate) fn parse(data: &'static [u8]) -> LdCache {
        let u32_at = |o: usize| {
            data.get(o..o + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let mut start = 0usize;
        if data.starts_with(OLD_MAGIC) {
            let Some(n) = u32_at(12) else {
                return LdCache::default();
            };
            start = (16 + n as usize * 12 + 7) & !7;
        }
        if !data.get(start..).is_some_and(|d| d.starts_with(NEW_MAGIC)) {
            return LdCache::default();
        }
        let nlibs = u32_at(start + 20).unwrap_or(0) as usize;
        // Entries past the end of the file are not entries.
        let fits = data.len().saturating_sub(start + 48) / 24;
        LdCache {
            data,
            start,
            nlibs: nlibs.min(fits),
        }
    }

    fn u32_at(&self, o: usize) -> Option<u32> {
        self.data
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The string at `off`, which counts from the new-format header (the
    /// start of the file, unless an old-format table comes first).
    fn string(&self, off: u32) -> Option<&'static [u8]> {
        let s = self.data.get(self.start.checked_add(off as usize)?..)?;
        let end = s.iter().position(|&b| b == 0)?;
        Some(&s[..end])
    }

    /// Entry `i`: (flags, key, value offset, hwcap).
    fn entry(&self, i: usize) -> Option<(i32, &'static [u8], u32, u64)> {
        let e = self.start + 48 + i * 24;
        let flags = self.u32_at(e)? as i32;
        let key = self.string(self.u32_at(e + 4)?)?;
        let value = self.u32_at(e + 8)?;
        let hwcap = u64::from(self.u32_at(e + 16)?) | u64::from(self.u32_at(e + 20)?) << 32;
        Some((flags, key, value, hwcap))
    }

    fn usable(&self, i: usize, name: &[u8]) -> Option<PathBuf> {
        let (flags, key, value, hwcap) = self.entry(i)?;
        if flags != X86_64_LIBC6 || hwcap != 0 || key != name {
            return None;
        }
        let v = self.string(value)?;
        Some(PathBuf::from(String::from_utf8_lossy(v).into_owned()))
    }

    /// The path of the first x86-64 entry for `name` (no hwcap subdirectory).
    pub(crate) fn lookup(&self, name: &str) -> Option<PathBuf> {
        let name = name.as_bytes();
        // Binary search in ldconfig's (descending) order, then the run of
        // entries with that name.
        let (mut lo, mut hi) = (0usize, self.nlibs);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (_, key, _, _) = self.entry(mid)?;
            match libcmp(name, key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let mut first = mid;
                    while first > 0 && self.entry(first - 1).is_some_and(|e| e.1 == name) {
                        first -= 1;
                    }
                    return (first..self.nlibs)
                        .take_while(|&i| self.entry(i).is_some_and(|e| e.1 == name))
                        .find_map(|i| self.usable(i, name));
                }
            }
        }
        None
    }
}

/// Maps /etc/ld.so.cache for the process's life; empty if missing.
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
    let Ok(addr) = (unsafe {
        sys.mmap(
            0,
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            fd.raw,
            0,
            "ld.so.cache, kept for the process's life",
        )
    }) else {
        return LdCache::default();
    };
    drop(fd);
    // SAFETY: the mapping covers `len` readable bytes and is never unmapped
    // (a private mapping: later changes to the file by ldconfig, which
    // replaces it by rename, do not reach it).
    LdCache::parse(unsafe { std::slice::from_raw_parts(addr as *const u8, len) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ldconfig_order() {
        use std::cmp::Ordering::*;
        assert_eq!(super::libcmp(b"libz.so.1", b"libz.so.1"), Equal);
        assert_eq!(super::libcmp(b"libfoo.so.10", b"libfoo.so.9"), Greater);
        assert_eq!(super::libcmp(b"libfoo.so", b"libfoo.so.1"), Less);
        assert_eq!(super::libcmp(b"liba1", b"libaz"), Greater);
    }

    #[test]
    fn the_system_cache_knows_libz() {
        let Ok(data) = std::fs::read("/etc/ld.so.cache") else {
            eprintln!("skipped: no /etc/ld.so.cache on this machine");
            return;
        };
        let cache = super::LdCache::parse(Vec::leak(data));
        let libz = cache.lookup("libz.so.1").expect("libz.so.1 in the cache");
        assert!(libz.ends_with("libz.so.1"), "{libz:?}");
        assert!(cache.nlibs > 20);
        assert_eq!(cache.lookup("libminld_nonexistent.so"), None);
        // Every entry is found by the binary search.
        for i in 0..cache.nlibs {
            let (flags, key, _, hwcap) = cache.entry(i).unwrap();
            if flags == super::X86_64_LIBC6 && hwcap == 0 {
                let key = String::from_utf8_lossy(key).into_owned();
                assert!(cache.lookup(&key).is_some(), "{key} not found");
            }
        }
    }
}
