//! Stage 4 of a load: read the dynamic section of a mapped object into the
//! tables linking needs (strings, symbols, hashes, versions, relocations,
//! init and fini), checking that each lies inside the object.

use std::path::Path;

use goblin::elf::dynamic as dt;
use goblin::elf64::dynamic::Dyn;
use goblin::elf64::reloc::Rela;
use goblin::elf64::sym::Sym;

use crate::base::error::Error;
use crate::base::mem::{Memory, Table};

/// DT_RELR and friends (not yet named by goblin).
const DT_RELRSZ: u64 = 35;
const DT_RELR: u64 = 36;
const DT_RELRENT: u64 = 37;

/// The tables of one object, each checked to lie inside its memory.
#[derive(Debug)]
pub(crate) struct Dynamic {
    pub(crate) strtab: Table<u8>,
    pub(crate) symtab_addr: usize,
    pub(crate) gnu_hash: Option<usize>,
    pub(crate) sysv_hash: Option<usize>,
    pub(crate) versym: Option<usize>,
    pub(crate) verdef: Option<(usize, usize)>,
    pub(crate) verneed: Option<(usize, usize)>,
    pub(crate) rela: Table<Rela>,
    pub(crate) jmprel: Table<Rela>,
    pub(crate) relr: Table<u64>,
    pub(crate) init: Option<usize>,
    pub(crate) fini: Option<usize>,
    pub(crate) init_array: Table<usize>,
    pub(crate) fini_array: Table<usize>,
    pub(crate) needed: Vec<String>,
    pub(crate) soname: Option<String>,
    pub(crate) rpath: Option<String>,
    pub(crate) runpath: Option<String>,
    pub(crate) flags: u64,
    pub(crate) flags_1: u64,
    /// DT_PLTGOT: the GOT whose words 1 and 2 lazy binding uses.
    pub(crate) pltgot: Option<usize>,
}

pub(crate) const DF_1_NODELETE: u64 = 0x8;
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
}

/// How to turn a d_ptr into a real address: add the bias (objects minld
/// maps), or take it as is when glibc already relocated it in place (host
/// objects: glibc adds the bias to some tags and not others, so a value
/// already inside the object is taken as absolute).
#[derive(Debug, Clone, Copy)]
pub(crate) enum PtrStyle {
    Relative,
    HostMixed,
}

/// Reads the dynamic section at real address `dyn_addr`.
pub(crate) fn parse(
    path: &Path,
    mem: &Memory,
    bias: usize,
    dyn_addr: usize,
    style: PtrStyle,
) -> Result<Dynamic, Error> {
    let bad = |what: String| Error::dynamic(path, what);
    let entries: Table<Dyn> = mem.table_to_end(dyn_addr).ok_or_else(|| {
        bad(format!(
            "PT_DYNAMIC address {dyn_addr:#x} outside the image"
        ))
    })?;
    let ptr = |v: u64| -> usize {
        match style {
            PtrStyle::Relative => bias.wrapping_add(v as usize),
            PtrStyle::HostMixed => {
                let abs = v as usize;
                if mem.contains(abs, 1) {
                    abs
                } else {
                    bias.wrapping_add(v as usize)
                }
            }
        }
    };

    let mut d = Dynamic {
        strtab: Table::empty(),
        symtab_addr: 0,
        gnu_hash: None,
        sysv_hash: None,
        versym: None,
        verdef: None,
        verneed: None,
        rela: Table::empty(),
        jmprel: Table::empty(),
        relr: Table::empty(),
        init: None,
        fini: None,
        init_array: Table::empty(),
        fini_array: Table::empty(),
        needed: Vec::new(),
        soname: None,
        rpath: None,
        runpath: None,
        flags: 0,
        flags_1: 0,
        pltgot: None,
    };
    let (mut strtab, mut strsz) = (None, None);
    let (mut rela, mut relasz, mut relaent) = (None, 0u64, 24u64);
    let (mut jmprel, mut pltrelsz, mut pltrel) = (None, 0u64, dt::DT_RELA);
    let (mut relr, mut relrsz, mut relrent) = (None, 0u64, 8u64);
    let (mut init_array, mut init_arraysz) = (None, 0u64);
    let (mut fini_array, mut fini_arraysz) = (None, 0u64);
    let (mut verdefnum, mut verneednum) = (0u64, 0u64);
    let mut verdef_addr = None;
    let mut verneed_addr = None;
    let mut needed = Vec::new();
    let (mut soname, mut rpath, mut runpath) = (None, None, None);
    let mut syment = 24u64;
    let mut terminated = false;

    for e in entries.iter() {
        let v = e.d_val;
        match e.d_tag {
            dt::DT_NULL => {
                terminated = true;
                break;
            }
            dt::DT_NEEDED => needed.push(v),
            dt::DT_STRTAB => strtab = Some(ptr(v)),
            dt::DT_STRSZ => strsz = Some(v),
            dt::DT_SYMTAB => d.symtab_addr = ptr(v),
            dt::DT_SYMENT => syment = v,
            dt::DT_HASH => d.sysv_hash = Some(ptr(v)),
            dt::DT_GNU_HASH => d.gnu_hash = Some(ptr(v)),
            dt::DT_RELA => rela = Some(ptr(v)),
            dt::DT_RELASZ => relasz = v,
            dt::DT_RELAENT => relaent = v,
            dt::DT_REL | dt::DT_RELSZ => {
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    what: "DT_REL relocations (x86-64 uses DT_RELA)".to_string(),
                })
            }
            dt::DT_JMPREL => jmprel = Some(ptr(v)),
            dt::DT_PLTRELSZ => pltrelsz = v,
            dt::DT_PLTREL => pltrel = v,
            DT_RELR => relr = Some(ptr(v)),
            DT_RELRSZ => relrsz = v,
            DT_RELRENT => relrent = v,
            dt::DT_INIT => d.init = Some(ptr(v)),
            dt::DT_FINI => d.fini = Some(ptr(v)),
            dt::DT_INIT_ARRAY => init_array = Some(ptr(v)),
            dt::DT_INIT_ARRAYSZ => init_arraysz = v,
            dt::DT_FINI_ARRAY => fini_array = Some(ptr(v)),
            dt::DT_FINI_ARRAYSZ => fini_arraysz = v,
            dt::DT_SONAME => soname = Some(v),
            dt::DT_RPATH => rpath = Some(v),
            dt::DT_RUNPATH => runpath = Some(v),
            dt::DT_FLAGS => d.flags |= v,
            dt::DT_FLAGS_1 => d.flags_1 |= v,
            dt::DT_TEXTREL => d.flags |= dt::DF_TEXTREL,
            dt::DT_BIND_NOW => d.flags |= dt::DF_BIND_NOW,
            dt::DT_PLTGOT => d.pltgot = Some(ptr(v)),
            dt::DT_VERSYM => d.versym = Some(ptr(v)),
            dt::DT_VERDEF => verdef_addr = Some(ptr(v)),
            dt::DT_VERDEFNUM => verdefnum = v,
            dt::DT_VERNEED => verneed_addr = Some(ptr(v)),
            dt::DT_VERNEEDNUM => verneednum = v,
            _ => {}
        }
    }
    if !terminated {
        return Err(bad("no DT_NULL before the end of the segment".to_string()));
    }
    if syment != 24 {
        return Err(bad(format!("DT_SYMENT {syment} (expected 24)")));
    }
    let strtab = strtab.ok_or_else(|| bad("no DT_STRTAB".to_string()))?;
    let strsz = strsz.ok_or_else(|| bad("no DT_STRSZ".to_string()))? as usize;
    d.strtab = mem.table(strtab, strsz).ok_or_else(|| {
        bad(format!(
            "DT_STRTAB {strtab:#x} (DT_STRSZ {strsz}) outside the image"
        ))
    })?;
    if d.symtab_addr == 0 || !mem.contains(d.symtab_addr, std::mem::size_of::<Sym>()) {
        return Err(bad(format!(
            "DT_SYMTAB {:#x} missing or outside the image",
            d.symtab_addr
        )));
    }
    if d.gnu_hash.is_none() && d.sysv_hash.is_none() {
        return Err(bad("neither DT_GNU_HASH nor DT_HASH".to_string()));
    }
    let string = |off: u64, tag: &str| -> Result<String, Error> {
        d.strtab
            .c_str(off as usize)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .ok_or_else(|| {
                bad(format!(
                    "{tag} string offset {off:#x} outside DT_STRTAB (size {strsz})"
                ))
            })
    };
    d.needed = needed
        .into_iter()
        .map(|o| string(o, "DT_NEEDED"))
        .collect::<Result<_, _>>()?;
    d.soname = soname.map(|o| string(o, "DT_SONAME")).transpose()?;
    d.rpath = rpath.map(|o| string(o, "DT_RPATH")).transpose()?;
    d.runpath = runpath.map(|o| string(o, "DT_RUNPATH")).transpose()?;

    let table = |addr: Option<usize>, size: u64, ent: u64, tag: &str| -> Result<usize, Error> {
        match addr {
            None if size == 0 => Ok(0),
            None => Err(bad(format!("{tag} size {size} without an address"))),
            Some(a) => {
                if size % ent != 0 {
                    return Err(bad(format!(
                        "{tag} size {size} is not a multiple of its entry size {ent}"
                    )));
                }
                if !mem.contains(a, size as usize) {
                    return Err(bad(format!("{tag} {a:#x} (size {size}) outside the image")));
                }
                Ok(a)
            }
        }
    };
    if relaent != 24 {
        return Err(bad(format!("DT_RELAENT {relaent} (expected 24)")));
    }
    if relrent != 8 {
        return Err(bad(format!("DT_RELRENT {relrent} (expected 8)")));
    }
    if jmprel.is_some() && pltrel != dt::DT_RELA {
        return Err(bad(format!("DT_PLTREL {pltrel} (expected DT_RELA, 7)")));
    }
    let a = table(rela, relasz, 24, "DT_RELA")?;
    d.rela = mem
        .table(a, (relasz / 24) as usize)
        .unwrap_or_else(Table::empty);
    let a = table(jmprel, pltrelsz, 24, "DT_JMPREL")?;
    d.jmprel = mem
        .table(a, (pltrelsz / 24) as usize)
        .unwrap_or_else(Table::empty);
    let a = table(relr, relrsz, 8, "DT_RELR")?;
    d.relr = mem
        .table(a, (relrsz / 8) as usize)
        .unwrap_or_else(Table::empty);
    let a = table(init_array, init_arraysz, 8, "DT_INIT_ARRAY")?;
    d.init_array = mem
        .table(a, (init_arraysz / 8) as usize)
        .unwrap_or_else(Table::empty);
    let a = table(fini_array, fini_arraysz, 8, "DT_FINI_ARRAY")?;
    d.fini_array = mem
        .table(a, (fini_arraysz / 8) as usize)
        .unwrap_or_else(Table::empty);
    d.verdef = verdef_addr.map(|a| (a, verdefnum as usize));
    d.verneed = verneed_addr.map(|a| (a, verneednum as usize));
    Ok(d)
}
