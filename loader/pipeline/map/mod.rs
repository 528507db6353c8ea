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

use std::path::Path;

use goblin::elf::program_header::{self as ph, ProgramHeader};

use crate::base::error::{Error, ScriptFault};
use crate::model::image::{name_of, LoadBias, MappedImage, Protection, Segment, Source};
use crate::os::sys::{page_size, Fd, Sys};
use crate::pipeline::search::{self, Found};
use crate::pipeline::validate::{self, Headers};

mod copy;
mod mapped;
pub(crate) use copy::copy_segments;
pub(crate) use mapped::{copy_and_read_dynamic, map_and_read_dynamic, Mapped, Parts};

/// A reservation being built; unmapped on drop unless handed over.
struct Reservation {
    /// Its start.
    start: usize,
    /// Its length; 0 once handed over.
    len: usize,
    /// The system-call layer, for the munmap.
    sys: Sys,
    /// The file name, for the trace.
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
    /// The index of its program header.
    index: usize,
    /// p_vaddr rounded down to a page.
    mapstart: u64,
    /// The end of its file data rounded up to a page.
    mapend: u64,
    /// The end of its file data: p_vaddr + p_filesz.
    dataend: u64,
    /// The end of its memory: p_vaddr + p_memsz.
    allocend: u64,
    /// p_offset rounded down to a page.
    mapoff: u64,
    /// Its protections.
    prot: Protection,
}

/// `x` rounded down to a multiple of `a`, a power of two.
fn align_down(x: u64, a: u64) -> u64 {
    x & !(a - 1)
}
/// `x` rounded up to a multiple of `a`, a power of two.
fn align_up(x: u64, a: u64) -> u64 {
    (x + a - 1) & !(a - 1)
}

/// What a segment holds, for the trace's notes.
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

/// What mapping a validated file takes: its PT_LOADs rounded to pages, the
/// length of the whole image and the alignment of its start.
struct Plan<'h> {
    /// The headers (validated: at least one PT_LOAD, ascending).
    headers: &'h Headers,
    /// The file name, for notes.
    name: String,
    /// The PT_LOADs, in order.
    cmds: Vec<LoadCmd>,
    /// From the first page of the first segment to the end of the last's memory.
    maplength: usize,
    /// The largest p_align, at least a page.
    mapalign: u64,
    /// The page size.
    page: u64,
}

impl<'h> Plan<'h> {
    /// The plan for `headers`.
    fn new(headers: &'h Headers) -> Self {
        let page = page_size() as u64;
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
        let (first, last) = (&cmds[0], &cmds[cmds.len() - 1]);
        let maplength = (last.allocend - first.mapstart) as usize;
        let mapalign = headers
            .loads()
            .map(|p| p.p_align)
            .max()
            .unwrap_or(page)
            .max(page);
        Plan {
            headers,
            name: name_of(&headers.path),
            cmds,
            maplength,
            mapalign,
            page,
        }
    }

    /// The first PT_LOAD.
    fn first(&self) -> &LoadCmd {
        &self.cmds[0]
    }

    /// The last PT_LOAD.
    fn last(&self) -> &LoadCmd {
        &self.cmds[self.cmds.len() - 1]
    }

    /// The trace's note for mapping a segment.
    fn note(&self, c: &LoadCmd) -> String {
        format!(
            "{} segment {} {}: {}, file {:#x}..{:#x}",
            self.name,
            c.index,
            c.prot,
            describe(c, self.headers.find(ph::PT_GNU_RELRO)),
            c.mapoff,
            c.mapoff + (c.mapend - c.mapstart)
        )
    }
}

/// The flags of every file mapping.
const FILE_MAP: i32 = libc::MAP_PRIVATE | libc::MAP_DENYWRITE;

/// Maps the segments of a validated file, as glibc's `_dl_map_segments`:
/// reserve the whole image with its first segment, make the holes between
/// segments inaccessible, map the other segments over the reservation,
/// clear each one's .bss. On error everything mapped so far is unmapped.
pub(crate) fn map_segments(sys: &Sys, fd: &Fd, headers: &Headers) -> Result<MappedImage, Error> {
    let plan = Plan::new(headers);
    let mut res = Reservation {
        start: 0,
        len: 0,
        sys: *sys,
        name: plan.name.clone(),
    };
    let start = if plan.mapalign <= plan.page {
        reserve(sys, fd, &plan, &mut res)?
    } else {
        reserve_aligned(sys, fd, &plan, &mut res)?
    };
    let bias = LoadBias(start.wrapping_sub(plan.first().mapstart as usize));
    protect_holes(sys, &plan, bias)?;
    map_the_rest(sys, fd, &plan, bias)?;
    let source = if fd.owned() {
        Source::File(headers.path.clone())
    } else {
        Source::Fd(fd.raw)
    };
    Ok(res.into_image(headers, bias, source))
}

/// The reservation: the first segment mapped with the length of the whole
/// image, wherever the kernel puts it.
fn reserve(sys: &Sys, fd: &Fd, plan: &Plan<'_>, res: &mut Reservation) -> Result<usize, Error> {
    let first = plan.first();
    let note = || {
        format!(
            "{}; reserves the whole image, {} bytes",
            plan.note(first),
            plan.maplength
        )
    };
    // SAFETY: no MAP_FIXED: the kernel chooses a free range, which
    // nothing else refers to.
    let start = unsafe {
        sys.mmap(
            0,
            plan.maplength,
            first.prot.0,
            FILE_MAP,
            fd.raw,
            first.mapoff,
            note,
        )
    }
    .map_err(|e| {
        Error::io(
            &plan.headers.path,
            "mmap of the first segment (reservation)",
            e,
        )
    })?;
    res.start = start;
    res.len = align_up(plan.maplength as u64, plan.page) as usize;
    Ok(start)
}

/// p_align above the page size: reserve more than needed, put the image
/// at an aligned address inside, give back both ends.
fn reserve_aligned(
    sys: &Sys,
    fd: &Fd,
    plan: &Plan<'_>,
    res: &mut Reservation,
) -> Result<usize, Error> {
    let (path, first, maplength) = (&plan.headers.path, plan.first(), plan.maplength);
    let (align, mapalign) = (plan.mapalign as usize, plan.mapalign);
    let maplen = if maplength >= align {
        maplength + align
    } else {
        2 * align
    };
    let note = || {
        format!(
            "{}: reservation with slack for p_align {mapalign:#x}",
            plan.name
        )
    };
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    // SAFETY: no MAP_FIXED: the kernel chooses a free range.
    let raw = unsafe { sys.mmap(0, maplen, libc::PROT_NONE, anon, -1, 0, note) }
        .map_err(|e| Error::io(path, "mmap of the aligned reservation", e))?;
    res.start = raw;
    res.len = maplen;
    let aligned = (raw + align - 1) & !(align - 1);
    let note = || {
        format!(
            "{}; the image at a {mapalign:#x}-aligned address",
            plan.note(first)
        )
    };
    let fixed = FILE_MAP | libc::MAP_FIXED;
    // SAFETY: aligned..aligned+maplength lies inside the reservation just
    // made, which nothing else refers to.
    unsafe {
        sys.mmap(
            aligned,
            maplength,
            first.prot.0,
            fixed,
            fd.raw,
            first.mapoff,
            note,
        )
    }
    .map_err(|e| Error::io(path, "mmap of the first segment at the aligned address", e))?;
    let end = align_up((aligned + maplength) as u64, plan.page) as usize;
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
    Ok(aligned)
}

/// Holes between segments: no access, with one mprotect over the whole
/// stretch from the end of the first to the start of the last; the
/// segments in between are mapped over it.
fn protect_holes(sys: &Sys, plan: &Plan<'_>, bias: LoadBias) -> Result<(), Error> {
    let (first, last) = (plan.first(), plan.last());
    let has_holes = plan.cmds.windows(2).any(|w| w[1].mapstart != w[0].mapend);
    if !has_holes || last.mapstart <= first.mapend {
        return Ok(());
    }
    let len = (last.mapstart - first.mapend) as usize;
    let note = || format!("{}: holes between segments, no access", plan.name);
    // SAFETY: the range lies inside our reservation and nothing runs in it.
    unsafe { sys.mprotect(bias.at(first.mapend), len, libc::PROT_NONE, note) }.map_err(|e| {
        Error::io(
            &plan.headers.path,
            "mprotect of the holes between segments",
            e,
        )
    })
}

/// Every segment after the first mapped over the reservation, and every
/// segment's .bss cleared.
fn map_the_rest(sys: &Sys, fd: &Fd, plan: &Plan<'_>, bias: LoadBias) -> Result<(), Error> {
    let path = &plan.headers.path;
    for (i, c) in plan.cmds.iter().enumerate() {
        if i > 0 && c.mapend > c.mapstart {
            let len = (c.mapend - c.mapstart) as usize;
            let fixed = FILE_MAP | libc::MAP_FIXED;
            // SAFETY: the range lies inside our reservation, which nothing
            // else refers to yet.
            unsafe {
                sys.mmap(
                    bias.at(c.mapstart),
                    len,
                    c.prot.0,
                    fixed,
                    fd.raw,
                    c.mapoff,
                    || plan.note(c),
                )
            }
            .map_err(|e| Error::io_segment(path, "mmap of segment", c.index, e))?;
        }
        zero_fill(sys, path, &plan.name, bias, c, plan.page)?;
    }
    Ok(())
}

impl Reservation {
    /// Hands the reservation over to the image, which unmaps it on drop.
    fn into_image(mut self, headers: &Headers, bias: LoadBias, source: Source) -> MappedImage {
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
        let (start, len) = (self.start, self.len);
        self.len = 0; // handed over: no unmapping on drop
        MappedImage {
            path: headers.path.clone(),
            start,
            len,
            bias,
            segments,
            phdrs: headers.phdrs.clone(),
            sys: self.sys,
            source,
        }
    }
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
        .map_err(|e| Error::io_segment(path, "mmap of .bss of segment", c.index, e))?;
    }
    Ok(())
}

/// Maps a file without linking it: validation and mapping only.
pub(crate) fn map_only(trace: bool, path: &Path) -> Result<MappedImage, Error> {
    let sys = Sys { trace };
    let opened = match search::find(&sys, &path.to_string_lossy(), None, &[])? {
        Found::Elf(o) => o,
        Found::Script { path, .. } => {
            return Err(Error::BadScript {
                path,
                fault: ScriptFault::NotMappable,
            })
        }
    };
    let headers = validate::read_headers(
        &sys,
        &opened.fd,
        &opened.path,
        &opened.first,
        opened.stat,
        false,
    )?;
    map_segments(&sys, &opened.fd, &headers)
}
