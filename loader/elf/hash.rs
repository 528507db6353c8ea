//! The hash tables of a symbol table (GNU with its Bloom filter, SysV):
//! read in place and checked once, and the hash functions of names.

use std::path::Path;

use crate::base::error::{DynamicFault, Error};
use crate::base::mem::{Memory, Table};
use crate::elf::dynamic::Dynamic;

/// [`DynamicFault::Outside`]: the table `field` at `addr` (`count` of
/// `unit` long, where known) is not inside the image.
#[cold]
#[inline(never)]
pub(crate) fn outside(
    path: &Path,
    field: &'static str,
    addr: usize,
    count: Option<usize>,
    unit: &'static str,
) -> Error {
    let fault = DynamicFault::Outside {
        count: count.map(|n| n as u64),
        unit,
    };
    Error::dynamic(path, field, addr as u64, fault)
}

/// DT_GNU_HASH at `addr`: its header, Bloom filter, buckets and chains,
/// and the symbol count they imply (past the end of the last chain a
/// bucket starts).
fn gnu_hash_table(path: &Path, mem: &Memory, addr: usize) -> Result<(Hash, usize), Error> {
    let field = "DT_GNU_HASH";
    let head: Table<u32> = mem
        .table(addr, 4)
        .ok_or_else(|| outside(path, field, addr, Some(16), "bytes"))?;
    let nbuckets = head.get(0).unwrap_or(0) as usize;
    let symoffset = head.get(1).unwrap_or(0);
    let bloom_size = head.get(2).unwrap_or(0) as usize;
    let shift = head.get(3).unwrap_or(0);
    if nbuckets == 0 || bloom_size == 0 || !bloom_size.is_power_of_two() || shift >= 64 {
        let fault = DynamicFault::GnuHashHeader {
            nbuckets: nbuckets as u64,
            bloom_size: bloom_size as u64,
            shift: u64::from(shift),
        };
        return Err(Error::dynamic(path, field, addr as u64, fault));
    }
    let bloom: Table<u64> = mem.table(addr + 16, bloom_size).ok_or_else(|| {
        outside(
            path,
            "DT_GNU_HASH Bloom filter",
            addr + 16,
            Some(bloom_size),
            "words",
        )
    })?;
    let buckets_at = bloom.addr() + bloom_size * 8;
    let buckets: Table<u32> = mem.table(buckets_at, nbuckets).ok_or_else(|| {
        outside(
            path,
            "DT_GNU_HASH buckets",
            buckets_at,
            Some(nbuckets),
            "entries",
        )
    })?;
    let chain_addr = buckets.addr() + nbuckets * 4;
    let chain_all: Table<u32> = mem
        .table_to_end(chain_addr)
        .ok_or_else(|| outside(path, "DT_GNU_HASH chains", chain_addr, None, ""))?;
    let (max_bucket, bad) = scan_buckets(mem, &buckets, symoffset);
    let nsyms = gnu_symbol_count(path, max_bucket, &chain_all, symoffset, chain_addr)?;
    if let Some(b) = bad {
        return Err(bucket_outside(path, b, symoffset, nsyms));
    }
    let chain = chain_all
        .slice(0, nsyms.saturating_sub(symoffset as usize))
        .ok_or_else(|| outside(path, "DT_GNU_HASH chains", chain_addr, None, ""))?;
    let hash = Hash::Gnu {
        bloom,
        shift,
        buckets,
        chain,
        symoffset,
    };
    Ok((hash, nsyms))
}

/// One pass over a GNU hash table's buckets: the highest (where the last
/// chain starts) and the first that starts before the hashed symbols
/// (`symoffset`), if any. (Every bucket is below the count the chains
/// give: see [`gnu_symbol_count`].) Read as bytes, so that the loop runs
/// several buckets at a time.
fn scan_buckets(mem: &Memory, buckets: &Table<u32>, symoffset: u32) -> (u32, Option<u32>) {
    let Some(bytes) = mem.table::<u8>(buckets.addr(), buckets.len() * 4) else {
        return (buckets.iter().max().unwrap_or(0), None);
    };
    let (max, any_bad) = bytes
        .bytes()
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .fold((0u32, false), |(max, bad), b| {
            (max.max(b), bad | (b != 0 && b < symoffset))
        });
    let bad = any_bad
        .then(|| buckets.iter().find(|&b| b != 0 && b < symoffset))
        .flatten();
    (max, bad)
}

/// [`DynamicFault::BucketOutside`]: bucket `b` starts before the hashed
/// symbols (`symoffset`..`nsyms`).
#[cold]
#[inline(never)]
fn bucket_outside(path: &Path, b: u32, symoffset: u32, nsyms: usize) -> Error {
    let fault = DynamicFault::BucketOutside {
        symoffset: u64::from(symoffset),
        nsyms: nsyms as u64,
    };
    Error::dynamic(path, "DT_GNU_HASH bucket", u64::from(b), fault)
}

/// The symbol count of a GNU hash table: the chain the highest bucket
/// (`max_bucket`) starts ends at the last hashed symbol (its low bit set).
/// Every bucket is below the count.
fn gnu_symbol_count(
    path: &Path,
    max_bucket: u32,
    chains: &Table<u32>,
    symoffset: u32,
    chain_addr: usize,
) -> Result<usize, Error> {
    if max_bucket < symoffset || max_bucket == 0 {
        return Ok((max_bucket as usize).max(symoffset as usize));
    }
    let mut i = (max_bucket - symoffset) as usize;
    loop {
        let h = chains.get(i).ok_or_else(|| {
            outside(
                path,
                "DT_GNU_HASH chain",
                chain_addr,
                Some(i + 1),
                "entries",
            )
        })?;
        if h & 1 != 0 {
            return Ok(symoffset as usize + i + 1);
        }
        i += 1;
    }
}

/// DT_HASH at `addr`: buckets and chains; nchain is the symbol count.
fn sysv_hash_table(path: &Path, mem: &Memory, addr: usize) -> Result<(Hash, usize), Error> {
    let head: Table<u32> = mem
        .table(addr, 2)
        .ok_or_else(|| outside(path, "DT_HASH", addr, Some(8), "bytes"))?;
    let nbucket = head.get(0).unwrap_or(0) as usize;
    let nchain = head.get(1).unwrap_or(0) as usize;
    let buckets = mem
        .table(addr + 8, nbucket)
        .ok_or_else(|| outside(path, "DT_HASH buckets", addr + 8, Some(nbucket), "entries"))?;
    let chains_at = addr + 8 + nbucket * 4;
    let chain = mem
        .table(chains_at, nchain)
        .ok_or_else(|| outside(path, "DT_HASH chains", chains_at, Some(nchain), "entries"))?;
    Ok((Hash::Sysv { buckets, chain }, nchain))
}

/// The hash of a name, in both flavours (the SysV one computed on demand).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameHash {
    /// The GNU hash.
    pub(crate) gnu: u32,
}

impl NameHash {
    /// The hash of `name`.
    pub(crate) fn new(name: &[u8]) -> Self {
        NameHash {
            gnu: gnu_hash(name),
        }
    }
}

/// The NUL-terminated name at the start of `bytes` (without the NUL) and
/// its GNU hash, both from one pass over its bytes (relocation reads each
/// symbol's name, then hashes it); None without a NUL. Eight bytes are
/// looked at a time: a word with no zero byte is hashed whole, the one
/// with the NUL up to it.
#[inline]
pub(crate) fn c_str_hashed(bytes: &[u8]) -> Option<(&[u8], NameHash)> {
    /// One step of the GNU hash.
    #[inline(always)]
    fn step(h: u32, c: u8) -> u32 {
        h.wrapping_mul(33).wrapping_add(u32::from(c))
    }
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut h = 5381u32;
    let mut chunks = bytes.chunks_exact(8);
    let mut len = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // The lowest byte of `w` that is zero has its high bit set here
        // (bytes above it may too, never one below).
        let zero = w.wrapping_sub(ONES) & !w & HIGHS;
        if zero != 0 {
            let n = (zero.trailing_zeros() / 8) as usize;
            h = chunk[..n].iter().fold(h, |h, &c| step(h, c));
            return Some((&bytes[..len + n], NameHash { gnu: h }));
        }
        h = chunk.iter().fold(h, |h, &c| step(h, c));
        len += 8;
    }
    for (i, &c) in chunks.remainder().iter().enumerate() {
        if c == 0 {
            return Some((&bytes[..len + i], NameHash { gnu: h }));
        }
        h = step(h, c);
    }
    None
}

/// The GNU hash (Bernstein's, `h * 33 + c`).
pub(crate) fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| {
        h.wrapping_mul(33).wrapping_add(u32::from(c))
    })
}

/// The SysV ELF hash, also used for version names.
pub(crate) fn elf_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// One object's hash table, read in place.
#[derive(Debug)]
pub(crate) enum Hash {
    /// DT_GNU_HASH.
    Gnu {
        /// The Bloom filter's words.
        bloom: Table<u64>,
        /// The Bloom filter's second shift.
        shift: u32,
        /// The buckets: the first symbol of each chain (0: empty).
        buckets: Table<u32>,
        /// The chains' hashes, from symbol `symoffset` on (low bit: the
        /// chain's last).
        chain: Table<u32>,
        /// The first hashed symbol.
        symoffset: u32,
    },
    /// DT_HASH.
    Sysv {
        /// The buckets.
        buckets: Table<u32>,
        /// The chains, by symbol index.
        chain: Table<u32>,
    },
}

impl Hash {
    /// The object's hash table (DT_GNU_HASH if it has one, else DT_HASH),
    /// checked, and the symbol count it implies.
    pub(crate) fn read(path: &Path, mem: &Memory, d: &Dynamic) -> Result<(Hash, usize), Error> {
        match d.gnu_hash {
            Some(addr) => gnu_hash_table(path, mem, addr),
            None => sysv_hash_table(path, mem, d.sysv_hash.unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_read_with_its_hash_is_the_name_and_its_gnu_hash() {
        let table = b"\0printf\0PyLong_FromLong\0x";
        assert_eq!(
            c_str_hashed(&table[1..]).map(|(n, h)| (n, h.gnu)),
            Some((&b"printf"[..], gnu_hash(b"printf")))
        );
        let (name, h) = c_str_hashed(&table[8..]).unwrap();
        assert_eq!(
            (name, h.gnu),
            (&b"PyLong_FromLong"[..], gnu_hash(b"PyLong_FromLong"))
        );
        // The empty name (offset 0), and GNU hash's known values.
        assert_eq!(
            c_str_hashed(table).map(|(n, h)| (n.len(), h.gnu)),
            Some((0, 5381))
        );
        assert_eq!(gnu_hash(b"printf"), 0x156b_2bb8);
        // No NUL before the end: no name.
        assert!(c_str_hashed(&table[table.len() - 1..]).is_none());
        assert!(c_str_hashed(b"0123456789abcdefgh").is_none());
        // Every length and place of the NUL within and across words, and
        // bytes with the high bit set (0x80, 0xff) or 0x01 beside the NUL.
        for len in 0..40 {
            for fill in [b'a', 0x01, 0x80, 0xff] {
                let mut s: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8 % 3)).collect();
                s.retain(|&b| b != 0);
                let name = s.clone();
                s.push(0);
                s.extend_from_slice(b"\x01tail\0");
                let (n, h) = c_str_hashed(&s).unwrap();
                assert_eq!((n, h.gnu), (&name[..], gnu_hash(&name)), "{len} {fill}");
            }
        }
    }
}
