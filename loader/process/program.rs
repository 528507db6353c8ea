//! The program's own DT_RPATH, read in place once per process: glibc
//! searches it, after the RPATHs of a library's chain of loaders, for the
//! dependencies of any object that has no DT_RUNPATH (and for a name
//! opened with no known caller). It is not searched when the program has
//! a DT_RUNPATH, which replaces its RPATH.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use goblin::elf::program_header as ph;
use goblin::elf64::program_header::ProgramHeader;

use crate::base::mem::Memory;
use crate::elf::dynamic::{self, PtrStyle};
use crate::os::sys::Sys;

/// What the search takes from the program.
#[derive(Debug, Default)]
pub(crate) struct Program {
    /// Its path (its directory is `$ORIGIN`) and its DT_RPATH; None when
    /// it has none or has a DT_RUNPATH.
    pub(crate) rpath: Option<(PathBuf, String)>,
    /// Its DF_1_NODEFLIB: a name opened with no known caller is then not
    /// searched in the system directories (nor found through
    /// `/etc/ld.so.cache` in them).
    pub(crate) nodeflib: bool,
}

/// The program's, read once per process (nothing when its headers cannot
/// be read); `sys` reads its path, if it has an RPATH.
pub(crate) fn program(sys: &Sys) -> &'static Program {
    static PROGRAM: OnceLock<Program> = OnceLock::new();
    PROGRAM.get_or_init(|| read(sys).unwrap_or_default())
}

/// The program's headers, as the kernel names them in the auxiliary
/// vector (AT_PHDR, AT_PHNUM), and its load bias (from PT_PHDR); None
/// without them.
pub(crate) fn headers() -> Option<(&'static [ProgramHeader], usize)> {
    // SAFETY: getauxval only reads the auxiliary vector.
    let (phdr, phnum) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR) as usize,
            libc::getauxval(libc::AT_PHNUM) as usize,
        )
    };
    if phdr == 0 || phnum == 0 || phnum > 0xffff {
        return None;
    }
    // SAFETY: the kernel's auxiliary vector gives the address and count of
    // the program's headers, which stay mapped for the process's life.
    let phdrs = unsafe { std::slice::from_raw_parts(phdr as *const ProgramHeader, phnum) };
    let bias = phdrs
        .iter()
        .find(|p| p.p_type == ph::PT_PHDR)
        .map(|p| phdr.wrapping_sub(p.p_vaddr as usize))?;
    Some((phdrs, bias))
}

/// Reads the program's dynamic section through its [`headers`].
fn read(sys: &Sys) -> Option<Program> {
    let (phdrs, bias) = headers()?;
    let ranges = phdrs
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD)
        .map(|p| {
            let start = bias.wrapping_add(p.p_vaddr as usize);
            (start, start.wrapping_add(p.p_memsz as usize))
        })
        .collect();
    // SAFETY: the ranges are the program's PT_LOAD segments, mapped by the
    // kernel for the process's whole life.
    let mem = unsafe { Memory::new(ranges) };
    let dyn_ph = phdrs.iter().find(|p| p.p_type == ph::PT_DYNAMIC)?;
    let path = PathBuf::from("/proc/self/exe");
    let d = dynamic::parse(
        &path,
        &mem,
        bias,
        bias.wrapping_add(dyn_ph.p_vaddr as usize),
        // glibc has made the program's address entries absolute in place.
        PtrStyle::HostMixed,
    )
    .ok()?;
    let nodeflib = d.nodeflib();
    let rpath = d
        .rpath
        .filter(|_| d.runpath.is_none())
        .map(|rp| (self::path(sys).to_path_buf(), rp));
    Some(Program { rpath, nodeflib })
}

/// The program's file as the kernel names it (`/proc/self/exe`; its
/// directory is the program's `$ORIGIN`), read once per process (through
/// `sys`, traced if it traces, the first time): the process's program
/// does not change. Empty if it cannot be read.
pub(crate) fn path(sys: &Sys) -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        sys.readlink(c"/proc/self/exe", "the program's path: its $ORIGIN")
            .ok()
            .flatten()
            .unwrap_or_default()
    })
}
