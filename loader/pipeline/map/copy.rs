//! Stage 3 for an object held in memory (`Loader::open_bytes`): the read()
//! way instead of mmap's. The same plan as a file's mapping (the same
//! reservation, the same addresses, the same protections in the end), but
//! each PT_LOAD is anonymous memory filled by copying its data from the
//! bytes: every page of every segment is written, so resident and private
//! to this process from the start, where a file's mapping brings its pages
//! in from the page cache when first touched and shares them with every
//! other process that maps the file.
//!
//! System call for system call: one anonymous `PROT_NONE` reservation of
//! the whole image (its holes stay that way), then for each segment an
//! anonymous read-write `mmap` with `MAP_FIXED` over its pages, the copy
//! (no system call: a memcpy), and an `mprotect` to the segment's own
//! protections. .bss needs nothing: anonymous memory is zero.

use crate::base::error::{Error, TransferFault};
use crate::model::image::{LoadBias, MappedImage, Source};
use crate::os::sys::Sys;
use crate::pipeline::validate::Headers;

use super::{align_up, LoadCmd, Plan, Reservation};

/// Copies the segments of a validated object from `bytes` (the object
/// whose `headers` were read from them) into anonymous memory laid out as
/// its mapping would be. On error everything mapped so far is unmapped.
pub(crate) fn copy_segments(
    sys: &Sys,
    bytes: &[u8],
    headers: &Headers,
) -> Result<MappedImage, Error> {
    let plan = Plan::new(headers);
    let mut res = Reservation {
        start: 0,
        len: 0,
        sys: *sys,
        name: plan.name.clone(),
    };
    let start = reserve(sys, &plan, &mut res)?;
    let bias = LoadBias(start.wrapping_sub(plan.first().mapstart as usize));
    for c in &plan.cmds {
        copy_segment(sys, bytes, &plan, bias, c)?;
    }
    Ok(res.into_image(headers, bias, Source::Bytes))
}

/// The reservation: the whole image as anonymous memory without access,
/// aligned to the largest p_align (more is reserved and both ends given
/// back, as for a file).
fn reserve(sys: &Sys, plan: &Plan<'_>, res: &mut Reservation) -> Result<usize, Error> {
    let path = &plan.headers.path;
    let length = align_up(plan.maplength as u64, plan.page) as usize;
    let align = plan.mapalign as usize;
    let slack = if align > plan.page as usize { align } else { 0 };
    let note = || {
        format!(
            "{}: reserves the whole image, {} bytes, to copy the segments into",
            plan.name, plan.maplength
        )
    };
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: no MAP_FIXED: the kernel chooses a free range, which nothing
    // else refers to.
    let raw = unsafe { sys.mmap(0, length + slack, libc::PROT_NONE, flags, -1, 0, note) }
        .map_err(|e| Error::io(path, "mmap of the reservation", e))?;
    res.start = raw;
    res.len = length + slack;
    if slack == 0 {
        return Ok(raw);
    }
    let aligned = (raw + align - 1) & !(align - 1);
    let end = aligned + length;
    if aligned > raw {
        // SAFETY: the slack before the image belongs to the reservation.
        unsafe { sys.munmap(raw, aligned - raw, "slack before the aligned image") }
            .map_err(|e| Error::io(path, "munmap of alignment slack", e))?;
    }
    res.start = aligned;
    res.len = raw + length + slack - aligned;
    if raw + length + slack > end {
        // SAFETY: the slack after the image belongs to the reservation.
        unsafe {
            sys.munmap(
                end,
                raw + length + slack - end,
                "slack after the aligned image",
            )
        }
        .map_err(|e| Error::io(path, "munmap of alignment slack", e))?;
        res.len = length;
    }
    Ok(aligned)
}

/// One PT_LOAD: anonymous read-write pages over its part of the
/// reservation, its file data (from the start of its first page, as a
/// file mapping has it) copied in, then its own protections.
fn copy_segment(
    sys: &Sys,
    bytes: &[u8],
    plan: &Plan<'_>,
    bias: LoadBias,
    c: &LoadCmd,
) -> Result<(), Error> {
    let path = &plan.headers.path;
    let start = bias.at(c.mapstart);
    let len = (align_up(c.allocend, plan.page) - c.mapstart) as usize;
    if len == 0 {
        return Ok(());
    }
    // Validation put p_offset + p_filesz inside the bytes, and p_offset is
    // congruent to p_vaddr: the data from the segment's first page on is
    // mapoff..mapoff + (dataend - mapstart).
    let from = c.mapoff as usize;
    let want = c.dataend - c.mapstart;
    let data = usize::try_from(want)
        .ok()
        .and_then(|n| bytes.get(from..from.checked_add(n)?))
        .ok_or_else(|| Error::Transfer {
            path: path.clone(),
            what: "copy of segment",
            segment: Some(c.index),
            fault: TransferFault::DataOutside {
                offset: c.mapoff,
                len: want,
                size: bytes.len() as u64,
            },
        })?;
    let note = || {
        format!(
            "{} segment {} {}: anonymous, {} bytes copied in from {:#x}..{:#x} of the bytes",
            plan.name,
            c.index,
            c.prot,
            data.len(),
            from,
            from + data.len()
        )
    };
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let fixed = libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_ANONYMOUS;
    // SAFETY: the range lies inside our reservation, which nothing else
    // refers to yet.
    unsafe { sys.mmap(start, len, rw, fixed, -1, 0, note) }
        .map_err(|e| Error::io_segment(path, "mmap of segment", c.index, e))?;
    // SAFETY: start..start+len was just mapped read-write, and data.len()
    // is at most len (dataend <= allocend); `bytes` is the caller's memory,
    // which cannot overlap a mapping made just now.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), start as *mut u8, data.len()) };
    if c.prot.0 != rw {
        let note = || format!("{} segment {}: copied, now {}", plan.name, c.index, c.prot);
        // SAFETY: the segment's own pages, just mapped and filled; nothing
        // of the object runs yet.
        unsafe { sys.mprotect(start, len, c.prot.0, note) }
            .map_err(|e| Error::io_segment(path, "mprotect of segment", c.index, e))?;
    }
    Ok(())
}
