//! minld's loaded objects as the process-walking interfaces see them:
//! what `dl_iterate_phdr`, `dladdr1` and `dlinfo` report for glibc's own
//! objects ([`loaded_objects`], [`object_at`], [`LoadedObject`]), for a
//! drop-in `libdl` (the `minld-preload` crate) to report minld's too.
//!
//! Nothing here takes the loader lock: these questions come from
//! unwinders and profilers at any time, from any thread, also from an init
//! function running inside a load.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use std::sync::Arc;

use goblin::elf::program_header as ph;

use crate::model::object::{live, Object};

/// One of minld's loaded objects, with a reference held: it stays loaded
/// (and every pointer it hands out valid) while this value lives.
pub struct LoadedObject {
    object: Arc<Object>,
    /// The absolute path as a C string, when the debugger's list has no
    /// entry for the object (a program without DT_DEBUG).
    own_name: Option<CString>,
    /// The program headers in `Elf64_Phdr` layout, when the mapping does
    /// not hold the file's table.
    phdr_copy: Option<Vec<Phdr>>,
}

/// `Elf64_Phdr`.
type Phdr = goblin::elf64::program_header::ProgramHeader;

impl std::fmt::Debug for LoadedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedObject")
            .field("path", &self.path())
            .field("base", &format_args!("{:#x}", self.base()))
            .finish()
    }
}

/// The dynamic symbol of an object nearest at or below an address
/// ([`LoadedObject::symbol_at`]), as `dladdr` reports it.
#[derive(Debug, Clone, Copy)]
pub struct SymbolAt {
    /// Its name, NUL-terminated, in the object's string table (`dli_sname`).
    pub name: *const c_char,
    /// Its address (`dli_saddr`).
    pub addr: usize,
    /// Its `Elf64_Sym` entry in the object's symbol table (`dladdr1`'s
    /// `RTLD_DL_SYMENT`).
    pub entry: *const c_void,
}

/// How many objects minld has added to and removed from the process since
/// it started: `dl_iterate_phdr`'s `dlpi_adds` and `dlpi_subs` for minld's
/// part of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectCounts {
    /// Objects mapped (each load of a file counts once).
    pub adds: u64,
    /// Objects unmapped (or whose load failed after mapping).
    pub subs: u64,
}

/// Every object minld has loaded and not unloaded, in the order they were
/// mapped, with the counts as they stood when the list was taken (read
/// together, so a caller comparing counts sees every change).
pub fn loaded_objects() -> (Vec<LoadedObject>, ObjectCounts) {
    let (objects, (adds, subs)) = live::snapshot();
    let list = objects.into_iter().map(LoadedObject::new).collect();
    (list, ObjectCounts { adds, subs })
}

/// The counts of [`loaded_objects`] alone.
pub fn object_counts() -> ObjectCounts {
    let (adds, subs) = live::counts();
    ObjectCounts { adds, subs }
}

/// The object minld loaded whose mapping contains `addr`.
pub fn object_at(addr: usize) -> Option<LoadedObject> {
    live::object_at(addr).map(LoadedObject::new)
}

impl LoadedObject {
    fn new(object: Arc<Object>) -> Self {
        let own_name = match object.debugger.get() {
            Some(_) => None,
            None => {
                let abs = std::path::absolute(&object.path).unwrap_or(object.path.clone());
                CString::new(abs.into_os_string().into_encoded_bytes()).ok()
            }
        };
        let mut o = LoadedObject {
            object,
            own_name,
            phdr_copy: None,
        };
        if o.mapped_phdrs().is_none() {
            let copy = o.object.image.phdrs.iter().map(|p| Phdr {
                p_type: p.p_type,
                p_flags: p.p_flags,
                p_offset: p.p_offset,
                p_vaddr: p.p_vaddr,
                p_paddr: p.p_paddr,
                p_filesz: p.p_filesz,
                p_memsz: p.p_memsz,
                p_align: p.p_align,
            });
            o.phdr_copy = Some(copy.collect());
        }
        o
    }

    /// Its file, as minld found it.
    pub fn path(&self) -> &Path {
        &self.object.path
    }

    /// Its DT_SONAME (its file name without one).
    pub fn soname(&self) -> &str {
        &self.object.soname
    }

    /// Its absolute path as a NUL-terminated C string (`dlpi_name`,
    /// `l_name`, `dli_fname`): the one in the debugger's list, valid while
    /// the object is loaded.
    pub fn c_name(&self) -> &CStr {
        match (self.object.debugger.get(), &self.own_name) {
            (Some(e), _) => e.name(),
            (None, Some(n)) => n,
            (None, None) => c"",
        }
    }

    /// Its load bias: the real address of virtual address 0 (`dlpi_addr`,
    /// `l_addr`).
    pub fn base(&self) -> usize {
        self.object.image.bias.0
    }

    /// The lowest address of its mapping (`dli_fbase`).
    pub fn map_start(&self) -> usize {
        self.object.image.start
    }

    /// Its program headers (`dlpi_phdr`, `dlpi_phnum`): a pointer to its
    /// `Elf64_Phdr` table where the file's mapping holds it (as glibc's
    /// `l_phdr`: valid while the object is loaded), else to a copy this
    /// value holds; and their count.
    pub fn program_headers(&self) -> (*const c_void, usize) {
        let n = self.object.image.phdrs.len();
        match (self.mapped_phdrs(), &self.phdr_copy) {
            (Some(p), _) => (p as *const c_void, n),
            (None, Some(c)) => (c.as_ptr().cast(), c.len()),
            (None, None) => (std::ptr::null(), 0),
        }
    }

    /// The address of the program header table in the object's mapping:
    /// found from the ELF header mapped at its start (`e_phoff`), inside a
    /// readable segment, holding the headers minld read.
    fn mapped_phdrs(&self) -> Option<usize> {
        let image = &self.object.image;
        let first = image.segments.first().filter(|s| s.file_offset == 0)?;
        if !image.readable(first.addr, 64) {
            return None;
        }
        // SAFETY: the 64-byte ELF header lies in a readable segment of the
        // object, mapped while `self` holds it.
        let (phoff, phentsize) = unsafe {
            (
                std::ptr::read_unaligned((first.addr + 32) as *const u64),
                std::ptr::read_unaligned((first.addr + 54) as *const u16),
            )
        };
        let size = image.phdrs.len() * std::mem::size_of::<Phdr>();
        if usize::from(phentsize) != std::mem::size_of::<Phdr>() {
            return None;
        }
        let seg = image.segments.iter().find(|s| {
            phoff >= s.file_offset
                && phoff
                    .checked_add(size as u64)
                    .is_some_and(|e| e <= s.file_offset + s.file_size)
        })?;
        let addr = seg.addr + (phoff - seg.file_offset) as usize;
        (addr % std::mem::align_of::<Phdr>() == 0 && image.readable(addr, size)).then_some(addr)
    }

    /// The real address of its dynamic section (`l_ld`), 0 without one.
    pub fn dynamic(&self) -> usize {
        self.object
            .image
            .phdr(ph::PT_DYNAMIC)
            .map_or(0, |d| self.object.image.bias.at(d.p_vaddr))
    }

    /// Its TLS module id (`dlpi_tls_modid`), 0 without a PT_TLS segment.
    /// minld's ids start at 2^40, apart from glibc's.
    pub fn tls_module(&self) -> usize {
        self.object.tls.as_ref().map_or(0, |m| m.id())
    }

    /// The calling thread's block of its PT_TLS segment (`dlpi_tls_data`),
    /// allocated if this thread has not touched it yet; null without one.
    pub fn tls_data(&self) -> *mut c_void {
        match self.tls_module() {
            0 => std::ptr::null_mut(),
            id => crate::process::tls::address(id, 0) as *mut c_void,
        }
    }

    /// Its `struct link_map` node in the list minld keeps for debuggers
    /// (`dlinfo`'s `RTLD_DI_LINKMAP`): `l_addr`, `l_name`, `l_ld`,
    /// `l_next`, `l_prev`, linking minld's objects among themselves; null
    /// when the program has no debugger interface (no DT_DEBUG).
    pub fn link_map(&self) -> *mut c_void {
        self.object
            .debugger
            .get()
            .map_or(std::ptr::null_mut(), |e| e.node() as *mut c_void)
    }

    /// The dynamic symbol nearest at or below `addr` in this object (as
    /// [`crate::addr_info`] chooses it), with pointers into the object's
    /// own tables; None when no symbol lies below it.
    pub fn symbol_at(&self, addr: usize) -> Option<SymbolAt> {
        let o = &self.object;
        let (i, value) = crate::api::addr::nearest_symbol(o, addr)?;
        let sym = o.symbols.sym(i)?;
        let name = o.symbols.name(&sym)?;
        Some(SymbolAt {
            // The string table holds the name NUL-terminated in place.
            name: name.as_ptr().cast(),
            addr: o.image.bias.0.wrapping_add(value as usize),
            entry: (o.dynamic.symtab_addr + i * std::mem::size_of::<goblin::elf64::sym::Sym>())
                as *const c_void,
        })
    }

    /// Whether it is to stay loaded for the rest of the process
    /// (DF_1_NODELETE).
    pub fn nodelete(&self) -> bool {
        self.object.nodelete()
    }
}
