//! A mapped object in memory: the reservation, its segments with their
//! real addresses and protections, and the load bias between the addresses
//! the object was linked at and those it got. Dropping the image unmaps it.

pub(crate) mod layout;
pub(crate) mod release;
pub(crate) mod source;

use std::fmt;
use std::path::{Path, PathBuf};

use goblin::elf::program_header::{self as ph, ProgramHeader};

use crate::base::error::{Error, SegmentFault, SegmentName};
use crate::os::sys::{page_size, Sys};

pub use crate::base::mem::LoadBias;
pub use source::Source;

/// Memory protections of a segment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Protection(pub(crate) i32);

impl Protection {
    /// Readable.
    pub fn read(self) -> bool {
        self.0 & libc::PROT_READ != 0
    }
    /// Writable.
    pub fn write(self) -> bool {
        self.0 & libc::PROT_WRITE != 0
    }
    /// Executable.
    pub fn exec(self) -> bool {
        self.0 & libc::PROT_EXEC != 0
    }
    /// The protections PT_LOAD p_flags ask for.
    pub(crate) fn from_flags(p_flags: u32) -> Self {
        let mut p = 0;
        if p_flags & ph::PF_R != 0 {
            p |= libc::PROT_READ;
        }
        if p_flags & ph::PF_W != 0 {
            p |= libc::PROT_WRITE;
        }
        if p_flags & ph::PF_X != 0 {
            p |= libc::PROT_EXEC;
        }
        Protection(p)
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            if self.read() { 'r' } else { '-' },
            if self.write() { 'w' } else { '-' },
            if self.exec() { 'x' } else { '-' }
        )
    }
}

impl fmt::Debug for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One PT_LOAD segment as mapped.
#[derive(Debug, Clone)]
pub struct Segment {
    /// p_vaddr: where the segment starts in the object's own frame.
    pub vaddr: u64,
    /// p_memsz: its size in memory.
    pub mem_size: u64,
    /// p_offset: where its data starts in the file.
    pub file_offset: u64,
    /// p_filesz: how much of it comes from the file (the rest is .bss).
    pub file_size: u64,
    /// The real address of p_vaddr in this process.
    pub addr: usize,
    /// Its protections.
    pub prot: Protection,
}

/// A mapped image: the reservation and its segments. Dropping it unmaps
/// everything with one munmap, as dlclose does.
pub(crate) struct MappedImage {
    /// The file it was mapped from.
    pub(crate) path: PathBuf,
    /// Real address of the whole reservation.
    pub(crate) start: usize,
    /// Length of the whole reservation.
    pub(crate) len: usize,
    /// The load bias.
    pub(crate) bias: LoadBias,
    /// The PT_LOAD segments, in order.
    pub(crate) segments: Vec<Segment>,
    /// Every program header of the file.
    pub(crate) phdrs: Vec<ProgramHeader>,
    /// The system-call layer it was mapped with (for the munmap).
    pub(crate) sys: Sys,
    /// Where its pages came from: a file's mapping or a copy.
    pub(crate) source: Source,
}

impl fmt::Debug for MappedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedImage")
            .field("path", &self.path)
            .field("start", &format_args!("{:#x}", self.start))
            .field("len", &self.len)
            .finish()
    }
}

impl MappedImage {
    /// Whether a real address range lies inside one PT_LOAD segment's memory.
    pub(crate) fn contains(&self, addr: usize, len: usize) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        self.segments
            .iter()
            .any(|s| addr >= s.addr && end <= s.addr + s.mem_size as usize)
    }

    /// Whether a real address range lies inside one readable segment (a
    /// segment without PF_R may really be unreadable: with protection keys,
    /// Linux makes PROT_EXEC-only memory execute-only).
    pub(crate) fn readable(&self, addr: usize, len: usize) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        self.segments
            .iter()
            .any(|s| s.prot.read() && addr >= s.addr && end <= s.addr + s.mem_size as usize)
    }

    /// Whether a real address range lies inside a writable segment or the
    /// RELRO region (which is writable until relocation ends), in pages
    /// that no mapping of a segment without write permission covers.
    pub(crate) fn writable(&self, addr: usize, len: usize) -> bool {
        crate::model::image::layout::writable_at(&self.segments, addr, len)
    }

    /// The program header of a type, if the object has one.
    pub(crate) fn phdr(&self, p_type: u32) -> Option<&ProgramHeader> {
        self.phdrs.iter().find(|p| p.p_type == p_type)
    }

    /// The object's name for messages: the file name.
    pub(crate) fn name(&self) -> String {
        name_of(&self.path)
    }

    /// Makes PT_GNU_RELRO read-only: both ends rounded down to a page, as
    /// glibc's `_dl_protect_relro` does. Called once relocation is done.
    pub(crate) fn protect_relro(&self) -> Result<(), Error> {
        let Some(relro) = self.phdr(ph::PT_GNU_RELRO) else {
            return Ok(());
        };
        if !self.writable(self.bias.at(relro.p_vaddr), relro.p_memsz as usize) {
            let fault = SegmentFault::NotInside {
                size_field: "p_memsz",
                size: relro.p_memsz,
                within: "writable",
            };
            let found = relro.p_vaddr;
            return Err(Error::segments(
                &self.path,
                SegmentName::Relro,
                "p_vaddr",
                found,
                fault,
            ));
        }
        let page = page_size();
        let start = self.bias.at(relro.p_vaddr) & !(page - 1);
        let end = self.bias.at(relro.p_vaddr + relro.p_memsz) & !(page - 1);
        if end > start {
            let note = || {
                format!(
                    "{}: RELRO {:#x}..{:#x} read-only now that relocation is done",
                    self.name(),
                    relro.p_vaddr,
                    relro.p_vaddr + relro.p_memsz
                )
            };
            // SAFETY: the range lies inside one of this object's writable
            // segments (checked above; rounding down only moves the start
            // back into the same page of it) and relocation, the only
            // writer of RELRO, has finished.
            unsafe { self.sys.mprotect(start, end - start, libc::PROT_READ, note) }
                .map_err(|e| Error::io(&self.path, "mprotect of RELRO", e))?;
        }
        Ok(())
    }

    /// The protections a segment has while text relocations are applied:
    /// writable, and never writable and executable at once (W^X, as
    /// bionic: PROT_EXEC is taken away whenever PROT_WRITE is added).
    pub(crate) fn textrel_protection(prot: Protection) -> i32 {
        (prot.0 | libc::PROT_WRITE) & !libc::PROT_EXEC
    }

    /// For text relocations: with `extra` PROT_WRITE, makes every segment
    /// without write permission read-write, without exec (see
    /// [`MappedImage::textrel_protection`]); with `extra` 0, gives them back
    /// their own protections. No code of the object may run in between: its
    /// ifunc resolvers run once the protections are back.
    pub(crate) fn reprotect_for_textrel(&self, extra: i32) -> Result<(), Error> {
        let page = page_size();
        for s in self.segments.iter().filter(|s| !s.prot.write()) {
            let start = s.addr & !(page - 1);
            let end = (s.addr + s.mem_size as usize + page - 1) & !(page - 1);
            let writing = extra & libc::PROT_WRITE != 0;
            let prot = if writing {
                Self::textrel_protection(s.prot)
            } else {
                s.prot.0
            };
            let note = || {
                if writing {
                    format!(
                        "{}: text relocations, segment read-write (not executable) while relocating",
                        self.name()
                    )
                } else {
                    format!(
                        "{}: text relocations done, segment back to {}",
                        self.name(),
                        s.prot
                    )
                }
            };
            // SAFETY: the range is one of this object's segments (rounded
            // out to its pages, which no other object maps: `layout` refuses
            // segments that share a page); no code of the object runs while
            // its code is not executable (relocation runs none, and ifunc
            // resolvers run after the protections are restored).
            unsafe { self.sys.mprotect(start, end - start, prot, note) }
                .map_err(|e| Error::io(&self.path, "mprotect for text relocations", e))?;
        }
        Ok(())
    }
}

impl Drop for MappedImage {
    fn drop(&mut self) {
        let note = || format!("{}: unload, the whole image", self.name());
        // SAFETY: the image is being dropped: the owner guarantees no code or
        // data of it is in use any more (fini functions have run).
        let _ = unsafe { self.sys.munmap(self.start, self.len, note) };
    }
}

/// The file name of a path, for messages.
pub(crate) fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
