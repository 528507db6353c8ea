//! Stage 3 of a load: map the PT_LOAD segments into the process, the way
//! glibc's `elf/dl-map-segments.h` does, system call for system call.
//!
//! # Load bias, once
//!
//! A shared object is linked as if it started at address 0: its program
//! headers, symbols and relocations speak of *virtual addresses* in that
//! frame. The kernel picks where the object really goes; the difference, the
//! *load bias*, is added to every virtual address to get a real one. libz's
//! code segment has p_vaddr 0x3000 and p_offset 0x3000. If the first mmap
//! returns 0x7fb6d8af6000, the bias is 0x7fb6d8af6000 (its first segment has
//! p_vaddr 0), and the code lands at 0x7fb6d8af9000, mapped from file offset
//! 0x3000: `mmap(0x7fb6d8af9000, 77824, PROT_READ|PROT_EXEC, MAP_PRIVATE|
//! MAP_FIXED|MAP_DENYWRITE, 3, 0x3000)`.
//!
//! The first PT_LOAD is mapped with the length of the whole image, so the
//! kernel reserves the span in one go; every later segment replaces its part
//! of that reservation with MAP_FIXED, and the gaps between segments are made
//! inaccessible. Memory past a segment's file data (.bss) is zero: the rest of
//! the last file page is cleared by hand and whole pages beyond it are
//! anonymous memory.

use std::fmt;
use std::path::{Path, PathBuf};

use goblin::elf::program_header::{self as ph, ProgramHeader};

use crate::base::error::Error;
use crate::os::sys::{page_size, Fd, Sys};
use crate::pipeline::validate::Headers;

/// The difference between where an object is and where it was linked to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadBias(pub usize);

impl LoadBias {
    /// The real address of a virtual address of the object.
    #[inline]
    pub fn at(self, vaddr: u64) -> usize {
        self.0.wrapping_add(vaddr as usize)
    }
}

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
    fn from_flags(p_flags: u32) -> Self {
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
    pub(crate) path: PathBuf,
    /// Real address and length of the whole reservation.
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) bias: LoadBias,
    pub(crate) segments: Vec<Segment>,
    pub(crate) phdrs: Vec<ProgramHeader>,
    pub(crate) sys: Sys,
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

/// A reservation being built; unmapped on drop unless handed over.
struct Reservation {
    start: usize,
    len: usize,
    sys: Sys,
    name: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: the range was mapped by this load and nothing refers to
            // it yet: the load failed before the image was handed out.
            let _ = unsafe {
                self.sys.munmap(self.start, self.len, || {
                    format!("{}: load failed, release the reservation", self.name)
                })
            };
        }
    }
}

/// glibc's `struct loadcmd`: a PT_LOAD rounded to pages.
struct LoadCmd {
    index: usize,
    mapstart: u64,
    mapend: u64,
    dataend: u64,
    allocend: u64,
    mapoff: u64,
    prot: Protection,
}

fn align_down(x: u64, a: u64) -> u64 {
    x & !(a - 1)
}
fn align_up(x: u64, a: u64) -> u64 {
    (x + a - 1) & !(a - 1)
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn describe(c: &LoadCmd, relro: Option<&ProgramHeader>) -> &'static str {
    let p = c.prot;
    if p.exec() {
        "code"
    } else if p.write() {
        match relro {
            Some(r) if r.p_vaddr >= c.mapstart && r.p_vaddr < c.allocend => {
                "RELRO (.data.rel.ro, .got) then .data"
            }
            _ => ".data",
        }
    } else if c.mapoff == 0 {
        "ELF headers, dynamic symbols and relocations"
    } else {
        "read-only data"
    }
}

/// Maps the segments of a validated file. On error everything mapped so far
/// is unmapped again.
pub(crate) fn map_segments(sys: &Sys, fd: &Fd, headers: &Headers) -> Result<MappedImage, Error> {
    let page = page_size() as u64;
    let path = &headers.path;
    let name = name_of(path);
    let relro = headers.find(ph::PT_GNU_RELRO);
    let cmds: Vec<LoadCmd> = headers
        .phdrs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.p_type == ph::PT_LOAD)
        .map(|(index, p)| LoadCmd {
            index,
            mapstart: align_down(p.p_vaddr, page),
            mapend: align_up(p.p_vaddr + p.p_filesz, page),
            dataend: p.p_vaddr + p.p_filesz,
            allocend: p.p_vaddr + p.p_memsz,
            mapoff: align_down(p.p_offset, page),
            prot: Protection::from_flags(p.p_flags),
        })
        .collect();
    let first = &cmds[0];
    let last = &cmds[cmds.len() - 1];
    let maplength = (last.allocend - first.mapstart) as usize;
    let mapalign = headers
        .loads()
        .map(|p| p.p_align)
        .max()
        .unwrap_or(page)
        .max(page);
    let seg_note = |c: &LoadCmd| {
        format!(
            "{name} segment {} {}: {}, file {:#x}..{:#x}",
            c.index,
            c.prot,
            describe(c, relro),
            c.mapoff,
            c.mapoff + (c.mapend - c.mapstart)
        )
    };

    // The reservation: the first segment mapped with the whole length.
    let mut res = Reservation {
        start: 0,
        len: 0,
        sys: *sys,
        name: name.clone(),
    };
    let flags = libc::MAP_PRIVATE | libc::MAP_DENYWRITE;
    let start = if mapalign <= page {
        let note = || {
            format!(
                "{}; reserves the whole image, {maplength} bytes",
                seg_note(first)
            )
        };
        // SAFETY: no MAP_FIXED: the kernel chooses a free range.
        let start = unsafe {
            sys.mmap(
                0,
                maplength,
                first.prot.0,
                flags,
                fd.raw,
                first.mapoff,
                note,
            )
        }
        .map_err(|e| Error::io(path, "mmap of the first segment (reservation)", e))?;
        res.start = start;
        res.len = align_up(maplength as u64, page) as usize;
        start
    } else {
        // p_align above the page size: reserve more than needed, put the
        // image at an aligned address inside, give back both ends.
        let align = mapalign as usize;
        let maplen = if maplength >= align {
            maplength + align
        } else {
            2 * align
        };
        let note = || format!("{name}: reservation with slack for p_align {mapalign:#x}");
        // SAFETY: no MAP_FIXED: the kernel chooses a free range.
        let raw = unsafe {
            sys.mmap(
                0,
                maplen,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
                note,
            )
        }
        .map_err(|e| Error::io(path, "mmap of the aligned reservation", e))?;
        res.start = raw;
        res.len = maplen;
        let aligned = (raw + align - 1) & !(align - 1);
        let note = || {
            format!(
                "{}; the image at a {mapalign:#x}-aligned address",
                seg_note(first)
            )
        };
        // SAFETY: aligned..aligned+maplength lies inside the reservation just made.
        unsafe {
            sys.mmap(
                aligned,
                maplength,
                first.prot.0,
                flags | libc::MAP_FIXED,
                fd.raw,
                first.mapoff,
                note,
            )
        }
        .map_err(|e| Error::io(path, "mmap of the first segment at the aligned address", e))?;
        let end = align_up((aligned + maplength) as u64, page) as usize;
        if aligned > raw {
            // SAFETY: the slack before the image belongs to the reservation.
            unsafe { sys.munmap(raw, aligned - raw, "slack before the aligned image") }
                .map_err(|e| Error::io(path, "munmap of alignment slack", e))?;
        }
        if raw + maplen > end {
            // SAFETY: the slack after the image belongs to the reservation.
            unsafe { sys.munmap(end, raw + maplen - end, "slack after the aligned image") }
                .map_err(|e| Error::io(path, "munmap of alignment slack", e))?;
        }
        res.start = aligned;
        res.len = end - aligned;
        aligned
    };
    let bias = LoadBias(start.wrapping_sub(first.mapstart as usize));

    // Holes between segments: no access, with one mprotect over the whole
    // stretch from the end of the first to the start of the last; the
    // segments in between are mapped over it.
    let has_holes = cmds.windows(2).any(|w| w[1].mapstart != w[0].mapend);
    if has_holes && last.mapstart > first.mapend {
        // SAFETY: the range lies inside our reservation and nothing runs in it.
        unsafe {
            sys.mprotect(
                bias.at(first.mapend),
                (last.mapstart - first.mapend) as usize,
                libc::PROT_NONE,
                || format!("{name}: holes between segments, no access"),
            )
        }
        .map_err(|e| Error::io(path, "mprotect of the holes between segments", e))?;
    }

    for (i, c) in cmds.iter().enumerate() {
        if i > 0 && c.mapend > c.mapstart {
            // SAFETY: the range lies inside our reservation.
            unsafe {
                sys.mmap(
                    bias.at(c.mapstart),
                    (c.mapend - c.mapstart) as usize,
                    c.prot.0,
                    flags | libc::MAP_FIXED,
                    fd.raw,
                    c.mapoff,
                    || seg_note(c),
                )
            }
            .map_err(|e| Error::io(path, format!("mmap of segment {}", c.index), e))?;
        }
        zero_fill(sys, path, &name, bias, c, page)?;
    }

    let segments = headers
        .loads()
        .map(|p| Segment {
            vaddr: p.p_vaddr,
            mem_size: p.p_memsz,
            file_offset: p.p_offset,
            file_size: p.p_filesz,
            addr: bias.at(p.p_vaddr),
            prot: Protection::from_flags(p.p_flags),
        })
        .collect();
    let (start, len) = (res.start, res.len);
    res.len = 0; // handed over to the image
    Ok(MappedImage {
        path: path.clone(),
        start,
        len,
        bias,
        segments,
        phdrs: headers.phdrs.clone(),
        sys: *sys,
    })
}

/// .bss: zero the rest of the last file page, map anonymous pages beyond.
fn zero_fill(
    sys: &Sys,
    path: &Path,
    name: &str,
    bias: LoadBias,
    c: &LoadCmd,
    page: u64,
) -> Result<(), Error> {
    if c.allocend <= c.dataend {
        return Ok(());
    }
    let zero = c.dataend;
    let zeroend = c.allocend;
    let zeropage = align_up(zero, page).min(zeroend);
    if zeropage > zero {
        let page_start = bias.at(align_down(zero, page));
        let writable = c.prot.write();
        if !writable {
            // SAFETY: the page lies inside this object's segment.
            unsafe {
                sys.mprotect(
                    page_start,
                    page as usize,
                    c.prot.0 | libc::PROT_WRITE,
                    "make the page writable to clear .bss",
                )
            }
            .map_err(|e| Error::io(path, "mprotect to clear .bss", e))?;
        }
        // SAFETY: zero..zeropage lies inside the last file page of this
        // segment, mapped writable (private copy) just above.
        unsafe { std::ptr::write_bytes(bias.at(zero) as *mut u8, 0, (zeropage - zero) as usize) };
        if !writable {
            // SAFETY: as above; restores the segment's own protections.
            unsafe {
                sys.mprotect(
                    page_start,
                    page as usize,
                    c.prot.0,
                    "back to the segment's protections",
                )
            }
            .map_err(|e| Error::io(path, "mprotect after clearing .bss", e))?;
        }
    }
    if zeroend > zeropage {
        let note = || {
            format!(
            "{name} segment {} {}: .bss, {} zero bytes past the file data ({} cleared in place)",
            c.index,
            c.prot,
            zeroend - zero,
            zeropage - zero
        )
        };
        // SAFETY: the range lies inside our reservation.
        unsafe {
            sys.mmap(
                bias.at(zeropage),
                (zeroend - zeropage) as usize,
                c.prot.0,
                libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_ANONYMOUS,
                -1,
                0,
                note,
            )
        }
        .map_err(|e| Error::io(path, format!("mmap of .bss of segment {}", c.index), e))?;
    }
    Ok(())
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
        crate::model::layout::writable_at(&self.segments, addr, len)
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
            return Err(Error::segments(
                &self.path,
                format!(
                    "PT_GNU_RELRO at p_vaddr {:#x} (p_memsz {:#x}) is not inside a writable segment",
                    relro.p_vaddr, relro.p_memsz
                ),
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

    /// Sets the protections of every segment to `prot | extra` (for text
    /// relocations), or back to their own when `extra` is 0.
    pub(crate) fn reprotect_for_textrel(&self, extra: i32) -> Result<(), Error> {
        let page = page_size();
        for s in self.segments.iter().filter(|s| !s.prot.write()) {
            let start = s.addr & !(page - 1);
            let end = (s.addr + s.mem_size as usize + page - 1) & !(page - 1);
            let note = || {
                if extra != 0 {
                    format!(
                        "{}: text relocations, segment writable while relocating",
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
            // SAFETY: the range is one of this object's segments; no code of
            // the object runs during relocation.
            unsafe {
                self.sys
                    .mprotect(start, end - start, s.prot.0 | extra, note)
            }
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
