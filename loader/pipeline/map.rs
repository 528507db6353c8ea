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

use crate::base::error::Error;
use crate::base::mem::Memory;
use crate::elf::dynamic::{self, PtrStyle};
use crate::model::image::{name_of, LoadBias, MappedImage, Protection, Segment};
use crate::os::sys::{page_size, Fd, Sys};
use crate::pipeline::search::{self, Found};
use crate::pipeline::validate::{self, Headers};

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

/// Maps a validated file and reads its dynamic section: the image, the
/// view of its readable segments the tables are read through, the tables.
pub(crate) fn map_and_read_dynamic(
    sys: &Sys,
    fd: &crate::os::sys::Fd,
    headers: &Headers,
    path: &Path,
) -> Result<(MappedImage, Memory, dynamic::Dynamic), Error> {
    let image = map_segments(sys, fd, headers)?;
    // The tables are read only from readable segments.
    let mem = Memory::new(
        image
            .segments
            .iter()
            .filter(|s| s.prot.read())
            .map(|s| (s.addr, s.addr + s.mem_size as usize))
            .collect(),
    );
    let dyn_ph = image
        .phdr(ph::PT_DYNAMIC)
        .ok_or_else(|| Error::segments(path, "no PT_DYNAMIC segment"))?;
    let d = dynamic::parse(
        path,
        &mem,
        image.bias.0,
        image.bias.at(dyn_ph.p_vaddr),
        PtrStyle::Relative,
    )?;
    Ok((image, mem, d))
}

/// Maps a file without linking it: validation and mapping only.
pub(crate) fn map_only(trace: bool, path: &Path) -> Result<MappedImage, Error> {
    let sys = Sys { trace };
    let opened = match search::find(&sys, &path.to_string_lossy(), None, &[])? {
        Found::Elf(o) => o,
        Found::Script { path, .. } => {
            return Err(Error::BadScript {
                path,
                what: "a linker script cannot be mapped; open it with Loader::open".to_string(),
            })
        }
    };
    let headers = validate::read_headers(&sys, &opened.fd, &opened.path, &opened.first, false)?;
    map_segments(&sys, &opened.fd, &headers)
}
