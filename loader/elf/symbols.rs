//! Symbol tables and their hash tables (GNU with its Bloom filter, SysV),
//! with symbol versions: what a symbol lookup needs from one object.
//!
//! The same code serves objects minld mapped and the host's objects (those
//! glibc loaded), whose tables are read in place.

use std::path::Path;

use goblin::elf::sym as st;
use goblin::elf64::sym::Sym;

use crate::base::error::{DynamicFault, Error};
use crate::base::mem::{Memory, Table};
use crate::elf::dynamic::Dynamic;
pub(crate) use crate::elf::sym::SymFields;

/// [`DynamicFault::Outside`]: the table `field` at `addr` (`count` of
/// `unit` long, where known) is not inside the image.
fn outside(
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
    let nsyms = gnu_symbol_count(path, &buckets, &chain_all, symoffset, chain_addr)?;
    let chain = chain_all
        .slice(0, nsyms.saturating_sub(symoffset as usize))
        .ok_or_else(|| outside(path, "DT_GNU_HASH chains", chain_addr, None, ""))?;
    if let Some(b) = buckets
        .iter()
        .find(|&b| b != 0 && (b < symoffset || b as usize >= nsyms))
    {
        let fault = DynamicFault::BucketOutside {
            symoffset: u64::from(symoffset),
            nsyms: nsyms as u64,
        };
        return Err(Error::dynamic(
            path,
            "DT_GNU_HASH bucket",
            u64::from(b),
            fault,
        ));
    }
    let hash = Hash::Gnu {
        bloom,
        shift,
        buckets,
        chain,
        symoffset,
    };
    Ok((hash, nsyms))
}

/// The symbol count of a GNU hash table: the chain a bucket starts last
/// ends at the last hashed symbol (its low bit set).
fn gnu_symbol_count(
    path: &Path,
    buckets: &Table<u32>,
    chains: &Table<u32>,
    symoffset: u32,
    chain_addr: usize,
) -> Result<usize, Error> {
    let max_bucket = buckets.iter().max().unwrap_or(0);
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
    gnu: u32,
}

impl NameHash {
    pub(crate) fn new(name: &[u8]) -> Self {
        NameHash {
            gnu: gnu_hash(name),
        }
    }
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

#[derive(Debug)]
enum Hash {
    Gnu {
        bloom: Table<u64>,
        shift: u32,
        buckets: Table<u32>,
        chain: Table<u32>,
        symoffset: u32,
    },
    Sysv {
        buckets: Table<u32>,
        chain: Table<u32>,
    },
}

/// A version as defined (verdef) or required (vernaux).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) name: String,
    pub(crate) hash: u32,
}

/// What a lookup asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Want<'a> {
    /// A given version; `hidden` when the reference itself is to a hidden version.
    Version(&'a Version),
    /// No version: the default (non-hidden) definition.
    Default,
}

const VERSYM_HIDDEN: u16 = 0x8000;
const VER_NDX_GLOBAL: u16 = 1;

/// One object's dynamic symbols.
#[derive(Debug)]
pub(crate) struct Symbols {
    strtab: Table<u8>,
    syms: Table<Sym>,
    hash: Hash,
    versym: Option<Table<u16>>,
    /// Version definitions by index (verdef), None where undefined.
    defs: Vec<Option<Version>>,
}

/// A required version: the file that must provide it, and the version.
#[derive(Debug, Clone)]
pub(crate) struct VersionNeed {
    pub(crate) file: String,
    pub(crate) versions: Vec<(Version, u16, bool)>, // (version, index, weak)
}

impl Symbols {
    /// Builds the view over an object's tables, checking their bounds: the
    /// hash table (which gives the symbol count), the symbol table, the
    /// version indexes, the version definitions.
    pub(crate) fn new(path: &Path, mem: &Memory, d: &Dynamic) -> Result<Symbols, Error> {
        let (hash, nsyms) = match d.gnu_hash {
            Some(addr) => gnu_hash_table(path, mem, addr)?,
            None => sysv_hash_table(path, mem, d.sysv_hash.unwrap_or(0))?,
        };
        let syms: Table<Sym> = mem
            .table(d.symtab_addr, nsyms)
            .ok_or_else(|| outside(path, "DT_SYMTAB", d.symtab_addr, Some(nsyms), "symbols"))?;
        let versym = match d.versym {
            Some(a) => Some(
                mem.table::<u16>(a, nsyms)
                    .ok_or_else(|| outside(path, "DT_VERSYM", a, Some(nsyms), "entries"))?,
            ),
            None => None,
        };
        let mut me = Symbols {
            strtab: d.strtab,
            syms,
            hash,
            versym,
            defs: Vec::new(),
        };
        if let Some((addr, count)) = d.verdef {
            me.defs = me.read_verdefs(path, mem, addr, count)?;
        }
        Ok(me)
    }

    fn string(&self, off: u32) -> Option<&[u8]> {
        self.strtab.c_str(off as usize)
    }

    fn read_verdefs(
        &self,
        path: &Path,
        mem: &Memory,
        mut addr: usize,
        count: usize,
    ) -> Result<Vec<Option<Version>>, Error> {
        let strsz = self.strtab.len() as u64;
        let mut defs: Vec<Option<Version>> = Vec::new();
        for _ in 0..count.min(0x8000) {
            // Elf64_Verdef: vd_version u16, vd_flags u16, vd_ndx u16,
            // vd_cnt u16, vd_hash u32, vd_aux u32, vd_next u32.
            let v: Table<u32> = mem
                .table(addr, 5)
                .ok_or_else(|| outside(path, "DT_VERDEF entry", addr, Some(20), "bytes"))?;
            let w0 = v.get(0).unwrap_or(0);
            let w1 = v.get(1).unwrap_or(0);
            let ndx = (w1 & 0xffff) as usize;
            let hash = v.get(2).unwrap_or(0);
            let aux = v.get(3).unwrap_or(0) as usize;
            let next = v.get(4).unwrap_or(0) as usize;
            if w0 & 0xffff != 1 {
                let fault = DynamicFault::Expected { expected: 1 };
                return Err(Error::dynamic(
                    path,
                    "DT_VERDEF vd_version",
                    u64::from(w0 & 0xffff),
                    fault,
                ));
            }
            let name_off: u32 = mem.read(addr + aux).ok_or_else(|| {
                outside(
                    path,
                    "DT_VERDEF auxiliary entry",
                    addr.wrapping_add(aux),
                    Some(4),
                    "bytes",
                )
            })?;
            let name = self.string(name_off).ok_or_else(|| {
                Error::dynamic(
                    path,
                    "DT_VERDEF vda_name",
                    u64::from(name_off),
                    DynamicFault::StringOutside { strsz },
                )
            })?;
            if defs.len() <= ndx {
                defs.resize(ndx + 1, None);
            }
            defs[ndx] = Some(Version {
                name: String::from_utf8_lossy(name).into_owned(),
                hash,
            });
            if next == 0 {
                break;
            }
            addr = addr.checked_add(next).ok_or_else(|| {
                Error::dynamic(
                    path,
                    "DT_VERDEF vd_next",
                    next as u64,
                    DynamicFault::Overflows,
                )
            })?;
        }
        Ok(defs)
    }

    /// Reads DT_VERNEED: which versions of which files this object requires.
    pub(crate) fn read_verneeds(
        &self,
        path: &Path,
        mem: &Memory,
        d: &Dynamic,
    ) -> Result<Vec<VersionNeed>, Error> {
        let strsz = self.strtab.len() as u64;
        let mut out = Vec::new();
        let Some((mut addr, count)) = d.verneed else {
            return Ok(out);
        };
        for _ in 0..count.min(0x8000) {
            // Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32,
            // vn_aux u32, vn_next u32.
            let v: Table<u32> = mem
                .table(addr, 4)
                .ok_or_else(|| outside(path, "DT_VERNEED entry", addr, Some(16), "bytes"))?;
            let w0 = v.get(0).unwrap_or(0);
            let cnt = (w0 >> 16) as usize;
            let file_off = v.get(1).unwrap_or(0);
            let file = self.string(file_off).ok_or_else(|| {
                Error::dynamic(
                    path,
                    "DT_VERNEED vn_file",
                    u64::from(file_off),
                    DynamicFault::StringOutside { strsz },
                )
            })?;
            let mut need = VersionNeed {
                file: String::from_utf8_lossy(file).into_owned(),
                versions: Vec::new(),
            };
            let mut aux = addr + v.get(2).unwrap_or(0) as usize;
            for _ in 0..cnt {
                // Elf64_Vernaux: vna_hash u32, vna_flags u16, vna_other u16,
                // vna_name u32, vna_next u32.
                let a: Table<u32> = mem.table(aux, 4).ok_or_else(|| {
                    outside(path, "DT_VERNEED auxiliary entry", aux, Some(16), "bytes")
                })?;
                let hash = a.get(0).unwrap_or(0);
                let w1 = a.get(1).unwrap_or(0);
                let flags = w1 & 0xffff;
                let other = (w1 >> 16) as u16;
                let name_off = a.get(2).unwrap_or(0);
                let name = self.string(name_off).ok_or_else(|| {
                    Error::dynamic(
                        path,
                        "DT_VERNEED vna_name",
                        u64::from(name_off),
                        DynamicFault::StringOutside { strsz },
                    )
                })?;
                need.versions.push((
                    Version {
                        name: String::from_utf8_lossy(name).into_owned(),
                        hash,
                    },
                    other & 0x7fff,
                    flags & 0x2 != 0, // VER_FLG_WEAK
                ));
                let next = a.get(3).unwrap_or(0) as usize;
                if next == 0 {
                    break;
                }
                aux += next;
            }
            out.push(need);
            let next = v.get(3).unwrap_or(0) as usize;
            if next == 0 {
                break;
            }
            addr += next;
        }
        Ok(out)
    }

    /// Whether this object defines a version (for DT_VERNEED checks).
    pub(crate) fn defines_version(&self, v: &Version) -> bool {
        self.defs
            .iter()
            .flatten()
            .any(|d| d.hash == v.hash && d.name == v.name)
    }

    /// The number of symbols.
    pub(crate) fn len(&self) -> usize {
        self.syms.len()
    }

    /// Symbol `i`.
    pub(crate) fn sym(&self, i: usize) -> Option<Sym> {
        self.syms.get(i)
    }

    /// The name of a symbol.
    pub(crate) fn name(&self, sym: &Sym) -> Option<&[u8]> {
        self.string(sym.st_name)
    }

    /// The versym entry of symbol `i` (0 without version information).
    pub(crate) fn versym(&self, i: usize) -> u16 {
        self.versym.as_ref().and_then(|v| v.get(i)).unwrap_or(0)
    }

    /// The version definition of index `ndx`, if any.
    pub(crate) fn version_def(&self, ndx: u16) -> Option<&Version> {
        self.defs
            .get(usize::from(ndx & 0x7fff))
            .and_then(|v| v.as_ref())
    }

    /// Looks a defined symbol up by name and version; returns its index.
    pub(crate) fn lookup(
        &self,
        name: &[u8],
        hash: NameHash,
        want: Want<'_>,
    ) -> Option<(usize, Sym)> {
        match &self.hash {
            Hash::Gnu {
                bloom,
                shift,
                buckets,
                chain,
                symoffset,
            } => {
                let h = hash.gnu;
                let word = bloom.get((h as usize / 64) & (bloom.len() - 1))?;
                let mask = (1u64 << (h % 64)) | (1u64 << ((h >> shift) % 64));
                if word & mask != mask {
                    return None;
                }
                let mut i = buckets.get(h as usize % buckets.len())? as usize;
                if i == 0 {
                    return None;
                }
                let mut fallback = None;
                let mut candidates = 0;
                loop {
                    let h2 = chain.get(i - *symoffset as usize)?;
                    if (h | 1) == (h2 | 1) {
                        if let Some(found) =
                            self.check(i, name, want, &mut fallback, &mut candidates)
                        {
                            return Some(found);
                        }
                    }
                    if h2 & 1 != 0 {
                        break;
                    }
                    i += 1;
                }
                if candidates == 1 {
                    fallback
                } else {
                    None
                }
            }
            Hash::Sysv { buckets, chain } => {
                let h = elf_hash(name);
                let mut i = buckets.get(h as usize % buckets.len().max(1))? as usize;
                let mut fallback = None;
                let mut candidates = 0;
                let mut steps = 0;
                while i != 0 && steps <= chain.len() {
                    if let Some(found) = self.check(i, name, want, &mut fallback, &mut candidates) {
                        return Some(found);
                    }
                    i = chain.get(i)? as usize;
                    steps += 1;
                }
                if candidates == 1 {
                    fallback
                } else {
                    None
                }
            }
        }
    }

    /// glibc's `check_match`: is symbol `i` a definition of `name` in the
    /// version wanted? A default-version lookup that meets only one
    /// non-hidden versioned definition takes it (`candidates`).
    fn check(
        &self,
        i: usize,
        name: &[u8],
        want: Want<'_>,
        fallback: &mut Option<(usize, Sym)>,
        candidates: &mut u32,
    ) -> Option<(usize, Sym)> {
        let sym = self.syms.get(i)?;
        let kind = sym.kind();
        if (sym.st_value == 0 && kind != st::STT_TLS) || !sym.defined() {
            return None;
        }
        if !matches!(
            kind,
            st::STT_NOTYPE
                | st::STT_OBJECT
                | st::STT_FUNC
                | st::STT_COMMON
                | st::STT_TLS
                | st::STT_GNU_IFUNC
        ) {
            return None;
        }
        if !self.strtab.c_str_is(sym.st_name as usize, name) {
            return None;
        }
        let Some(versym) = self.versym.as_ref().and_then(|v| v.get(i)) else {
            return Some((i, sym));
        };
        let ndx = versym & 0x7fff;
        match want {
            Want::Version(v) => {
                let def = self.version_def(ndx);
                let matches = def.is_some_and(|d| d.hash == v.hash && d.name == v.name);
                // An unversioned definition satisfies a versioned reference
                // (as in glibc), unless it is hidden.
                if matches
                    || (def.is_none() && versym & VERSYM_HIDDEN == 0)
                    || ndx <= VER_NDX_GLOBAL
                {
                    Some((i, sym))
                } else {
                    None
                }
            }
            Want::Default => {
                if ndx <= VER_NDX_GLOBAL {
                    return Some((i, sym));
                }
                if versym & VERSYM_HIDDEN != 0 {
                    return None;
                }
                // A versioned, non-hidden definition: the default (@@)
                // version. There is only one of those per name; take it.
                *candidates += 1;
                *fallback = Some((i, sym));
                Some((i, sym))
            }
        }
    }
}
