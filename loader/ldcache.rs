//! `/etc/ld.so.cache`, the index ldconfig writes: soname to path.
//!
//! The format (glibc `sysdeps/generic/dl-cache.h`, "new" format): a header
//! `glibc-ld.so.cache1.1`, u32 nlibs, u32 len_strings, u8 flags, 3 bytes of
//! padding, u32 extension_offset, 3 unused u32 (48 bytes); then nlibs
//! entries of 24 bytes: i32 flags, u32 key, u32 value (string offsets from
//! the start of the file), u32 osversion, u64 hwcap. An old-format
//! (`ld.so-1.7.0`) table may come first; the new one follows it, 8-aligned.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::sys::Sys;

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// FLAG_ELF_LIBC6 | FLAG_X8664_LIB64.
const X86_64_LIBC6: i32 = 0x0303;

/// Parses a cache image into soname → path, keeping the first (preferred)
/// entry of each name with no hwcap subdirectory requirement.
pub(crate) fn parse(data: &[u8]) -> Option<HashMap<String, PathBuf>> {
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut start = 0usize;
    if data.starts_with(OLD_MAGIC) {
        // Old header: char magic[11], then u32 nlibs at offset 12; entries
        // of 12 bytes follow.
        let nlibs = u32_at(12)? as usize;
        start = (16 + nlibs * 12 + 7) & !7;
    }
    let d = data.get(start..)?;
    if !d.starts_with(NEW_MAGIC) {
        return None;
    }
    let nlibs = u32_at(start + 20)? as usize;
    let mut map = HashMap::new();
    let string = |off: u32| -> Option<String> {
        let s = data.get(off as usize..)?;
        let end = s.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&s[..end]).into_owned())
    };
    for i in 0..nlibs.min(1 << 20) {
        let e = start + 48 + i * 24;
        let flags = u32_at(e)? as i32;
        let key = u32_at(e + 4)?;
        let value = u32_at(e + 8)?;
        let hwcap = data
            .get(e + 16..e + 24)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))?;
        if flags != X86_64_LIBC6 || hwcap != 0 {
            continue;
        }
        if let (Some(k), Some(v)) = (string(key), string(value)) {
            map.entry(k).or_insert_with(|| PathBuf::from(v));
        }
    }
    Some(map)
}

/// Reads the cache the way ld.so does (open, fstat, mmap, close) and parses it.
pub(crate) fn load(sys: &Sys) -> HashMap<String, PathBuf> {
    let path = c"/etc/ld.so.cache";
    let Ok(fd) = sys.open(path, "the ld.so.cache index, soname to path") else {
        return HashMap::new();
    };
    let Ok(st) = sys.fstat(&fd, "") else {
        return HashMap::new();
    };
    let len = st.size as usize;
    if len == 0 {
        return HashMap::new();
    }
    // SAFETY: no MAP_FIXED: the kernel chooses a free range.
    let Ok(addr) = (unsafe { sys.mmap(0, len, libc::PROT_READ, libc::MAP_PRIVATE, fd.raw, 0, "") })
    else {
        return HashMap::new();
    };
    drop(fd);
    // SAFETY: the mapping is `len` readable bytes, private to us, unmapped
    // only below after the last use of the slice.
    let data = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
    let map = parse(data).unwrap_or_default();
    // SAFETY: our own mapping; `data` is not used past this point.
    let _ = unsafe { sys.munmap(addr, len, "done with ld.so.cache") };
    map
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_system_cache_knows_libz() {
        let Ok(data) = std::fs::read("/etc/ld.so.cache") else {
            eprintln!("skipped: no /etc/ld.so.cache on this machine");
            return;
        };
        let map = super::parse(&data).expect("parse /etc/ld.so.cache");
        let libz = map.get("libz.so.1").expect("libz.so.1 in the cache");
        assert!(libz.ends_with("libz.so.1"), "{libz:?}");
        assert!(map.len() > 20);
    }
}
