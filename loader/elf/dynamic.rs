//! Stage 4 of a load: read the dynamic section of a mapped object into the
//! tables linking needs (strings, symbols, hashes, versions, relocations,
//! init and fini), checking that each lies inside the object.

use std::path::Path;

use goblin::elf::dynamic as dt;
use goblin::elf64::dynamic::Dyn;
use goblin::elf64::reloc::Rela;
use goblin::elf64::sym::Sym;

use crate::base::error::{DynamicFault, Error, Feature};
use crate::base::mem::{LoadBias, Memory, Plain, Table};

/// DT_RELRSZ: the size of the DT_RELR table (not yet named by goblin).
const DT_RELRSZ: u64 = 35;
/// DT_RELR: packed relative relocations.
const DT_RELR: u64 = 36;
/// DT_RELRENT: the size of a DT_RELR entry, 8.
const DT_RELRENT: u64 = 37;

/// The tables of one object, each checked to lie inside its memory.
#[derive(Debug)]
pub(crate) struct Dynamic {
    /// DT_STRTAB, DT_STRSZ bytes long.
    pub(crate) strtab: Table<u8>,
    /// DT_SYMTAB: the symbol table (its length comes from a hash table).
    pub(crate) symtab_addr: usize,
    /// DT_GNU_HASH.
    pub(crate) gnu_hash: Option<usize>,
    /// DT_HASH.
    pub(crate) sysv_hash: Option<usize>,
    /// DT_VERSYM: one version index per symbol.
    pub(crate) versym: Option<usize>,
    /// DT_VERDEF and DT_VERDEFNUM.
    pub(crate) verdef: Option<(usize, usize)>,
    /// DT_VERNEED and DT_VERNEEDNUM.
    pub(crate) verneed: Option<(usize, usize)>,
    /// DT_RELA: the relocations applied at load.
    pub(crate) rela: Table<Rela>,
    /// DT_JMPREL: the PLT relocations, which may be bound lazily.
    pub(crate) jmprel: Table<Rela>,
    /// DT_RELR: packed relative relocations.
    pub(crate) relr: Table<u64>,
    /// DT_INIT.
    pub(crate) init: Option<usize>,
    /// DT_FINI.
    pub(crate) fini: Option<usize>,
    /// DT_INIT_ARRAY.
    pub(crate) init_array: Table<usize>,
    /// DT_FINI_ARRAY.
    pub(crate) fini_array: Table<usize>,
    /// DT_NEEDED, in order.
    pub(crate) needed: Vec<String>,
    /// DT_SONAME.
    pub(crate) soname: Option<String>,
    /// DT_RPATH.
    pub(crate) rpath: Option<String>,
    /// DT_RUNPATH.
    pub(crate) runpath: Option<String>,
    /// DT_FLAGS, with DT_TEXTREL and DT_BIND_NOW folded in.
    pub(crate) flags: u64,
    /// DT_FLAGS_1.
    pub(crate) flags_1: u64,
    /// DT_PLTGOT: the GOT whose words 1 and 2 lazy binding uses.
    pub(crate) pltgot: Option<usize>,
}

/// DF_1_NODELETE: the object is never unloaded.
pub(crate) const DF_1_NODELETE: u64 = 0x8;
/// DF_1_PIE: the object is a position-independent executable.
pub(crate) const DF_1_PIE: u64 = 0x0800_0000;

impl Dynamic {
    /// Whether the object has text relocations.
    pub(crate) fn textrel(&self) -> bool {
        self.flags & dt::DF_TEXTREL != 0
    }
    /// Whether the object asks to be bound now.
    pub(crate) fn bind_now(&self) -> bool {
        self.flags & dt::DF_BIND_NOW != 0 || self.flags_1 & dt::DF_1_NOW != 0
    }
    /// Whether what the object needs or opens is kept out of the system
    /// directories (DF_1_NODEFLIB, `-z nodefaultlib`).
    pub(crate) fn nodeflib(&self) -> bool {
        self.flags_1 & dt::DF_1_NODEFLIB != 0
    }
}

/// How to turn a d_ptr into a real address: add the bias (objects minld
/// maps), or take it as is when glibc already relocated it in place (host
/// objects: glibc adds the bias to some tags and not others, so a value
/// already inside the object is taken as absolute).
#[derive(Debug, Clone, Copy)]
pub(crate) enum PtrStyle {
    /// Every d_ptr is a virtual address: add the bias.
    Relative,
    /// A d_ptr inside the object is already a real address.
    HostMixed,
}

impl PtrStyle {
    /// The real address of d_ptr `v`.
    fn real(self, mem: &Memory, bias: LoadBias, v: u64) -> usize {
        match self {
            PtrStyle::HostMixed if mem.contains(v as usize, 1) => v as usize,
            PtrStyle::Relative | PtrStyle::HostMixed => bias.at(v),
        }
    }
}

/// An address-and-size pair of tags (DT_RELA and DT_RELASZ...), with the
/// entry size the table must be a multiple of.
#[derive(Debug, Clone, Copy)]
struct Sized {
    addr: Option<usize>,
    size: u64,
    ent: u64,
}

impl Sized {
    /// No table yet, of entries of `ent` bytes.
    fn of(ent: u64) -> Self {
        Sized {
            addr: None,
            size: 0,
            ent,
        }
    }
}

/// The tags of a dynamic section as read, before their tables are checked.
#[derive(Debug)]
struct Tags {
    strtab: Option<usize>,
    strsz: Option<u64>,
    symtab: usize,
    syment: u64,
    gnu_hash: Option<usize>,
    sysv_hash: Option<usize>,
    rela: Sized,
    jmprel: Sized,
    pltrel: u64,
    relr: Sized,
    init_array: Sized,
    fini_array: Sized,
    verdef: (Option<usize>, u64),
    verneed: (Option<usize>, u64),
    needed: Vec<u64>,
    soname: Option<u64>,
    rpath: Option<u64>,
    runpath: Option<u64>,
    versym: Option<usize>,
    init: Option<usize>,
    fini: Option<usize>,
    flags: u64,
    flags_1: u64,
    pltgot: Option<usize>,
}

impl Default for Tags {
    fn default() -> Self {
        Tags {
            strtab: None,
            strsz: None,
            symtab: 0,
            syment: SYM_SIZE,
            gnu_hash: None,
            sysv_hash: None,
            rela: Sized::of(RELA_SIZE),
            jmprel: Sized::of(RELA_SIZE),
            pltrel: dt::DT_RELA,
            relr: Sized::of(8),
            init_array: Sized::of(8),
            fini_array: Sized::of(8),
            verdef: (None, 0),
            verneed: (None, 0),
            needed: Vec::new(),
            soname: None,
            rpath: None,
            runpath: None,
            versym: None,
            init: None,
            fini: None,
            flags: 0,
            flags_1: 0,
            pltgot: None,
        }
    }
}

/// The size of an Elf64_Sym, DT_SYMENT's only value.
const SYM_SIZE: u64 = 24;
/// The size of an Elf64_Rela, DT_RELAENT's only value.
const RELA_SIZE: u64 = 24;

/// Reads the dynamic section at real address `dyn_addr`: its entries, the
/// entry sizes, the string table, the symbol tables' presence, the strings
/// it names, then every table it locates.
pub(crate) fn parse(
    path: &Path,
    mem: &Memory,
    bias: usize,
    dyn_addr: usize,
    style: PtrStyle,
) -> Result<Dynamic, Error> {
    let entries: Table<Dyn> = mem.table_to_end(dyn_addr).ok_or_else(|| {
        let fault = DynamicFault::Outside {
            count: None,
            unit: "bytes",
        };
        Error::dynamic(path, "PT_DYNAMIC", dyn_addr as u64, fault)
    })?;
    let tags = read_tags(path, &entries, |v| style.real(mem, LoadBias(bias), v))?;
    if tags.syment != SYM_SIZE {
        return Err(expected(path, "DT_SYMENT", tags.syment, SYM_SIZE));
    }
    let strtab = string_table(path, mem, &tags)?;
    check_symbol_tables(path, mem, &tags)?;
    let mut d = Dynamic::from_tags(strtab, &tags);
    read_strings(path, &mut d, &tags)?;
    read_tables(path, mem, &mut d, &tags)?;
    Ok(d)
}

/// [`DynamicFault::Expected`] for `field`.
#[cold]
#[inline(never)]
fn expected(path: &Path, field: &'static str, found: u64, expected: u64) -> Error {
    Error::dynamic(path, field, found, DynamicFault::Expected { expected })
}

/// Every entry up to DT_NULL, each value put where it belongs; `ptr` turns
/// a d_ptr into a real address.
fn read_tags(path: &Path, entries: &Table<Dyn>, ptr: impl Fn(u64) -> usize) -> Result<Tags, Error> {
    let mut t = Tags::default();
    for e in entries.iter() {
        let v = e.d_val;
        match e.d_tag {
            dt::DT_NULL => return Ok(t),
            dt::DT_NEEDED => t.needed.push(v),
            dt::DT_STRTAB => t.strtab = Some(ptr(v)),
            dt::DT_STRSZ => t.strsz = Some(v),
            dt::DT_SYMTAB => t.symtab = ptr(v),
            dt::DT_SYMENT => t.syment = v,
            dt::DT_HASH => t.sysv_hash = Some(ptr(v)),
            dt::DT_GNU_HASH => t.gnu_hash = Some(ptr(v)),
            dt::DT_RELA => t.rela.addr = Some(ptr(v)),
            dt::DT_RELASZ => t.rela.size = v,
            dt::DT_RELAENT => t.rela.ent = v,
            dt::DT_REL | dt::DT_RELSZ => {
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    feature: Feature::Rel,
                })
            }
            dt::DT_JMPREL => t.jmprel.addr = Some(ptr(v)),
            dt::DT_PLTRELSZ => t.jmprel.size = v,
            dt::DT_PLTREL => t.pltrel = v,
            DT_RELR => t.relr.addr = Some(ptr(v)),
            DT_RELRSZ => t.relr.size = v,
            DT_RELRENT => t.relr.ent = v,
            dt::DT_INIT => t.init = Some(ptr(v)),
            dt::DT_FINI => t.fini = Some(ptr(v)),
            dt::DT_INIT_ARRAY => t.init_array.addr = Some(ptr(v)),
            dt::DT_INIT_ARRAYSZ => t.init_array.size = v,
            dt::DT_FINI_ARRAY => t.fini_array.addr = Some(ptr(v)),
            dt::DT_FINI_ARRAYSZ => t.fini_array.size = v,
            dt::DT_SONAME => t.soname = Some(v),
            dt::DT_RPATH => t.rpath = Some(v),
            dt::DT_RUNPATH => t.runpath = Some(v),
            dt::DT_FLAGS => t.flags |= v,
            dt::DT_FLAGS_1 => t.flags_1 |= v,
            dt::DT_TEXTREL => t.flags |= dt::DF_TEXTREL,
            dt::DT_BIND_NOW => t.flags |= dt::DF_BIND_NOW,
            dt::DT_PLTGOT => t.pltgot = Some(ptr(v)),
            dt::DT_VERSYM => t.versym = Some(ptr(v)),
            dt::DT_VERDEF => t.verdef.0 = Some(ptr(v)),
            dt::DT_VERDEFNUM => t.verdef.1 = v,
            dt::DT_VERNEED => t.verneed.0 = Some(ptr(v)),
            dt::DT_VERNEEDNUM => t.verneed.1 = v,
            _ => {}
        }
    }
    let count = entries.len() as u64;
    Err(Error::dynamic(
        path,
        "DT_NULL",
        count,
        DynamicFault::Unterminated,
    ))
}

/// DT_STRTAB and DT_STRSZ: present, and the table inside the image.
fn string_table(path: &Path, mem: &Memory, t: &Tags) -> Result<Table<u8>, Error> {
    let missing = |field| Error::dynamic(path, field, 0, DynamicFault::Missing);
    let strtab = t.strtab.ok_or_else(|| missing("DT_STRTAB"))?;
    let strsz = t.strsz.ok_or_else(|| missing("DT_STRSZ"))?;
    mem.table(strtab, strsz as usize).ok_or_else(|| {
        let fault = DynamicFault::Outside {
            count: Some(strsz),
            unit: "bytes, DT_STRSZ",
        };
        Error::dynamic(path, "DT_STRTAB", strtab as u64, fault)
    })
}

/// DT_SYMTAB inside the image, and a hash table to find its symbols.
fn check_symbol_tables(path: &Path, mem: &Memory, t: &Tags) -> Result<(), Error> {
    if t.symtab == 0 {
        return Err(Error::dynamic(path, "DT_SYMTAB", 0, DynamicFault::Missing));
    }
    if !mem.contains(t.symtab, std::mem::size_of::<Sym>()) {
        let fault = DynamicFault::Outside {
            count: Some(1),
            unit: "symbols",
        };
        return Err(Error::dynamic(path, "DT_SYMTAB", t.symtab as u64, fault));
    }
    if t.gnu_hash.is_none() && t.sysv_hash.is_none() {
        let fault = DynamicFault::Missing;
        return Err(Error::dynamic(path, "DT_GNU_HASH or DT_HASH", 0, fault));
    }
    Ok(())
}

impl Dynamic {
    /// The tables read so far: the string table and the plain values; the
    /// strings and the sized tables are read after.
    fn from_tags(strtab: Table<u8>, t: &Tags) -> Self {
        Dynamic {
            strtab,
            symtab_addr: t.symtab,
            gnu_hash: t.gnu_hash,
            sysv_hash: t.sysv_hash,
            versym: t.versym,
            verdef: t.verdef.0.map(|a| (a, t.verdef.1 as usize)),
            verneed: t.verneed.0.map(|a| (a, t.verneed.1 as usize)),
            rela: Table::empty(),
            jmprel: Table::empty(),
            relr: Table::empty(),
            init: t.init,
            fini: t.fini,
            init_array: Table::empty(),
            fini_array: Table::empty(),
            needed: Vec::new(),
            soname: None,
            rpath: None,
            runpath: None,
            flags: t.flags,
            flags_1: t.flags_1,
            pltgot: t.pltgot,
        }
    }
}

/// DT_NEEDED, DT_SONAME, DT_RPATH and DT_RUNPATH, from DT_STRTAB.
fn read_strings(path: &Path, d: &mut Dynamic, t: &Tags) -> Result<(), Error> {
    let strtab = d.strtab;
    let string = |off: u64, field: &'static str| -> Result<String, Error> {
        strtab
            .c_str(off as usize)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .ok_or_else(|| {
                let strsz = strtab.len() as u64;
                Error::dynamic(path, field, off, DynamicFault::StringOutside { strsz })
            })
    };
    d.needed = t
        .needed
        .iter()
        .map(|&o| string(o, "DT_NEEDED"))
        .collect::<Result<_, _>>()?;
    d.soname = t.soname.map(|o| string(o, "DT_SONAME")).transpose()?;
    d.rpath = t.rpath.map(|o| string(o, "DT_RPATH")).transpose()?;
    d.runpath = t.runpath.map(|o| string(o, "DT_RUNPATH")).transpose()?;
    Ok(())
}

/// The relocation tables and the init and fini arrays, each checked to
/// lie inside the image with a size that is a multiple of its entries.
fn read_tables(path: &Path, mem: &Memory, d: &mut Dynamic, t: &Tags) -> Result<(), Error> {
    if t.rela.ent != RELA_SIZE {
        return Err(expected(path, "DT_RELAENT", t.rela.ent, RELA_SIZE));
    }
    if t.relr.ent != 8 {
        return Err(expected(path, "DT_RELRENT", t.relr.ent, 8));
    }
    if t.jmprel.addr.is_some() && t.pltrel != dt::DT_RELA {
        return Err(expected(path, "DT_PLTREL", t.pltrel, dt::DT_RELA));
    }
    d.rela = sized_table(path, mem, t.rela, "DT_RELA")?;
    d.jmprel = sized_table(
        path,
        mem,
        Sized {
            ent: RELA_SIZE,
            ..t.jmprel
        },
        "DT_JMPREL",
    )?;
    d.relr = sized_table(path, mem, t.relr, "DT_RELR")?;
    d.init_array = sized_table(path, mem, t.init_array, "DT_INIT_ARRAY")?;
    d.fini_array = sized_table(path, mem, t.fini_array, "DT_FINI_ARRAY")?;
    Ok(())
}

/// The table an address tag and its size tag describe (empty when both
/// are absent).
fn sized_table<T: Plain>(
    path: &Path,
    mem: &Memory,
    s: Sized,
    field: &'static str,
) -> Result<Table<T>, Error> {
    let Some(addr) = s.addr else {
        if s.size == 0 {
            return Ok(Table::empty());
        }
        return Err(Error::dynamic(
            path,
            field,
            s.size,
            DynamicFault::SizeWithoutAddress,
        ));
    };
    if s.size % s.ent != 0 {
        let fault = DynamicFault::NotMultiple { entry: s.ent };
        return Err(Error::dynamic(path, field, s.size, fault));
    }
    let count = (s.size / s.ent) as usize;
    mem.table(addr, count)
        .filter(|_| mem.contains(addr, s.size as usize))
        .ok_or_else(|| {
            let fault = DynamicFault::Outside {
                count: Some(s.size),
                unit: "bytes",
            };
            Error::dynamic(path, field, addr as u64, fault)
        })
}
