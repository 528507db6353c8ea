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

use crate::base::error::{Error, ExecutableKind, HeaderFault, SegmentFault, SegmentName};
use crate::base::mem::FileRange;
use crate::os::sys::{Fd, FileStat, Sys};

/// How much ld.so reads of a file first: enough for the ELF header and the
/// program headers of nearly every library.
pub(crate) const FIRST_READ: usize = 832;

/// The size of one program header, e_phentsize's only value.
const PHDR_SIZE: usize = goblin::elf64::program_header::SIZEOF_PHDR;

/// The kernel's limit on e_phnum (`fs/binfmt_elf.c`: 64 KiB of headers).
const MAX_PHNUM: usize = 65536 / PHDR_SIZE;

/// EI_VERSION and e_version: the only ELF version.
const EV_CURRENT: u8 = 1;
/// EI_OSABI of System V objects.
const ELFOSABI_SYSV: u8 = 0;
/// EI_OSABI of objects using GNU extensions (unique symbols, ifuncs).
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

/// Reads and validates the headers of an open file, in bionic's order:
/// read the ELF header, verify it, read the program headers, check them.
///
/// The first bytes have usually been read already by the caller (to tell an
/// ELF file from a linker script); they are passed in as `first`. `stat` is
/// the file's `fstat` when the caller made it already (it is not made
/// twice); None: it is made here, after the program headers are read.
pub(crate) fn read_headers(
    sys: &Sys,
    fd: &Fd,
    path: &Path,
    first: &[u8],
    stat: Option<FileStat>,
    exec_stack_ok: bool,
) -> Result<Headers, Error> {
    let ehdr = check_ident_and_header(path, first)?;
    let phdrs = read_program_headers(sys, fd, path, first, &ehdr)?;
    let stat = match stat {
        Some(stat) => check_regular(path, stat)?,
        None => stat_regular_file(sys, fd, path)?,
    };
    check_program_headers(path, &phdrs, stat.size, exec_stack_ok)?;
    Ok(Headers {
        path: path.to_path_buf(),
        stat,
        phdrs,
    })
}

/// The headers of an object held in memory (`Loader::open_bytes`), with
/// the checks and errors [`read_headers`] gives a file holding the same
/// bytes: the slice's length is the file's size, every table is
/// bounds-checked against it. The identity is made up and unique (the
/// bytes have none): device `u64::MAX`, an inode counted up.
pub(crate) fn headers_from_bytes(
    path: &Path,
    bytes: &[u8],
    exec_stack_ok: bool,
) -> Result<Headers, Error> {
    let ehdr = check_ident_and_header(path, bytes)?;
    let (size, range) = program_header_range(path, &ehdr)?;
    if range.end(bytes.len() as u64).is_err() {
        return Err(headers_past_end(path, &ehdr, size));
    }
    let phdrs = parse_program_headers(path, bytes, ehdr.e_phoff as usize, &ehdr)?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let stat = FileStat {
        dev: u64::MAX,
        ino: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        size: bytes.len() as u64,
        mode: libc::S_IFREG | 0o400,
        uid: 0,
        mtime: (0, 0),
        ctime: (0, 0),
    };
    check_program_headers(path, &phdrs, stat.size, exec_stack_ok)?;
    Ok(Headers {
        path: path.to_path_buf(),
        stat,
        phdrs,
    })
}

/// fstat: the file's size and identity; it must be a regular file.
fn stat_regular_file(sys: &Sys, fd: &Fd, path: &Path) -> Result<FileStat, Error> {
    let stat = sys
        .fstat(fd, "size and identity (device, inode) of the file")
        .map_err(|e| Error::io(path, "fstat", e))?;
    check_regular(path, stat)
}

/// `stat` if it is a regular file's; otherwise the error of a file that is
/// not one (a device, a directory): `st_mode` and its value.
pub(crate) fn check_regular(path: &Path, stat: FileStat) -> Result<FileStat, Error> {
    if stat.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::header(
            path,
            "st_mode",
            u64::from(stat.mode),
            HeaderFault::NotRegular,
        ));
    }
    Ok(stat)
}

/// Checks e_ident and the fixed header fields; returns the parsed header.
pub(crate) fn check_ident_and_header(path: &Path, bytes: &[u8]) -> Result<Header, Error> {
    check_magic(path, bytes)?;
    check_ident(path, &bytes[..header::SIZEOF_IDENT])?;
    let ehdr = parse_header(path, bytes)?;
    check_fixed_fields(path, &ehdr)?;
    Ok(ehdr)
}

/// The file is long enough for e_ident and starts with `\x7fELF`.
fn check_magic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let too_short = || {
        Error::header(
            path,
            "file size",
            bytes.len() as u64,
            HeaderFault::TooShort { needed: None },
        )
    };
    if bytes.len() < header::SIZEOF_IDENT && header::ELFMAG.starts_with(bytes) || bytes.len() < 4 {
        return Err(too_short());
    }
    if &bytes[..4] != header::ELFMAG {
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        return Err(Error::header(
            path,
            "e_ident[EI_MAG]",
            u64::from(magic),
            HeaderFault::Magic,
        ));
    }
    if bytes.len() < header::SIZEOF_IDENT {
        return Err(too_short());
    }
    Ok(())
}

/// e_ident after the magic: class, data encoding, version, OS ABI and its
/// version, padding.
fn check_ident(path: &Path, ident: &[u8]) -> Result<(), Error> {
    let bad = |field, index: usize, fault| {
        Err(Error::header(path, field, u64::from(ident[index]), fault))
    };
    if ident[header::EI_CLASS] != header::ELFCLASS64 {
        return bad("EI_CLASS", header::EI_CLASS, HeaderFault::Class);
    }
    if ident[header::EI_DATA] != header::ELFDATA2LSB {
        return bad("EI_DATA", header::EI_DATA, HeaderFault::Endianness);
    }
    if ident[header::EI_VERSION] != EV_CURRENT {
        let expected = u64::from(EV_CURRENT);
        return bad(
            "EI_VERSION",
            header::EI_VERSION,
            HeaderFault::Expected { expected },
        );
    }
    let osabi = ident[header::EI_OSABI];
    if osabi != ELFOSABI_SYSV && osabi != ELFOSABI_GNU {
        return bad("EI_OSABI", header::EI_OSABI, HeaderFault::OsAbi);
    }
    // EI_ABIVERSION: glibc accepts 0 for SYSV and up to its own highest
    // supported ABI version for GNU; minld implements none of the extensions
    // those versions announce beyond unique symbols and ifuncs (version 1).
    let abiversion = ident[header::EI_ABIVERSION];
    if abiversion > 1 || (osabi == ELFOSABI_SYSV && abiversion != 0) {
        let fault = HeaderFault::AbiVersion { osabi };
        return bad("EI_ABIVERSION", header::EI_ABIVERSION, fault);
    }
    let padding = header::EI_ABIVERSION + 1;
    if let Some(i) = ident[padding..].iter().position(|&b| b != 0) {
        let byte = padding + i;
        return bad("EI_PAD", byte, HeaderFault::Padding { byte });
    }
    Ok(())
}

/// The 64-byte ELF header, parsed by goblin.
fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header, Error> {
    if bytes.len() < header::header64::SIZEOF_EHDR {
        let needed = Some(header::header64::SIZEOF_EHDR as u64);
        let fault = HeaderFault::TooShort { needed };
        return Err(Error::header(path, "file size", bytes.len() as u64, fault));
    }
    goblin::elf::Elf::parse_header(bytes).map_err(|source| Error::Unparsable {
        path: path.to_path_buf(),
        what: "ELF header",
        source,
    })
}

/// e_version, e_machine, e_type, e_phentsize and e_phnum.
fn check_fixed_fields(path: &Path, ehdr: &Header) -> Result<(), Error> {
    let bad = |field, found: u64, fault| Err(Error::header(path, field, found, fault));
    if ehdr.e_version != u32::from(EV_CURRENT) {
        let fault = HeaderFault::Expected {
            expected: u64::from(EV_CURRENT),
        };
        return bad("e_version", u64::from(ehdr.e_version), fault);
    }
    if ehdr.e_machine != header::EM_X86_64 {
        return bad("e_machine", u64::from(ehdr.e_machine), HeaderFault::Machine);
    }
    match ehdr.e_type {
        header::ET_DYN => {}
        header::ET_EXEC => {
            return Err(Error::Executable {
                path: path.to_path_buf(),
                reason: ExecutableKind::EtExec,
            })
        }
        t => return bad("e_type", u64::from(t), HeaderFault::Type),
    }
    if usize::from(ehdr.e_phentsize) != PHDR_SIZE {
        let fault = HeaderFault::Expected {
            expected: PHDR_SIZE as u64,
        };
        return bad("e_phentsize", u64::from(ehdr.e_phentsize), fault);
    }
    let phnum = usize::from(ehdr.e_phnum);
    if phnum == 0 || phnum > MAX_PHNUM {
        let fault = HeaderFault::OutOfRange {
            min: 1,
            max: MAX_PHNUM as u64,
        };
        return bad("e_phnum", phnum as u64, fault);
    }
    Ok(())
}

/// The program headers at `offset` in `bytes`, parsed by goblin.
fn parse_program_headers(
    path: &Path,
    bytes: &[u8],
    offset: usize,
    ehdr: &Header,
) -> Result<Vec<ProgramHeader>, Error> {
    let ctx = Ctx::new(Container::Big, Endian::Little);
    ProgramHeader::parse(bytes, offset, usize::from(ehdr.e_phnum), ctx).map_err(|source| {
        Error::Unparsable {
            path: path.to_path_buf(),
            what: "program headers",
            source,
        }
    })
}

/// The program header table's size and its range in the file, checked
/// for overflow only (the file's size is not known yet: fstat comes
/// after, as in ld.so).
fn program_header_range(path: &Path, ehdr: &Header) -> Result<(usize, FileRange), Error> {
    let size = usize::from(ehdr.e_phnum) * PHDR_SIZE;
    let range = FileRange::new("e_phoff", ehdr.e_phoff, "program headers", size as u64);
    range.end(u64::MAX).map_err(|e| e.for_header(path))?;
    Ok((size, range))
}

/// The program headers lie (partly) past the end of the data.
fn headers_past_end(path: &Path, ehdr: &Header, size: usize) -> Error {
    let fault = HeaderFault::PastEnd { size: size as u64 };
    Error::header(path, "e_phoff", ehdr.e_phoff, fault)
}

/// The program header table: from the first read when it lies inside,
/// else with one pread, as ld.so does.
fn read_program_headers(
    sys: &Sys,
    fd: &Fd,
    path: &Path,
    first: &[u8],
    ehdr: &Header,
) -> Result<Vec<ProgramHeader>, Error> {
    // Only overflow is checked first; a short pread is the end of the file.
    let (size, range) = program_header_range(path, ehdr)?;
    if range.end(first.len() as u64).is_ok() {
        return parse_program_headers(path, first, ehdr.e_phoff as usize, ehdr);
    }
    if i64::try_from(ehdr.e_phoff).is_err() {
        // No file reaches that far (a file offset is an i64): pread64
        // would refuse the offset itself (EINVAL).
        return Err(headers_past_end(path, ehdr, size));
    }
    let mut buf = vec![0u8; size];
    let n = sys
        .pread(
            fd,
            &mut buf,
            ehdr.e_phoff,
            "program headers beyond the first read",
        )
        .map_err(|e| Error::io(path, "pread of program headers", e))?;
    if n != size {
        return Err(headers_past_end(path, ehdr, size));
    }
    parse_program_headers(path, &buf, 0, ehdr)
}

/// `rwx` for p_flags, for the debug log.
fn flags_str(f: u32) -> String {
    format!(
        "{}{}{}",
        if f & ph::PF_R != 0 { 'r' } else { '-' },
        if f & ph::PF_W != 0 { 'w' } else { '-' },
        if f & ph::PF_X != 0 { 'x' } else { '-' }
    )
}

/// The largest PT_LOAD alignment minld honours (glibc has none; the
/// largest huge page is 1 GiB).
const MAX_SEGMENT_ALIGN: u64 = 1 << 30;

/// The largest TLS block minld allocates per thread (glibc has no limit;
/// a block this size in every thread is already absurd).
const MAX_TLS_BLOCK: u64 = 1 << 30;

/// Checks the program headers against each other and against the file
/// size: the PT_LOADs, PT_DYNAMIC inside one, RELRO and TLS inside one,
/// the stack.
pub(crate) fn check_program_headers(
    path: &Path,
    phdrs: &[ProgramHeader],
    file_size: u64,
    exec_stack_ok: bool,
) -> Result<(), Error> {
    check_loads(path, phdrs, file_size)?;
    check_dynamic_inside(path, phdrs)?;
    check_placed_segments(path, phdrs)?;
    check_stack(path, phdrs, exec_stack_ok)?;
    log_inaccessible(path, phdrs);
    Ok(())
}

/// Every PT_LOAD on its own and against the one before it; at least one.
fn check_loads(path: &Path, phdrs: &[ProgramHeader], file_size: u64) -> Result<(), Error> {
    let mut prev_end: Option<(usize, u64)> = None;
    for (i, p) in phdrs.iter().enumerate() {
        if p.p_type != ph::PT_LOAD {
            continue;
        }
        let mem_end = check_load(path, i, p, file_size)?;
        if let Some((j, end)) = prev_end {
            if p.p_vaddr < end {
                let fault = SegmentFault::Overlaps { previous: j, end };
                return Err(Error::segments(
                    path,
                    SegmentName::Load(i),
                    "p_vaddr",
                    p.p_vaddr,
                    fault,
                ));
            }
        }
        crate::model::image::layout::check_load(path, i, p, prev_end)?;
        prev_end = Some((i, mem_end));
    }
    if prev_end.is_none() {
        return Err(Error::missing_segment(
            path,
            SegmentName::Loads,
            ph::PT_LOAD,
        ));
    }
    Ok(())
}

/// The fields of PT_LOAD `i`: file data inside the file, memory inside the
/// address space, alignment, congruence. Returns the end of its memory.
fn check_load(path: &Path, i: usize, p: &ProgramHeader, file_size: u64) -> Result<u64, Error> {
    let seg = SegmentName::Load(i);
    let bad = |field, found, fault| Err(Error::segments(path, seg, field, found, fault));
    FileRange::new("p_offset", p.p_offset, "p_filesz", p.p_filesz)
        .end(file_size)
        .map_err(|e| e.for_segment(path, seg))?;
    if p.p_filesz > p.p_memsz {
        let fault = SegmentFault::Larger {
            than: "p_memsz",
            limit: p.p_memsz,
        };
        return bad("p_filesz", p.p_filesz, fault);
    }
    let Some(mem_end) = p.p_vaddr.checked_add(p.p_memsz).filter(|&e| e < (1 << 47)) else {
        let fault = SegmentFault::BeyondAddressSpace {
            plus: "p_memsz",
            size: p.p_memsz,
        };
        return bad("p_vaddr", p.p_vaddr, fault);
    };
    if p.p_align > 1 && !p.p_align.is_power_of_two() {
        return bad("p_align", p.p_align, SegmentFault::NotPowerOfTwo);
    }
    if p.p_align > MAX_SEGMENT_ALIGN {
        let fault = SegmentFault::AboveLimit {
            limit: MAX_SEGMENT_ALIGN,
        };
        return bad("p_align", p.p_align, fault);
    }
    let page = crate::os::sys::page_size() as u64;
    if p.p_vaddr % page != p.p_offset % page {
        let fault = SegmentFault::NotCongruent {
            offset: p.p_offset,
            page,
        };
        return bad("p_vaddr", p.p_vaddr, fault);
    }
    Ok(mem_end)
}

/// Whether `p_vaddr..p_vaddr + size` of `p` lies inside a PT_LOAD with one
/// of the p_flags `flag`: inside its file data (`file_data`) or memory.
fn inside_load(phdrs: &[ProgramHeader], p: &ProgramHeader, file_data: bool, flag: u32) -> bool {
    let size = if file_data { p.p_filesz } else { p.p_memsz };
    phdrs.iter().any(|l| {
        l.p_type == ph::PT_LOAD
            && l.p_flags & flag != 0
            && p.p_vaddr >= l.p_vaddr
            && p.p_vaddr
                .checked_add(size)
                .is_some_and(|e| e <= l.p_vaddr + if file_data { l.p_filesz } else { l.p_memsz })
    })
}

/// PT_DYNAMIC exists and lies inside a PT_LOAD's file data.
fn check_dynamic_inside(path: &Path, phdrs: &[ProgramHeader]) -> Result<(), Error> {
    let Some(dynamic) = phdrs.iter().find(|p| p.p_type == ph::PT_DYNAMIC) else {
        return Err(Error::missing_segment(
            path,
            SegmentName::Dynamic,
            ph::PT_DYNAMIC,
        ));
    };
    // Any PT_LOAD will do, whatever its flags: its file data must hold
    // the whole of PT_DYNAMIC's memory.
    let inside = phdrs.iter().any(|l| {
        l.p_type == ph::PT_LOAD
            && dynamic.p_vaddr >= l.p_vaddr
            && dynamic
                .p_vaddr
                .checked_add(dynamic.p_memsz)
                .is_some_and(|e| e <= l.p_vaddr + l.p_filesz)
    });
    if !inside {
        let fault = SegmentFault::NotInside {
            size_field: "p_memsz",
            size: dynamic.p_memsz,
            within: "file data",
        };
        return Err(Error::segments(
            path,
            SegmentName::Dynamic,
            "p_vaddr",
            dynamic.p_vaddr,
            fault,
        ));
    }
    Ok(())
}

/// Segments minld acts on besides PT_LOAD must lie inside one: RELRO is
/// made read-only with mprotect (outside a writable segment that would
/// change the protections of other memory, or take exec rights from
/// code), TLS initialisation images are copied from the file's data.
fn check_placed_segments(path: &Path, phdrs: &[ProgramHeader]) -> Result<(), Error> {
    for p in phdrs {
        match p.p_type {
            ph::PT_GNU_RELRO if !inside_load(phdrs, p, false, ph::PF_W) => {
                let fault = SegmentFault::NotInside {
                    size_field: "p_memsz",
                    size: p.p_memsz,
                    within: "writable",
                };
                return Err(Error::segments(
                    path,
                    SegmentName::Relro,
                    "p_vaddr",
                    p.p_vaddr,
                    fault,
                ));
            }
            ph::PT_TLS => check_tls(path, phdrs, p)?,
            _ => {}
        }
    }
    Ok(())
}

/// PT_TLS: sizes, alignment, limit, and its image inside readable file data.
fn check_tls(path: &Path, phdrs: &[ProgramHeader], p: &ProgramHeader) -> Result<(), Error> {
    let bad =
        |field, found, fault| Err(Error::segments(path, SegmentName::Tls, field, found, fault));
    if p.p_filesz > p.p_memsz {
        let fault = SegmentFault::Larger {
            than: "p_memsz",
            limit: p.p_memsz,
        };
        return bad("p_filesz", p.p_filesz, fault);
    }
    if p.p_align > 1 && !p.p_align.is_power_of_two() {
        return bad("p_align", p.p_align, SegmentFault::NotPowerOfTwo);
    }
    if p.p_memsz > MAX_TLS_BLOCK {
        let fault = SegmentFault::AboveLimit {
            limit: MAX_TLS_BLOCK,
        };
        return bad("p_memsz", p.p_memsz, fault);
    }
    if !inside_load(phdrs, p, true, ph::PF_R) {
        let fault = SegmentFault::NotInside {
            size_field: "p_filesz",
            size: p.p_filesz,
            within: "readable",
        };
        return bad("p_vaddr", p.p_vaddr, fault);
    }
    Ok(())
}

/// PT_GNU_STACK with PF_X is refused unless allowed (policy runs).
fn check_stack(path: &Path, phdrs: &[ProgramHeader], exec_stack_ok: bool) -> Result<(), Error> {
    match phdrs.iter().find(|p| p.p_type == ph::PT_GNU_STACK) {
        Some(stack) if stack.p_flags & ph::PF_X != 0 && !exec_stack_ok => {
            Err(Error::ExecutableStack {
                path: path.to_path_buf(),
                flags: stack.p_flags,
            })
        }
        _ => Ok(()),
    }
}

/// A PT_LOAD without access is legal; it is logged.
fn log_inaccessible(path: &Path, phdrs: &[ProgramHeader]) {
    for (i, p) in phdrs.iter().enumerate() {
        if p.p_type == ph::PT_LOAD && p.p_flags & (ph::PF_R | ph::PF_W | ph::PF_X) == 0 {
            log::debug!(
                "{}: PT_LOAD segment {i} has no access ({})",
                path.display(),
                flags_str(p.p_flags)
            );
        }
    }
}

#[cfg(test)]
mod tests;
