//! Stage 2 of a load: read the ELF header and program headers, and check
//! everything about them before the first mmap.
//!
//! Only the headers are read: one `read` of 832 bytes, as ld.so makes, and a
//! `pread` when the program headers lie beyond it. The rest of the file comes
//! in page by page through the mappings. Each check follows bionic's
//! `ElfReader` (which field, which value) with glibc's `open_verify` wording.

use std::path::{Path, PathBuf};

use goblin::container::{Container, Ctx, Endian};
use goblin::elf::header::{self, Header};
use goblin::elf::program_header::{self as ph, ProgramHeader};

use crate::base::error::Error;
use crate::os::sys::{Fd, FileStat, Sys};

/// How much ld.so reads of a file first: enough for the ELF header and the
/// program headers of nearly every library.
pub(crate) const FIRST_READ: usize = 832;

/// The kernel's limit on e_phnum (`fs/binfmt_elf.c`: 64 KiB of headers).
const MAX_PHNUM: usize = 65536 / goblin::elf64::program_header::SIZEOF_PHDR;

const EV_CURRENT: u8 = 1;
const ELFOSABI_SYSV: u8 = 0;
const ELFOSABI_GNU: u8 = 3;

/// What the header stage hands to the mapping stage.
#[derive(Debug)]
pub(crate) struct Headers {
    pub(crate) path: PathBuf,
    pub(crate) stat: FileStat,
    pub(crate) phdrs: Vec<ProgramHeader>,
}

impl Headers {
    /// The PT_LOAD headers, in file order (checked ascending).
    pub(crate) fn loads(&self) -> impl Iterator<Item = &ProgramHeader> {
        self.phdrs.iter().filter(|p| p.p_type == ph::PT_LOAD)
    }

    /// The first header of a type.
    pub(crate) fn find(&self, p_type: u32) -> Option<&ProgramHeader> {
        self.phdrs.iter().find(|p| p.p_type == p_type)
    }
}

/// Reads and validates the headers of an open file.
///
/// The first bytes have usually been read already by the caller (to tell an
/// ELF file from a linker script); they are passed in as `first`.
pub(crate) fn read_headers(
    sys: &Sys,
    fd: &Fd,
    path: &Path,
    first: &[u8],
    exec_stack_ok: bool,
) -> Result<Headers, Error> {
    let ehdr = check_ident_and_header(path, first)?;
    let phdrs = read_program_headers(sys, fd, path, first, &ehdr)?;
    let stat = sys
        .fstat(fd, "size and identity (device, inode) of the file")
        .map_err(|e| Error::io(path, "fstat", e))?;
    if stat.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::header(
            path,
            format!("not a regular file (st_mode {:#o})", stat.mode),
        ));
    }
    check_program_headers(path, &phdrs, stat.size, exec_stack_ok)?;
    Ok(Headers {
        path: path.to_path_buf(),
        stat,
        phdrs,
    })
}

/// Checks e_ident and the fixed header fields; returns the parsed header.
pub(crate) fn check_ident_and_header(path: &Path, bytes: &[u8]) -> Result<Header, Error> {
    if bytes.len() < header::SIZEOF_IDENT && header::ELFMAG.starts_with(bytes) || bytes.len() < 4 {
        return Err(Error::header(
            path,
            format!("file too short: {} bytes", bytes.len()),
        ));
    }
    if &bytes[..4] != header::ELFMAG {
        return Err(Error::header(
            path,
            format!(
                "bad magic {:02x?} (expected 7f 45 4c 46)",
                &bytes[..bytes.len().min(4)]
            ),
        ));
    }
    if bytes.len() < header::SIZEOF_IDENT {
        return Err(Error::header(
            path,
            format!("file too short: {} bytes", bytes.len()),
        ));
    }
    let ident = &bytes[..header::SIZEOF_IDENT];
    if ident[header::EI_CLASS] != header::ELFCLASS64 {
        return Err(Error::header(
            path,
            format!(
                "wrong ELF class {} ({}): not a 64-bit object",
                ident[header::EI_CLASS],
                if ident[header::EI_CLASS] == header::ELFCLASS32 {
                    "ELFCLASS32"
                } else {
                    "invalid"
                }
            ),
        ));
    }
    if ident[header::EI_DATA] != header::ELFDATA2LSB {
        return Err(Error::header(
            path,
            format!(
                "EI_DATA {}: not little-endian (ELFDATA2LSB)",
                ident[header::EI_DATA]
            ),
        ));
    }
    if ident[header::EI_VERSION] != EV_CURRENT {
        return Err(Error::header(
            path,
            format!("EI_VERSION {} (expected 1)", ident[header::EI_VERSION]),
        ));
    }
    let osabi = ident[header::EI_OSABI];
    if osabi != ELFOSABI_SYSV && osabi != ELFOSABI_GNU {
        return Err(Error::header(
            path,
            format!("OS ABI {osabi} (expected 0, SYSV, or 3, GNU)"),
        ));
    }
    // EI_ABIVERSION: glibc accepts 0 for SYSV and up to its own highest
    // supported ABI version for GNU; minld implements none of the extensions
    // those versions announce beyond unique symbols and ifuncs (version 1).
    let abiversion = ident[header::EI_ABIVERSION];
    if abiversion > 1 || (osabi == ELFOSABI_SYSV && abiversion != 0) {
        return Err(Error::header(
            path,
            format!("ABI version {abiversion} for OS ABI {osabi}"),
        ));
    }
    if let Some(i) = ident[header::EI_ABIVERSION + 1..]
        .iter()
        .position(|&b| b != 0)
    {
        return Err(Error::header(
            path,
            format!(
                "nonzero padding in e_ident at byte {}: {:#x}",
                header::EI_ABIVERSION + 1 + i,
                ident[header::EI_ABIVERSION + 1 + i]
            ),
        ));
    }
    if bytes.len() < header::header64::SIZEOF_EHDR {
        return Err(Error::header(
            path,
            format!(
                "file too short: {} bytes, an ELF header needs 64",
                bytes.len()
            ),
        ));
    }
    let ehdr =
        goblin::elf::Elf::parse_header(bytes).map_err(|e| Error::header(path, e.to_string()))?;
    if ehdr.e_version != u32::from(EV_CURRENT) {
        return Err(Error::header(
            path,
            format!("e_version {} (expected 1)", ehdr.e_version),
        ));
    }
    if ehdr.e_machine != header::EM_X86_64 {
        return Err(Error::header(
            path,
            format!(
                "e_machine {} ({}): not x86-64 (62)",
                ehdr.e_machine,
                header::machine_to_str(ehdr.e_machine)
            ),
        ));
    }
    match ehdr.e_type {
        header::ET_DYN => {}
        header::ET_EXEC => {
            return Err(Error::Executable {
                path: path.to_path_buf(),
                what: "e_type ET_EXEC".to_string(),
            })
        }
        t => {
            return Err(Error::header(
                path,
                format!(
                    "e_type {t} ({}): only ET_DYN objects can be loaded",
                    header::et_to_str(t)
                ),
            ))
        }
    }
    if usize::from(ehdr.e_phentsize) != goblin::elf64::program_header::SIZEOF_PHDR {
        return Err(Error::header(
            path,
            format!(
                "e_phentsize {} (expected {})",
                ehdr.e_phentsize,
                goblin::elf64::program_header::SIZEOF_PHDR
            ),
        ));
    }
    let phnum = usize::from(ehdr.e_phnum);
    if phnum == 0 || phnum > MAX_PHNUM {
        return Err(Error::header(
            path,
            format!("e_phnum {phnum} (must be 1 to {MAX_PHNUM})"),
        ));
    }
    Ok(ehdr)
}

fn read_program_headers(
    sys: &Sys,
    fd: &Fd,
    path: &Path,
    first: &[u8],
    ehdr: &Header,
) -> Result<Vec<ProgramHeader>, Error> {
    let ctx = Ctx::new(Container::Big, Endian::Little);
    let size = usize::from(ehdr.e_phnum) * goblin::elf64::program_header::SIZEOF_PHDR;
    let start = ehdr.e_phoff;
    let end = start.checked_add(size as u64);
    let parse = |bytes: &[u8], offset: usize| {
        ProgramHeader::parse(bytes, offset, usize::from(ehdr.e_phnum), ctx)
            .map_err(|e| Error::header(path, format!("program headers: {e}")))
    };
    match end {
        Some(end) if end <= first.len() as u64 => parse(first, start as usize),
        Some(_) => {
            // Beyond the first read: fetch them with one pread, as ld.so does.
            let mut buf = vec![0u8; size];
            let n = sys
                .pread(fd, &mut buf, start, "program headers beyond the first read")
                .map_err(|e| Error::io(path, "pread of program headers", e))?;
            if n != size {
                return Err(Error::header(
                    path,
                    format!("program headers at e_phoff {start:#x} ({size} bytes) extend past the end of the file"),
                ));
            }
            parse(&buf, 0)
        }
        None => Err(Error::header(path, format!("e_phoff {start:#x} overflows"))),
    }
}

fn flags_str(f: u32) -> String {
    format!(
        "{}{}{}",
        if f & ph::PF_R != 0 { 'r' } else { '-' },
        if f & ph::PF_W != 0 { 'w' } else { '-' },
        if f & ph::PF_X != 0 { 'x' } else { '-' }
    )
}

/// Checks the program headers against each other and against the file size.
/// The largest PT_LOAD alignment minld honours (glibc has none; the
/// largest huge page is 1 GiB).
const MAX_SEGMENT_ALIGN: u64 = 1 << 30;

/// The largest TLS block minld allocates per thread (glibc has no limit;
/// a block this size in every thread is already absurd).
const MAX_TLS_BLOCK: u64 = 1 << 30;

pub(crate) fn check_program_headers(
    path: &Path,
    phdrs: &[ProgramHeader],
    file_size: u64,
    exec_stack_ok: bool,
) -> Result<(), Error> {
    let page = crate::os::sys::page_size() as u64;
    let mut prev_end: Option<(usize, u64)> = None;
    let mut loads = 0usize;
    for (i, p) in phdrs.iter().enumerate() {
        if p.p_type != ph::PT_LOAD {
            continue;
        }
        loads += 1;
        let bad = |what: String| Error::segments(path, format!("PT_LOAD segment {i}: {what}"));
        let file_end = p.p_offset.checked_add(p.p_filesz).ok_or_else(|| {
            bad(format!(
                "p_offset {:#x} + p_filesz {:#x} overflows",
                p.p_offset, p.p_filesz
            ))
        })?;
        if file_end > file_size {
            return Err(bad(format!(
                "p_offset {:#x} + p_filesz {:#x} = {:#x} is past the end of the file ({:#x} bytes)",
                p.p_offset, p.p_filesz, file_end, file_size
            )));
        }
        if p.p_filesz > p.p_memsz {
            return Err(bad(format!(
                "p_filesz {:#x} is larger than p_memsz {:#x}",
                p.p_filesz, p.p_memsz
            )));
        }
        let mem_end = p
            .p_vaddr
            .checked_add(p.p_memsz)
            .filter(|&e| e < (1 << 47))
            .ok_or_else(|| {
                bad(format!(
                    "p_vaddr {:#x} + p_memsz {:#x} is beyond the address space",
                    p.p_vaddr, p.p_memsz
                ))
            })?;
        if p.p_align > 1 && !p.p_align.is_power_of_two() {
            return Err(bad(format!(
                "p_align {:#x} is not a power of two",
                p.p_align
            )));
        }
        if p.p_align > MAX_SEGMENT_ALIGN {
            return Err(bad(format!(
                "p_align {:#x} is larger than minld's limit ({MAX_SEGMENT_ALIGN:#x}): \
                 the reservation would be p_align bytes larger than the image",
                p.p_align
            )));
        }
        if p.p_vaddr % page != p.p_offset % page {
            return Err(bad(format!(
                "p_vaddr {:#x} and p_offset {:#x} are not congruent modulo the page size ({page:#x})",
                p.p_vaddr, p.p_offset
            )));
        }
        if let Some((j, end)) = prev_end {
            if p.p_vaddr < end {
                return Err(bad(format!(
                    "p_vaddr {:#x} is below the end {end:#x} of PT_LOAD segment {j}: segments out of order or overlapping",
                    p.p_vaddr
                )));
            }
        }
        crate::model::image::layout::check_load(path, i, p, prev_end)?;
        prev_end = Some((i, mem_end));
    }
    if loads == 0 {
        return Err(Error::segments(path, "no PT_LOAD segment"));
    }
    let dynamic = phdrs
        .iter()
        .find(|p| p.p_type == ph::PT_DYNAMIC)
        .ok_or_else(|| Error::segments(path, "no PT_DYNAMIC segment: not a dynamic object"))?;
    let inside = phdrs.iter().any(|l| {
        l.p_type == ph::PT_LOAD
            && dynamic.p_vaddr >= l.p_vaddr
            && dynamic
                .p_vaddr
                .checked_add(dynamic.p_memsz)
                .is_some_and(|e| e <= l.p_vaddr + l.p_filesz)
    });
    if !inside {
        return Err(Error::segments(
            path,
            format!(
                "PT_DYNAMIC at p_vaddr {:#x} (p_memsz {:#x}) lies outside every PT_LOAD segment's file data",
                dynamic.p_vaddr, dynamic.p_memsz
            ),
        ));
    }
    // Segments minld acts on besides PT_LOAD must lie inside one: RELRO is
    // made read-only with mprotect (outside a writable segment that would
    // change the protections of other memory, or take exec rights from
    // code), TLS initialisation images are copied from the file's data.
    let within = |p: &ProgramHeader, file_data: bool, flag: u32| {
        let size = if file_data { p.p_filesz } else { p.p_memsz };
        phdrs.iter().any(|l| {
            l.p_type == ph::PT_LOAD
                && l.p_flags & flag != 0
                && p.p_vaddr >= l.p_vaddr
                && p.p_vaddr.checked_add(size).is_some_and(|e| {
                    e <= l.p_vaddr + if file_data { l.p_filesz } else { l.p_memsz }
                })
        })
    };
    for p in phdrs {
        let what = match p.p_type {
            ph::PT_GNU_RELRO if !within(p, false, ph::PF_W) => "PT_GNU_RELRO",
            ph::PT_TLS if p.p_filesz > p.p_memsz => {
                return Err(Error::segments(
                    path,
                    format!(
                        "PT_TLS: p_filesz {:#x} is larger than p_memsz {:#x}",
                        p.p_filesz, p.p_memsz
                    ),
                ))
            }
            ph::PT_TLS if p.p_align > 1 && !p.p_align.is_power_of_two() => {
                return Err(Error::segments(
                    path,
                    format!("PT_TLS: p_align {:#x} is not a power of two", p.p_align),
                ))
            }
            ph::PT_TLS if p.p_memsz > MAX_TLS_BLOCK => {
                return Err(Error::segments(
                    path,
                    format!(
                        "PT_TLS: p_memsz {:#x} is larger than minld's limit for a TLS block ({MAX_TLS_BLOCK:#x})",
                        p.p_memsz
                    ),
                ))
            }
            ph::PT_TLS if !within(p, true, ph::PF_R) => "PT_TLS (its initialisation image)",
            _ => continue,
        };
        let (size, which) = if p.p_type == ph::PT_TLS {
            (p.p_filesz, "p_filesz")
        } else {
            (p.p_memsz, "p_memsz")
        };
        return Err(Error::segments(
            path,
            format!(
                "{what} at p_vaddr {:#x} ({which} {size:#x}) is not inside a {} PT_LOAD segment",
                p.p_vaddr,
                if p.p_type == ph::PT_GNU_RELRO {
                    "writable"
                } else {
                    "readable"
                }
            ),
        ));
    }
    if let Some(stack) = phdrs.iter().find(|p| p.p_type == ph::PT_GNU_STACK) {
        if stack.p_flags & ph::PF_X != 0 && !exec_stack_ok {
            return Err(Error::ExecutableStack {
                path: path.to_path_buf(),
                flags: stack.p_flags,
            });
        }
    }
    for (i, p) in phdrs.iter().enumerate() {
        if p.p_type == ph::PT_LOAD && p.p_flags & (ph::PF_R | ph::PF_W | ph::PF_X) == 0 {
            log::debug!(
                "{}: PT_LOAD segment {i} has no access ({})",
                path.display(),
                flags_str(p.p_flags)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vaddr: u64, offset: u64, filesz: u64, memsz: u64) -> ProgramHeader {
        ProgramHeader {
            p_type: ph::PT_LOAD,
            p_flags: ph::PF_R,
            p_offset: offset,
            p_vaddr: vaddr,
            p_paddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: 0x1000,
        }
    }

    fn dynamic(vaddr: u64) -> ProgramHeader {
        ProgramHeader {
            p_type: ph::PT_DYNAMIC,
            p_vaddr: vaddr,
            p_offset: vaddr,
            p_filesz: 0x100,
            p_memsz: 0x100,
            ..load(0, 0, 0, 0)
        }
    }

    fn check(phdrs: &[ProgramHeader]) -> String {
        match check_program_headers(Path::new("t.so"), phdrs, 0x10000, false) {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_a_plain_layout() {
        assert_eq!(
            check(&[
                load(0, 0, 0x2000, 0x2000),
                load(0x3000, 0x3000, 0x1000, 0x4000),
                dynamic(0x3000)
            ]),
            "ok"
        );
    }

    #[test]
    fn rejects_overlap_and_disorder() {
        let e = check(&[
            load(0x3000, 0x3000, 0x1000, 0x1000),
            load(0, 0, 0x1000, 0x1000),
            dynamic(0),
        ]);
        assert!(e.contains("segment 1") && e.contains("out of order"), "{e}");
    }

    #[test]
    fn rejects_filesz_overflow() {
        let e = check(&[load(0, u64::MAX - 4, 0x10, 0x10), dynamic(0)]);
        assert!(e.contains("overflows"), "{e}");
    }

    #[test]
    fn rejects_dynamic_outside_loads() {
        let e = check(&[load(0, 0, 0x1000, 0x1000), dynamic(0x8000)]);
        assert!(e.contains("PT_DYNAMIC at p_vaddr 0x8000"), "{e}");
    }
}
