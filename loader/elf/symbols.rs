//! Symbol tables, found through their hash tables (`hash`), with symbol
//! versions: what a symbol lookup needs from one object.
//!
//! The same code serves objects minld mapped and the host's objects (those
//! glibc loaded), whose tables are read in place.

use std::path::Path;

use goblin::elf::sym as st;
use goblin::elf64::sym::Sym;

use crate::base::error::{DynamicFault, Error};
use crate::base::mem::{Memory, Table};
use crate::elf::dynamic::Dynamic;
use crate::elf::hash::c_str_hashed;
pub(crate) use crate::elf::hash::{elf_hash, NameHash};
use crate::elf::hash::{outside, Hash};
pub(crate) use crate::elf::sym::SymFields;

/// A version as defined (verdef) or required (vernaux): the ELF hash of
/// its name (vd_hash, vna_hash) and the name, read in place in the
/// object's string table. Two versions are the same when both agree; the
/// hash is compared first, the bytes only on a match (as glibc does).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Version {
    /// The ELF hash of the name, as the file gives it.
    pub(crate) hash: u32,
    /// The name's bytes (without the NUL), in the string table.
    name: Table<u8>,
}

impl Version {
    /// The name, as bytes.
    #[inline]
    pub(crate) fn name(&self) -> &[u8] {
        self.name.bytes()
    }

    /// Whether this is the version `hash`, `name`.
    #[inline]
    pub(crate) fn is(&self, hash: u32, name: &[u8]) -> bool {
        self.hash == hash && self.name() == name
    }

    /// A lookup for a definition in this version.
    #[inline]
    pub(crate) fn want(&self) -> Want<'_> {
        Want::Version {
            hash: self.hash,
            name: self.name(),
        }
    }
}

/// What a lookup asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Want<'a> {
    /// A given version: the ELF hash of its name, and the name.
    Version {
        /// The ELF hash of `name`.
        hash: u32,
        /// The version's name.
        name: &'a [u8],
    },
    /// No version: the default (non-hidden) definition.
    Default,
    /// A given version and no other (`dlvsym`): unlike [`Want::Version`]
    /// (a reference's), an unversioned definition does not answer it.
    Exact {
        /// The ELF hash of `name`.
        hash: u32,
        /// The version's name.
        name: &'a [u8],
    },
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

/// The versions required of one file (a DT_VERNEED entry).
#[derive(Debug, Clone)]
pub(crate) struct VersionNeed {
    /// The file's name (vn_file), in the string table.
    file: Table<u8>,
    /// Each version, with its versym index (vna_other) and whether it is
    /// weak (VER_FLG_WEAK).
    pub(crate) versions: Vec<(Version, u16, bool)>,
}

impl VersionNeed {
    /// The file that must define the versions (its soname).
    pub(crate) fn file(&self) -> &[u8] {
        self.file.bytes()
    }
}

impl Symbols {
    /// Builds the view over an object's tables, checking their bounds: the
    /// hash table (which gives the symbol count), the symbol table, the
    /// version indexes, the version definitions.
    pub(crate) fn new(path: &Path, mem: &Memory, d: &Dynamic) -> Result<Symbols, Error> {
        let (hash, nsyms) = Hash::read(path, mem, d)?;
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

    /// The NUL-terminated string at `off` in the string table.
    fn string(&self, off: u32) -> Option<&[u8]> {
        self.strtab.c_str(off as usize)
    }

    /// The string at `off`, as a view of its bytes (without the NUL) in
    /// the string table.
    fn string_in_place(&self, off: u32) -> Option<Table<u8>> {
        let len = self.string(off)?.len();
        self.strtab.slice(off as usize, len)
    }

    fn read_verdefs(
        &self,
        path: &Path,
        mem: &Memory,
        mut addr: usize,
        count: usize,
    ) -> Result<Vec<Option<Version>>, Error> {
        let strsz = self.strtab.len() as u64;
        // vd_ndx counts from 1 (the file's own name), usually in order.
        let mut defs: Vec<Option<Version>> = Vec::with_capacity(count.min(0x8000) + 1);
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
            let name = self.string_in_place(name_off).ok_or_else(|| {
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
            defs[ndx] = Some(Version { hash, name });
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
        let Some((mut addr, count)) = d.verneed else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(count.min(0x8000));
        for _ in 0..count.min(0x8000) {
            // Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32,
            // vn_aux u32, vn_next u32.
            let v: Table<u32> = mem
                .table(addr, 4)
                .ok_or_else(|| outside(path, "DT_VERNEED entry", addr, Some(16), "bytes"))?;
            let w0 = v.get(0).unwrap_or(0);
            let cnt = (w0 >> 16) as usize;
            let file_off = v.get(1).unwrap_or(0);
            let file = self.string_in_place(file_off).ok_or_else(|| {
                Error::dynamic(
                    path,
                    "DT_VERNEED vn_file",
                    u64::from(file_off),
                    DynamicFault::StringOutside { strsz },
                )
            })?;
            let mut need = VersionNeed {
                file,
                versions: Vec::with_capacity(cnt),
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
                let name = self.string_in_place(name_off).ok_or_else(|| {
                    Error::dynamic(
                        path,
                        "DT_VERNEED vna_name",
                        u64::from(name_off),
                        DynamicFault::StringOutside { strsz },
                    )
                })?;
                need.versions.push((
                    Version { hash, name },
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
        self.defs.iter().flatten().any(|d| d.is(v.hash, v.name()))
    }

    /// No symbols: what an object whose tables cannot be read offers a
    /// lookup.
    pub(crate) fn empty() -> Symbols {
        Symbols {
            strtab: Table::empty(),
            syms: Table::empty(),
            hash: Hash::Sysv {
                buckets: Table::empty(),
                chain: Table::empty(),
            },
            versym: None,
            defs: Vec::new(),
        }
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

    /// The name of a symbol and its hash ([`c_str_hashed`]).
    #[inline]
    pub(crate) fn name_hashed(&self, sym: &Sym) -> Option<(&[u8], NameHash)> {
        c_str_hashed(self.strtab.bytes().get(sym.st_name as usize..)?)
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
    /// The Bloom filter's answer, which turns most objects of a scope
    /// away, is inlined into the caller's walk; the chains are not.
    #[inline]
    pub(crate) fn lookup(
        &self,
        name: &[u8],
        hash: NameHash,
        want: Want<'_>,
    ) -> Option<(usize, Sym)> {
        if let Hash::Gnu { bloom, shift, .. } = &self.hash {
            let h = hash.gnu;
            let word = bloom.get((h as usize / 64) & (bloom.len() - 1))?;
            let mask = (1u64 << (h % 64)) | (1u64 << ((h >> shift) % 64));
            if word & mask != mask {
                return None;
            }
        }
        self.find(name, hash, want)
    }

    /// [`Symbols::lookup`] past the Bloom filter: the hash chain.
    #[inline(never)]
    fn find(&self, name: &[u8], hash: NameHash, want: Want<'_>) -> Option<(usize, Sym)> {
        match &self.hash {
            Hash::Gnu {
                buckets,
                chain,
                symoffset,
                ..
            } => {
                let h = hash.gnu;
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
            Want::Version {
                hash,
                name: version,
            } => {
                let def = self.version_def(ndx);
                let matches = def.is_some_and(|d| d.is(hash, version));
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
            Want::Exact {
                hash,
                name: version,
            } => self
                .version_def(ndx)
                .is_some_and(|d| d.is(hash, version))
                .then_some((i, sym)),
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
